# MQTT 3.1.1 and 5.0 wire format.
# Encoders write into a caller's bytearray and return the end offset; decoders read a
# bytes-like body by index. No sockets, no files: this module runs on CPython too.
from micropython import const

# Packet types (first byte, high nibble) and the reason codes the client raises for its
# own findings (MQTT 5 numbering); private, so they fold and cost no heap. MQTT 5
# property decoding, and the Variable Byte Integer it starts with, is in v5.py (loaded
# on first use).
_CONNACK = const(0x20)
_PUBLISH = const(0x30)
_PUBACK = const(0x40)
_PUBREC = const(0x50)
_PUBREL = const(0x60)
_PUBCOMP = const(0x70)
_SUBSCRIBE = const(0x80)
_SUBACK = const(0x90)
_UNSUBSCRIBE = const(0xA0)
_UNSUBACK = const(0xB0)
_PINGRESP = const(0xD0)
_DISCONNECT = const(0xE0)
_AUTH = const(0xF0)
_MALFORMED = const(0x81)
_PROTOCOL_ERROR = const(0x82)
_MAX_REMAINING = const(268435455)
_v5 = None  # v5.py once loaded (_props)


class MQTTException(Exception):
    # args[0] is the MQTT return/reason code; args[1], when present, says more.
    # MQTTException.last is the newest one made: the receive path's handler (Wire._recv)
    # reads it rather than binding the exception it catches (`except ... as e` adds a
    # finally block to the function's frame, which then exceeds 11 words and is
    # allocated on the heap at every call, here at every read)
    last = None

    def __init__(self, *a):
        super().__init__(*a)
        MQTTException.last = self


def err(n, *a):
    # the exception of error n, one a healthy node never meets: its type and text are in
    # errors.py (each raise names the text in a comment), loaded to make it and freed
    # again, so the modules a node keeps hold none of those texts. a: the errno or reason
    # code, then what the text formats
    from .errors import make
    from .session import unload

    e = make(n, a)
    unload("errors")
    return e


# --- encoding ---------------------------------------------------------------------------


def put_varint(buf, i, n):
    if n < 0 or n > _MAX_REMAINING:
        raise err(0)  # remaining length out of range
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            buf[i] = b | 0x80
            i += 1
        else:
            buf[i] = b
            return i + 1


def subscribe(buf, pid, topic, qos, version):
    # SUBSCRIBE to one filter at qos; UNSUBSCRIBE from it when qos is None
    v5 = version == 5
    n = len(topic)
    i = 4 + (1 if v5 else 0) + n + (0 if qos is None else 1)
    if i + (2 if i < 0x80 else 3 if i < 0x4000 else 4) > len(buf):
        raise err(1, i, len(buf))  # SUBSCRIBE of %d bytes exceeds buffer of %d
    buf[0] = (_UNSUBSCRIBE if qos is None else _SUBSCRIBE) | 2
    i = put_varint(buf, 1, i)
    buf[i] = pid >> 8
    buf[i + 1] = pid & 0xFF
    i += 2
    if v5:
        buf[i] = 0
        i += 1
    buf[i] = n >> 8
    buf[i + 1] = n & 0xFF
    i += 2
    buf[i : i + n] = topic
    i += n
    if qos is None:
        return i
    buf[i] = qos
    return i + 1


def disconnect(buf, version, reason, expiry):
    # MQTT 5 may give a reason and change the session expiry (v5.disconnect)
    buf[0] = _DISCONNECT
    if version == 5 and (reason or expiry is not None):
        from .v5 import disconnect

        return disconnect(buf, reason, expiry)
    buf[1] = 0
    return 2


# --- decoding ---------------------------------------------------------------------------


def u16(b, i, end):
    if i + 2 > end:
        raise MQTTException(_MALFORMED, "truncated")
    return b[i] << 8 | b[i + 1]


def _props(b, i, end):
    # an MQTT 5 property block at b[i] (only MQTT 5 packets have one): v5.skip_props
    # steps over it, in the module a connection at MQTT 5 loads anyway (kept in _v5: an
    # import per call would make garbage)
    global _v5
    if _v5 is None:
        from . import v5 as _v5
    return _v5.skip_props(b, i, end)


