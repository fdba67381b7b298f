"""The hostile-broker case table: what a misbehaving broker sends, and what the client must do.

Each Case is data: the broker's script per protocol version (steps for hostile.py's broker:
("expect", type), ("send", bytes), ("trickle", bytes, interval), ("sleep", s), ("close",),
and CaseBroker's ("answer", type, fn)), the calls the device script makes (connect, then a
passive "check" run, a "sub" or a "pub" call), and the outcome MQTT 3.1.1 / 5.0 and the project's
contract require: the exception per call, whether the link is still up, how many messages
were delivered, and the packets the client must (or must not) have sent. The device script
(tests/device/dev_hostile_cases.py) runs every case against one front end;
tests/host/test_hostile_cases.py judges the results against this table.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hostile import EXPECT_TIMEOUT, Conn, HostileBroker, Script, Step, _Reader

# --------------------------------------------------------------------------------------
# Wire builders (host side: free to build what no correct encoder would)

CONNECT, CONNACK, PUBLISH, PUBACK = 0x10, 0x20, 0x30, 0x40
PUBREC, PUBREL, PUBCOMP = 0x50, 0x60, 0x70
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK = 0x80, 0x90, 0xA0, 0xB0
PINGREQ, PINGRESP, DISCONNECT, AUTH = 0xC0, 0xD0, 0xE0, 0xF0

MALFORMED, PROTOCOL_ERROR, ALIAS_INVALID, TOO_LARGE = 0x81, 0x82, 0x94, 0x95
ETIMEDOUT = 110

# Settings the device script applies to every client (the table's timing depends on them)
TIMEOUT = 1  # seconds, the client's per-step timeout
MAX_PACKET = 1024  # the client's max_packet (its receive buffer)
UNKNOWN_PID = 0x7777
# the sessions every case's store holds before the case (host, client ID, messages queued
# offline); dev_hostile_cases.py seeds the same
SEEDED = (("127.0.0.1", "keep", 2), ("other.host", "keep", 1))
REPO_BUILD = Path(__file__).resolve().parents[2] / "build"


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def u16(n: int) -> bytes:
    return n.to_bytes(2, "big")


def s(b: bytes | str) -> bytes:
    """An MQTT string or binary field: u16 length, then the bytes (no validation)."""
    if isinstance(b, str):
        b = b.encode()
    return u16(len(b)) + b


def pkt(first: int, body: bytes) -> bytes:
    return bytes([first]) + varint(len(body)) + body


def props(*items: bytes) -> bytes:
    body = b"".join(items)
    return varint(len(body)) + body


def p8(pid: int, v: int) -> bytes:
    return bytes([pid, v])


def p16(pid: int, v: int) -> bytes:
    return bytes([pid]) + u16(v)


def p32(pid: int, v: int) -> bytes:
    return bytes([pid]) + v.to_bytes(4, "big")


def pstr(pid: int, v: bytes | str) -> bytes:
    return bytes([pid]) + s(v)


def ppair(k: bytes | str, v: bytes | str) -> bytes:
    return b"\x26" + s(k) + s(v)


def connack(v: int, flags: int = 0, rc: int = 0, prop: bytes | None = None) -> bytes:
    if v == 4:
        return pkt(CONNACK, bytes([flags, rc]))
    return pkt(CONNACK, bytes([flags, rc]) + (prop if prop is not None else props()))


def publish(v: int, topic: bytes | str, payload: bytes = b"x", qos: int = 0, pid: int = 5,
            prop: bytes | None = None, flags: int = 0) -> bytes:
    body = s(topic) + (u16(pid) if qos else b"")
    if v == 5:
        body += prop if prop is not None else props()
    return pkt(PUBLISH | qos << 1 | flags, body + payload)


def ack(first: int, pid: int, v: int = 4, rc: int | None = None,
        prop: bytes | None = None) -> bytes:
    body = u16(pid)
    if v == 5 and (rc is not None or prop is not None):
        body += bytes([rc or 0]) + (prop if prop is not None else b"")
    return pkt(first, body)


def suback_for(codes: bytes, v: int, pid_delta: int = 0, first: int = SUBACK,
               prop: bytes | None = None) -> Callable[[bytes], bytes]:
    """An ("answer", SUBSCRIBE, fn) function: fn gets the SUBSCRIBE's body."""

    def reply(body: bytes) -> bytes:
        pid = (int.from_bytes(body[:2], "big") + pid_delta) & 0xFFFF
        head = u16(pid) + ((prop if prop is not None else props()) if v == 5 else b"")
        return pkt(first, head + codes)

    return reply


# --------------------------------------------------------------------------------------
# Outcomes


@dataclass(frozen=True)
class Want:
    """Allowed outcomes of one call: any of (kind, codes); kind "ok", "mqtt" or "os";
    empty codes means any code of that kind."""

    alts: tuple[tuple[str, frozenset[int]], ...]

    def __or__(self, other: Want) -> Want:
        return Want(self.alts + other.alts)

    def allows(self, kind: str, code: int | None) -> bool:
        for k, codes in self.alts:
            if k == kind and (not codes or code in codes):
                return True
        return False

    def __str__(self) -> str:
        parts = []
        for k, codes in self.alts:
            c = "/".join(f"0x{x:02x}" if k == "mqtt" else str(x) for x in sorted(codes))
            parts.append(k if k == "ok" else f"{'MQTTException' if k == 'mqtt' else 'OSError'}"
                         f"({c or 'any'})")
        return " or ".join(parts)


OK = Want((("ok", frozenset()),))


def MQ(*codes: int) -> Want:  # noqa: N802 (reads like the exception it stands for)
    return Want((("mqtt", frozenset(codes)),))


def OS(*errnos: int) -> Want:  # noqa: N802
    return Want((("os", frozenset(errnos)),))


BAD = MQ(MALFORMED, PROTOCOL_ERROR)  # a malformed packet or a protocol error
TIMED_OUT = OS(ETIMEDOUT)

Check = Callable[[dict[str, Any], Conn, int], list[str]]


def disconnect_codes(c: Conn) -> list[int]:
    """The reason codes of the DISCONNECTs the client sent (0 for one without a body)."""
    return [b[0] if b else 0 for b in c.of_type(DISCONNECT)]


