"""lib/mqttsession/packet.py under CPython: fuzzing, round trips and validation.

The client's encoders are checked against a small reference decoder of the MQTT 3.1.1 /
5.0 client->server packets written here from the specification, and the client's decoder
against a reference encoder of the server->client packets. Random and mutated input must
only ever produce a result or MQTTException(Malformed Packet / Protocol Error).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from pure import load
from pure import packet as P

V5 = load("v5")  # MQTT 5 property decoding and the full decoder of server packets
CTL = load("ctl")  # the CONNECT packet (connect_packet)

MALFORMED = 0x81
PROTOCOL_ERROR = 0x82
MAX_REMAINING = 268_435_455
VERSIONS = [4, 5]

FUZZ = settings(max_examples=400, deadline=None)
ROUND = settings(max_examples=150, deadline=None)

# --------------------------------------------------------------------------------------
# Reference definitions (MQTT 5.0 section 2.2.2.2 and 1.5)

BYTE, U16, U32, VARINT, UTF8, BINARY, PAIR = range(7)
PROPERTY_TYPES = {
    0x01: BYTE,  # Payload Format Indicator
    0x02: U32,  # Message Expiry Interval
    0x03: UTF8,  # Content Type
    0x08: UTF8,  # Response Topic
    0x09: BINARY,  # Correlation Data
    0x0B: VARINT,  # Subscription Identifier
    0x11: U32,  # Session Expiry Interval
    0x12: UTF8,  # Assigned Client Identifier
    0x13: U16,  # Server Keep Alive
    0x15: UTF8,  # Authentication Method
    0x16: BINARY,  # Authentication Data
    0x17: BYTE,  # Request Problem Information
    0x18: U32,  # Will Delay Interval
    0x19: BYTE,  # Request Response Information
    0x1A: UTF8,  # Response Information
    0x1C: UTF8,  # Server Reference
    0x1F: UTF8,  # Reason String
    0x21: U16,  # Receive Maximum
    0x22: U16,  # Topic Alias Maximum
    0x23: U16,  # Topic Alias
    0x24: BYTE,  # Maximum QoS
    0x25: BYTE,  # Retain Available
    0x26: PAIR,  # User Property
    0x27: U32,  # Maximum Packet Size
    0x28: BYTE,  # Wildcard Subscription Available
    0x29: BYTE,  # Subscription Identifier Available
    0x2A: BYTE,  # Shared Subscription Available
}

Prop = tuple[int, Any]


def enc_varint(n: int) -> bytes:
    """Variable Byte Integer, MQTT 5.0 section 1.5.5 (minimal encoding)."""
    assert 0 <= n <= MAX_REMAINING
    out = bytearray()
    while True:
        digit = n % 128
        n //= 128
        out.append(digit | 0x80 if n else digit)
        if not n:
            return bytes(out)


def enc_str(s: bytes) -> bytes:
    return len(s).to_bytes(2, "big") + s


def enc_props(props: list[Prop]) -> bytes:
    body = enc_prop_body(props)
    return enc_varint(len(body)) + body


def enc_prop_body(props: list[Prop]) -> bytes:
    """The properties without their length."""
    body = bytearray()
    for ident, value in props:
        kind = PROPERTY_TYPES[ident]
        body += enc_varint(ident)
        if kind == BYTE:
            body.append(value)
        elif kind == U16:
            body += value.to_bytes(2, "big")
        elif kind == U32:
            body += value.to_bytes(4, "big")
        elif kind == VARINT:
            body += enc_varint(value)
        elif kind in (UTF8, BINARY):
            body += enc_str(value)
        else:
            body += enc_str(value[0]) + enc_str(value[1])
    return bytes(body)


def props_dict(props: list[Prop]) -> dict[int, Any]:
    """What v5.props is documented to return: {id: value}, User Property as pairs."""
    d: dict[int, Any] = {}
    for ident, value in props:
        if PROPERTY_TYPES[ident] == PAIR:
            d.setdefault(ident, []).append(value)
        else:
            d[ident] = value
    return d


class Reader:
    """Reads MQTT data types from a packet body, asserting it is well formed."""

    def __init__(self, data: bytes | bytearray) -> None:
        self.b = bytes(data)
        self.i = 0

    def take(self, n: int) -> bytes:
        assert self.i + n <= len(self.b), f"truncated at {self.i}+{n} of {len(self.b)}"
        v = self.b[self.i : self.i + n]
        self.i += n
        return v

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def u32(self) -> int:
        return int.from_bytes(self.take(4), "big")

    def varint(self) -> int:
        value = 0
        for k in range(4):
            c = self.u8()
            value += (c & 0x7F) << (7 * k)
            if not c & 0x80:
                assert k == 0 or c, "non-minimal variable byte integer"
                return value
        raise AssertionError("variable byte integer longer than 4 bytes")

    def string(self) -> bytes:
        return self.take(self.u16())

    def props(self) -> dict[int, Any]:
        n = self.varint()
        end = self.i + n
        assert end <= len(self.b)
        out: list[Prop] = []
        while self.i < end:
            ident = self.varint()
            kind = PROPERTY_TYPES[ident]
            v: Any
            if kind == BYTE:
                v = self.u8()
            elif kind == U16:
                v = self.u16()
            elif kind == U32:
                v = self.u32()
            elif kind == VARINT:
                v = self.varint()
            elif kind in (UTF8, BINARY):
                v = self.string()
            else:
                v = (self.string(), self.string())
            out.append((ident, v))
        assert self.i == end, "property overruns its block"
        return props_dict(out)

    def rest(self) -> bytes:
        return self.take(len(self.b) - self.i)

    def end(self) -> None:
        assert self.i == len(self.b), f"{len(self.b) - self.i} trailing bytes"


def split_packet(data: bytes | bytearray) -> tuple[int, Reader]:
    """First byte and a reader on the body; checks the Remaining Length."""
    r = Reader(data)
    first = r.u8()
    rem = r.varint()
    assert rem == len(data) - r.i, f"remaining length {rem} for {len(data) - r.i} bytes"
    return first, Reader(r.rest())


def parse_connect(data: bytes | bytearray) -> dict[str, Any]:
    first, r = split_packet(data)
    assert first == 0x10
    out: dict[str, Any] = {"name": r.string(), "level": r.u8()}
    flags = r.u8()
    assert not flags & 1, "reserved CONNECT flag set"
    out["clean"] = bool(flags & 2)
    will = bool(flags & 4)
    out["will_qos"] = flags >> 3 & 3
    out["will_retain"] = bool(flags & 0x20)
    if not will:
        assert out["will_qos"] == 0 and not out["will_retain"]  # MQTT-3.1.2-11/13/15
    assert out["will_qos"] != 3
    out["keepalive"] = r.u16()
    v5 = out["level"] == 5
    out["props"] = r.props() if v5 else {}
    out["client_id"] = r.string()
    out["will"] = None
    if will:
        wprops = r.props() if v5 else {}
        out["will"] = (r.string(), r.string(), out["will_retain"], out["will_qos"])
        out["will_props"] = wprops
    out["user"] = r.string() if flags & 0x80 else None
    out["password"] = r.string() if flags & 0x40 else None
    r.end()
    return out


def parse_publish(data: bytes | bytearray, version: int) -> dict[str, Any]:
    first, r = split_packet(data)
    assert first & 0xF0 == 0x30
    qos = first >> 1 & 3
    assert qos != 3
    out: dict[str, Any] = {
        "qos": qos,
        "retain": first & 1,
        "dup": first >> 3 & 1,
        "topic": r.string(),
        "pid": r.u16() if qos else 0,
    }
    out["props"] = r.props() if version == 5 else {}
    out["payload"] = r.rest()
    return out


def parse_subscribe(data: bytes | bytearray, version: int) -> dict[str, Any]:
    first, r = split_packet(data)
    assert first == 0x82
    out: dict[str, Any] = {"pid": r.u16()}
    out["props"] = r.props() if version == 5 else {}
    subs = []
    while r.i < len(r.b):
        topic = r.string()
        subs.append((topic, r.u8()))
    assert subs, "SUBSCRIBE without a topic filter"
    out["subs"] = subs
    return out


def parse_unsubscribe(data: bytes | bytearray, version: int) -> dict[str, Any]:
    first, r = split_packet(data)
    assert first == 0xA2
    out: dict[str, Any] = {"pid": r.u16()}
    out["props"] = r.props() if version == 5 else {}
    topics = []
    while r.i < len(r.b):
        topics.append(r.string())
    assert topics, "UNSUBSCRIBE without a topic filter"
    out["topics"] = topics
    return out


# --------------------------------------------------------------------------------------
# Reference encoder of server->client packets: (first byte, body)

Packet = tuple[int, bytes]


def s_connack(present: bool, code: int, props: list[Prop] | None) -> Packet:
    return 0x20, bytes([int(present), code]) + (enc_props(props) if props is not None else b"")


def s_publish(
    topic: bytes, payload: bytes, qos: int, retain: int, dup: int, pid: int,
    props: list[Prop] | None,
) -> Packet:
    body = enc_str(topic) + (pid.to_bytes(2, "big") if qos else b"")
    if props is not None:
        body += enc_props(props)
    return 0x30 | dup << 3 | qos << 1 | retain, body + payload


def s_ack(t: int, pid: int, reason: int | None, props: list[Prop] | None) -> Packet:
    body = pid.to_bytes(2, "big")
    if reason is not None:
        body += bytes([reason])
        if props is not None:
            body += enc_props(props)
    return t | (2 if t == 0x60 else 0), body


def s_suback(pid: int, codes: bytes, props: list[Prop] | None) -> Packet:
    return 0x90, pid.to_bytes(2, "big") + (enc_props(props) if props is not None else b"") + codes


def s_unsuback(pid: int, codes: bytes, props: list[Prop] | None) -> Packet:
    return 0xB0, pid.to_bytes(2, "big") + (enc_props(props) if props is not None else b"") + codes


def s_disconnect(reason: int | None, props: list[Prop] | None) -> Packet:
    if reason is None:
        return 0xE0, b""
    return 0xE0, bytes([reason]) + (enc_props(props) if props is not None else b"")


# --------------------------------------------------------------------------------------
# Strategies

def utf8_bytes(exclude: str, min_size: int = 0, max_size: int = 12) -> st.SearchStrategy[bytes]:
    """UTF-8 encoded text without the characters in exclude."""
    chars = st.characters(codec="utf-8", exclude_characters=exclude)
    return st.text(chars, min_size=min_size, max_size=max_size).map(str.encode)


utf8 = utf8_bytes("\x00")
topic_names = utf8_bytes("\x00+#", min_size=1, max_size=24)
plain_level = utf8_bytes("\x00+#/", max_size=6)
payloads = st.binary(max_size=64)
pids = st.integers(1, 65535)
u16s = st.integers(0, 0xFFFF)
u32s = st.integers(0, 0xFFFFFFFF)
user_props = st.lists(st.tuples(utf8, utf8), max_size=3).map(
    lambda pairs: [(0x26, p) for p in pairs]
)


def value_of(ident: int) -> st.SearchStrategy[Any]:
    kind = PROPERTY_TYPES[ident]
    return {
        BYTE: st.integers(0, 255),
        U16: u16s,
        U32: u32s,
        VARINT: st.integers(1, MAX_REMAINING),
        UTF8: utf8,
        BINARY: st.binary(max_size=12),
        PAIR: st.tuples(utf8, utf8),
    }[kind]


@st.composite
def prop_lists(draw: st.DrawFn, idents: list[int], allow_repeat: bool = False) -> list[Prop]:
    """A property list over idents, each at most once (User Property any number of times),
    in random order."""
    chosen = draw(st.lists(st.sampled_from(idents), unique=not allow_repeat, max_size=6))
    out = [(i, draw(value_of(i))) for i in chosen if i != 0x26]
    out += draw(user_props)
    return draw(st.permutations(out))


CONNACK_PROPS = [0x11, 0x12, 0x13, 0x1F, 0x21, 0x22, 0x24, 0x25, 0x27, 0x28, 0x29, 0x2A, 0x1A]
PUBLISH_PROPS = [0x01, 0x02, 0x03, 0x08, 0x09, 0x23]
ACK_PROPS = [0x1F]
DISCONNECT_PROPS = [0x1F, 0x1C]
V5_REASONS = [0x00, 0x04, 0x10, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x92, 0x97, 0x99]


@st.composite
def server_packets(draw: st.DrawFn, version: int) -> tuple[Packet, tuple[Any, ...]]:
    """A valid server->client packet for version and the tuple v5.decode must give."""
    v5 = version == 5
    kind = draw(st.sampled_from(["connack", "publish", "ack", "suback", "unsuback",
                                 "pingresp"] + (["disconnect"] if v5 else [])))
    if kind == "connack":
        present = draw(st.booleans())
        if v5:
            code = draw(st.sampled_from([0x00, 0x80, 0x84, 0x85, 0x86, 0x87, 0x88, 0x9F]))
            props = draw(prop_lists(CONNACK_PROPS))
            return s_connack(present, code, props), (0x20, int(present), code,
                                                     props_dict(props))
        code = draw(st.integers(0, 5))
        return s_connack(present, code, None), (0x20, int(present), code, {})
    if kind == "publish":
        qos = draw(st.integers(0, 2))
        topic = draw(topic_names)
        payload = draw(payloads)
        retain = draw(st.integers(0, 1))
        dup = draw(st.integers(0, 1)) if qos else 0
        pid = draw(pids) if qos else 0
        props = draw(prop_lists(PUBLISH_PROPS + [0x0B], allow_repeat=True)) if v5 else None
        return s_publish(topic, payload, qos, retain, dup, pid, props), (
            0x30, topic, payload, qos, retain, dup, pid)
    if kind == "ack":
        t = draw(st.sampled_from([0x40, 0x50, 0x60, 0x70]))
        pid = draw(pids)
        reason = draw(st.none() | st.sampled_from(V5_REASONS)) if v5 else None
        props = draw(st.none() | prop_lists(ACK_PROPS)) if reason is not None else None
        return s_ack(t, pid, reason, props), (t, pid, reason or 0)
    if kind in ("suback", "unsuback"):
        pid = draw(pids)
        rc = [0, 1, 2, 0x80] + ([0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2] if v5 else [])
        if kind == "unsuback":
            rc = [0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91]
        codes = bytes(draw(st.lists(st.sampled_from(rc), min_size=1, max_size=5)))
        props = draw(prop_lists(ACK_PROPS)) if v5 else None
        if kind == "suback":
            return s_suback(pid, codes, props), (0x90, pid, codes)
        codes = codes if v5 else b""
        return s_unsuback(pid, codes, props), (0xB0, pid, codes)
    if kind == "pingresp":
        return (0xD0, b""), (0xD0,)
    reason = draw(st.none() | st.sampled_from(V5_REASONS + [0x8E, 0x9C]))
    props = draw(st.none() | prop_lists(DISCONNECT_PROPS)) if reason is not None else None
    return s_disconnect(reason, props), (0xE0, reason or 0, props_dict(props or []))


@st.composite
def mutated(draw: st.DrawFn, packet: Packet) -> Packet:
    """packet with one to four random edits of its body (and sometimes its first byte)."""
    first, body = packet
    b = bytearray(body)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "extend"]))
        pos = draw(st.integers(0, len(b)))
        if op == "flip" and pos < len(b):
            b[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and pos < len(b):
            b[pos] = draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFF, 0x26, 0x0B]))
        elif op == "insert":
            b[pos:pos] = draw(st.binary(min_size=1, max_size=3))
        elif op == "delete" and pos < len(b):
            del b[pos]
        elif op == "truncate":
            del b[pos:]
        elif op == "extend":
            b += draw(st.binary(min_size=1, max_size=4))
    if draw(st.integers(0, 7)) == 0:
        first ^= 1 << draw(st.integers(0, 7))
    return first, bytes(b)


body_types: st.SearchStrategy[Callable[[bytes], Any]] = st.sampled_from(
    [bytes, bytearray, memoryview]
)


# --------------------------------------------------------------------------------------
# Fuzzing: a result or MQTTException(0x81/0x82), nothing else


def vsize(v: int) -> int:
    """Bytes of v as a Variable Byte Integer."""
    return len(enc_varint(v))


def guarded(fn: Callable[..., Any], *args: Any) -> Any:
    """fn(*args), or None when it raised MQTTException(Malformed Packet/Protocol Error).
    Any other exception propagates and fails the test."""
    try:
        return fn(*args)
    except P.MQTTException as e:
        assert e.args and e.args[0] in (MALFORMED, PROTOCOL_ERROR), e.args
        return None


def check_decoded(first: int, result: Any) -> None:
    if result is None:
        return
    assert isinstance(result, tuple)
    assert result[0] == first & 0xF0


@FUZZ
@given(
    first=st.integers(0, 255) | st.sampled_from([0x20, 0x30, 0x32, 0x34, 0x40, 0x50, 0x62,
                                                 0x70, 0x90, 0xB0, 0xD0, 0xE0, 0xF0]),
    body=st.binary(max_size=40),
    version=st.sampled_from(VERSIONS),
    kind=body_types,
)
@example(first=0x20, body=b"\x00\x00\xff\xff\xff\xff\xff", version=5, kind=bytes)
@example(first=0x20, body=b"\x00\x00\x05\x26\x00\x01a\x00", version=5, kind=bytes)
@example(first=0xE0, body=b"\x00\x80", version=5, kind=bytes)
@example(first=0x32, body=b"\x00\x01t\x00\x00", version=5, kind=bytes)
def test_decode_random_bytes(first: int, body: bytes, version: int, kind: Any) -> None:
    check_decoded(first, guarded(V5.decode, first, kind(body), version))


@FUZZ
@given(data=st.data(), version=st.sampled_from(VERSIONS), as_version=st.sampled_from(VERSIONS))
def test_decode_mutated_packets(data: st.DataObject, version: int, as_version: int) -> None:
    packet, _ = data.draw(server_packets(version))
    first, body = data.draw(mutated(packet))
    check_decoded(first, guarded(V5.decode, first, bytearray(body), as_version))


@FUZZ
@given(
    body=st.binary(max_size=40),
    qos=st.integers(0, 2),
    version=st.sampled_from(VERSIONS),
    data=st.data(),
)
def test_publish_fields_random(body: bytes, qos: int, version: int, data: st.DataObject) -> None:
    n = data.draw(st.integers(0, len(body)))
    out = [-1, -1, -1, 1 if version == 5 else 0]
    first = 0x30 | qos << 1 | data.draw(st.sampled_from([0, 1, 8, 9]))  # DUP, RETAIN
    try:
        P.publish_fields(body, n, first, out, 0)
    except P.MQTTException as e:
        assert e.args[0] in (MALFORMED, PROTOCOL_ERROR), e.args
        return
    assert out[3] == (1 if version == 5 else 0)  # the caller's, left alone
    te, pid, start = out[:3]
    assert te == 2 + int.from_bytes(body[:2], "big") and 2 < te <= start <= n
    assert (pid != 0) == bool(qos) and 0 <= pid <= 0xFFFF


@FUZZ
@given(body=st.binary(max_size=24), version=st.sampled_from(VERSIONS), data=st.data())
def test_ack_fields_random(body: bytes, version: int, data: st.DataObject) -> None:
    n = data.draw(st.integers(0, len(body)))
    r = guarded(P.ack_fields, body, n, version, 0)
    if r is None:
        return
    assert isinstance(r, int)
    assert r & 0xFFFF == int.from_bytes(body[:2], "big") != 0
    assert r >> 16 == (body[2] if n > 2 else 0)
    if version == 4:
        assert n == 2


@FUZZ
@given(
    body=st.binary(max_size=40) | prop_lists(CONNACK_PROPS).map(enc_props),
    data=st.data(),
)
def test_props_random(body: bytes, data: st.DataObject) -> None:
    end = data.draw(st.integers(0, len(body)))
    i = data.draw(st.integers(0, end))
    d = guarded(V5.props, body, i, end)
    if d is None:
        return
    assert isinstance(d, dict)
    for ident, v in d.items():
        kind = PROPERTY_TYPES[ident]
        if kind == PAIR:
            assert isinstance(v, list) and all(
                isinstance(a, bytes) and isinstance(b, bytes) for a, b in v)
        elif kind in (UTF8, BINARY):
            assert isinstance(v, bytes)
        else:
            assert isinstance(v, int) and v >= 0


def ref_props(b: bytes, i: int, end: int) -> dict[int, Any] | int:
    """Reference reading of the property block at b[i:end]: the properties, or the reason
    code of the first fault met reading in order (a repeated property other than User
    Property is a Protocol Error, anything else a Malformed Packet)."""
    r = Reader(b[:end])
    r.i = i
    out: dict[int, Any] = {}
    try:
        n = r.varint()
        block = Reader(r.take(n))
        while block.i < len(block.b):
            ident = block.u8()
            kind = PROPERTY_TYPES[ident]
            v: Any
            if kind == BYTE:
                v = block.u8()
            elif kind == U16:
                v = block.u16()
            elif kind == U32:
                v = block.u32()
            elif kind == VARINT:
                v = block.varint()
            elif kind in (UTF8, BINARY):
                v = block.string()
            else:
                out.setdefault(ident, []).append((block.string(), block.string()))
                continue
            if ident in out:
                return PROTOCOL_ERROR
            out[ident] = v
    except (AssertionError, KeyError):
        return MALFORMED
    return out


@st.composite
def prop_blocks(draw: st.DrawFn) -> bytes:
    """Property blocks of any identifiers (repeats included), then damaged: cut short
    anywhere (the last value then runs past the block), random bytes appended, or a
    Property Length a little off; random bytes may follow the block."""
    props = draw(prop_lists(sorted(PROPERTY_TYPES), allow_repeat=True))
    body = enc_prop_body(props)
    how = draw(st.sampled_from(["exact", "cut", "cut", "junk"]))
    if how == "cut" and props:
        # keep the first j properties whole and only the start of the next one
        j = draw(st.integers(0, len(props) - 1))
        head = enc_prop_body(props[:j])
        part = enc_prop_body(props[j : j + 1])
        body = head + part[: draw(st.integers(1, len(part) - 1))]
    elif how == "junk":
        body += draw(st.binary(min_size=1, max_size=6))
    n = max(0, len(body) + draw(st.sampled_from([0, 0, 0, 0, -1, 1, -2, 2])))
    return enc_varint(n) + body + draw(st.binary(max_size=3))


@FUZZ
@given(block=prop_blocks() | prop_lists(CONNACK_PROPS + PUBLISH_PROPS).map(enc_props),
       data=st.data())
def test_props_matches_reference(block: bytes, data: st.DataObject) -> None:
    end = data.draw(st.integers(0, len(block)) | st.just(len(block)))
    try:
        got: dict[int, Any] | int = V5.props(block, 0, end)
    except P.MQTTException as e:
        got = e.args[0]
    assert got == ref_props(block, 0, end)
    # at an offset inside a larger buffer
    pre = data.draw(st.binary(max_size=3))
    try:
        got = V5.props(pre + block, len(pre), len(pre) + end)
    except P.MQTTException as e:
        got = e.args[0]
    assert got == ref_props(block, 0, end)


EVERY_KIND: list[Prop] = [
    (0x24, 1), (0x21, 0x1234), (0x27, 0x01020304), (0x0B, 300), (0x1F, b"why"),
    (0x09, b"\x00\xff"), (0x26, (b"key", b"value")),
]


@pytest.mark.parametrize("prop", EVERY_KIND, ids=lambda p: f"0x{p[0]:02x}")
def test_props_cut_anywhere(prop: Prop) -> None:
    # a property cut short at the end of its block, with more data after the block
    whole = enc_prop_body([(0x22, 9), prop])
    for cut in range(len(whole) + 1):
        block = enc_varint(cut) + whole[:cut] + b"\x05\x06\x07\x08\x09\x0a\x0b\x0c"
        try:
            got: dict[int, Any] | int = V5.props(block, 0, len(block))
        except P.MQTTException as e:
            got = e.args[0]
        assert got == ref_props(block, 0, len(block)), cut
        if cut in (0, 3, len(whole)):
            assert got == props_dict([(0x22, 9), prop][: {0: 0, 3: 1}.get(cut, 2)])
        else:
            assert got == MALFORMED


@FUZZ
@given(body=st.binary(max_size=8), data=st.data())
def test_varint_random(body: bytes, data: st.DataObject) -> None:
    end = data.draw(st.integers(0, len(body)))
    i = data.draw(st.integers(0, len(body)))
    v = guarded(V5.varint, body, i, end)
    if v is None:
        return
    assert 0 <= v <= MAX_REMAINING
    size = vsize(v)
    assert i + size <= end
    assert body[i : i + size] == enc_varint(v)


@FUZZ
@given(body=st.binary(max_size=12), data=st.data())
def test_skip_props_random(body: bytes, data: st.DataObject) -> None:
    # v5.skip_props reads the block's length with v5.varint
    end = data.draw(st.integers(0, len(body)))
    i = data.draw(st.integers(0, len(body)))
    v = guarded(V5.varint, body, i, end)
    want = None if v is None or i + vsize(v) + v > end else i + vsize(v) + v
    assert guarded(V5.skip_props, body, i, end) == want


# --------------------------------------------------------------------------------------
# Variable Byte Integer / Remaining Length

BOUNDARIES = [
    (0, 1), (1, 1), (127, 1), (128, 2), (16383, 2), (16384, 3),
    (2097151, 3), (2097152, 4), (MAX_REMAINING, 4),
]


@pytest.mark.parametrize(("value", "size"), BOUNDARIES)
def test_varint_boundaries(value: int, size: int) -> None:
    buf = bytearray(b"\xa5" * 8)
    end = P.put_varint(buf, 2, value)
    assert end == 2 + size == 2 + vsize(value)
    assert bytes(buf[2:end]) == enc_varint(value)
    assert buf[:2] == b"\xa5\xa5" and buf[end:] == b"\xa5" * (8 - end)
    assert V5.varint(buf, 2, end) == value
    assert V5.varint(bytes(buf), 2, len(buf)) == value  # bytes after it are not read
    with pytest.raises(P.MQTTException) as e:
        V5.varint(buf, 2, end - 1)  # truncated
    assert e.value.args[0] == MALFORMED


@settings(max_examples=300, deadline=None)
@given(st.integers(0, MAX_REMAINING))
@example(0x7F)
@example(0x3FFF)
@example(0x1FFFFF)
def test_varint_round_trip(value: int) -> None:
    buf = bytearray(4)
    end = P.put_varint(buf, 0, value)
    assert end == vsize(value)
    assert bytes(buf[:end]) == enc_varint(value)
    assert V5.varint(buf, 0, end) == value


@pytest.mark.parametrize("value", [-1, MAX_REMAINING + 1, 2**32, 2**40])
def test_put_varint_out_of_range(value: int) -> None:
    with pytest.raises(ValueError):
        P.put_varint(bytearray(8), 0, value)


@settings(max_examples=200, deadline=None)
@given(value=st.integers(0, 2097151), extra=st.integers(1, 3))
@example(value=0, extra=1)
@example(value=127, extra=1)
def test_varint_rejects_non_minimal(value: int, extra: int) -> None:
    enc = bytearray(enc_varint(value))
    assume(len(enc) + extra <= 4)
    enc[-1] |= 0x80
    enc += b"\x80" * (extra - 1) + b"\x00"
    with pytest.raises(P.MQTTException) as e:
        V5.varint(bytes(enc), 0, len(enc))
    assert e.value.args[0] == MALFORMED


@pytest.mark.parametrize(
    "enc", [b"", b"\x80", b"\xff\xff\xff", b"\xff\xff\xff\xff", b"\xff\xff\xff\xff\x7f",
            b"\x80\x80\x80\x80\x01"]
)
def test_varint_rejects_truncated_and_long(enc: bytes) -> None:
    with pytest.raises(P.MQTTException) as e:
        V5.varint(enc, 0, len(enc))
    assert e.value.args[0] == MALFORMED


# --------------------------------------------------------------------------------------
# Round trips: client encoders -> reference decoder

SENTINEL = 0xA5


def filled(n: int) -> bytearray:
    return bytearray([SENTINEL]) * n


def untouched(buf: bytearray, start: int) -> bool:
    return all(c == SENTINEL for c in buf[start:])


wills = st.none() | st.tuples(topic_names, payloads, st.booleans(), st.integers(0, 2))


class RxSize:
    """A receive buffer of n bytes, as far as CONNECT's Maximum Packet Size is concerned."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


