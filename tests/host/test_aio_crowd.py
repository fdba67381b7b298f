"""Several tasks awaiting the asyncio client at once (tests/device/dev_aio_crowd.py)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from harness import Observer, Publisher, run_device, start_device
from hostile import CONNECT, PUBLISH, Script, connack
from test_guard import SubackingBroker

HEAP = "256k"


def run(scripts: list[Script], test: str, **kw: Any) -> tuple[Any, Any]:
    with SubackingBroker(scripts) as b:
        cfg = {"HOST": b.host, "PORT": b.port, "VERSION": 4, "TEST": test, **kw}
        r = run_device("dev_aio_crowd.py", cfg, heap=HEAP, timeout=90, check=False)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not all(c.closed_by_client for c in b.conns):
            time.sleep(0.05)
    return r, b


def test_publishers_waiting_for_room_behind_a_moving_window_keep_the_link() -> None:
    # window=1, timeout 3 s, each PUBACK 1 s after its PUBLISH: the window moves every
    # second, yet the sixth publisher's wait for room is 5 s long in all. Up to now each
    # wait for room counted from its own start: past timeout the healthy link was
    # closed as dead and the waiting publishes raised OSError(110)
    n = 6
    slow: Script = [("expect", CONNECT), ("send", connack())] + [
        s for _ in range(n) for s in (("expect", PUBLISH), ("sleep", 1.0), ("puback", b""))
    ] + [("listen", 3)]
    r, b = run([slow], "crowd", N=n)
    assert "PASS" in r.out, r.out
    assert len(b.conns) == 1, r.out
    assert len(b.conns[0].of_type(PUBLISH)) == n, r.out


def test_storm_restart_with_concurrent_publishers_and_a_slow_raising_consumer(
        broker_factory: Any, tmp_path: Path) -> None:
    b = broker_factory(persistence=True)
    pre = f"st-{tmp_path.name}"[-20:]
    c = {"HOST": b.host, "PORT": b.port, "VERSION": 4, "TEST": "storm", "PREFIX": pre,
         "IMAGE": str(tmp_path / "flash.img"), "CID": f"s-{tmp_path.name}"[-23:], "N": 40}
    with Observer(b.host, b.port, f"{pre}/out/#", qos=2, persistent=True) as obs:
        dev = start_device("dev_aio_crowd.py", c, heap="512k")
        try:
            dev.wait_for("READY", timeout=30)
            with Publisher(b.host, b.port) as p:
                for i in range(20):
                    p.publish(f"{pre}/in", f"c{i}", 2)
            time.sleep(0.5)
            b.stop()
            time.sleep(1.0)
            b.start()
            time.sleep(1.0)
            with Publisher(b.host, b.port) as p:
                for i in range(20, 40):
                    p.publish(f"{pre}/in", f"c{i}", 2)
                p.publish(f"{pre}/in", "end", 2)
            r = dev.result(timeout=120, check=False)
        finally:
            dev.close()
        time.sleep(1.0)
        out = [m.payload.decode() for m in obs.messages]
    assert "PASS" in r.out, r.out
    got = r.value("GOT").split()
    assert sorted(got) == sorted([f"c{i}" for i in range(40)] + ["end"]), r.out
    want = {f"{j}-{i}" for j in range(3) for i in range(40)}
    assert want <= set(out), f"lost {sorted(want - set(out))}"


def test_cancelled_message_iterator_task_loses_nothing(broker_factory: Any,
                                                       tmp_path: Path) -> None:
    b = broker_factory()
    pre = f"ci-{tmp_path.name}"[-20:]
    c = {"HOST": b.host, "PORT": b.port, "VERSION": 4, "TEST": "cancel_iter", "PREFIX": pre,
         "CID": f"c-{tmp_path.name}"[-23:]}
    dev = start_device("dev_aio_crowd.py", c, heap="256k")
    try:
        dev.wait_for("READY", timeout=30)
        with Publisher(b.host, b.port) as p:
            for i in range(10):
                p.publish(f"{pre}/in", f"c{i}", 2)
            p.publish(f"{pre}/in", "end", 2)
        r = dev.result(timeout=90, check=False)
    finally:
        dev.close()
    assert "PASS" in r.out, r.out
    assert r.value("GOT").split() == [f"c{i}" for i in range(10)] + ["end"], r.out


def test_wait_for_around_a_qos1_publish() -> None:
    script: Script = [("expect", CONNECT), ("send", connack()), ("expect", PUBLISH),
                      ("sleep", 1.5), ("puback", b""), ("expect", PUBLISH), ("puback", b""),
                      ("listen", 3)]
    r, b = run([script], "wait_for_pub")
    assert "PASS" in r.out and "TIMEDOUT" in r.out, r.out
    assert len(b.conns) == 1 and len(b.conns[0].of_type(PUBLISH)) == 2, r.out


def test_disconnect_amid_qos2_publishers_then_two_connects(broker_factory: Any,
                                                           tmp_path: Path) -> None:
    b = broker_factory()
    pre = f"bc-{tmp_path.name}"[-20:]
    c = {"HOST": b.host, "PORT": b.port, "VERSION": 4, "TEST": "bye_crowd", "PREFIX": pre,
         "IMAGE": str(tmp_path / "flash.img"), "CID": f"b-{tmp_path.name}"[-23:]}
    with Observer(b.host, b.port, f"{pre}/out", qos=2) as obs:
        r = run_device("dev_aio_crowd.py", c, heap="512k", timeout=40, check=False)
        time.sleep(1.0)
        out = sorted(m.payload.decode() for m in obs.messages)
    assert "PASS" in r.out, r.out
    assert out == sorted(f"{j}-{i}" for j in range(4) for i in range(5)), (out, r.out)


def test_two_connects_at_once_start_one_reader(broker_factory: Any, tmp_path: Path) -> None:
    b = broker_factory()
    pre = f"ct-{tmp_path.name}"[-20:]
    c = {"HOST": b.host, "PORT": b.port, "VERSION": 4, "TEST": "connect_twice", "PREFIX": pre,
         "CID": f"t-{tmp_path.name}"[-23:]}
    r = run_device("dev_aio_crowd.py", c, heap="256k", timeout=60, check=False)
    assert "PASS" in r.out, r.out
    assert r.value("CONNECTS") == "[False, False] 1", r.out