@dataclass(frozen=True)
class Case:
    name: str
    script: Callable[[int], list[Step]]  # the broker's steps for a protocol version
    versions: tuple[int, ...] = (4, 5)
    ops: tuple[str, ...] = ("connect", "check")
    want: dict[str, Want] = field(default_factory=dict)  # per op; missing means OK
    up: bool | None = None  # connected after the last op (None: not checked)
    delivered: int | None = 0  # messages the callback got (None: not checked)
    client: str = "own"  # "own": ID "hc" with stored messages; "null": "" (MQTT 5)
    # length of the passive "check" run; up to 400 it ends once the broker's burst is over,
    # longer ones (exchanges of several round trips, floods, trickles) run in full unless
    # an error or `until` ends them
    check_ms: int = 400
    until: int = 0  # the check run may stop once this many messages arrived
    sends: tuple[tuple[int, int], ...] = ()  # (type, pid) the client must have sent
    assigned: str | None = None  # the client ID the client must use afterwards
    extra: Check | None = None  # more checks: (device result, broker conn, version) -> errors
    # the client's timeout for this case: longer where a packet trickled within it must
    # arrive whole however slowly a loaded machine runs the broker's script
    timeout: float = TIMEOUT

    def want_for(self, op: str) -> Want:
        return self.want.get(op, OK)


def ck(v: int, **kw: Any) -> list[Step]:
    """The usual opening: read CONNECT, answer with an accepting CONNACK."""
    return [("expect", CONNECT), ("send", connack(v, **kw))]


def after_ck(*more: bytes | Step) -> Callable[[int], list[Step]]:
    """A script: accept the connection, then send these (bytes or steps built per version
    by callables)."""

    def script(v: int) -> list[Step]:
        steps = ck(v)
        for m in more:
            if callable(m):
                m = m(v)
            steps.append(("send", m) if isinstance(m, bytes) else m)
        return steps

    return script


def connack_only(build: Callable[[int], bytes]) -> Callable[[int], list[Step]]:
    return lambda v: [("expect", CONNECT), ("send", build(v))]


def refuse(code_v4: int, code_v5: int) -> Callable[[int], int]:
    return lambda v: code_v4 if v == 4 else code_v5


def sub_script(reply: Callable[[int], Callable[[bytes], bytes]] | None,
               trickle: float = 0.0) -> Callable[[int], list[Step]]:
    def script(v: int) -> list[Step]:
        steps = ck(v) + [("expect", SUBSCRIBE)]
        if reply is not None:
            steps.append(("answer", SUBSCRIBE, reply(v)) if not trickle else
                         ("answer_trickle", SUBSCRIBE, reply(v), trickle))
        return steps

    return script


# --------------------------------------------------------------------------------------
# Extra checks (outcomes that depend on the version or on what the client sent)


def closed_with(*codes: int) -> Check:
    """MQTT 5: a client that ends the connection over a broker's error says why
    ([MQTT-4.13.1-1]: DISCONNECT with the reason code before closing)."""

    def check(r: dict[str, Any], c: Conn, v: int) -> list[str]:
        # only when the client blamed the broker (a refusal or a timeout needs no DISCONNECT)
        blamed = [e["code"] for e in r.get("exc", {}).values()
                  if e and e["t"] == "MQTTException" and e["code"] in codes]
        if v != 5 or r.get("up") or not blamed:
            return []
        got = disconnect_codes(c)
        if not any(x in codes for x in got):
            want = "/".join(f"0x{x:02x}" for x in codes)
            return [f"no DISCONNECT with reason {want} before closing (sent {got})"]
        return []

    return check


def no_disconnect_back(r: dict[str, Any], c: Conn, v: int) -> list[str]:
    # after the server's DISCONNECT the client closes; it must not answer with one
    # ([MQTT-3.14.4-1]: the receiver sends no more packets)
    if disconnect_codes(c):
        return [f"sent DISCONNECT after the server's DISCONNECT: {disconnect_codes(c)}"]
    return []


def oversized_refused(first: int) -> Check:
    """An oversized QoS 1/2 PUBLISH: acknowledged (so the broker does not redeliver it
    forever) and the link stays up (README, max_packet), with MQTT 5 too: MQTT 5 allows
    a DISCONNECT 0x95 ([MQTT-3.1.2-24]), the README promises the connection stays."""

    def check(r: dict[str, Any], c: Conn, v: int) -> list[str]:
        errs = []
        if not r.get("up"):
            errs.append("link closed: an oversized packet must leave the connection up")
        if first and 0x0921 not in c.pids(first):
            errs.append(f"no {'PUBACK' if first == PUBACK else 'PUBREC'} for the oversized "
                        f"message (pid 0x0921; sent {c.pids(first)})")
        return errs

    return check


LONG_TOPIC = "t/" + "L" * (MAX_PACKET + 100)


def split_at_pid(qos: int, pid: int) -> Callable[[int], list[Step]]:
    """A script: an oversized PUBLISH with a long topic, sent in two writes a pause apart,
    between the two bytes of its packet ID."""

    def script(v: int) -> list[Step]:
        p = publish(v, LONG_TOPIC, b"B" * 100, qos, pid)
        j = p.index(u16(pid), 4 + len(LONG_TOPIC))  # after the header and the topic
        return [*ck(v), ("send", p[: j + 1]), ("sleep", 0.2), ("send", p[j + 1 :])]

    return script


def refused_once(r: dict[str, Any], c: Conn, v: int) -> list[str]:
    """A QoS 2 PUBLISH too large, then its resend (DUP: the broker lost the PUBREC): both
    acknowledged, refused once (the packet ID is held as for a message delivered)."""
    errs = oversized_refused(PUBREC)(r, c, v)
    if r.get("up") and c.pids(PUBREC).count(0x0921) != 2:
        errs.append(f"PUBREC for each of the two copies, sent {c.pids(PUBREC)}")
    n = r.get("reported")  # the asyncio client's errors (on_error); None: blocking client
    if n is None and r["exc"].get("again") is not None:
        errs.append(f"the resend refused again: {r['exc']['again']}")
    if n is not None and n != 1:
        errs.append(f"{n} errors reported, expected the one refusal")
    return errs


def v5_only_up(up5: bool, up4: bool) -> Check:
    def check(r: dict[str, Any], c: Conn, v: int) -> list[str]:
        want = up5 if v == 5 else up4
        if bool(r.get("up")) != want:
            return [f"link {'down' if want else 'up'} after the call, expected "
                    f"{'up' if want else 'down'}"]
        return []

    return check


def both(*checks: Check) -> Check:
    def check(r: dict[str, Any], c: Conn, v: int) -> list[str]:
        return [e for ch in checks for e in ch(r, c, v)]

    return check