@ROUND
@given(
    client_id=utf8,
    clean=st.booleans(),
    keepalive=u16s,
    version=st.sampled_from(VERSIONS),
    user=st.none() | utf8,
    password=st.none() | st.binary(max_size=16),
    will=wills,
    expiry=st.none() | st.sampled_from([0, 1, 0xFFFFFFFF]) | u32s,
    store=st.booleans(),
    max_packet=st.sampled_from([64, 0xFFFFFFFF]) | u32s.filter(lambda v: v >= 64),
    tx_size=st.sampled_from([32, 600]),
)
def test_connect_round_trip(
    client_id: bytes, clean: bool, keepalive: int, version: int, user: bytes | None,
    password: bytes | None, will: tuple[bytes, bytes, bool, int] | None, expiry: int | None,
    store: bool, max_packet: int, tx_size: int,
) -> None:
    tx = filled(tx_size)
    c = SimpleNamespace(_s=SimpleNamespace(client_id=client_id, expiry=-1, subs={}, _p=None),
                        version=version, expiry=expiry, store=store or None,
                        keepalive=keepalive, _tx=tx, _rx=RxSize(max_packet),
                        # as args.py: user, password, ssl, will, the rest 0 (nothing sent)
                        _cn=[user, password, None, will] + [0] * 18)
    buf, n = CTL.connect_packet(c, clean)
    # the client's buffer unless the packet (nearly) fills it: then one of its own
    assert len(buf) >= n
    assert buf is tx or n + 3 > tx_size
    if buf is tx:
        assert untouched(buf, n)
    p = parse_connect(bytes(buf[:n]))
    assert p["name"] == b"MQTT"
    assert p["level"] == version
    assert p["clean"] == clean
    assert p["keepalive"] == keepalive
    # MQTT 5: a session asked to persist lives until the next clean start
    exp = 0
    if version == 5:
        exp = expiry if expiry is not None else 0xFFFFFFFF if store or not clean else 0
    assert c._s.expiry == exp
    expect: dict[int, Any] = {}
    if version == 5:
        if exp:
            expect[0x11] = exp
        expect[0x21] = 32
        expect[0x27] = max_packet
    assert p["props"] == expect
    assert p["client_id"] == client_id
    assert p["will"] == will
    if will is not None:
        assert p["will_props"] == {}
    assert p["user"] == user
    assert p["password"] == password


