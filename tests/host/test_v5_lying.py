"""MQTT 5 brokers that lie or change their limits between connections, against both
clients with a SessionStore on a littlefs image (scripted broker; a reboot between the
two device runs): a Receive Maximum of 1 and then none (65535) with messages in flight
and queued; a PUBREC with a failure reason code for a stored QoS 2 message resent after
a reboot; an Assigned Client Identifier on the resume of a session with its own ID; a
DISCONNECT 0x8E (session taken over) with QoS 2 messages in flight. All pass: regression
cover for what the library does right."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from harness import run_device
from hostile import CONNECT, PUBLISH, PUBREL, Script, connack
from test_guard import HEAP, SubackingBroker

pytestmark = pytest.mark.slow


def pub_pid(first: int, body: bytes) -> int:
    n = int.from_bytes(body[:2], "big")
    return int.from_bytes(body[2 + n : 4 + n], "big") if first & 6 else 0


class AckAllBroker(SubackingBroker):
    """("ackall", seconds, fail): for that long, answers every PUBLISH (PUBACK, or PUBREC
    for QoS 2) and every PUBREL (PUBCOMP); fail maps a topic to a reason code >= 0x80
    sent in that PUBLISH's acknowledgement instead."""

    def _step(self, s: Any, r: Any, conn: Any, step: Any) -> bool:
        if step[0] != "ackall":
            return super()._step(s, r, conn, step)
        end = time.monotonic() + step[1]
        fail = step[2] if len(step) > 2 else {}
        while (p := r.next(end)) is not None:
            first, body = p
            if first & 0xF0 == PUBLISH and first & 6:
                pid = pub_pid(first, body).to_bytes(2, "big")
                topic = body[2 : 2 + int.from_bytes(body[:2], "big")]
                t = 0x50 if first & 6 == 4 else 0x40
                rc = fail.get(topic)
                s.sendall(bytes([t, 4]) + pid + bytes([rc, 0]) if rc else bytes([t, 2]) + pid)
            elif first & 0xF0 == PUBREL:
                s.sendall(bytes([0x70, 2]) + body[:2])
        return True


def run(scripts: list[Script], cfg: dict[str, Any]) -> tuple[Any, Any]:
    with AckAllBroker(scripts) as b:
        c = {"HOST": b.host, "PORT": b.port, **cfg}
        r = run_device("dev_v5_lying.py", c, heap=HEAP, timeout=90, check=False)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not all(c.closed_by_client for c in b.conns):
            time.sleep(0.05)
    return r, b


def published(b: Any, k: int) -> list[tuple[bytes, int, int]]:
    """(topic, packet ID, DUP) of each PUBLISH connection k saw."""
    out = []
    for f, body in b.conns[k].packets:
        if f & 0xF0 == PUBLISH:
            n = int.from_bytes(body[:2], "big")
            out.append((body[2 : 2 + n], pub_pid(f, body), f & 8))
    return out


@pytest.mark.parametrize("qos", [1, 2])
@pytest.mark.parametrize("api", ["blocking", "aio"])
def test_receive_maximum_1_then_none_after_reboot(tmp_path: Path, api: str, qos: int) -> None:
    """Boot 1: CONNACK Receive Maximum 1, four messages published (one in flight, three
    queued in flash), then a reboot. Boot 2: the session is resumed at a broker without a
    Receive Maximum: the one in flight goes out again (its ID, DUP), the others follow as
    new, each once; nothing is lost, dropped or set aside."""
    cfg = {"TEST": api, "IMAGE": str(tmp_path / "flash.img"), "QOS": qos, "N": 4,
           "CID": f"rm-{api}-{qos}"}
    first = [("expect", CONNECT), ("send", connack(0, 0, 5, b"\x21\x00\x01")),
             ("expect", PUBLISH), ("listen", 1.0)]
    r1, b1 = run([first], {**cfg, "PHASE": 1, "P1_MS": 500})
    assert "QUEUED 4" in r1.out, r1.out
    sent1 = published(b1, 0)
    assert len(sent1) == 1, sent1
    second = [("expect", CONNECT), ("send", connack(1, 0, 5)), ("ackall", 8.0)]
    r2, b2 = run([second], {**cfg, "PHASE": 2})
    assert "PENDING 0" in r2.out and "DROPPED 0" in r2.out and "ASIDE []" in r2.out, r2.out
    sent2 = published(b2, 0)
    assert [t for t, _, _ in sent2] == [b"t/m0", b"t/m1", b"t/m2", b"t/m3"], (sent2, r2.out)
    if qos == 2:  # (a QoS 1 message's packet ID is not written to flash)
        assert sent2[0][1:] == (sent1[0][1], 8), (sent1, sent2)