# --------------------------------------------------------------------------------------
# The table

BIG = 2000  # a declared remaining length over MAX_PACKET
LONG_ID = "n" * 300  # longer than littlefs's 255-byte file names


def _bad_pub(name: str, build: Callable[[int], bytes], codes: Want = BAD,
             versions: tuple[int, ...] = (4, 5)) -> Case:
    # a PUBLISH the client must refuse: nothing delivered, link closed (MQTT 5: with the
    # reason code)
    code_set = tuple(sorted(c for k, cs in codes.alts if k == "mqtt" for c in cs))
    return Case(name, after_ck(build), versions, want={"check": codes}, up=False,
                extra=closed_with(*code_set) if code_set else None)


def _bad_connack(name: str, build: Callable[[int], bytes], codes: Want = BAD,
                 versions: tuple[int, ...] = (4, 5), client: str = "own") -> Case:
    code_set = tuple(sorted(c for k, cs in codes.alts if k == "mqtt" for c in cs
                            if c in (MALFORMED, PROTOCOL_ERROR, TOO_LARGE)))
    return Case(name, connack_only(build), versions, ("connect",), {"connect": codes},
                up=False, client=client, extra=closed_with(*code_set) if code_set else None)


def _refused(name: str, code: Callable[[int], int], versions: tuple[int, ...] = (4, 5),
             prop: bytes | None = None) -> Case:
    def build(v: int) -> bytes:
        return connack(v, 0, code(v), prop)

    # the refusal's own code, per version (a set of both is fine: codes differ by version)
    return Case(name, connack_only(build), versions, ("connect",),
                {"connect": MQ(code(4), code(5))}, up=False,
                extra=no_disconnect_back)


def _assigned(name: str, aid: bytes | str, want: Want, assigned: str | None = None,
              client: str = "null") -> Case:
    def build(v: int) -> bytes:
        return connack(v, 0, 0, props(pstr(0x12, aid)))

    ok = want.allows("ok", None)
    only_ok = all(k == "ok" for k, _ in want.alts)
    return Case(name, connack_only(build), (5,), ("connect",), {"connect": want},
                up=True if only_ok else None if ok else False, client=client,
                assigned=assigned,
                extra=None if ok else closed_with(MALFORMED, PROTOCOL_ERROR))


def _ignored(name: str, build: Callable[[int], bytes], versions: tuple[int, ...] = (4, 5),
             sends: tuple[tuple[int, int], ...] = ()) -> Case:
    # something the client must tolerate: no error, the link stays up
    return Case(name, after_ck(build), versions, up=True, sends=sends)


def _sub(name: str, reply: Callable[[int], Callable[[bytes], bytes]] | None, want: Want,
         up: bool | None, trickle: float = 0.0, extra: Check | None = None) -> Case:
    return Case(name, sub_script(reply, trickle), (4, 5), ("connect", "sub"), {"sub": want},
                up=up, extra=extra)


