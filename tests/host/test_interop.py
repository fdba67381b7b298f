"""The client on the unix port against the brokers a node may meet: mosquitto in memory and
with persistence, aedes (npm) and amqtt (PyPI), per protocol version each one speaks.

Where a broker falls short, the test asserts the shortfall and runs paho-mqtt in the same
test to show that the broker, not the client, is the cause (see docs: the broker table).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import brokers
from brokers.probe import (
    connect_code,
    offline_queue,
    pubrel_twice,
    qos2_answer,
    qos2_state_after_reconnect,
    unsolicited_retained,
    v5_connect_answer,
)
from harness import Observer, publish, run_device, start_device

HEAP = "256k"
# (broker kind, protocol version): every version each broker accepts
SLOW = [pytest.mark.slow]
CASES = [pytest.param((k, v), marks=SLOW if kd.slow else [], id=f"{k}-v{v}")
         for k, kd in brokers.KINDS.items() for v in kd.versions]


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One broker of each kind, started on first use, shared by the module's tests."""
    made: dict[str, Any] = {}
    yield made
    for b in made.values():
        b.close()


def unavailable(kind: str) -> None:
    """Fails the test when the set-up should have installed this broker and did not; skips
    it for a broker make installs only where it may use apt (RabbitMQ)."""
    why = brokers.missing(kind)
    if why:
        (pytest.skip if brokers.KINDS[kind].optional else pytest.fail)(
            f"{kind} is not installed: {why}")


def shared(pool: dict[str, Any], kind: str, tmp: pytest.TempPathFactory) -> Any:
    unavailable(kind)
    if kind not in pool:
        pool[kind] = brokers.make(kind, tmp.mktemp(kind))
    return pool[kind]


@pytest.fixture(params=CASES)
def case(request: pytest.FixtureRequest, pool: dict[str, Any],
         tmp_path_factory: pytest.TempPathFactory) -> tuple[str, int, Any]:
    kind, version = request.param
    return kind, version, shared(pool, kind, tmp_path_factory)


def cfg(b: Any, kind: str, test: str, version: int, tmp: Path, **kw: Any) -> dict[str, Any]:
    tag = f"{kind.replace('-', '')}{version}{test}"
    return {
        "HOST": b.host,
        "PORT": b.port,
        "VERSION": version,
        "TEST": test,
        "PREFIX": f"io/{tag}",
        "CID": f"io-{tag}",
        "IMAGE": str(tmp / "flash.img"),
        "BLOCKS": 128,
        **kw,
    }


def dev(c: dict[str, Any], **kw: Any) -> Any:
    return run_device("dev_interop.py", c, heap=HEAP, **kw)


def cut(c: dict[str, Any]) -> str:
    """Runs the scenario to its CUT point, then cuts the power (SIGKILL)."""
    p = start_device("dev_interop.py", c, heap=HEAP)
    try:
        p.wait_for("CUT", timeout=30)
        p.kill()
        return p.output()
    finally:
        p.close()


def wait_distinct(obs: Observer, want: set[bytes], timeout: float) -> None:
    """Waits until the observer has every payload in want (duplicates do not count)."""
    deadline = time.monotonic() + timeout
    while not want <= set(obs.payloads()) and time.monotonic() < deadline:
        time.sleep(0.05)


def test_roundtrip_sizes_and_qos(case: tuple[str, int, Any], tmp_path: Path) -> None:
    kind, v, b = case
    c = cfg(b, kind, "roundtrip", v, tmp_path)
    with Observer(b.host, b.port, f"{c['PREFIX']}/rt/#", qos=2, protocol=v) as obs:
        dev(c)
        msgs = obs.wait_for(9)
        if brokers.KINDS[kind].grants_subscription_qos:
            # paho's QoS 0 message reaches the QoS 2 subscriber at QoS 2 as well
            publish(b.host, b.port, f"{c['PREFIX']}/rt/paho/0", b"p", qos=0, protocol=v)
            assert [m.qos for m in obs.wait_for(10)[9:]] == [2]
    got = sorted((m.topic.rsplit("/", 2)[1], len(m.payload), m.qos) for m in msgs)
    top = brokers.KINDS[kind].max_qos
    if brokers.KINDS[kind].grants_subscription_qos:
        assert got == sorted((f"q{q}", n, 2) for q in (0, 1, 2) for n in (0, 200, 5000))
    else:  # a broker without QoS 2 delivers those messages at QoS 1
        assert got == sorted((f"q{q}", n, min(q, top)) for q in (0, 1, 2)
                             for n in (0, 200, 5000))
    if top < 2:
        assert qos2_answer(b, f"{c['PREFIX']}/raw") == 0x40  # PUBACK, to any client