class Payload:
    """A payload of ml bytes that is never copied (core._put writes a payload that does not
    fit the client's buffer as a second write of the object itself)."""

    def __init__(self, ml: int) -> None:
        self.ml = ml

    def __len__(self) -> int:
        return self.ml


def publish_size(t: int, n: int, qos: int, version: int) -> int:
    """The remaining length core.Core._hand gives a PUBLISH of a t-byte topic and an n-byte
    payload."""
    c = SimpleNamespace(_t=b"t" * t, _m=Payload(n), version=version)
    load("core").Core._hand(c, qos)
    return int(c._rem)


def publish_header(
    buf: bytearray, topic: bytes, payload: Any, qos: int, retain: int, dup: int, pid: int,
    version: int
) -> int:
    """The client's PUBLISH as core._put writes it (fixed header, topic, packet ID, MQTT 5's
    empty property block, then the payload) with buf as the client's buffer; returns the
    header's length. The payload follows in buf when it fits, else in a second write."""
    ml = len(payload)
    # no socket: _put hands its writes to core._write, which collects them here
    client = SimpleNamespace(_tx=buf, _pt=topic, _pm=payload, version=version, sock=None,
                             _rem=publish_size(len(topic), ml, qos, version))
    writes: list[tuple[Any, int]] = []
    core = load("core")
    saved = core._write
    core._write = lambda c, b, n: writes.append((b, n))
    try:
        core._put(client, 0x30 | dup << 3 | qos << 1 | retain, pid if qos else 0)
    finally:
        core._write = saved
    assert client._tx is buf  # large enough for the header: not replaced
    assert writes[0][0] is buf
    if len(writes) == 1:
        return writes[0][1] - ml  # header and payload in one write
    assert len(writes) == 2 and writes[1] == (payload, ml)
    return writes[0][1]