def _cases() -> list[Case]:
    C: list[Case] = []  # noqa: N806
    add = C.append

    # ---- CONNACK: lengths, flags, codes, properties
    add(Case("connack_ok", after_ck(), up=True))
    add(Case("connack_session_present", lambda v: [("expect", CONNECT),
                                                   ("send", connack(v, flags=1))], up=True))
    add(_bad_connack("connack_len0", lambda v: b"\x20\x00"))
    add(_bad_connack("connack_len1", lambda v: b"\x20\x01\x00"))
    add(_bad_connack("connack_len3_v4", lambda v: b"\x20\x03\x00\x00\x00", versions=(4,)))
    add(_bad_connack("connack_trailing_byte_v5", lambda v: b"\x20\x04\x00\x00\x00\xff",
                     versions=(5,)))
    add(_bad_connack("connack_ack_flags_reserved", lambda v: connack(v, flags=0x02)))
    add(_bad_connack("connack_header_flags", lambda v: b"\x21" + connack(v)[1:]))
    add(_bad_connack("connack_present_with_refusal", lambda v: connack(v, 1, 5 if v == 4 else 0x87),
                     MQ(MALFORMED, PROTOCOL_ERROR, 5, 0x87)))
    for rc in (1, 2, 3, 4, 5):
        add(_refused(f"connack_refused_{rc}_v4", lambda v, rc=rc: rc, versions=(4,)))
    add(_refused("connack_refused_reserved_v4", lambda v: 6, versions=(4,)))
    for rc in (0x80, 0x86, 0x87, 0x97):
        add(_refused(f"connack_refused_{rc:02x}_v5", lambda v, rc=rc: rc, versions=(5,)))
    add(_refused("connack_9c_server_reference", lambda v: 0x9C, (5,),
                 props(pstr(0x1C, "other.example:1883"))))
    add(_refused("connack_9d_server_reference", lambda v: 0x9D, (5,),
                 props(pstr(0x1C, "other.example:1883"))))
    add(_bad_connack("connack_v5_not_a_connack_code", lambda v: connack(v, 0, 0x10),
                     MQ(), versions=(5,)))
    add(_bad_connack("connack_v5_receive_max_0", lambda v: connack(v, prop=props(p16(0x21, 0))),
                     MQ(PROTOCOL_ERROR), (5,)))
    add(_bad_connack("connack_v5_max_packet_0", lambda v: connack(v, prop=props(p32(0x27, 0))),
                     MQ(PROTOCOL_ERROR), (5,)))
    add(_bad_connack("connack_v5_unknown_property",
                     lambda v: connack(v, prop=props(p8(0x7F, 1))), MQ(MALFORMED), (5,)))
    add(_bad_connack("connack_v5_property_overrun",
                     lambda v: connack(v, prop=b"\x0a" + p16(0x21, 5)), MQ(MALFORMED), (5,)))
    add(_bad_connack("connack_v5_duplicate_property",
                     lambda v: connack(v, prop=props(p16(0x21, 5), p16(0x21, 6))),
                     MQ(PROTOCOL_ERROR), (5,)))
    add(_bad_connack("connack_v5_max_qos_2", lambda v: connack(v, prop=props(p8(0x24, 2))),
                     BAD, (5,)))
    add(_bad_connack("connack_v5_reason_string_not_utf8",
                     lambda v: connack(v, prop=props(pstr(0x1F, b"ok\xff"))), MQ(MALFORMED),
                     (5,)))
    add(_bad_connack("connack_v5_refused_reason_not_utf8",
                     lambda v: connack(v, 0, 0x87, props(pstr(0x1F, b"\xc3\x28"))),
                     MQ(MALFORMED, 0x87), (5,)))
    add(_bad_connack("connack_v5_reason_string_nul",
                     lambda v: connack(v, prop=props(pstr(0x1F, b"a\x00b"))), MQ(MALFORMED),
                     (5,)))
    add(_bad_connack("connack_v5_user_property_not_utf8",
                     lambda v: connack(v, prop=props(ppair(b"k\xff", "v"))), MQ(MALFORMED),
                     (5,)))
    add(_bad_connack("connack_v5_will_delay_property",  # valid only in a will
                     lambda v: connack(v, prop=props(p32(0x18, 5))), BAD, (5,)))
    add(Case("connack_v5_server_keepalive",
             lambda v: [("expect", CONNECT), ("send", connack(v, prop=props(p16(0x13, 5))))],
             (5,), up=True))
    add(Case("connack_v5_limits", lambda v: [
        ("expect", CONNECT),
        ("send", connack(v, prop=props(p16(0x22, 10), p8(0x25, 0), p8(0x28, 0), p16(0x21, 3),
                                       p32(0x27, 4096), pstr(0x1F, "welcome"),
                                       ppair("k", "v"))))], (5,), up=True))
    add(_bad_connack("connack_oversized",
                     lambda v: pkt(CONNACK, b"\x00\x00" + (props(ppair("k", "v" * BIG))
                                                           if v == 5 else b"\x00" * BIG)),
                     MQ(TOO_LARGE, MALFORMED)))
    add(_bad_connack("connack_remaining_length_5_bytes",
                     lambda v: b"\x20\xff\xff\xff\xff\x7f", MQ(MALFORMED, TOO_LARGE)))
    add(_bad_connack("connack_publish_first", lambda v: publish(v, "t/x"), BAD))
    add(_bad_connack("connack_pingresp_first", lambda v: b"\xd0\x00", BAD))
    add(_bad_connack("connack_suback_first",
                     lambda v: pkt(SUBACK, u16(1) + (b"\x00" if v == 5 else b"") + b"\x00"),
                     BAD))
    add(_bad_connack("connack_auth_first_v5", lambda v: b"\xf0\x02\x18\x00", BAD, (5,)))

    # ---- Assigned Client Identifiers (MQTT 5)
    add(_assigned("assigned_plain", "auto-12AB", OK, "auto-12AB"))
    add(_assigned("assigned_dotdot", "..", OK, ".."))
    add(_assigned("assigned_dot", ".", OK, "."))
    add(_assigned("assigned_slash", "a/b", OK, "a/b"))
    add(_assigned("assigned_dotdot_slash", "../x", OK, "../x"))
    add(_assigned("assigned_store_name_last", "last", OK, "last"))
    add(_assigned("assigned_store_name_null", "~null", OK, "~null"))
    add(_assigned("assigned_long", LONG_ID, OK | BAD, None))
    add(_assigned("assigned_nul", b"a\x00b", BAD))
    add(_assigned("assigned_not_utf8", b"\xff\xfe", MQ(MALFORMED)))
    add(_assigned("assigned_surrogate", b"\xed\xa0\x80", MQ(MALFORMED)))
    add(_assigned("assigned_empty", b"", BAD))
    add(Case("assigned_missing", connack_only(lambda v: connack(v)), (5,), ("connect",),
             {"connect": MQ(PROTOCOL_ERROR)}, up=False, client="null",
             extra=closed_with(PROTOCOL_ERROR)))
    add(_assigned("assigned_to_own_id", "other", MQ(PROTOCOL_ERROR), client="own"))
    add(_assigned("assigned_dotdot_to_own_id", "..", MQ(PROTOCOL_ERROR), client="own"))

    # ---- PUBLISH: lengths, flags, topics, properties, sizes
    add(Case("pub_q0_ok", after_ck(lambda v: publish(v, "t/a")), up=True, delivered=1))
    add(Case("pub_q1_ok", after_ck(lambda v: publish(v, "t/a", qos=1, pid=5)), up=True,
             delivered=1, sends=((PUBACK, 5),)))
    add(Case("pub_q2_ok", after_ck(lambda v: publish(v, "t/a", qos=2, pid=6), ("expect", PUBREC),
                                   ack(PUBREL | 2, 6), ("expect", PUBCOMP)),
             up=True, delivered=1, sends=((PUBREC, 6), (PUBCOMP, 6)), check_ms=1500))
    add(Case("pub_q2_redelivered_before_pubrel",
             after_ck(lambda v: publish(v, "t/a", qos=2, pid=7),
                      lambda v: publish(v, "t/a", qos=2, pid=7, flags=8)),
             up=True, delivered=1, sends=((PUBREC, 7),)))
    add(_bad_pub("pub_qos3", lambda v: publish(v, "t/a", qos=3), MQ(MALFORMED)))
    add(_bad_pub("pub_q0_dup_flag", lambda v: publish(v, "t/a", flags=8), MQ(MALFORMED)))
    add(_bad_pub("pub_q1_pid0", lambda v: publish(v, "t/a", qos=1, pid=0)))
    add(_bad_pub("pub_topic_not_utf8", lambda v: publish(v, b"t/\xff"), MQ(MALFORMED)))
    add(_bad_pub("pub_topic_nul", lambda v: publish(v, b"t/\x00"), MQ(MALFORMED)))
    add(_bad_pub("pub_topic_surrogate", lambda v: publish(v, b"t/\xed\xa0\x80"), MQ(MALFORMED)))
    add(_bad_pub("pub_topic_overlong_utf8", lambda v: publish(v, b"t/\xc0\xaf"), MQ(MALFORMED)))
    add(_bad_pub("pub_topic_plus", lambda v: publish(v, "t/+")))
    add(_bad_pub("pub_topic_hash", lambda v: publish(v, "t/#")))
    add(_bad_pub("pub_topic_empty", lambda v: publish(v, "")))
    add(_bad_pub("pub_topic_length_overrun", lambda v: pkt(PUBLISH, u16(50) + b"t/a"),
                 MQ(MALFORMED)))
    add(_bad_pub("pub_len0", lambda v: b"\x30\x00", MQ(MALFORMED)))
    add(_bad_pub("pub_len1", lambda v: b"\x30\x01\x00", MQ(MALFORMED)))
    add(_bad_pub("pub_q1_no_pid", lambda v: pkt(PUBLISH | 2, s("t/a")), MQ(MALFORMED)))
    add(_bad_pub("pub_remaining_length_5_bytes", lambda v: b"\x30\xff\xff\xff\xff\x7f",
                 MQ(MALFORMED, TOO_LARGE)))
    add(_bad_pub("pub_v5_unknown_property", lambda v: publish(v, "t/a", prop=props(p8(0x7F, 0))),
                 MQ(MALFORMED), (5,)))
    add(_bad_pub("pub_v5_property_overrun", lambda v: publish(v, "t/a", b"", prop=b"\x09\x01\x00"),
                 MQ(MALFORMED), (5,)))
    add(_bad_pub("pub_v5_topic_alias_not_allowed",
                 lambda v: publish(v, "t/a", prop=props(p16(0x23, 1))),
                 MQ(ALIAS_INVALID, PROTOCOL_ERROR), (5,)))
    add(_bad_pub("pub_v5_alias_only_topic_empty",
                 lambda v: publish(v, "", prop=props(p16(0x23, 1))),
                 MQ(ALIAS_INVALID, PROTOCOL_ERROR), (5,)))
    add(_bad_pub("pub_v5_reason_string_not_utf8",  # and not a PUBLISH property at all
                 lambda v: publish(v, "t/a", prop=props(pstr(0x1F, b"\xff"))), MQ(MALFORMED),
                 (5,)))
    add(_bad_pub("pub_v5_content_type_not_utf8",
                 lambda v: publish(v, "t/a", prop=props(pstr(0x03, b"te\xffxt"))), MQ(MALFORMED),
                 (5,)))
    add(_bad_pub("pub_v5_user_property_not_utf8",
                 lambda v: publish(v, "t/a", prop=props(ppair("k", b"\xfe"))), MQ(MALFORMED),
                 (5,)))
    add(_bad_pub("pub_v5_response_topic_wildcard",
                 lambda v: publish(v, "t/a", prop=props(pstr(0x08, "r/#"))), BAD, (5,)))
    add(_bad_pub("pub_v5_subscription_id_0",
                 lambda v: publish(v, "t/a", prop=props(b"\x0b\x00")), BAD, (5,)))
    add(_bad_pub("pub_v5_duplicate_expiry",
                 lambda v: publish(v, "t/a", prop=props(p32(0x02, 5), p32(0x02, 6))),
                 MQ(PROTOCOL_ERROR), (5,)))
    add(Case("pub_oversized_q0", after_ck(lambda v: publish(v, "t/big", b"B" * BIG)),
             want={"check": MQ(TOO_LARGE)}, up=None, extra=oversized_refused(0)))
    add(Case("pub_oversized_q1", after_ck(lambda v: publish(v, "t/big", b"B" * BIG, 1, 0x0921)),
             want={"check": MQ(TOO_LARGE)}, up=None, extra=oversized_refused(PUBACK)))
    add(Case("pub_oversized_q2", after_ck(lambda v: publish(v, "t/big", b"B" * BIG, 2, 0x0921)),
             want={"check": MQ(TOO_LARGE)}, up=None, extra=oversized_refused(PUBREC)))
    # a topic longer than max_packet: the packet ID passes beyond the bytes the client
    # holds (in one piece, or split between two reads)
    add(Case("pub_oversized_long_q1",
             after_ck(lambda v: publish(v, LONG_TOPIC, b"B" * 100, 1, 0x0921)),
             want={"check": MQ(TOO_LARGE)}, up=None, extra=oversized_refused(PUBACK)))
    add(Case("pub_oversized_long_q2",
             after_ck(lambda v: publish(v, LONG_TOPIC, b"B" * 100, 2, 0x0921)),
             want={"check": MQ(TOO_LARGE)}, up=None, extra=oversized_refused(PUBREC)))
    add(Case("pub_oversized_long_q2_pid_split", split_at_pid(2, 0x0921),
             want={"check": MQ(TOO_LARGE)}, up=None, extra=oversized_refused(PUBREC)))
    add(Case("pub_oversized_long_q2_resent",
             after_ck(lambda v: publish(v, LONG_TOPIC, b"B" * 100, 2, 0x0921),
                      lambda v: publish(v, LONG_TOPIC, b"B" * 100, 2, 0x0921, flags=8),
                      lambda v: publish(v, "t/a")),
             ops=("connect", "check", "again"), delivered=1, until=1, check_ms=5000,
             # "again" waits for t/a (until=1), however slow the machine
             want={"check": MQ(TOO_LARGE), "again": OK}, up=None,
             extra=refused_once))
    add(Case("pub_good_then_qos3", after_ck(lambda v: publish(v, "t/a"),
                                            lambda v: publish(v, "t/a", qos=3)),
             want={"check": MQ(MALFORMED)}, up=False, delivered=1,
             extra=closed_with(MALFORMED)))

    # ---- acknowledgements for packet IDs the client never used
    add(_ignored("puback_unknown_pid", lambda v: ack(PUBACK, UNKNOWN_PID)))
    add(_ignored("pubrec_unknown_pid", lambda v: ack(PUBREC, UNKNOWN_PID)))
    add(_ignored("pubcomp_unknown_pid", lambda v: ack(PUBCOMP, UNKNOWN_PID)))
    add(_ignored("pubrel_unknown_pid", lambda v: ack(PUBREL | 2, UNKNOWN_PID),
                 sends=((PUBCOMP, UNKNOWN_PID),)))
    add(_ignored("unsuback_unsolicited",
                 lambda v: pkt(UNSUBACK, u16(UNKNOWN_PID) + (b"\x00\x00" if v == 5 else b""))))
    add(_ignored("suback_unsolicited",
                 lambda v: pkt(SUBACK, u16(UNKNOWN_PID) + (b"\x00" if v == 5 else b"") + b"\x01")))
    add(_ignored("puback_v5_unknown_pid_with_reason",
                 lambda v: ack(PUBACK, UNKNOWN_PID, 5, 0x10, props(pstr(0x1F, "no subscribers"))),
                 versions=(5,)))
    add(_bad_pub("puback_len1", lambda v: b"\x40\x01\x00", MQ(MALFORMED)))
    add(_bad_pub("puback_header_flags", lambda v: b"\x41\x02\x77\x77", MQ(MALFORMED)))
    add(_bad_pub("pubrel_header_flags", lambda v: b"\x60\x02\x77\x77", MQ(MALFORMED)))
    add(_bad_pub("puback_v4_len3", lambda v: b"\x40\x03\x77\x77\x00", MQ(MALFORMED), (4,)))
    add(_bad_pub("puback_pid0", lambda v: b"\x40\x02\x00\x00"))
    add(_bad_pub("puback_v5_reason_string_not_utf8",
                 lambda v: ack(PUBACK, UNKNOWN_PID, 5, 0x10, props(pstr(0x1F, b"\xff\xff"))),
                 MQ(MALFORMED), (5,)))

    # ---- SUBACK variants (answers to the client's SUBSCRIBE)
    add(_sub("suback_ok", lambda v: suback_for(b"\x01", v), OK, True))
    add(_sub("suback_wrong_pid", lambda v: suback_for(b"\x01", v, pid_delta=0x100),
             TIMED_OUT | MQ(PROTOCOL_ERROR), None))
    add(_sub("suback_no_codes", lambda v: suback_for(b"", v), BAD, False,
             extra=closed_with(MALFORMED, PROTOCOL_ERROR)))
    add(_sub("suback_refused", lambda v: suback_for(b"\x80" if v == 4 else b"\x87", v),
             MQ(0x80, 0x87), True))
    add(_sub("suback_too_many_codes", lambda v: suback_for(b"\x01\x01", v), BAD, False,
             extra=closed_with(MALFORMED, PROTOCOL_ERROR)))
    add(_sub("suback_invalid_code", lambda v: suback_for(b"\x03", v), BAD, False,
             extra=closed_with(MALFORMED, PROTOCOL_ERROR)))
    add(_sub("suback_header_flags", lambda v: suback_for(b"\x01", v, first=SUBACK | 1),
             MQ(MALFORMED), False, extra=closed_with(MALFORMED)))
    add(Case("suback_v5_reason_string_not_utf8",
             sub_script(lambda v: suback_for(b"\x01", v, prop=props(pstr(0x1F, b"\xff")))),
             (5,), ("connect", "sub"), {"sub": MQ(MALFORMED)}, up=False,
             extra=closed_with(MALFORMED)))
    add(_sub("unsuback_answers_subscribe", lambda v: suback_for(
        b"\x00" if v == 5 else b"", v, first=UNSUBACK), BAD, False,
        extra=closed_with(MALFORMED, PROTOCOL_ERROR)))
    add(_sub("suback_silent", None, TIMED_OUT, False))
    add(_sub("suback_trickled", lambda v: suback_for(b"\x01", v), TIMED_OUT, False,
             trickle=0.6))

    # ---- while publish() waits for room in the window (the stored message is in flight):
    # the wait ends within timeout, and a message publish() accepted stays stored
    def pub_wait(*after: bytes | Step) -> Callable[[int], list[Step]]:
        def script(v: int) -> list[Step]:
            steps = ck(v) + [("expect", PUBLISH)]
            for m in after:
                steps.append(("send", m) if isinstance(m, bytes) else m)
            return steps

        return script

    add(Case("pub_wait_no_ack", pub_wait(), ops=("connect", "pub"),
             want={"pub": OK | TIMED_OUT}, up=None))

    def chatty(v: int) -> list[Step]:
        # no acknowledgement ever, but a message every 0.4 s for 10 s: the wait still ends
        # within timeout of its start (the asyncio client's restarted at each packet)
        steps = ck(v) + [("expect", PUBLISH)]
        for _ in range(25):
            steps += [("send", publish(v, "t/c")), ("sleep", 0.4)]
        return steps

    add(Case("pub_wait_no_ack_chatty", chatty, ops=("connect", "pub"),
             want={"pub": OK | TIMED_OUT}, up=None, delivered=None))
    add(Case("pub_wait_malformed", pub_wait(b"\x36\x05\x00\x01t\x00\x01"),
             ops=("connect", "pub"), want={"pub": OK | MQ(MALFORMED) | OS()}, up=False,
             extra=closed_with(MALFORMED)))
    add(Case("pub_wait_disconnect", pub_wait(b"\xe0\x01\x8e"), (5,), ops=("connect", "pub"),
             want={"pub": OK | MQ(0x8E) | OS()}, up=False, extra=no_disconnect_back))

    # ---- packet types a server never sends
    add(_bad_pub("type_reserved_0", lambda v: b"\x00\x00"))
    add(_bad_pub("connect_from_server", lambda v: b"\x10\x00"))
    add(_bad_pub("subscribe_from_server",
                 lambda v: pkt(SUBSCRIBE | 2, u16(3) + s("t/#") + b"\x00")))
    add(_bad_pub("unsubscribe_from_server", lambda v: pkt(UNSUBSCRIBE | 2, u16(3) + s("t/#"))))
    add(_bad_pub("pingreq_from_server", lambda v: b"\xc0\x00"))
    add(_bad_pub("second_connack", lambda v: connack(v)))
    add(_bad_pub("pingresp_with_body", lambda v: b"\xd0\x01\x00", MQ(MALFORMED)))
    add(_bad_pub("auth_v4", lambda v: b"\xf0\x00", BAD, (4,)))
    add(_bad_pub("disconnect_v4", lambda v: b"\xe0\x00", BAD | OS(), (4,)))

    # ---- server DISCONNECT and AUTH (MQTT 5)
    add(Case("disconnect_no_reason", after_ck(b"\xe0\x00"), (5,),
             want={"check": MQ(0) | OS()}, up=False, extra=no_disconnect_back))
    add(Case("disconnect_session_taken_over", after_ck(b"\xe0\x01\x8e"), (5,),
             want={"check": MQ(0x8E)}, up=False, extra=no_disconnect_back))
    add(Case("disconnect_use_another_server",
             after_ck(lambda v: pkt(DISCONNECT, b"\x9c" + props(pstr(0x1C, "other:1883")))),
             (5,), want={"check": MQ(0x9C)}, up=False, extra=no_disconnect_back))
    add(Case("disconnect_reason_string_not_utf8",
             after_ck(lambda v: pkt(DISCONNECT, b"\x8b" + props(pstr(0x1F, b"\xff")))),
             (5,), want={"check": MQ(MALFORMED, 0x8B)}, up=False))
    add(Case("disconnect_header_flags", after_ck(b"\xe1\x01\x8e"), (5,),
             want={"check": MQ(MALFORMED, 0x8E)}, up=False))
    add(_bad_pub("auth_unsolicited_v5", lambda v: b"\xf0\x02\x18\x00", MQ(PROTOCOL_ERROR), (5,)))

    # ---- floods
    add(Case("flood_publish_q0", after_ck(lambda v: publish(v, "t/f", b"f") * 300), up=True,
             delivered=300, until=300, check_ms=5000))
    add(Case("flood_publish_q1",
             after_ck(lambda v: b"".join(publish(v, "t/f", b"f", 1, i) for i in range(1, 101))),
             up=True, delivered=100, until=100, check_ms=5000,
             extra=lambda r, c, v: [] if sorted(c.pids(PUBACK)) == list(range(1, 101)) else
             [f"PUBACKs for the flood: {len(c.pids(PUBACK))} of 100"]))
    add(Case("flood_publish_q2_no_pubrel",
             after_ck(lambda v: b"".join(publish(v, "t/f", b"f", 2, i) for i in range(1, 41))),
             up=True, delivered=40, until=40, check_ms=5000,
             extra=lambda r, c, v: [] if sorted(c.pids(PUBREC)) == list(range(1, 41)) else
             [f"PUBRECs for the flood: {len(c.pids(PUBREC))} of 40"]))
    add(Case("flood_pingresp", after_ck(b"\xd0\x00" * 300), up=True))

    # ---- byte trickles, silence and closes
    add(Case("trickle_connack", lambda v: [
        ("expect", CONNECT),
        ("trickle", connack(v, prop=props(pstr(0x1F, "slow slow slow"))), 0.6 if v == 4 else 0.15)],
        ops=("connect",), want={"connect": TIMED_OUT}, up=False))
    # slow but within the deadline: a per-packet deadline must not be a per-byte one
    # (each trickle takes about half a second, under a tenth of the case's timeout)
    add(Case("trickle_connack_in_time",
             lambda v: [("expect", CONNECT), ("trickle", connack(v), 0.08)], up=True,
             timeout=6 * TIMEOUT))
    add(Case("trickle_publish_in_time",
             lambda v: ck(v) + [("trickle", publish(v, "t/s", b"ok", 1, 9), 0.04)],
             up=True, delivered=1, sends=((PUBACK, 9),), check_ms=5000, until=1,
             timeout=6 * TIMEOUT))
    add(Case("silent_after_connect", lambda v: [("expect", CONNECT)], ops=("connect",),
             want={"connect": TIMED_OUT}, up=False))
    add(Case("close_before_connack", lambda v: [("expect", CONNECT), ("close",)],
             ops=("connect",), want={"connect": OS()}, up=False))
    add(Case("close_mid_connack", lambda v: [("expect", CONNECT), ("send", b"\x20"), ("close",)],
             ops=("connect",), want={"connect": OS()}, up=False))
    add(Case("trickle_publish",
             lambda v: ck(v) + [("trickle", publish(v, "t/slow", b"0123456789", 1, 9), 0.2)],
             want={"check": TIMED_OUT}, up=False, check_ms=int(TIMEOUT * 1000) + 2500))
    add(Case("trickle_huge_remaining_length",
             lambda v: ck(v) + [("send", b"\x30\xff\xff\xff\x7f"),
                                ("trickle", b"\x00\x03t/h" + b"h" * 40, 0.1)],
             want={"check": TIMED_OUT | MQ(TOO_LARGE)}, up=False,
             check_ms=int(TIMEOUT * 1000) + 2500))
    add(Case("header_then_silence", lambda v: ck(v) + [("send", b"\x30")],
             want={"check": TIMED_OUT}, up=False, check_ms=int(TIMEOUT * 1000) + 2500))
    add(Case("close_mid_publish", lambda v: ck(v) + [("send", publish(v, "t/a", b"abc")[:4]),
                                                     ("close",)],
             want={"check": OS()}, up=False, check_ms=1500))
    return C


