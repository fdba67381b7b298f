"""The asyncio client on the unix port against mosquitto (tests/device/dev_aio.py):
handler errors, calls a coroutine handler may not make, a reader that ended, a
session-losing broker restart, booting offline, link faults with a ticker task in the same
loop. Timing bounds are generous: the tight figures are in tools/bench/b_aio.py."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from bench_aio import silent_listener
from faultrig import FaultProxy
from harness import Broker, Observer, publish, run_device, start_device
from harness_proc import free_port

HEAP = "256k"
# Largest pause of a 10 ms ticker allowed in a test (the goal, 20 ms, is benchmarked)
GAP_MS = 1000


def cfg(b: Broker, port: int, tmp: Path, test: str, **kw: Any) -> dict[str, Any]:
    return {
        "HOST": b.host,
        "PORT": port,
        "VERSION": 4,
        "TEST": test,
        "PREFIX": f"aio-{tmp.name}",
        "IMAGE": str(tmp / "flash.img"),
        "CID": f"a-{tmp.name}"[-23:],
        **kw,
    }


def gap(out: str) -> int:
    rows = [ln.split()[1] for ln in out.splitlines() if ln.startswith("GAP ")]
    assert rows, out
    return int(rows[-1])


@pytest.mark.parametrize("version", [4, 5])
def test_handler_errors_do_not_end_the_reader(broker_factory: Any, tmp_path: Path,
                                              version: int) -> None:
    b = broker_factory()
    c = cfg(b, b.port, tmp_path, "handler", VERSION=version)
    pre = c["PREFIX"]
    publish(b.host, b.port, f"{pre}/cmd/r", "kept", qos=1, retain=True)
    with Observer(b.host, b.port, f"{pre}/alive", qos=1) as obs:
        dev = start_device("dev_aio.py", c, heap=HEAP)
        try:
            dev.wait_for("READY", timeout=30)
            for m in ("boom", "ok", "aboom", "echo", "after", "last"):
                publish(b.host, b.port, f"{pre}/cmd/x", m, qos=1)
            r = dev.result(timeout=60)
        finally:
            dev.close()
        assert sorted(m.payload for m in obs.wait_for(2)) == [b"echo", b"yes"]
    got = [v[1] for v in r.values("GOT") if v[0] == f"{pre}/cmd/x"]
    assert got == ["boom", "ok", "aboom", "echo", "after", "last"], r.out
    assert "ERRORS 2 ['ValueError', 'KeyError']" in r.out
    assert "Traceback" not in r.out, "on_error was set: nothing printed by default"


def test_default_report_prints_the_traceback_once(broker_factory: Any, tmp_path: Path) -> None:
    b = broker_factory()
    script = tmp_path / "dev_aio_print.py"
    script.write_text(_PRINT_SCRIPT)
    c = cfg(b, b.port, tmp_path, "print")
    dev = start_device(script, c, heap=HEAP)
    try:
        dev.wait_for("READY", timeout=30)
        publish(b.host, b.port, f"{c['PREFIX']}/cmd", "boom", qos=1)
        publish(b.host, b.port, f"{c['PREFIX']}/cmd", "ok", qos=1)
        r = dev.result(timeout=30)
    finally:
        dev.close()
    assert r.out.count("Traceback") == 1 and "ZeroDivisionError" in r.out, r.out
    assert "GOT ok" in r.out


_PRINT_SCRIPT = """
import asyncio
import devlib as d
from mqttsession.aio import MQTTClient

async def main():
    c = MQTTClient(d.cfg("CID"), d.cfg("HOST"), d.cfg("PORT"), keepalive=30)
    done = asyncio.Event()
    def cb(t, m):
        print("GOT", m.decode())
        if m == b"ok":
            done.set()
        1 / 0 if m == b"boom" else None
    c.set_callback(cb)
    await c.connect()
    await c.subscribe(d.topic("cmd"), 1)
    print("READY")
    await asyncio.wait_for(done.wait(), 20)
    d.check(c.errors == 1 and c.isconnected(), "reported once, still connected")
    await c.disconnect()