@ROUND
@given(
    topic=topic_names,
    payload=payloads | st.binary(min_size=120, max_size=400),
    qos=st.integers(0, 2),
    retain=st.integers(0, 1),
    dup=st.integers(0, 1),
    pid=pids,
    version=st.sampled_from(VERSIONS),
)
def test_publish_round_trip(
    topic: bytes, payload: bytes, qos: int, retain: int, dup: int, pid: int, version: int
) -> None:
    ml = len(payload)
    buf = filled(16 + len(topic) + ml)
    i = publish_header(buf, topic, payload, qos, retain, dup, pid, version)
    rem = publish_size(len(topic), ml, qos, version)
    assert i == 1 + vsize(rem) + 2 + len(topic) + (2 if qos else 0) + (version == 5)
    assert untouched(buf, i + ml)
    p = parse_publish(buf[: i + ml], version)
    assert (p["qos"], p["retain"], p["dup"]) == (qos, retain, dup)
    assert p["topic"] == topic
    assert p["pid"] == (pid if qos else 0)
    assert p["props"] == {}
    assert p["payload"] == payload


@pytest.mark.parametrize("ml", [0, 100, 16_000, 16_500, 2_097_000, 2_098_000, MAX_REMAINING - 20])
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_publish_header_remaining_length(ml: int, version: int, qos: int) -> None:
    # large payloads: only the header is written, the payload follows on the socket
    topic = b"a/b"
    rem = publish_size(len(topic), ml, qos, version)
    buf = filled(16)
    i = publish_header(buf, topic, Payload(ml) if ml > 1 << 20 else bytes(ml), qos, 0, 0, 7,
                       version)
    first, r = Reader(buf[:i]).u8(), Reader(buf[1:i])
    assert first == 0x30 | qos << 1
    assert r.varint() == rem
    assert r.string() == topic
    assert rem == len(buf[:i]) - 1 - vsize(rem) + ml
    assert untouched(buf, i)