CASES: list[Case] = _cases()
BY_NAME: dict[str, Case] = {c.name: c for c in CASES}
assert len(BY_NAME) == len(CASES), "case names must be unique"


def rows(cases: Sequence[Case] = CASES) -> list[tuple[Case, int]]:
    """Every (case, version) pair, in table order."""
    return [(c, v) for c in cases for v in c.versions]


# --------------------------------------------------------------------------------------
# Serving the table: hostile.HostileBroker, with each connection's script picked from its
# CONNECT (the user name "case<i>") rather than from its index, so a device process restarted
# after a hung case, and shards running side by side, stay aligned; plus answers built from
# the client's packet by a function (a SUBACK with a wrong ID, or trickled).


def connect_user(body: bytes) -> str | None:
    """The user name of a CONNECT body, or None."""

    def skip_varint(i: int) -> int:
        n = shift = 0
        while True:
            c = body[i]
            i += 1
            n |= (c & 0x7F) << shift
            if not c & 0x80:
                return i + n
            shift += 7

    def skip_str(i: int) -> int:
        return i + 2 + int.from_bytes(body[i : i + 2], "big")

    try:
        i = skip_str(0)
        level, flags = body[i], body[i + 1]
        i += 4
        if level == 5:
            i = skip_varint(i)  # properties
        i = skip_str(i)  # client ID
        if flags & 4:
            if level == 5:
                i = skip_varint(i)  # will properties
            i = skip_str(skip_str(i))  # will topic and payload
        if flags & 0x80:
            return body[i + 2 : skip_str(i)].decode()
    except (IndexError, UnicodeDecodeError):
        pass
    return None