def test_retained(case: tuple[str, int, Any], tmp_path: Path) -> None:
    kind, v, b = case
    c = cfg(b, kind, "retained_set", v, tmp_path)
    dev(c)
    with Observer(b.host, b.port, f"{c['PREFIX']}/ret", qos=1, protocol=v) as obs:
        m = obs.wait_for(1)[0]
    assert (m.payload, m.retain) == (b"kept", True)
    r = dev({**c, "TEST": "retained_get", "CID": c["CID"] + "-get"})
    with Observer(b.host, b.port, f"{c['PREFIX']}/ret", qos=1, protocol=v) as obs:
        publish(b.host, b.port, f"{c['PREFIX']}/ret/x", b"marker", qos=1, protocol=v)
    assert obs.messages == []  # the node's empty retained message cleared it
    if brokers.KINDS[kind].retained_only_to_subscribers:
        assert r.value("COPIES") == "1"
        return
    # amqtt also sends a retained message, unasked, to a client that connects after another
    # one subscribed and left: the node may get it twice; a paho client too
    assert r.value("COPIES") in ("1", "2")
    assert unsolicited_retained(b, f"{c['PREFIX']}/paho") == [b"kept"]


def test_will_on_abnormal_close(case: tuple[str, int, Any], tmp_path: Path) -> None:
    kind, v, b = case
    c = cfg(b, kind, "will", v, tmp_path)
    with Observer(b.host, b.port, f"{c['PREFIX']}/will", qos=1, protocol=v) as obs:
        p = start_device("dev_interop.py", c, heap=HEAP)
        try:
            p.wait_for("READY", timeout=20)
            assert obs.messages == []
            p.kill()
            msgs = obs.wait_for(1, timeout=15)
        finally:
            p.close()
    assert [m.payload for m in msgs] == [b"node died"]


@pytest.mark.parametrize("end", ["disconnect", "kill"])
def test_persistent_session_resume(case: tuple[str, int, Any], tmp_path: Path, end: str) -> None:
    """Messages published while the node is away all arrive once it is back, QoS 2 once."""
    kind, v, b = case
    c = cfg(b, kind, "sub_setup", v, tmp_path, END=end, CID=f"io-{kind}{v}-ps-{end}")
    if end == "kill":
        cut(c)
    else:
        dev(c)
    p = c["PREFIX"]
    sent = []
    for i in range(3):
        for q in (1, 2):
            publish(b.host, b.port, f"{p}/ps/{q}", f"q{q}m{i}", qos=q, protocol=v)
            sent.append((f"{p}/ps/{q}", f"q{q}m{i}"))
    offline = brokers.KINDS[kind].delivers_offline_queue
    r = dev({**c, "TEST": "sub_resume", "COUNT": len(sent) if offline else 0, "LINGER": 1500})
    got = [tuple(x) for x in r.values("GOT")]
    assert r.value("PRESENT") == "True"
    if brokers.KINDS[kind].delivers_offline_queue:
        assert sorted(got) == sorted(sent)
        return
    # the broker keeps the subscriptions but drops what was queued: paho loses them too
    assert got == []
    assert offline_queue(b, v, f"{p}/paho") == (True, [])


def test_outgoing_resume_after_power_cut(case: tuple[str, int, Any], tmp_path: Path) -> None:
    """Window 8 with a store, power cut mid-stream: every message arrives, QoS 2 once."""
    kind, v, b = case
    count, cut_at = 24, 13
    c = cfg(b, kind, "pub_stream", v, tmp_path, COUNT=count, CUT_AT=cut_at)
    with Observer(b.host, b.port, f"{c['PREFIX']}/pub", qos=2, protocol=v) as obs:
        out = cut(c)
        r = dev({**c, "TEST": "pub_resume"})
        wait_distinct(obs, {f"n{i}".encode() for i in range(count)}, timeout=15)
        run = {k: r.value(k) for k in ("PRESENT", "PENDING_AT_BOOT", "RELS_AT_BOOT")}
        run["INFLIGHT"] = out.rsplit("INFLIGHT", 1)[-1].split()[0]
        n = Counter(obs.payloads())
    assert set(n) == {f"n{i}".encode() for i in range(count)}, run
    if not brokers.KINDS[kind].session_present_honest:
        # the broker says Session Present 0 yet still holds the QoS 2 state: a raw client
        # resending with the original packet ID gets no duplicate, with a new ID it does
        t = f"{c['PREFIX']}/raw"
        assert qos2_state_after_reconnect(b, t + "/same", 7) == (0, 1)
        assert qos2_state_after_reconnect(b, t + "/new", 8) == (0, 2)
    twice = sorted(m.decode() for m, k in n.items() if k > 1 and int(m[1:]) % 2)
    if brokers.KINDS[kind].max_qos < 2:
        # no QoS 2 at the broker: a PUBACK completed them, at least once (a message in
        # flight at the cut may arrive twice); the broker answers any client so
        assert int(r.value("DOWNGRADED")) > 0, run
        assert qos2_answer(b, f"{c['PREFIX']}/raw") == 0x40
        twice = []
    assert twice == [], f"QoS 2 messages delivered more than once: {twice} ({run})"
    left = int(r.value("PENDING"))
    if brokers.KINDS[kind].answers_repeated_pubrel:
        assert left == 0, run
    else:
        # PUBRELs sent again after the cut are never answered: those stay in flight (the
        # messages themselves were delivered, above); a raw client sees the same silence
        assert left <= int(run["RELS_AT_BOOT"]), run
        assert pubrel_twice(b, f"{c['PREFIX']}/raw/rel") == (True, False)