def test_publish_header_refuses_remaining_length_over_limit() -> None:
    ml = MAX_REMAINING - publish_size(1, 0, 1, 5) + 1
    with pytest.raises(ValueError):
        publish_header(bytearray(16), b"t", Payload(ml), 1, 0, 0, 1, 5)


filters = st.lists(plain_level | st.just(b"+"), min_size=1, max_size=5).map(
    lambda lv: b"/".join(lv)
) | st.just(b"#") | st.just(b"a/+/#")


@ROUND
@given(pid=pids, topic=filters.filter(bool), qos=st.integers(0, 2),
       version=st.sampled_from(VERSIONS))
def test_subscribe_round_trip(pid: int, topic: bytes, qos: int, version: int) -> None:
    buf = filled(32 + len(topic))
    n = P.subscribe(buf, pid, topic, qos, version)
    assert untouched(buf, n)
    s = parse_subscribe(buf[:n], version)
    assert s == {"pid": pid, "props": {}, "subs": [(topic, qos)]}
    with pytest.raises(ValueError):
        P.subscribe(bytearray(n - 1), pid, topic, qos, version)


@ROUND
@given(pid=pids, topic=filters.filter(bool), version=st.sampled_from(VERSIONS))
def test_unsubscribe_round_trip(pid: int, topic: bytes, version: int) -> None:
    buf = filled(32 + len(topic))
    n = P.subscribe(buf, pid, topic, None, version)
    assert untouched(buf, n)
    assert parse_unsubscribe(buf[:n], version) == {"pid": pid, "props": {}, "topics": [topic]}
    with pytest.raises(ValueError):
        P.subscribe(bytearray(n - 1), pid, topic, None, version)