class CaseBroker(HostileBroker):
    """choose(user, index) gives a connection's steps. Extra steps: ("answer", type, fn)
    sends fn(body of the client's last packet of that type); ("answer_trickle", type, fn,
    interval) trickles it. by_user[user] is what that connection's client sent."""

    def __init__(self, choose: Callable[[str, int], list[Step]]) -> None:
        self.choose = choose
        self.by_user: dict[str, Conn] = {}
        super().__init__([[]])

    def _serve(self, s: socket.socket, conn: Conn, script: Script) -> None:
        r = _Reader(s, conn)
        try:
            p = r.next(time.monotonic() + EXPECT_TIMEOUT)
            if p is None or p[0] & 0xF0 != CONNECT:
                self.errors.append(f"connection {conn.index}: no CONNECT")
                return
            user = connect_user(p[1]) or f"#{conn.index}"
            self.by_user[user] = conn
            steps = self.choose(user, conn.index)
            if steps and steps[0] == ("expect", CONNECT):
                steps = steps[1:]  # read above
            for step in steps:
                if self._stop.is_set() or not self._step(s, r, conn, step):
                    return
            while not self._stop.is_set() and not conn.closed_by_client:
                r.next(time.monotonic() + 0.2)  # keep recording until either side ends
        except OSError as e:
            self.errors.append(f"connection {conn.index}: {e!r}")
        finally:
            s.close()

    def _step(self, s: socket.socket, r: _Reader, conn: Conn, step: Step) -> bool:
        if step[0] not in ("answer", "answer_trickle"):
            return super()._step(s, r, conn, step)
        got = conn.of_type(step[1])
        if not got:
            self.errors.append(f"connection {conn.index}: nothing to answer")
            return False
        data = step[2](got[-1])
        if step[0] == "answer":
            s.sendall(data)
            return True
        return super()._step(s, r, conn, ("trickle", data, step[3]))


