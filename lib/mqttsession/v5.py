# MQTT 5 property rules for what a server sends (MQTT 5.0 section 2.2.2.2 and each
# packet's properties section): which property may appear in which packet, how often, and
# what its value may be. Loaded on first use (MQTT 5 only). check() walks a property block
# by index, so the PUBLISH receive path allocates nothing unless the packet is refused.
from micropython import const

from .packet import MQTTException, varint, varint_size, u16, utf8

_MALFORMED = const(0x81)
_PROTOCOL_ERROR = const(0x82)
_ALIAS_INVALID = const(0x94)

# packets a property may appear in: bit (packet type >> 4)
_C = const(0x0004)  # CONNACK
_P = const(0x0008)  # PUBLISH
_A = const(0x00F0)  # PUBACK, PUBREC, PUBREL, PUBCOMP
_S = const(0x0A00)  # SUBACK, UNSUBACK
_D = const(0x4000)  # DISCONNECT
_U = const(0x8000)  # AUTH
# value kinds: 1 a byte that is 0 or 1, 2 u16, 4 u32, 5 varint, 6 UTF-8 string,
# 7 binary, 8 UTF-8 pair, 9 a topic name (UTF-8 without wildcards)
_DEF = (
    0x01, 1, _P,  # Payload Format Indicator
    0x02, 4, _P,  # Message Expiry Interval
    0x03, 6, _P,  # Content Type
    0x08, 9, _P,  # Response Topic
    0x09, 7, _P,  # Correlation Data
    0x0B, 5, _P,  # Subscription Identifier (may repeat)
    0x11, 4, _C | _D,  # Session Expiry Interval
    0x12, 6, _C,  # Assigned Client Identifier
    0x13, 2, _C,  # Server Keep Alive
    0x15, 6, _C | _U,  # Authentication Method
    0x16, 7, _C | _U,  # Authentication Data
    0x17, 1, 0,  # Request Problem Information (CONNECT only)
    0x18, 4, 0,  # Will Delay Interval (will properties only)
    0x19, 1, 0,  # Request Response Information (CONNECT only)
    0x1A, 6, _C,  # Response Information
    0x1C, 6, _C | _D,  # Server Reference
    0x1F, 6, _C | _A | _S | _D | _U,  # Reason String
    0x21, 2, _C,  # Receive Maximum
    0x22, 2, _C,  # Topic Alias Maximum
    0x23, 2, _P,  # Topic Alias
    0x24, 1, _C,  # Maximum QoS
    0x25, 1, _C,  # Retain Available
    0x26, 8, 0xFFFF,  # User Property (any packet, may repeat)
    0x27, 4, _C,  # Maximum Packet Size
    0x28, 1, _C,  # Wildcard Subscription Available
    0x29, 1, _C,  # Subscription Identifier Available
    0x2A, 1, _C,  # Shared Subscription Available
)


def _bad(code, why, p):
    return MQTTException(code, why % p)


def check(b, i, end, ptype):
    # the property block at b[i:end] (its length first) of a packet of type ptype (first
    # byte & 0xF0) from the server; raises MQTTException with the reason code MQTT 5 gives
    # (0x81 malformed, 0x82 protocol error, 0x94 topic alias) unless it is valid. Returns
    # the offset after the block.
    n = varint(b, i, end)
    i += varint_size(n)
    stop = i + n
    if stop > end:
        raise MQTTException(_MALFORMED, "truncated properties")
    bit = 1 << (ptype >> 4)
    seen = 0
    while i < stop:
        p = b[i]
        i += 1
        j = 0
        while j < len(_DEF) and _DEF[j] != p:
            j += 3
        if j == len(_DEF) or not _DEF[j + 2] & bit:
            raise _bad(_MALFORMED, "property 0x%02x not allowed here", p)
        k = _DEF[j + 1]
        s = 1 << (j // 3)
        if seen & s and p != 0x26 and p != 0x0B:
            raise _bad(_PROTOCOL_ERROR, "property 0x%02x twice", p)
        seen |= s
        if k == 1:
            if i >= stop:
                i = stop + 1
                break
            if b[i] > 1:
                raise _bad(_PROTOCOL_ERROR, "property 0x%02x must be 0 or 1", p)
            i += 1
        elif k == 2 or k == 4:
            if i + k > stop:
                i = stop + 1
                break
            v = u16(b, i, stop) | (b[i + 2] | b[i + 3] if k == 4 else 0)
            if not v and (p == 0x21 or p == 0x27):
                raise _bad(_PROTOCOL_ERROR, "property 0x%02x of 0", p)
            if p == 0x23:
                raise _bad(_ALIAS_INVALID, "topic alias 0x%02x: the client allows none", p)
            i += k
        elif k == 5:
            v = varint(b, i, stop)
            if not v:
                raise _bad(_PROTOCOL_ERROR, "property 0x%02x of 0", p)
            i += varint_size(v)
        else:
            i = _string(b, i, stop, k)
            if k == 8:
                i = _string(b, i, stop, 6)
    if i != stop:
        raise MQTTException(_MALFORMED, "truncated property")
    return stop


def _string(b, i, stop, k):
    # a string property value at b[i]: length, then (k 6 or 9) UTF-8; returns its end
    if i + 2 > stop:
        return stop + 1
    e = i + 2 + (b[i] << 8 | b[i + 1])
    if e > stop:
        return stop + 1
    if k != 7:
        r = utf8(b, i + 2, e)
        if r == 1 or (r == 2 and k == 9):
            raise MQTTException(_MALFORMED if r == 1 else _PROTOCOL_ERROR,
                                "bad string in a property")
    return e