def test_subscribe_long_filter_remaining_length() -> None:
    topic = b"x" * 20000  # a 3-byte Remaining Length
    buf = filled(20016)
    n = P.subscribe(buf, 9, topic, 1, 5)
    assert parse_subscribe(buf[:n], 5) == {"pid": 9, "props": {}, "subs": [(topic, 1)]}


@ROUND
@given(first=st.sampled_from([0x40, 0x50, 0x62, 0x70]), pid=pids)
@example(first=0x40, pid=1)
@example(first=0x62, pid=65535)
def test_ack_round_trip(first: int, pid: int) -> None:
    # core.Core._ack writes the acknowledgement into the client's 4-byte buffer
    buf = filled(8)
    writes: list[tuple[Any, int]] = []
    client = SimpleNamespace(_ab=buf, _write=lambda b, n: writes.append((b, n)))
    load("core").Core._ack(client, first, pid)
    assert writes == [(buf, 4)]
    assert untouched(buf, 4)
    f, r = split_packet(buf[:4])
    assert f == first
    assert r.u16() == pid
    r.end()


@ROUND
@given(
    version=st.sampled_from(VERSIONS),
    reason=st.sampled_from([0, 4, 0x80, 0x81, 0x82, 0x95]),
    expiry=st.none() | st.sampled_from([0, 0xFFFFFFFF]) | u32s,
)
def test_disconnect_round_trip(version: int, reason: int, expiry: int | None) -> None:
    buf = filled(16)
    n = P.disconnect(buf, version, reason, expiry)
    assert untouched(buf, n)
    first, r = split_packet(buf[:n])
    assert first == 0xE0
    if version == 4:
        r.end()
        return
    # MQTT 5: no body means Normal disconnection without properties
    got_reason = r.u8() if r.b else 0
    got_props = r.props() if r.i < len(r.b) else {}
    r.end()
    assert got_reason == reason
    assert got_props == ({} if expiry is None else {0x11: expiry})
    if not reason and expiry is None:
        assert n == 2


def test_disconnect_without_reason_or_expiry() -> None:
    for v in VERSIONS:
        buf = filled(4)
        assert P.disconnect(buf, v, 0, None) == 2 and buf[:2] == b"\xe0\x00"