# --------------------------------------------------------------------------------------
# Running cases on the unix port: one device process per front end runs them all; a case
# that hangs or crashes the process is recorded and the run goes on from the next case.

DEVICE_SCRIPT = "dev_hostile_cases.py"


@dataclass
class Entry:
    """One case for the device script: index i is also its user name ("case<i>")."""

    i: int
    name: str
    v: int
    steps: list[Step]
    ops: tuple[str, ...] = ("connect", "check")
    client: str = "own"
    check_ms: int = 400
    until: int = 0
    timeout: float = TIMEOUT  # the client's

    def device(self) -> dict[str, Any]:
        return {"i": self.i, "name": self.name, "v": self.v, "ops": list(self.ops),
                "client": self.client, "check_ms": self.check_ms, "until": self.until,
                "timeout": self.timeout}

    def limit(self) -> float:
        # how long the host waits for this case before calling it hung (loaded CI)
        return self.check_ms / 1000 + 3 * self.timeout * len(self.ops) + 20


def entries(pairs: Sequence[tuple[Case, int]]) -> list[Entry]:
    return [Entry(i, c.name, v, c.script(v), c.ops, c.client, c.check_ms, c.until, c.timeout)
            for i, (c, v) in enumerate(pairs)]


@dataclass
class Run:
    results: dict[int, dict[str, Any]]  # by Entry.i
    conns: dict[str, Conn]  # by user name
    restarts: int
    output: str

    def conn(self, i: int) -> Conn:
        return self.conns.get(f"case{i}", Conn(-1))