def publish_fields(b, n, first, buf, s):
    # PUBLISH body b[s:n] with first byte `first` -> buf (the caller's array, so the
    # receive path allocates nothing): buf[0] topic end (topic is b[s+2:buf[0]]), buf[1]
    # packet ID, buf[2] payload start; buf[3] is set by the caller: 1 for MQTT 5. The
    # topic must be UTF-8 without wildcards; MQTT 5 properties are checked by the caller.
    if first & 0x0E == 8:
        raise err(2, _MALFORMED)  # DUP on a QoS 0 PUBLISH
    i = s + 2 + u16(b, s, n)
    if i > n:
        raise err(3, _MALFORMED)  # bad PUBLISH topic
    if i == s + 2:
        # MQTT 5 allows an empty topic only with a Topic Alias, which this client refuses
        raise err(4, _PROTOCOL_ERROR if buf[3] else _MALFORMED)  # PUBLISH without a topic
    # the check's result in buf[1], set below: one local less keeps the frame within 11
    # words, on the C stack (a larger one is allocated on the heap at every call)
    buf[1] = utf8(b, s + 2, i)
    if buf[1]:
        raise err(3, _MALFORMED if buf[1] == 1 else _PROTOCOL_ERROR)  # bad PUBLISH topic
    buf[0] = i
    buf[1] = 0
    if first & 6:
        buf[1] = u16(b, i, n)
        if not buf[1]:
            raise err(5, _MALFORMED)  # PUBLISH with packet ID 0
        i += 2
    if buf[3]:
        i = _props(b, i, n)
    buf[2] = i


def ack_fields(b, n, version, s):
    # PUBACK/PUBREC/PUBREL/PUBCOMP/UNSUBACK-style packet ID and reason code (0 = success)
    # of the body b[s:n]; returns pid | reason << 16 so the hot path allocates nothing
    pid = u16(b, s, n)
    if not pid:
        raise err(6, _MALFORMED)  # packet ID 0
    if n == s + 2:
        return pid
    if version != 5:
        raise err(7, _MALFORMED, n - s)  # acknowledgement of %d bytes
    reason = b[s + 2]
    if n > s + 3:
        _props(b, s + 3, n)
    return pid | reason << 16


# --- validation -------------------------------------------------------------------------


def utf8(b, i, end):
    # an MQTT string's bytes b[i:end]: 0 when well-formed UTF-8 without U+0000 or
    # surrogates (MQTT 1.5.4), 2 when it is but holds '+' or '#', 1 when it is not.
    # Walks by index: allocates nothing on the receive path.
    w = 0
    while i < end:
        c = b[i]
        i += 1
        if c < 0x80:
            if not c:
                return 1
            if c == 0x2B or c == 0x23:
                w = 2
            continue
        if c < 0xC2 or c > 0xF4:
            return 1  # a continuation byte, an overlong 2-byte form, or beyond U+10FFFF
        n = 1 if c < 0xE0 else 2 if c < 0xF0 else 3
        if i + n > end:
            return 1
        # the second byte's range rules out overlong forms, surrogates (ED A0..BF) and
        # code points beyond U+10FFFF
        if not (0xA0 if c == 0xE0 else 0x90 if c == 0xF0 else 0x80) <= b[i] <= (
                0x9F if c == 0xED else 0x8F if c == 0xF4 else 0xBF):
            return 1
        n += i
        i += 1
        while i < n:
            if b[i] & 0xC0 != 0x80:
                return 1
            i += 1
    return w


def check_topic(topic):
    # a topic name to publish to: bytes, 1..65535, UTF-8, no wildcards, no NUL
    if not 0 < len(topic) < 65536:
        raise err(8)  # topic must be 1 to 65535 bytes
    r = utf8(topic, 0, len(topic))
    if r:
        # topic must be UTF-8 without U+0000 or surrogates; must not contain wildcards
        raise err(9 if r == 1 else 10)


def check_filter(f):
    # a topic filter: UTF-8, '#' only as the whole last level, '+' only as a whole level
    if not 0 < len(f) < 65536:
        raise err(11)  # topic filter must be 1 to 65535 bytes
    if utf8(f, 0, len(f)) == 1:
        raise err(12)  # topic filter must be UTF-8 without U+0000 or surrogates
    levels = f.split(b"/")
    last = len(levels) - 1
    for k, lv in enumerate(levels):
        if (b"#" in lv and (lv != b"#" or k != last)) or (b"+" in lv and lv != b"+"):
            raise err(13, f)  # invalid topic filter %r


def check_qos(qos):
    if type(qos) is not int or not 0 <= qos <= 2:  # bool and float refused too
        raise err(14)  # qos must be 0, 1 or 2