# --------------------------------------------------------------------------------------
# Server->client packets from the reference encoder -> v5.decode


@settings(max_examples=300, deadline=None)
@given(data=st.data(), version=st.sampled_from(VERSIONS), kind=body_types)
def test_decode_server_packets(data: st.DataObject, version: int, kind: Any) -> None:
    (first, body), expected = data.draw(server_packets(version))
    assert V5.decode(first, kind(body), version) == expected


@dataclass
class Connack:
    assigned: bytes | None = None
    receive_max: int | None = None
    max_packet: int | None = None
    keepalive: int | None = None
    alias_max: int | None = None
    reason: bytes | None = None
    users: list[tuple[bytes, bytes]] = field(default_factory=list)

    def props(self) -> list[Prop]:
        out: list[Prop] = []
        for ident, v in ((0x12, self.assigned), (0x21, self.receive_max),
                         (0x27, self.max_packet), (0x13, self.keepalive),
                         (0x22, self.alias_max), (0x1F, self.reason)):
            if v is not None:
                out.append((ident, v))
        return out + [(0x26, u) for u in self.users]


@ROUND
@given(
    c=st.builds(
        Connack,
        assigned=st.none() | utf8,
        receive_max=st.none() | st.integers(1, 65535),
        max_packet=st.none() | st.integers(1, 0xFFFFFFFF),
        keepalive=st.none() | u16s,
        alias_max=st.none() | u16s,
        reason=st.none() | utf8,
        users=st.lists(st.tuples(utf8, utf8), max_size=4),
    ),
    present=st.booleans(),
)
def test_decode_connack_v5_properties(c: Connack, present: bool) -> None:
    first, body = s_connack(present, 0, c.props())
    t, sp, code, d = V5.decode(first, body, 5)
    assert (t, sp, code) == (0x20, int(present), 0)
    assert d.get(0x12) == c.assigned
    assert d.get(0x21) == c.receive_max
    assert d.get(0x27) == c.max_packet
    assert d.get(0x13) == c.keepalive
    assert d.get(0x22) == c.alias_max
    assert d.get(0x1F) == c.reason
    assert d.get(0x26, []) == c.users
    assert len(d) == len([x for x in c.props() if x[0] != 0x26]) + bool(c.users)


def test_decode_fixed_examples() -> None:
    # a few packets written out by hand from the specification
    assert V5.decode(0x20, b"\x01\x00", 4) == (0x20, 1, 0, {})
    assert V5.decode(0x20, b"\x00\x05", 4) == (0x20, 0, 5, {})
    assert V5.decode(0x20, b"\x00\x00\x00", 5) == (0x20, 0, 0, {})
    assert V5.decode(0x20, b"\x00\x00\x08\x12\x00\x02id\x21\x00\x0a", 5) == (
        0x20, 0, 0, {0x12: b"id", 0x21: 10})
    assert V5.decode(0x3B, b"\x00\x03a/b\x12\x34hi", 4) == (0x30, b"a/b", b"hi", 1, 1, 1, 0x1234)
    assert V5.decode(0x30, b"\x00\x01t\x00", 5) == (0x30, b"t", b"", 0, 0, 0, 0)
    assert V5.decode(0x34, b"\x00\x01t\x00\x07\x03\x23\x00\x01xy", 5) == (
        0x30, b"t", b"xy", 2, 0, 0, 7)
    assert V5.decode(0x40, b"\x00\x07", 4) == (0x40, 7, 0)
    assert V5.decode(0x50, b"\x00\x07\x10", 5) == (0x50, 7, 0x10)
    assert V5.decode(0x62, b"\x00\x07\x92\x00", 5) == (0x60, 7, 0x92)
    assert V5.decode(0x70, b"\x00\x07\x00\x03\x1f\x00\x00", 5) == (0x70, 7, 0)
    assert V5.decode(0x90, b"\x00\x07\x00\x01\x80", 4) == (0x90, 7, b"\x00\x01\x80")
    assert V5.decode(0x90, b"\x00\x07\x00\x02", 5) == (0x90, 7, b"\x02")
    assert V5.decode(0xB0, b"\x00\x07", 4) == (0xB0, 7, b"")
    assert V5.decode(0xB0, b"\x00\x07\x00\x00\x11", 5) == (0xB0, 7, b"\x00\x11")
    assert V5.decode(0xD0, b"", 4) == (0xD0,)
    assert V5.decode(0xE0, b"", 5) == (0xE0, 0, {})
    assert V5.decode(0xE0, b"\x8e", 5) == (0xE0, 0x8E, {})
    assert V5.decode(0xE0, b"\x9c\x05\x1c\x00\x02h2", 5) == (0xE0, 0x9C, {0x1C: b"h2"})
    assert V5.decode(0xF0, b"\x18\x00", 5) == (0xF0, 0x18, {})


