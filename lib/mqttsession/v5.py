# MQTT 5 properties of what a server sends (MQTT 5.0 section 2.2.2.2 and each packet's
# properties section): which property may appear in which packet, how often, and what its
# value may be (check), and their values (props). check() walks a property block by
# index, so the PUBLISH receive path allocates nothing unless the packet is refused.
# The Variable Byte Integer and the skipping of a property block, for packet.py's
# decoders too (packet._props). The full decoder of server packets (decode); a
# DISCONNECT with a reason or session expiry, for packet.py. Then the client's side
# (functions of the client, self) of the broker's limits: Maximum QoS and Retain
# Available, a QoS 2 answered by PUBACK, the Server Reference, the CONNACK that
# announces them and a DISCONNECT from the broker.
# Last, the move of a store's null session (client ID "", MQTT 5 only) to the client ID
# the broker assigned. Loaded on first use (MQTT 5, or a broker without QoS 2).
from micropython import const

from .packet import MQTTException, u16, utf8, publish_fields, ack_fields

_CONNACK = const(0x20)
_PUBLISH = const(0x30)
_PUBACK = const(0x40)
_PUBREC = const(0x50)
_PUBREL = const(0x60)
_PUBCOMP = const(0x70)
_SUBACK = const(0x90)
_UNSUBACK = const(0xB0)
_PINGRESP = const(0xD0)
_DISCONNECT = const(0xE0)
_AUTH = const(0xF0)
_MALFORMED = const(0x81)
# CONNACK properties
_P_SESSION_EXPIRY = const(0x11)
_P_ASSIGNED_ID = const(0x12)
_P_SERVER_KEEPALIVE = const(0x13)
_P_RECEIVE_MAX = const(0x21)
_P_MAX_QOS = const(0x24)
_P_RETAIN_AVAILABLE = const(0x25)
_P_MAX_PACKET = const(0x27)
_PROTOCOL_ERROR = const(0x82)
_ALIAS_INVALID = const(0x94)
_REL = const(16)  # session.REL
# DISCONNECT reasons that may be about the message in flight (unspecified, malformed,
# protocol error, implementation specific, not authorized, topic invalid, alias invalid,
# too large, payload format, retain, QoS not supported): a strike against it (aside.struck)
_BLAME = b"\x80\x81\x82\x83\x87\x90\x94\x95\x99\x9a\x9b"

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


def varint(b, i, end):
    # a Variable Byte Integer at b[i] (minimal encoding only); once read, a caller steps
    # over it by its continuation bits (while b[i] & 0x80)
    n = 0
    s = 0
    while True:
        if i >= end or s > 21:
            raise MQTTException(_MALFORMED, "bad variable byte integer")
        c = b[i]
        n |= (c & 0x7F) << s
        i += 1
        if not c & 0x80:
            if s and not c:
                raise MQTTException(_MALFORMED, "non-minimal variable byte integer")
            return n
        s += 7


def skip_props(b, i, end):
    # MQTT 5 property block at b[i]: its length, then the properties; returns the offset
    # after it
    n = varint(b, i, end)
    while b[i] & 0x80:
        i += 1
    i += 1 + n
    if i > end:
        raise MQTTException(_MALFORMED, "truncated properties")
    return i


def props(b, i, end):
    # decodes a property block into {id: value}; User Property (0x26) as a list of pairs
    stop = skip_props(b, i, end)
    while b[i] & 0x80:  # past its length
        i += 1
    i += 1
    d = {}
    while i < stop:
        p = b[i]
        i += 1
        j = 0
        while j < len(_DEF) and _DEF[j] != p:
            j += 3
        if j == len(_DEF):
            raise MQTTException(_MALFORMED, "unknown property 0x%02x" % p)
        k = _DEF[j + 1]
        if k == 1:
            if i >= stop:
                raise MQTTException(_MALFORMED, "truncated property")
            v = b[i]
            i += 1
        elif k == 2 or k == 4:
            v = u16(b, i, stop)
            if k == 4:
                v = v << 16 | u16(b, i + 2, stop)
            i += k
        elif k == 5:
            v = varint(b, i, stop)
            while b[i] & 0x80:
                i += 1
            i += 1
        else:
            a = u16(b, i, stop)
            e = i + 2 + a
            if k == 8:
                c = u16(b, e, stop)
                if e + 2 + c > stop:
                    raise MQTTException(_MALFORMED, "truncated property")
                d.setdefault(p, []).append((bytes(b[i + 2 : e]), bytes(b[e + 2 : e + 2 + c])))
                i = e + 2 + c
                continue
            if e > stop:
                raise MQTTException(_MALFORMED, "truncated property")
            v = bytes(b[i + 2 : e])
            i = e
        if p in d:
            raise MQTTException(_PROTOCOL_ERROR, "duplicate property 0x%02x" % p)
        d[p] = v
    return d


