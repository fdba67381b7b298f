"""MQTT 5 CONNACK and DISCONNECT content the client must take as the rules say (blocking and
asyncio): a Server Reference that is not UTF-8 is a malformed packet (0x81), not a
UnicodeError out of the client or the end of the asyncio reader; a session resumed under
a lower Receive Maximum resends only what it allows (the rest waits, with its packet ID
and DUP); a broker without wildcard subscriptions (Wildcard Subscription Available 0) is
never asked for one (it would end every connection: a reconnect loop, and an innocent
message in flight set aside)."""
from __future__ import annotations

import time
from typing import Any

import pytest

from harness import run_device
from hostile import CONNECT, PUBLISH, Script, connack, packet, varint
from test_guard import HEAP, SubackingBroker

DISCONNECT = 0xE0


def props(*ps: bytes) -> bytes:
    b = b"".join(ps)
    return varint(len(b)) + b


def pstr(pid: int, s: bytes) -> bytes:
    return bytes([pid]) + len(s).to_bytes(2, "big") + s


class MarkingBroker(SubackingBroker):
    """("mark",): records how many PUBLISHes the connection has seen so far."""

    marks: list[int]

    def _step(self, s: Any, r: Any, conn: Any, step: Any) -> bool:
        if step[0] == "mark":
            self.marks.append(len(conn.of_type(PUBLISH)))
            return True
        if step[0] == "pubrec":
            s.sendall(bytes([0x50, 2]) + pub_pid(conn.of_type(PUBLISH)[-1]).to_bytes(2, "big"))
            return True
        if step[0] == "nowild":
            # a broker without wildcard subscriptions: DISCONNECT 0xA2 on a SUBSCRIBE
            # with a wildcard, PUBACK for each PUBLISH, for `step[1]` seconds
            end = time.monotonic() + step[1]
            while (p := r.next(end)) is not None:
                if p[0] & 0xF0 == 0x80 and (b"#" in p[1] or b"+" in p[1]):
                    s.sendall(packet(DISCONNECT, b"\xa2"))
                    return False
                if p[0] & 0xF0 == PUBLISH:
                    super()._step(s, r, conn, ("puback", b""))
            return True
        return super()._step(s, r, conn, step)


def pub_pid(body: bytes) -> int:
    n = int.from_bytes(body[:2], "big")
    return int.from_bytes(body[2 + n : 4 + n], "big")


def run(scripts: list[Script], test: str, device: str = "dev_v5_rules.py",
        **kw: Any) -> tuple[Any, Any]:
    with MarkingBroker(scripts) as b:
        b.marks = []
        cfg = {"HOST": b.host, "PORT": b.port, "VERSION": 5, "TEST": test, **kw}
        r = run_device(device, cfg, heap=HEAP, timeout=60, check=False)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not all(c.closed_by_client for c in b.conns):
            time.sleep(0.05)
    return r, b


BAD_REF = props(pstr(0x1C, b"\xff\xfe"))


def test_connack_refusal_with_server_reference_not_utf8() -> None:
    refused = connack(0, 0x9C, 5, pstr(0x1C, b"\xff\xfe"))
    r, b = run([[("expect", CONNECT), ("send", refused)]], "connack_ref")
    assert "EXC connect MQTTException" in r.out, r.out


def test_disconnect_with_server_reference_not_utf8() -> None:
    r, b = run([[("expect", CONNECT), ("send", connack(version=5)), ("sleep", 0.3),
                 ("send", packet(DISCONNECT, b"\x9c" + BAD_REF))]], "disc_ref")
    assert "EXC check MQTTException" in r.out, r.out


def test_disconnect_with_server_reference_not_utf8_keeper() -> None:
    ok = [("expect", CONNECT), ("send", connack(version=5)), ("expect", PUBLISH),
          ("puback", b"")]
    r, b = run([[("expect", CONNECT), ("send", connack(version=5)), ("expect", PUBLISH),
                 ("send", packet(DISCONNECT, b"\x9c" + BAD_REF))], ok], "disc_ref_keeper")
    assert "EXC loop none" in r.out and "PENDING 0" in r.out, r.out


def test_aio_disconnect_with_server_reference_not_utf8_keeper() -> None:
    ok = [("expect", CONNECT), ("send", connack(version=5)), ("expect", PUBLISH),
          ("puback", b"")]
    r, b = run([[("expect", CONNECT), ("send", connack(version=5)), ("expect", PUBLISH),
                 ("send", packet(DISCONNECT, b"\x9c" + BAD_REF))], ok], "disc_ref_keeper",
               device="dev_v5_rules_aio.py")
    assert "PENDING 0 READER True" in r.out, r.out


RESUME_FIRST = [("expect", CONNECT), ("send", connack(version=5))] + [
    ("expect", PUBLISH)] * 4 + [("close",)]


@pytest.mark.parametrize("device", ["dev_v5_rules.py", "dev_v5_rules_aio.py"])
def test_session_present_resend_respects_receive_maximum(device: str) -> None:
    second = [("expect", CONNECT), ("send", connack(1, 0, 5, b"\x21\x00\x01")),
              ("listen", 1.0), ("mark",), ("puback", b"")] + [
              s for _ in range(3) for s in (("expect", PUBLISH), ("puback", b""))]
    r, b = run([RESUME_FIRST, second], "resume_quota", device=device)
    pubs = b.conns[1].of_type(PUBLISH)
    assert b.marks[0] <= 1, f"{b.marks[0]} PUBLISHes in flight under Receive Maximum 1"
    assert len(pubs) == 4 and "PENDING 0" in r.out, r.out
    # each resent with its original ID and DUP
    assert [pub_pid(x) for x in pubs] == [pub_pid(x) for x in b.conns[0].of_type(PUBLISH)]
    assert [f & 0x08 for f, _ in b.conns[1].packets if f & 0xF0 == PUBLISH] == [8] * 4


NO_WILD = [("expect", CONNECT), ("send", connack(0, 0, 5, b"\x28\x00")), ("nowild", 6.0)]


@pytest.mark.parametrize("device", ["dev_v5_rules.py", "dev_v5_rules_aio.py"])
def test_wildcard_unavailable_subscription_is_not_a_reconnect_loop(device: str) -> None:
    r, b = run([NO_WILD], "wild_loop", device=device)
    assert len(b.conns) == 1, f"{len(b.conns)} connections in 4 s\n{r.out}"
    assert "ASIDE []" in r.out and "PENDING 0 SUBS []" in r.out, r.out
    assert not b.conns[0].of_type(0x80), "no SUBSCRIBE the broker said it does not take"


def test_session_present_resend_respects_receive_maximum_qos2_store() -> None:
    done = [("pubrec",), ("expect", 0x60), ("reply", 0x60, b"\x70\x02\x00\x00")]
    second = [("expect", CONNECT), ("send", connack(1, 0, 5, b"\x21\x00\x01")),
              ("listen", 1.0), ("mark",)] + done + [("expect", PUBLISH)] + done + [
              ("expect", PUBLISH)] + done + [("expect", PUBLISH)] + done
    r, b = run([RESUME_FIRST, second], "resume_quota", QOS=2, STORE=1)
    pubs = b.conns[1].of_type(PUBLISH)
    assert b.marks[0] <= 1, f"{b.marks[0]} PUBLISHes in flight under Receive Maximum 1"
    assert len(pubs) == 4 and "PENDING 0" in r.out, (r.out, b.errors)
    assert [pub_pid(x) for x in pubs] == [pub_pid(x) for x in b.conns[0].of_type(PUBLISH)]