def _parse(out: str) -> tuple[dict[int, dict[str, Any]], int | None, bool]:
    results: dict[int, dict[str, Any]] = {}
    current = None
    done = False
    # the device may be writing a line while it is read: only whole lines count
    for line in out.split("\n")[:-1]:
        if line.startswith("START "):
            current = int(line.split()[1])
        elif line.startswith("CASE "):
            r = json.loads(line[5:])
            if r["i"] >= 0:  # negative: an unreported warm-up run
                results[r["i"]] = r
            current = None
        elif line.strip() == "DONE":
            done = True
    return results, current, done


# Rows run unmeasured first in every device process, so that the first use of a code path
# (a failed connect, a refusal, a subscribe, a server DISCONNECT) is not counted as growth
WARM_UP = [("connack_ok", 4), ("connack_refused_1_v4", 4), ("connack_len0", 5),
           ("pub_q1_ok", 5), ("pub_qos3", 5), ("suback_ok", 5), ("suback_refused", 4),
           ("disconnect_session_taken_over", 5), ("close_mid_publish", 4)]


def warm_up() -> list[Entry]:
    return [Entry(-1 - k, n, v, BY_NAME[n].script(v), BY_NAME[n].ops, BY_NAME[n].client,
                  BY_NAME[n].check_ms, BY_NAME[n].until) for k, (n, v) in enumerate(WARM_UP)]


def _user_index(user: str) -> int | None:
    tail = user[4:]
    return int(tail) if user.startswith("case") and tail.lstrip("-").isdigit() else None


def run_cases(front: str, todo: list[Entry], workdir: Path, heap: str = "512k",
              warm: list[Entry] | None = None) -> Run:
    """Runs the entries on the unix port against one front end ("sync" or "aio"), after
    the warm-up entries (default: warm_up())."""
    from harness import start_device  # the host harness (mosquitto-free part)

    warm = warm_up() if warm is None else warm
    by_i = {e.i: e for e in warm + todo}
    results: dict[int, dict[str, Any]] = {}
    outputs = []
    restarts = 0

    def choose(user: str, idx: int) -> list[Step]:
        i = _user_index(user)
        return by_i[i].steps if i in by_i else []

    broker = CaseBroker(choose)
    try:
        left = list(todo)
        while left:
            workdir.mkdir(parents=True, exist_ok=True)
            (workdir / "cases.json").write_text(json.dumps(
                {"warm": [e.device() for e in warm], "cases": [e.device() for e in left]}))
            cfg = {"HOST": "127.0.0.1", "PORT": broker.port, "FRONT": front,
                   "TIMEOUT": TIMEOUT, "MAX_PACKET": MAX_PACKET}
            dev = start_device(DEVICE_SCRIPT, cfg, heap=heap, workdir=workdir)
            try:
                got, current, done, hung = _watch(dev, by_i)
            finally:
                dev.close()
                outputs.append(dev.output())
            results.update(got)
            if done:
                break
            restarts += 1
            stuck = current if current is not None else (left[0].i if not got else None)
            if stuck is not None and stuck < 0:  # a warm-up run
                stuck = left[0].i
            if stuck is None:  # ended between cases: go on after the last result
                stuck = max(got)
            else:
                why = "hung" if hung else "crashed"
                tail = "\n".join(outputs[-1].splitlines()[-15:])
                results[stuck] = {"i": stuck, "name": by_i[stuck].name, "v": by_i[stuck].v,
                                  "broken": why, "tail": tail}
            left = [e for e in left if e.i > stuck]
    finally:
        # the client's last packets may still be on their way to the broker's readers
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not all(c.closed_by_client
                                                      for c in broker.conns):
            time.sleep(0.05)
        broker.close()
    return Run(results, dict(broker.by_user), restarts, "\n".join(outputs))


def _watch(dev: Any, by_i: dict[int, Entry]) -> tuple[dict[int, dict[str, Any]], int | None,
                                                       bool, bool]:
    started = time.monotonic()
    last_current = None
    while True:
        out = dev.output()
        got, current, done = _parse(out)
        if done or dev.poll() is not None:
            time.sleep(0.05)
            got, current, done = _parse(dev.output())
            return got, current, done, False
        if current != last_current:
            last_current = current
            started = time.monotonic()
        entry = by_i.get(current) if current is not None else None
        if entry is not None and time.monotonic() - started > entry.limit():
            dev.kill()
            return got, current, False, True
        time.sleep(0.05)