def check(b, i, end, t):
    # the property block at b[i:end] (its length first) of a packet of type t (first
    # byte & 0xF0) from the server; raises MQTTException with the reason code MQTT 5 gives
    # (0x81 malformed, 0x82 protocol error, 0x94 topic alias) unless it is valid. Returns
    # the offset after the block.
    stop = skip_props(b, i, end)
    while b[i] & 0x80:  # past its length
        i += 1
    i += 1
    bit = 1 << (t >> 4)
    seen = 0
    while i < stop:
        p = b[i]
        i += 1
        j = 0
        while j < len(_DEF) and _DEF[j] != p:
            j += 3
        if j == len(_DEF) or not _DEF[j + 2] & bit:
            raise MQTTException(_MALFORMED, "property 0x%02x not allowed here" % p)
        k = _DEF[j + 1]
        s = 1 << (j // 3)
        if seen & s and p != 0x26 and p != 0x0B:
            raise MQTTException(_PROTOCOL_ERROR, "property 0x%02x twice" % p)
        seen |= s
        if k == 1:
            if i >= stop:
                i = stop + 1
                break
            if b[i] > 1:
                raise MQTTException(_PROTOCOL_ERROR, "property 0x%02x must be 0 or 1" % p)
            i += 1
        elif k == 2 or k == 4:
            if i + k > stop:
                i = stop + 1
                break
            v = u16(b, i, stop) | (b[i + 2] | b[i + 3] if k == 4 else 0)
            if not v and (p == 0x21 or p == 0x27):
                raise MQTTException(_PROTOCOL_ERROR, "property 0x%02x of 0" % p)
            if p == 0x23:
                raise MQTTException(_ALIAS_INVALID,
                                    "topic alias 0x%02x: the client allows none" % p)
            i += k
        elif k == 5:
            v = varint(b, i, stop)
            if not v:
                raise MQTTException(_PROTOCOL_ERROR, "property 0x%02x of 0" % p)
            while b[i] & 0x80:
                i += 1
            i += 1
        else:
            # a string: its length, then (k 6, 8 and 9) UTF-8; a pair (k 8) is two
            for e in (0, 1) if k == 8 else (0,):
                if i + 2 > stop:
                    break
                e = i + 2 + (b[i] << 8 | b[i + 1])
                if e > stop:
                    break
                if k != 7:
                    r = utf8(b, i + 2, e)
                    if r == 1 or (r == 2 and k == 9):
                        raise MQTTException(_MALFORMED if r == 1 else _PROTOCOL_ERROR,
                                            "bad string in a property")
                i = e
            else:
                continue
            i = stop + 1
            break
    if i != stop:
        raise MQTTException(_MALFORMED, "truncated property")
    return stop


def decode(first, b, version):
    # Full decoder for every packet a server can send, MQTT 3.1.1 or 5 (the client's
    # MQTT 5 CONNACK and DISCONNECT go through it; its receive path reads PUBLISH and its
    # acknowledgements with packet.publish_fields and ack_fields): returns (type,
    # fields...), MQTT 5 properties as {id: value} (props). Raises MQTTException(0x81
    # malformed or 0x82 protocol error) on anything else.
    t = first & 0xF0
    fl = first & 0x0F
    n = len(b)
    v5 = version == 5
    if t == _PUBLISH:
        qos = fl >> 1 & 3
        if qos == 3:
            raise MQTTException(_MALFORMED, "PUBLISH QoS 3")
        out = [0, 0, 0, 1 if v5 else 0]
        publish_fields(b, n, first, out, 0)
        return (_PUBLISH, bytes(b[2 : out[0]]), bytes(b[out[2] : n]), qos, fl & 1,
                fl >> 3, out[1])
    if fl != (2 if t == _PUBREL else 0):
        raise MQTTException(_MALFORMED, "bad flags 0x%02x" % first)
    if t == _CONNACK:
        if n < 2 or b[0] > 1:
            raise MQTTException(_MALFORMED, "bad CONNACK")
        d = {}
        if v5 and n > 2:
            # (a broker that speaks only 3.1.1 answers an MQTT 5 CONNECT without them)
            d = props(b, 2, n)
        if (n != 2 and not v5) or (n > 2 and skip_props(b, 2, n) != n):
            raise MQTTException(_MALFORMED, "bad CONNACK")  # more than its properties
        return (_CONNACK, b[0] & 1, b[1], d)
    if t in (_PUBACK, _PUBREC, _PUBREL, _PUBCOMP):
        r = ack_fields(b, n, version, 0)
        return (t, r & 0xFFFF, r >> 16)
    if t == _SUBACK or t == _UNSUBACK:
        pid = u16(b, 0, n)
        i = skip_props(b, 2, n) if v5 else 2
        if t == _SUBACK and i >= n:
            raise MQTTException(_MALFORMED, "SUBACK without return codes")
        return (t, pid, bytes(b[i:n]))
    if t == _PINGRESP:
        if n:
            raise MQTTException(_MALFORMED, "PINGRESP with a body")
        return (_PINGRESP,)
    if v5 and (t == _DISCONNECT or t == _AUTH):
        return (t, b[0] if n else 0, props(b, 1, n) if n > 1 else {})
    raise MQTTException(_PROTOCOL_ERROR, "unexpected packet 0x%02x" % first)



# --- what the client sends: DISCONNECT with a reason or a session expiry ---


def disconnect(buf, reason, expiry):
    # the rest of packet.disconnect's DISCONNECT (its first byte is written)
    buf[2] = reason
    if expiry is None:
        buf[1] = 1
        return 3
    buf[1] = 7
    buf[3] = 5
    buf[4] = _P_SESSION_EXPIRY
    for i in range(4):
        buf[8 - i] = expiry >> 8 * i & 0xFF
    return 9


# --- the broker's limits (functions of the client) ---


def limit(self, qos, retain):
    # the message in hand is above the broker's Maximum QoS or Retain Available (MQTT 5
    # CONNACK): limits="downgrade" sends it within them (counted), "refuse" raises
    if self.limits == "refuse":
        raise ValueError("qos %d%s is above what this broker takes (Maximum QoS %d%s)" % (
            qos, " with retain" if retain else "", self._maxq & 3,
            ", no retain" if self._maxq & 4 else ""))
    self.downgraded += 1
    q = min(qos, self._maxq & 3)
    self._hand(q)
    return q, retain and not self._maxq & 4


def unsupported(self, topic, qos):
    # (ctl.sub_start, aio_rare.resub, when _maxq & 56) the reason code of a SUBSCRIBE
    # the MQTT 5 broker said it does not take (CONNACK:
    # no Shared, no Wildcard Subscriptions, a Maximum Packet Size the packet passes; an
    # UNSUBSCRIBE too large), else 0: refused here, never sent (the broker
    # would end the connection, and a keeper would send it again at every connect)
    m = self._maxq
    n = 5 + len(topic) + (qos is not None)  # remaining length: ID, properties, filter
    if m & 32 and n + 2 + (n > 127) + (n > 16383) + (n > 2097151) > self._maxout:
        return 0x95  # packet too large
    if qos is None:
        return 0
    if m & 16 and topic.startswith(b"$share/"):
        return 0x9E
    if m & 8 and (b"+" in topic or b"#" in topic):
        return 0xA2
    return 0


def cap(self, k):
    # a message queued before this broker announced its limits goes out within them
    # (never refused: publish accepted it); returns its flags
    s = self._s
    f = s.fl[k]
    g = f
    m = self._maxq
    if f & 3 > m & 3:
        g = g & ~3 | m & 3
    if m & 4:
        g &= ~4
    if g != f:
        s.fl[k] = g
        self.downgraded += 1
    return g


def puback2(self, pid):
    # a broker without QoS 2 (RabbitMQ) answers a QoS 2 PUBLISH with PUBACK: that
    # completes it, at least once for this message; counted in downgraded
    s = self._s
    k = s.find(pid)
    if k >= 0 and s.fl[k] & 3 == 2 and not s.fl[k] & _REL:
        s.fl[k] |= _REL
        s.acked(pid, False)
        self.downgraded += 1
        self._healthy()


def connack(self):
    # an MQTT 5 CONNACK (ctl.connack): returns Session Present; raises MQTTException on
    # refusal. Its properties set the broker's limits for this connection
    try:
        d = decode(_CONNACK, self._rx[self._i : self._n], 5)
    except MQTTException as e:
        raise self._mod("aside").fail(self, e)
    pr = d[3]
    if pr:
        # (a refusal's too: its Server Reference is decoded as UTF-8)
        check(self._rx, self._i + 2, self._n, _CONNACK)
    if d[2]:
        self._cn[12] = True  # the broker said no (no protocol error): raised as it is
        self._cn[8] = 0  # a CONNACK came: no session made of that CONNECT (ctl.resume)
        disconnected(self, d[2:])  # raises
    s = self._s
    aid = pr.get(_P_ASSIGNED_ID)
    if aid is not None or not len(s.client_id):
        # an ID is assigned exactly when the client sent none (MQTT-3.2.2-16)
        if len(s.client_id) or not aid:
            raise self._mod("aside").fail(self, MQTTException(
                _PROTOCOL_ERROR, "Assigned Client Identifier "
                + ("for an own ID" if aid else "missing")))
        s.client_id = aid
    self._quota = min(self.window, pr.get(_P_RECEIVE_MAX, 65535))
    self._maxout = pr.get(_P_MAX_PACKET, 268435460)
    self.ka = pr.get(_P_SERVER_KEEPALIVE, self.keepalive)
    # | 8 without Wildcard Subscription Available, | 16 without Shared Subscription
    # Available: such a SUBSCRIBE is a protocol error there (DISCONNECT 0xA2, 0x9E)
    self._maxq = pr.get(_P_MAX_QOS, 2) | (0 if pr.get(_P_RETAIN_AVAILABLE, 1) else 4) | (
        0 if pr.get(0x28, 1) else 8) | (0 if pr.get(0x2A, 1) else 16) | (
        32 if _P_MAX_PACKET in pr else 0)  # | 32: a (UN)SUBSCRIBE may be too large
    if _P_SESSION_EXPIRY in pr:
        s.expiry = pr[_P_SESSION_EXPIRY]  # the broker's own: stored with the session
    return d[1]


def disconnected(self, d=None):
    # a DISCONNECT from the broker, or a CONNACK that refused the connection (d: its
    # reason code and properties): raises MQTTException with the reason it gives. A
    # Server Reference (with 0x9C use another server, 0x9D server moved) is kept in
    # server_reference; followed only with redirect=True, one hop: the first entry,
    # "host" or "host:port", becomes the server of the next connect
    why = "connection refused"
    if d is None:
        r = self._rx[self._i] if self._n > self._i else 0
        if r not in _BLAME:
            # the broker going away, busy, the session taken over, ...: nothing said
            # about the message in flight, so no strike against it (aside.struck)
            self._cn[11] = MQTTException(r, "disconnected by the broker")
    self._close()
    if d is None:
        d = decode(_DISCONNECT, self._rx[self._i : self._n], 5)[1:]
        if self._n > self._i + 1:
            check(self._rx, self._i + 1, self._n, _DISCONNECT)  # (closed: none sent back)
        why = "disconnected by the broker"
    ref = d[1].get(0x1C)
    if ref is not None:
        ref = bytes(ref).decode()
        self.server_reference = ref
        if self.redirect and d[0] in (0x9C, 0x9D) and not self._cn[4]:  # hops
            h = ref.split(" ")[0]
            host, _, port = h.rpartition(":")
            if not host:
                if h:  # (an empty reference names nothing to follow)
                    self.server = h
            elif port.isdigit() and 0 < int(port) < 65536:
                self.server, self.port = host, int(port)
            else:
                h = None  # a port no socket takes: not followed (kept, logged)
            if h:
                self._cn[4] = 1
            self._log("redirected to %s" if h else "not redirected to %s", (ref,))
    raise MQTTException(d[0], why)


# --- a SessionStore's null session (client ID "") gets the ID the broker assigned ---


def adopt(st, s):
    # a null session got its ID: move it where get() finds it, and where "last" (written
    # next, StoredSession._save) leads the next boot: the broker holds this session under
    # that ID now. A session already stored under it is moved aside, never overwritten
    # (migrate.aside_old)
    import os
    from .store import _exists

    from .dirs import sdir, _host_dir
    from .session import unload

    hd = _host_dir(st, s.host)
    p = sdir(st, hd, s.client_id)
    if _exists(p):
        from .migrate import aside_old

        aside_old(st, hd, p, s.client_id)
        unload("migrate")
    unload("dirs")  # run once (see SessionStore.get)
    os.rename(s._p, p)
    o = st._own  # its claim (SessionStore._own) moves with it
    o.pop(s._p, None)
    o[p] = id(s)
    s._p = p