@pytest.mark.parametrize("api", ["blocking", "aio"])
def test_pubrec_failure_for_qos2_resent_after_reboot(tmp_path: Path, api: str) -> None:
    """Boot 1: three QoS 2 messages in flight; the broker PUBRECs the first (PUBREL out)
    and closes. Boot 2, session present: the PUBREL is completed, the second message's
    resend is refused with PUBREC 0x97 (set aside with that reason), the third is taken;
    nothing pending, nothing dropped."""
    cfg = {"TEST": api, "IMAGE": str(tmp_path / "flash.img"), "QOS": 2, "N": 3,
           "CID": f"rec-{api}"}
    first = [("expect", CONNECT), ("send", connack(0, 0, 5)),
             ("expect", PUBLISH), ("expect", PUBLISH), ("expect", PUBLISH),
             ("send", bytes([0x50, 2, 0, 1])), ("expect", PUBREL), ("close",)]
    # (later connections of boot 1 are closed at once: the session stays as it was)
    r1, b1 = run([first, [("close",)]], {**cfg, "PHASE": 1, "P1_MS": 1500})
    assert "QUEUED 3" in r1.out, r1.out
    second = [("expect", CONNECT), ("send", connack(1, 0, 5)),
              ("ackall", 6.0, {b"t/m1": 0x97})]
    r2, b2 = run([second], {**cfg, "PHASE": 2})
    assert "PENDING 0" in r2.out and "DROPPED 0" in r2.out, r2.out
    assert "ASIDE [('t/m1', 151)]" in r2.out or "ASIDE [(b't/m1', 151)]" in r2.out, r2.out
    assert b2.conns[0].pids(PUBREL) == [1, 3], b2.conns[0].packets
    assert [t for t, _, _ in published(b2, 0)] == [b"t/m1", b"t/m2"], r2.out


def pstr(p: int, v: bytes) -> bytes:
    return bytes([p]) + len(v).to_bytes(2, "big") + v


@pytest.mark.parametrize("api", ["blocking", "aio"])
def test_assigned_id_on_resume_of_own_id(tmp_path: Path, api: str) -> None:
    """Boot 2 resumes "its" session (Session Present 1) and the CONNACK assigns another
    client ID: a protocol error, the stored session untouched; the next connection (a
    sane broker) takes the messages, and the store keeps its client ID."""
    cfg = {"TEST": api, "IMAGE": str(tmp_path / "flash.img"), "QOS": 2, "N": 2,
           "CID": f"as-{api}"}
    r1, b1 = run([[("close",)]], {**cfg, "PHASE": 1, "P1_MS": 200})
    assert "QUEUED 2" in r1.out, r1.out
    liar = [("expect", CONNECT), ("send", connack(1, 0, 5, pstr(0x12, b"../other")))]
    sane = [("expect", CONNECT), ("send", connack(1, 0, 5)), ("ackall", 6.0)]
    r2, b2 = run([liar, sane], {**cfg, "PHASE": 2})
    assert "PENDING 0" in r2.out and "DROPPED 0" in r2.out and "ASIDE []" in r2.out, r2.out
    assert f"CID as-{api}" in r2.out, r2.out
    assert [t for t, _, _ in published(b2, 1)] == [b"t/m0", b"t/m1"], r2.out


@pytest.mark.parametrize("api", ["blocking", "aio"])
def test_session_taken_over_with_qos2_in_flight_store(tmp_path: Path, api: str) -> None:
    """Two QoS 2 messages in flight when the broker sends DISCONNECT 0x8E (session taken
    over); the next connection resumes the session: both go out again with their IDs and
    DUP, once each; nothing set aside or dropped."""
    cfg = {"TEST": api, "IMAGE": str(tmp_path / "flash.img"), "QOS": 2, "N": 2,
           "CID": f"to-{api}", "PHASE": 0}
    from hostile import packet
    first = [("expect", CONNECT), ("send", connack(0, 0, 5)), ("expect", PUBLISH),
             ("expect", PUBLISH), ("send", packet(0xE0, b"\x8e\x00"))]
    second = [("expect", CONNECT), ("send", connack(1, 0, 5)), ("ackall", 6.0)]
    r, b = run([first, second], cfg)
    assert "PENDING 0" in r.out and "DROPPED 0" in r.out and "ASIDE []" in r.out, r.out
    p0, p1 = published(b, 0), published(b, 1)
    assert [(t, p) for t, p, _ in p1] == [(t, p) for t, p, _ in p0], (p0, p1)
    assert all(dup for _, _, dup in p1), p1
