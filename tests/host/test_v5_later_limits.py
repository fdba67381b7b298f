"""MQTT 5 limits a later CONNACK announces, met by messages the session already holds
(blocking client): a message in flight before the broker announced Maximum QoS 0 is
resent at QoS 0, and a QoS 0 PUBLISH never carries DUP ([MQTT-3.3.1-2]: a broker such
as mosquitto closes the connection on it as malformed). Also, against a real mosquitto:
stored messages meeting a later broker's Maximum Packet Size, Maximum QoS and Retain
Available after a reboot, Server Keep Alive; and a DISCONNECT 0x8E/0x98 with messages
in flight (scripted broker)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from harness import Observer, run_device
from hostile import CONNECT, PUBLISH, Script, connack
from test_guard import HEAP, SubackingBroker


def run(scripts: list[Script], test: str, **kw: Any) -> tuple[Any, Any]:
    with SubackingBroker(scripts) as b:
        cfg = {"HOST": b.host, "PORT": b.port, "TEST": test, **kw}
        r = run_device("dev_v5_later_limits.py", cfg, heap=HEAP, timeout=60, check=False)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not all(c.closed_by_client for c in b.conns):
            time.sleep(0.05)
    return r, b


FIRST = [("expect", CONNECT), ("send", connack(version=5)), ("expect", PUBLISH), ("close",)]


def test_resent_under_maximum_qos_0_has_no_dup() -> None:
    second = [("expect", CONNECT), ("send", connack(1, 0, 5, b"\x24\x00")), ("listen", 1.5)]
    r, b = run([FIRST, second], "resume_capped")
    assert len(b.conns) >= 2, r.out
    pubs = [f for f, _ in b.conns[1].packets if f & 0xF0 == PUBLISH]
    assert pubs, (r.out, b.conns[1].packets)
    assert all(not f & 0x08 for f in pubs if not f & 0x06), \
        f"QoS 0 PUBLISH with DUP: {[hex(f) for f in pubs]}\n{r.out}"


@pytest.mark.parametrize("limits", ["downgrade", "refuse"])
@pytest.mark.parametrize("api", ["blocking", "aio"])
def test_stored_messages_meet_later_mosquitto_limits(broker_factory: Any, tmp_path: Path,
                                                      api: str, limits: str) -> None:
    """Messages stored offline on one boot meet, on the next, a mosquitto with
    max_packet_size 100, max_qos 1 and retain_available false: the large ones are given up
    and counted in `dropped`, the others go out within the limits (counted in
    `downgraded`), each once; nothing is left in the store on the boot after."""
    b = broker_factory(extra=["max_packet_size 100", "max_qos 1", "retain_available false"])
    c = {"HOST": b.host, "PORT": b.port, "TEST": api, "IMAGE": str(tmp_path / "flash.img"),
         "CID": f"lm-{api}-{limits}", "LIMITS": limits}
    r = run_device("dev_v5_later_limits_mosq.py", {**c, "PHASE": 1}, heap=HEAP, timeout=60)
    assert r.value("QUEUED") == "5", r.out
    with Observer(b.host, b.port, "ok/#", qos=2) as o:
        r = run_device("dev_v5_later_limits_mosq.py", {**c, "PHASE": 2}, heap=HEAP, timeout=90)
        got = o.wait_for(3, timeout=30)
        time.sleep(1)
        got = list(o.messages)
    assert r.value("PENDING") == "0", r.out
    assert r.value("DROPPED") == "2", r.out  # big1, big2
    # s2, s3 (and big2, capped before it was found too large)
    assert r.value("DOWNGRADED") in ("2", "3"), r.out
    assert sorted((m.topic, m.payload) for m in got) == [
        ("ok/s1", b"a"), ("ok/s2", b"b"), ("ok/s3", b"c")], (got, r.out)
    r = run_device("dev_v5_later_limits_mosq.py", {**c, "PHASE": 3}, heap=HEAP, timeout=60)
    assert r.value("PENDING") == "0", r.out
    assert "oversize" not in b.log() and "q2" not in b.log(), b.log_tail()


@pytest.mark.slow  # 10 s each, waiting on the keeper: with --runslow
@pytest.mark.parametrize("reason", [0x8E, 0x98])
@pytest.mark.parametrize("qos", [1, 2])
def test_disconnect_not_about_messages_in_flight(reason: int, qos: int) -> None:
    """A DISCONNECT that says nothing about the messages in flight (0x8E session taken
    over, 0x98 use another server), the first of three PUBREC'd (QoS 2): on the next
    connection (session present) everything is resent once (the PUBREL'd one as PUBREL,
    the rest as PUBLISH with DUP), nothing set aside or dropped."""
    from hostile import packet
    first = [("expect", CONNECT), ("send", connack(version=5))] + [
        ("expect", PUBLISH)] * 3
    if qos == 2:
        first += [("send", bytes([0x50, 2, 0, 1])), ("expect", 0x60)]
    first += [("send", packet(0xE0, bytes([reason, 0])))]
    second = [("expect", CONNECT), ("send", connack(1, 0, 5)), ("listen", 2.0)]
    r, b = run([first, second, second], "disc_inflight", QOS=qos)
    c1 = b.conns[1]
    assert "ASIDE 0" in r.out and "DROPPED 0" in r.out, r.out
    pubs = [(f, body) for f, body in c1.packets if f & 0xF0 == PUBLISH]
    if qos == 2:
        assert c1.pids(0x60) == [1], (c1.packets, r.out)
        assert [int.from_bytes(x[5:7], "big") for _, x in pubs] == [2, 3], (pubs, r.out)
    else:
        assert len(pubs) == 3, (pubs, r.out)
    assert all(f & 0x08 for f, _ in pubs), (pubs, r.out)


@pytest.mark.slow  # 17 s each, waiting for pings: with --runslow
@pytest.mark.parametrize("ka", [0, 60])
def test_server_keep_alive_pings(broker_factory: Any, ka: int) -> None:
    """mosquitto max_keepalive 10: its Server Keep Alive replaces the node's keepalive (0
    or 60); the node pings on it and mosquitto never drops it for a missed keepalive."""
    b = broker_factory(max_keepalive=10, verbose=True)
    r = run_device("dev_v5_later_limits_mosq.py", {"HOST": b.host, "PORT": b.port, "TEST": "idle",
                   "KA": ka, "RUN_MS": 17000, "CID": f"ska{ka}"}, heap=HEAP, timeout=60)
    assert r.value("KA") == "10", r.out
    assert r.values("UP")[-1] == ["True", "OUTAGES", "0"], r.out
    assert b.log().count("Received PINGREQ") >= 2, b.log_tail()