asyncio.run(main())
print("PASS")
"""


def handler_calls(b: Broker, tmp_path: Path, version: int) -> tuple[Any, str]:
    c = cfg(b, b.port, tmp_path, "handler_calls", VERSION=version)
    return run_device("dev_aio.py", c, heap=HEAP, timeout=60), c["PREFIX"]


@pytest.mark.parametrize("version", [4, 5])
def test_subscribe_in_a_coroutine_handler_raises_runtimeerror(
        broker_factory: Any, tmp_path: Path, version: int) -> None:
    # inside a coroutine handler subscribe/unsubscribe raise RuntimeError, publish returns
    # once sent, and a task started there subscribes; the reader goes on
    r, pre = handler_calls(broker_factory(), tmp_path, version)
    calls = [" ".join(v[:2]) for v in r.values("CALL")]
    assert calls == ["subscribe RuntimeError", "unsubscribe RuntimeError", "publish returned"]
    got = [tuple(v) for v in r.values("GOT", 1)]
    assert (f"{pre}/out", "from-handler") in got, r.out
    assert (f"{pre}/later", "probe") in got, r.out
    assert r.value("ERRORS") == "0"


def test_calls_refused_in_a_coroutine_handler_change_nothing(broker_factory: Any,
                                                             tmp_path: Path) -> None:
    # bad input gets a clear error and loses nothing: the refused unsubscribe leaves the
    # broker's subscription (the session still lists it), the refused subscribe adds none
    r, pre = handler_calls(broker_factory(), tmp_path, 4)
    assert r.value("SUBS").split() == [f"{pre}/cmd", f"{pre}/later", f"{pre}/out"]
    probes = sorted(v[0] for v in r.values("GOT", 1) if v[1:] == ["probe"])
    assert probes == [f"{pre}/cmd", f"{pre}/later"], r.out


def test_await_after_the_reader_ended_raises(broker_factory: Any, tmp_path: Path) -> None:
    b = broker_factory()
    dev = start_device("dev_aio.py", cfg(b, b.port, tmp_path, "ended"), heap=HEAP)
    try:
        dev.wait_for("READY", timeout=30)
        b.stop()
        r = dev.result(timeout=60)
    finally:
        dev.close()
    assert [v[0] for v in r.values("RAISED")] == ["publish", "subscribe", "messages"], r.out


def test_coroutine_raw_callback_is_reported(broker_factory: Any, tmp_path: Path) -> None:
    # README: raw=True callbacks must be plain functions; one that is not loses nothing
    # silently: each message it gets is an error through on_error
    b = broker_factory()
    r = run_device("dev_aio.py", cfg(b, b.port, tmp_path, "raw_coro"), heap=HEAP)
    assert "TypeError('set_callback(f, raw=True): f must be a plain function'" in r.out, r.out


def test_messages_beside_a_raw_callback(broker_factory: Any, tmp_path: Path) -> None:
    b = broker_factory()
    r = run_device("dev_aio.py", cfg(b, b.port, tmp_path, "raw_iter"), heap=HEAP)
    assert r.values("RAWITER"), r.out


def test_bad_subscription_named_before_the_missing_link(broker_factory: Any,
                                                        tmp_path: Path) -> None:
    b = broker_factory()
    r = run_device("dev_aio.py", cfg(b, b.port, tmp_path, "offline_checks"), heap=HEAP)
    assert [v[0] for v in r.values("OFFLINE")] == ["qos", "filter", "unsub-filter", "good"]
    assert [v[0] for v in r.values("MESSAGES")] == ["None", "0", "-1", "'8'", "2.5"], r.out


def test_session_losing_restart_with_stored_subscription(broker_factory: Any,
                                                         tmp_path: Path) -> None:
    b = broker_factory(persistence=False)  # a restart forgets every session
    c = cfg(b, b.port, tmp_path, "restart", RUN_MS=6000)
    dev = start_device("dev_aio.py", c, heap=HEAP)
    try:
        dev.wait_for("READY", timeout=30)
        b.stop()
        time.sleep(1.0)
        b.start()
        t_up = time.monotonic()
        dev.wait_for("BACK", timeout=30)
        back = time.monotonic() - t_up
        time.sleep(0.5)  # the SUBSCRIBE the reader sent on reconnect has reached the broker
        publish(b.host, b.port, f"{c['PREFIX']}/cmd", "go", qos=2)
        r = dev.result(timeout=60)
    finally:
        dev.close()
    assert [v[:2] for v in r.values("GOT")] == [[f"{c['PREFIX']}/cmd", "go"]], r.out
    # within one backoff step (max 1 s here) of the broker's return, bounded generously
    assert back < 10, f"link back {back:.1f} s after the broker returned"
    assert "LINK down" in r.out and r.out.count("LINK up") >= 2
    assert gap(r.out) < GAP_MS


@pytest.mark.parametrize("version", [4, 5])
def test_boot_offline_then_subscribe_then_link_up(broker_factory: Any, tmp_path: Path,
                                                  version: int) -> None:
    b = broker_factory()
    with FaultProxy(b.host, b.port) as p:
        p.refuse()
        c = cfg(b, p.port, tmp_path, "offline", RUN_MS=5000, VERSION=version)
        with Observer(b.host, b.port, f"{c['PREFIX']}/queued", qos=1) as obs:
            dev = start_device("dev_aio.py", c, heap=HEAP)
            try:
                dev.wait_for("OFFLINE", timeout=30)
                p.forward()
                dev.wait_for("UP", timeout=30)
                time.sleep(0.5)
                publish(b.host, b.port, f"{c['PREFIX']}/gone", "unsubscribed", qos=1)
                publish(b.host, b.port, f"{c['PREFIX']}/cmd", "hello", qos=2)
                r = dev.result(timeout=60)
            finally:
                dev.close()
            assert obs.wait_for(1)[0].payload == b"offline"
    assert [v[1] for v in r.values("GOT")] == ["hello"], r.out
    assert gap(r.out) < GAP_MS


def test_loop_keeps_running_through_link_faults(rig: tuple[Broker, FaultProxy],
                                                tmp_path: Path) -> None:
    b, p = rig
    c = cfg(b, p.port, tmp_path, "faults", RUN_MS=11000)
    with Observer(b.host, b.port, f"{c['PREFIX']}/f", qos=1, persistent=True) as obs:
        dev = start_device("dev_aio.py", c, heap=HEAP)
        try:
            dev.wait_for("READY", timeout=30)
            time.sleep(1)
            p.reset()
            time.sleep(1.5)
            p.blackhole()  # silent: found by keepalive (2 s), reconnects meet silence too
            time.sleep(4)
            p.forward()
            time.sleep(1)
            p.stall()
            time.sleep(1.5)
            p.forward()
            r = dev.result(timeout=90)
        finally:
            dev.close()
        n = int(r.values("SENT")[0][0])
        time.sleep(0.5)
        got = {int(m.payload) for m in obs.messages}
    assert set(range(n)) <= got, f"lost {sorted(set(range(n)) - got)}"
    assert int(r.values("SENT")[0][2]) >= 2, r.out
    assert gap(r.out) < GAP_MS


def test_congested_socket_drains_without_blocking(broker_factory: Any, tmp_path: Path) -> None:
    b = broker_factory()
    go = tmp_path / "go"
    with FaultProxy(b.host, b.port, max_buffer=4096) as p:
        c = cfg(b, p.port, tmp_path, "congested", GO_FILE=str(go))
        with Observer(b.host, b.port, f"{c['PREFIX']}/big", qos=1) as obs:
            dev = start_device("dev_aio.py", c, heap="4m")
            try:
                dev.wait_for("READY", timeout=30)
                p.stall()
                go.write_text("go")
                time.sleep(1.5)
                p.forward()
                r = dev.result(timeout=60)
            finally:
                dev.close()
            m = obs.wait_for(1, timeout=20)[0]
    assert m.payload == bytes(range(256)) * 4096
    assert r.values("PUBLISHED")[0][2] == "0", r.out  # no outage: the link stayed up
    assert int(r.values("PUBLISHED")[0][0]) >= 1000, r.out  # it did wait for the stall
    assert gap(r.out) < GAP_MS


def test_tls_connect_in_steps(broker_factory: Any, certs: Any, tmp_path: Path) -> None:
    b = broker_factory(tls=True)
    r = run_device("dev_aio.py", cfg(b, b.tls_port, tmp_path, "tls", CA_DER=certs.ca_der),
                   heap=HEAP, timeout=60)
    assert "ok own message back over TLS" in r.out
    print(r.value("CONNECTED"))  # the handshake's CPU time shows in the gap (benchmark)
    assert gap(r.out) < GAP_MS


def test_loop_runs_while_the_link_trickles(broker_factory: Any, tmp_path: Path) -> None:
    b = broker_factory()
    with FaultProxy(b.host, b.port) as p:
        c = cfg(b, p.port, tmp_path, "trickle", RUN_MS=5000)
        dev = start_device("dev_aio.py", c, heap=HEAP)
        try:
            dev.wait_for("READY", timeout=30)
            p.throttle(40)  # a 40-byte command takes about a second
            publish(b.host, b.port, f"{c['PREFIX']}/cmd", b"x" * 20, qos=1)
            r = dev.result(timeout=60)
        finally:
            dev.close()
    assert r.values("GOT") == [[f"{c['PREFIX']}/cmd", "20"]], r.out
    assert gap(r.out) < GAP_MS


def test_loop_runs_while_connects_meet_silence(broker_factory: Any, tmp_path: Path) -> None:
    b = broker_factory()
    with silent_listener() as port:
        r = run_device("dev_aio.py", cfg(b, port, tmp_path, "silent", RUN_MS=5000), heap=HEAP,
                       timeout=60)
    assert "OSError(110," in r.value("SILENT"), r.out  # each attempt ended at its deadline
    assert gap(r.out) < GAP_MS


def test_idle_client_sleeps_until_something_is_due(broker_factory: Any, tmp_path: Path) -> None:
    # counts, not timing: the old client slept 20 ms at a time (about 150 sleeps in 3 s)
    b = broker_factory()
    r = run_device("dev_aio.py", cfg(b, b.port, tmp_path, "idle"), heap=HEAP, timeout=60)
    assert int(r.value("SLEEPS")) <= 3, r.out


@pytest.mark.parametrize("version", [4, 5])
def test_disconnect_then_connect_at_once(broker_factory: Any, tmp_path: Path,
                                         version: int) -> None:
    # the reader of the earlier connection may still be ending: the new connect is made
    # all the same (with and without a keeper), and the message iterator ends at
    # disconnect(), also while the keeper sleeps in its backoff
    b = broker_factory()
    c = cfg(b, b.port, tmp_path, "again", VERSION=version, DEAD=free_port())
    r = run_device("dev_aio.py", c, heap=HEAP, timeout=60)
    assert len(r.values("AGAIN")) == 6, r.out
    assert int(r.value("ENDED")) < 5000, r.out  # not at the end of the 20 s backoff


def test_reader_waiting_for_the_application_keeps_the_link(broker_factory: Any,
                                                         tmp_path: Path) -> None:
    # messages(2) full for 4.5 s at keepalive 2: pings still go out (mosquitto checks
    # keepalive only every 6 s, so the gap is measured on the device), the link stays,
    # nothing is delivered twice
    b = broker_factory()
    r = run_device("dev_aio.py", cfg(b, b.port, tmp_path, "backlog"), heap=HEAP, timeout=60)
    assert r.value("BACKLOG") == "[0, 1, 2, 3, 4, 5] outages 0", r.out
    assert int(r.value("SILENT")) < 3000, r.out  # 1.5 x keepalive: the broker's limit
    assert "exceeded timeout" not in b.log(), b.log_tail()


def test_coroutine_callback_set_late_gets_the_held_messages_on_a_quiet_link(
        broker_factory: Any, tmp_path: Path) -> None:
    # 0.2.13 ran them only when the next packet came: with keepalive 0, never
    b = broker_factory()
    r = run_device("dev_aio.py", cfg(b, b.port, tmp_path, "late_coro"), heap=HEAP, timeout=60)
    assert r.value("GOT") == "m0 m1 m2 m3", r.out
    assert r.value("AGAIN") == "0", r.out