BAD = [
    # (first, body, version, code)
    (0x36, b"\x00\x01t\x00\x01", 4, MALFORMED),  # QoS 3
    (0x32, b"\x00\x01t\x00\x00", 4, MALFORMED),  # packet ID 0
    (0x30, b"\x00\x00", 4, MALFORMED),  # empty topic (no alias allowed)
    (0x30, b"\x00\x05ab", 4, MALFORMED),  # topic overruns
    (0x32, b"\x00\x01t\x00", 4, MALFORMED),  # truncated packet ID
    (0x30, b"\x00\x01t", 5, MALFORMED),  # MQTT 5 without property length
    (0x30, b"\x00\x01t\x05\x01", 5, MALFORMED),  # properties overrun
    (0x21, b"\x00\x00", 4, MALFORMED),  # reserved flags
    (0x60, b"\x00\x01", 4, MALFORMED),  # PUBREL without its flag bit
    (0x42, b"\x00\x01", 4, MALFORMED),
    (0xD1, b"", 4, MALFORMED),
    (0x20, b"\x00", 4, MALFORMED),
    (0x20, b"\x02\x00", 4, MALFORMED),  # reserved acknowledge flags
    (0x20, b"\x00\x00\x00", 4, MALFORMED),  # 3.1.1 CONNACK is 2 bytes
    (0x20, b"\x00\x00\x02\x21\x00", 5, MALFORMED),  # truncated u16 property
    (0x20, b"\x00\x00\x01\x05", 5, MALFORMED),  # unknown property
    (0x20, b"\x00\x00\x06\x21\x00\x01\x21\x00\x02", 5, PROTOCOL_ERROR),  # duplicate
    (0x20, b"\x00\x00\x80\x00", 5, MALFORMED),  # non-minimal property length
    (0x20, b"\x00\x00\x03\x26\x00\x01", 5, MALFORMED),  # truncated user property
    (0x40, b"\x00", 4, MALFORMED),
    (0x40, b"\x00\x00", 4, MALFORMED),  # packet ID 0
    (0x40, b"\x00\x01\x00", 4, MALFORMED),  # 3.1.1 acknowledgements are 2 bytes
    (0x40, b"\x00\x01\x00\x05", 5, MALFORMED),  # properties overrun
    (0x90, b"\x00\x01", 4, MALFORMED),  # SUBACK without return codes
    (0x90, b"\x00\x01\x00", 5, MALFORMED),
    (0xD0, b"\x00", 4, MALFORMED),  # PINGRESP with a body
    (0xE0, b"", 4, PROTOCOL_ERROR),  # no DISCONNECT from a 3.1.1 server
    (0xF0, b"", 4, PROTOCOL_ERROR),
    (0xE0, b"\x00\x02\x1f", 5, MALFORMED),
    (0x10, b"", 4, PROTOCOL_ERROR),  # client->server packets
    (0x80, b"\x00\x01", 5, PROTOCOL_ERROR),
    (0xA0, b"\x00\x01", 5, PROTOCOL_ERROR),
    (0x82, b"\x00\x01", 5, MALFORMED),  # flags are checked first
    (0xC0, b"", 4, PROTOCOL_ERROR),
    (0x00, b"", 4, PROTOCOL_ERROR),  # reserved type
]


@pytest.mark.parametrize(("first", "body", "version", "code"), BAD)
def test_decode_refuses(first: int, body: bytes, version: int, code: int) -> None:
    with pytest.raises(P.MQTTException) as e:
        V5.decode(first, body, version)
    assert e.value.args[0] == code


# --------------------------------------------------------------------------------------
# Validation of topics, filters and QoS

TOPIC_RE = re.compile(rb"[^+#\x00]{1,65535}", re.S)
# levels separated by '/': '+' alone or a plain level; '#' alone as the last level
FILTER_RE = re.compile(rb"(?:(?:\+|[^/+#\x00]*)/)*(?:\+|#|[^/+#\x00]*)", re.S)


def utf8_ok(b: bytes) -> bool:
    """MQTT's UTF-8 rule (1.5.4): well-formed (CPython refuses surrogates too)."""
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def filter_ok(f: bytes) -> bool:
    return 0 < len(f) < 65536 and FILTER_RE.fullmatch(f) is not None and utf8_ok(f)


def accepts(check: Callable[[Any], None], value: Any) -> bool:
    try:
        check(value)
    except ValueError:
        return False
    return True


@FUZZ
@given(st.binary(max_size=16) | st.lists(st.sampled_from([b"a", b"/", b"+", b"#", b"\x00", b"",
                                                          b"\xc3\xa9"])).map(b"".join))
@example(b"")
@example(b"a/b")
@example(b"a\x00")
def test_check_topic_matches_reference(topic: bytes) -> None:
    assert accepts(P.check_topic, topic) == (TOPIC_RE.fullmatch(topic) is not None
                                             and utf8_ok(topic))


@FUZZ
@given(st.binary(max_size=12)
       | st.text(max_size=6).map(lambda t: t.encode("utf-8", "surrogatepass")))
@example(b"\xed\xa0\x80")
@example(b"\xc0\xaf")
@example(b"\xf4\x90\x80\x80")
def test_utf8_matches_reference(b: bytes) -> None:
    # 1: not MQTT UTF-8 (ill-formed, a surrogate, or U+0000); 2: valid with a wildcard
    ok = utf8_ok(b) and b"\0" not in b
    want = 1 if not ok else 2 if b"+" in b or b"#" in b else 0
    assert P.utf8(b, 0, len(b)) == want
    pre = b"\xff/"
    assert P.utf8(pre + b + b"\xff", len(pre), len(pre) + len(b)) == want


@FUZZ
@given(st.lists(st.sampled_from([b"a", b"bc", b"/", b"+", b"#", b"\x00", b" "]),
                max_size=10).map(b"".join))
@example(b"#")
@example(b"+")
@example(b"/")
@example(b"//")
@example(b"+/+/#")
@example(b"a/#/b")
@example(b"a#")
@example(b"a+/b")
@example(b"#/")
@example(b"")
def test_check_filter_matches_reference(f: bytes) -> None:
    assert accepts(P.check_filter, f) == filter_ok(f)


@ROUND
@given(levels=st.lists(plain_level | st.just(b"+"), min_size=1, max_size=6),
       multi=st.booleans())
def test_check_filter_accepts_valid_levels(levels: list[bytes], multi: bool) -> None:
    f = b"/".join(levels + ([b"#"] if multi else []))
    assume(f)
    P.check_filter(f)


@ROUND
@given(
    levels=st.lists(plain_level | st.just(b"+"), min_size=1, max_size=6),
    data=st.data(),
    how=st.sampled_from(["hash-not-last", "hash-mixed", "plus-mixed"]),
)
def test_check_filter_refuses_misplaced_wildcards(
    levels: list[bytes], data: st.DataObject, how: str
) -> None:
    k = data.draw(st.integers(0, len(levels) - 1))
    if how == "hash-not-last":
        levels.insert(k, b"#")  # at least one level follows it
    else:
        w = b"#" if how == "hash-mixed" else b"+"
        pre = data.draw(plain_level)
        post = data.draw(plain_level)
        assume(pre or post)
        levels[k] = pre + w + post
    with pytest.raises(ValueError):
        P.check_filter(b"/".join(levels))


def test_check_lengths() -> None:
    P.check_topic(b"t" * 65535)
    P.check_filter(b"t" * 65535)
    for check in (P.check_topic, P.check_filter):
        with pytest.raises(ValueError):
            check(b"t" * 65536)
        with pytest.raises(ValueError):
            check(b"")


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_check_qos_accepts(qos: int) -> None:
    P.check_qos(qos)


@pytest.mark.parametrize(
    "qos", [-1, 3, 4, True, False, None, "1", b"\x01", (1,), 0.0, 1.0, 2.0, 1.5]
)
def test_check_qos_refuses(qos: Any) -> None:
    # floats equal to 0/1/2 too: the encoders shift the QoS and would raise TypeError
    with pytest.raises(ValueError):
        P.check_qos(qos)