@pytest.fixture(params=[pytest.param(k, marks=SLOW if kd.slow else [], id=k)
                        for k, kd in brokers.KINDS.items()])
def own_broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Any]]:
    kind = request.param
    unavailable(kind)
    b = brokers.make(kind, tmp_path / "broker")
    yield kind, b
    b.close()


def test_broker_restart(own_broker: tuple[str, Any], tmp_path: Path) -> None:
    """The broker restarts while the node is away with messages in flash: they all go out,
    the subscription holds, and Session Present tells whether the broker kept the session."""
    kind, b = own_broker
    v = brokers.KINDS[kind].versions[-1]
    c = cfg(b, kind, "restart_setup", v, tmp_path, CID=f"io-{kind}-rs")
    dev(c)
    p = c["PREFIX"]
    publish(b.host, b.port, f"{p}/rs/in", b"while-away", qos=1, protocol=v)
    b.restart()
    with Observer(b.host, b.port, f"{p}/rs/out", qos=2, protocol=v) as obs:
        node = start_device("dev_interop.py", {**c, "TEST": "restart_resume"}, heap=HEAP)
        try:
            node.wait_for("READY", timeout=30)
            publish(b.host, b.port, f"{p}/rs/in", b"after", qos=1, protocol=v)
            r = node.result(timeout=30)
        finally:
            node.close()
        obs.wait_for(3)
        assert sorted(obs.payloads()) == [b"o0", b"o1", b"o2"]
    got = [x[1] for x in r.values("GOT")]
    kept = brokers.KINDS[kind].keeps_sessions_across_restart
    assert r.value("PRESENT") == str(kept)
    assert got == (["while-away", "after"] if kept else ["after"])


def test_amqtt_forgets_anonymous_sessions(tmp_path: Path) -> None:
    """amqtt with its AnonymousAuthPlugin (allow_anonymous) takes every client as anonymous
    and forgets an anonymous persistent session, subscriptions and queue, at its session
    monitor's next tick (about a second) after the client disconnects: paho gets Session
    Present 0 and none of the messages published meanwhile. The suite's amqtt accepts
    clients without marking them anonymous (tools/brokers/amqtt_open_auth.py)."""
    unavailable("amqtt")

    def forgotten(cid: str) -> None:  # amqtt logs it (debug) when its monitor drops it
        deadline = time.monotonic() + 30
        while f"Clearing all subscriptions for session {cid}" not in b.log():
            assert time.monotonic() < deadline, b.log_tail()
            time.sleep(0.1)

    with brokers.Amqtt(tmp_path / "amqtt", anonymous=True) as b:
        assert offline_queue(b, 4, "io/anon/q", away=forgotten) == (False, [])


@pytest.mark.parametrize("kind", ["aedes", "amqtt"])
def test_mqtt5_refused_by_a_311_broker(pool: dict[str, Any], kind: str,
                                       tmp_path_factory: pytest.TempPathFactory,
                                       tmp_path: Path) -> None:
    """A 3.1.1-only broker asked for MQTT 5: the node gets MQTTException(1, unacceptable
    protocol version), or, where the broker never answers, OSError(110) at its timeout."""
    b = shared(pool, kind, tmp_path_factory)
    r = dev(cfg(b, kind, "v5_refused", 5, tmp_path, TIMEOUT=5))
    assert connect_code(b, 5) != 0, f"{kind} accepted paho's MQTT 5 CONNECT"
    if kind == "amqtt":
        # amqtt refuses a property-less MQTT 5 CONNECT with a 3.1.1 CONNACK (code 1), but
        # reads a CONNECT with properties (every stored session sends Session Expiry) as
        # 3.1.1 and waits for bytes that never come: no answer at all, for any client
        assert v5_connect_answer(b, None) == b"\x20\x02\x00\x01"
        assert v5_connect_answer(b, 3600) is None
        assert r.values("OSERROR") == [["110"]], r.out
    else:
        assert r.values("MQTTEXC") == [["1"]], r.out
