# The protocol core's rarer paths, loaded on first use: the CONNECT packet and CONNACK,
# SUBSCRIBE/UNSUBSCRIBE and their acknowledgements, DISCONNECT. Each function takes the client
# (self); the client reaches them through Core._mod("ctl"), which returns this module. Rarer
# still, in modules of their own: setting messages aside, a packet the client does not
# expect and ending a connection on the broker's protocol violation (aside.py); MQTT 5's
# CONNACK with the broker's limits, a server DISCONNECT and Server Reference (v5.py).
from micropython import const
import time

from . import packet as P

_CONNECT = const(0x10)
_CONNACK = const(0x20)
_SUBACK = const(0x90)
_UNSUBACK = const(0xB0)
_LW = const(3)  # in _cn (args.py)
_HOPS = const(4)
_SUB = const(13)
_SUBRC = const(14)
_LOST = const(19)
_CO = const(8)  # as wire._CO
_SX = const(20)
_PRE = const(21)
_MALFORMED = const(0x81)
_PROTOCOL_ERROR = const(0x82)
_ENOTCONN = const(107)
_LINGER = const(1000)  # ms a disconnect waits for the broker to close (bye)
_PID = const(64)  # session.PID
_REL = const(16)  # session.REL


def connect_packet(self, clean):
    # the CONNECT packet: returns (buffer, length); the buffer is _tx unless a long will
    # or credentials need a larger one (once per connect)
    s = self._s
    if s._p is not None:
        from .stored import _mine

        _mine(s)  # taken over by a later client: its CONNECT would end that one's link
    v5 = self.version == 5
    exp = 0
    if v5:
        # like 3.1.1: a session asked to persist lives until the next clean start
        exp = self.expiry if self.expiry is not None else (
            0xFFFFFFFF if self.store or not clean else 0)
    s.expiry = exp  # stored with the session once the broker accepts it
    c = self._cn
    if c[_CO]:
        c[_SX] = True  # the last CONNECT went out (some of it) and no CONNACK was taken
    if not clean and s.subs and not c[_PRE]:
        # owed once the socket is connected, just before the CONNECT's first byte
        # (wire._conn_step: pre_owe): a broker out of reach took no CONNECT, and a node
        # that sleeps after such an attempt must not make them all again at its next wake
        c[_PRE] = None
    lw = c[_LW]
    w = lw or (None, None)
    f = (s.client_id, w[0], w[1], c[0], c[1])  # the strings; None: absent
    # MQTT 5 properties: Session Expiry Interval, Receive Maximum, Maximum Packet Size
    p = ((0x11, exp, 4), (0x21, 32, 2), (0x27, len(self._rx), 4))
    n = 10 + (9 + (5 if exp else 0) + (1 if lw else 0) if v5 else 0)
    for x in f:
        if x is not None:
            n += 2 + len(x)
    buf = self._tx
    if n + 5 > len(buf):
        buf = bytearray(n + 5)
    buf[0] = _CONNECT
    i = P.put_varint(buf, 1, n)
    buf[i : i + 6] = b"\x00\x04MQTT"
    buf[i + 6] = self.version
    n = 2 if clean else 0  # the flags
    if lw:
        n |= 4 | w[3] << 3 | (0x20 if w[2] else 0)
    if f[3] is not None:
        n |= 0x80
    if f[4] is not None:
        n |= 0x40
    buf[i + 7] = n
    buf[i + 8] = self.keepalive >> 8
    buf[i + 9] = self.keepalive & 0xFF
    i += 10
    if v5:
        buf[i] = 8 + (5 if exp else 0)
        i += 1
        for c, x, n in p:
            if x:
                buf[i] = c
                while n:  # x as n bytes, big-endian
                    i += 1
                    n -= 1
                    buf[i] = x >> 8 * n & 0xFF
                i += 1
    c = 0
    for x in f:
        if c == 1 and lw and v5:
            buf[i] = 0  # no will properties
            i += 1
        c += 1
        if x is not None:
            n = len(x)
            buf[i] = n >> 8
            buf[i + 1] = n & 0xFF
            i += 2
            buf[i : i + n] = x
            i += n
    return buf, i


def pre_owe(self):
    # before a CONNECT that resumes a session with subscriptions (its socket connected,
    # before its first byte): every one owed in flash until its CONNACK is taken. A
    # broker that lost the session makes a new, empty one from the CONNECT itself: a
    # reset before the CONNACK (Session Present 0) is taken leaves the node to hear
    # Session Present 1 at the next connect, and only what is owed is made then (resume
    # takes the file back: all of them made again, the ones the broker kept simply
    # replaced). Once per outage (_PRE stays set
    # until a CONNACK), and not at all when every subscription is owed as it stands
    # (_todo mirrors the file)
    c = self._cn
    c[_PRE] = False  # (None: wanted; wire._conn_step calls this once per connect)
    if self._s._p is None:
        return  # a RAM session: nothing survives a reset (the link's loss: _SX)
    td = self._todo
    c[_PRE] = True
    for t, q in self._s.subs.items():
        if td.get(t, -1) != q:
            break
    else:
        return
    try:
        owe(self)
    except (OSError, MemoryError) as e:
        # the flash refused it, or the heap had no room for the file: the connect goes on
        # (a store that cannot write must not keep the node offline); only a reset before
        # this CONNACK loses them, as before
        c[_PRE] = False
        self._log("owed subscriptions not written: %r", (e,))


def owe(c):
    # the changes owed to the broker (c._todo, and the asyncio client's sent but not yet
    # acknowledged, c._rs) into the store's "owed" file; none owed: the file goes. A
    # change made and still in the file is made again after a reset (the same SUBSCRIBE
    # or UNSUBSCRIBE once more). While a CONNECT is under way with every subscription
    # owed for it (pre_owe, _PRE), the file keeps them all. (Here, not in subs.py: a
    # resuming connect writes it, and this module is loaded then anyway)
    p = c._s._p
    if p is None:
        return  # a RAM session: nothing survives a reset
    from .store import _join, _rm, _write, pack
    from .stored import _mine

    _mine(c._s)  # a session a later client took over: its owed file is that one's
    d = dict(c._s.subs) if c._cn[_PRE] else {}
    if c._rs:
        d.update(c._rs.values())
    m = c._mk
    if m:
        # the blocking client's subscriptions being made (subs.make) stay owed until made:
        # a change the callback makes meanwhile rewrites this file, and a power cut then
        # lost those not yet made (the next connect heard Session Present 1). Those the
        # application changed since (the session says otherwise) are not made any more
        s = c._s.subs
        while m:
            for t, q in m[0]:
                if s.get(t) == q:
                    d[t] = q
            m = m[1]
    d.update(c._todo)
    p = _join(p, "owed")
    if d:
        b = b""  # as the subs file's records (stored.py), QoS 0x80 an unsubscribe
        for t, q in d.items():
            b += bytes((0x80 if q is None else q, len(t) & 255, len(t) >> 8)) + t
        _write(p, pack(b"o", b, 2), True)  # format 2, as store._FORMAT
    else:
        _rm(p)


def sub_filter(self, topic, qos):
    # the filter as bytes, once it and the QoS (None: unsubscribe) are checked
    topic = bytes(self._topic(topic))
    P.check_filter(topic)
    if qos is not None:
        P.check_qos(qos)
    s = self._s
    if s._p is not None and topic not in s.subs and topic not in self._todo:
        # the subscriptions file and the owed file (which may hold every subscription
        # and the unsubscribes owed; 3 bytes and the filter each, 8 of framing) within
        # what the store reads of a file (store._MAXF): larger, it was written, then
        # taken for damage at the next load, and every subscription or change owed lost
        n = 11 + len(topic)
        for f in s.subs:
            n += 3 + len(f)
        for f in self._todo:
            if f not in s.subs:
                n += 3 + len(f)
        if n > 65600:
            raise OSError(28, "session store full")
    return topic


def sub_start(self, topic, qos):
    # sends SUBSCRIBE (qos 0-2) or UNSUBSCRIBE (qos None); returns the filter. The
    # front end waits until _cn[_SUB] is 0, then calls sub_end.
    topic = sub_filter(self, topic, qos)
    if self._maxq & 56:  # an MQTT 5 broker without wildcard or shared subscriptions,
        # or with a Maximum Packet Size
        rc = self._mod("v5").unsupported(self, topic, qos)
        if rc and qos is None:
            raise P.err(21, rc)  # unsubscribe refused
        if rc:
            raise P.err(22, rc)  # subscription refused
    if self.sock is None:
        raise OSError(_ENOTCONN)
    buf = self._tx if len(topic) + 16 <= len(self._tx) else bytearray(len(topic) + 16)
    pid = self._s.next_pid()
    n = P.subscribe(buf, pid, topic, qos, self.version)
    c = self._cn
    c[_SUB] = pid
    c[_SUBRC] = -_UNSUBACK if qos is None else -_SUBACK
    try:
        self._write(buf, n)
    except OSError:
        self._close()
        raise
    return topic


def sub_end(self, topic, qos):
    rc = self._cn[_SUBRC]
    if qos is None:
        self._s.unsub(topic)
        if rc >= 0x80 and self.version == 5:
            raise P.err(21, rc)  # unsubscribe refused
    elif rc >= 0x80:
        raise P.err(22, rc)  # subscription refused
    else:
        self._s.sub(topic, qos)


def on_other(self, first):
    # SUBACK/UNSUBACK; any other packet here is a DISCONNECT from an MQTT 5 broker or a
    # protocol error (aside.other raises)
    if first != _SUBACK and first != _UNSUBACK:
        from . import aside

        aside.other(self, first)
    t = first & 0xF0
    v5 = self.version == 5
    b = self._rx
    i = self._i
    n = self._n
    pid = P.u16(b, i, n)
    j = self._mod("v5").skip_props(b, i + 2, n) if v5 else i + 2  # the reason codes: b[j:n]
    if first == _SUBACK and j >= n:
        raise P.err(23, _MALFORMED)  # SUBACK without return codes
    if v5:
        self._mod("v5").check(b, i + 2, n, t)
    w = self._cn
    if pid != w[_SUB]:
        if self._rs and pid in self._rs:
            # a (UN)SUBSCRIBE the asyncio client sent on connect without waiting (aio_rare)
            self._mod("aio_rare").suback(self, pid, b[j] if n > j else 0)
        return
    # the acknowledgement of the pending request: one code for its one filter, of the
    # kind MQTT allows (MQTT 3.1.1 UNSUBACK has none)
    if t != -w[_SUBRC]:
        raise P.err(24, _PROTOCOL_ERROR)  # SUBACK and UNSUBACK swapped
    if n - j != (1 if v5 or t == _SUBACK else 0):
        raise P.err(25, _PROTOCOL_ERROR, n - j)  # %d reason codes for 1 filter
    c = b[j] if n > j else 0
    if c not in (b"\x00\x01\x02\x80\x83\x87\x8f\x91\x97\x9e\xa1\xa2" if t == _SUBACK else
                 b"\x00\x11\x80\x83\x87\x8f\x91") or (c > 2 and c != 0x80 and not v5):
        raise P.err(26, _MALFORMED, c)  # reason code 0x%02x
    w[_SUB] = 0
    w[_SUBRC] = c
    # (not _healthy: a SUBACK says nothing of the message in flight. A broker that takes
    # subscriptions and drops the connection at each message would reset the strikes and
    # the backoff at every connection)


def connack(self, first):
    # returns Session Present; raises MQTTException on refusal. MQTT 5's, with the
    # broker's limits in its properties, is read in v5.py
    if first != _CONNACK:
        raise self._mod("aside").fail(self, P.err(27, _PROTOCOL_ERROR))  # expected CONNACK
    if self.version == 5:
        from . import v5

        return v5.connack(self)
    b = self._rx
    i = self._i
    if self._n != i + 2 or b[i] > 1:
        raise self._mod("aside").fail(self, P.err(28, _MALFORMED))  # bad CONNACK
    if b[i + 1]:
        self._close()
        self._cn[12] = True  # the broker said no (no protocol error): raised as it is
        # a refusal is a CONNACK: the broker made no session of that CONNECT (Session
        # Present 1 next time is the session it kept: nothing made again, see resume)
        self._cn[_CO] = 0
        raise P.err(29, b[i + 1])  # connection refused
    return b[i]


def resume(self, present, clean):
    # after CONNACK: put the session back on the wire; returns Session Present as taken.
    # A resume after a session loss that did not finish (no heap, no flash: it raised)
    # left the broker a new session without the subscriptions: the next connect finds it
    # present, and is taken as a loss again (messages go out again as new ones, with their
    # IDs: see Session.restart), so every subscription is made again
    s = self._s
    c = self._cn
    if c[_LOST]:
        present = 0
    c[_LOST] = not present
    # an earlier CONNECT of this session went out without its CONNACK taken: if the
    # broker had lost the session, that CONNECT made it a new, empty one, and this
    # Session Present 1 cannot tell it from the kept one. The messages are resent as to
    # a kept session (a broker that made a new one takes them as new ones), and every
    # subscription is made again (one the broker kept is replaced by the same)
    sx = c[_SX] and present
    c[_SX] = False
    c[_CO] = 0
    pre = c[_PRE]
    c[_PRE] = False
    if clean and clean != 2:
        # the application asked for a new session: what the old one held is given up,
        # and counted (a message accepted is never dropped silently). 2: the clean start
        # [MQTT-3.2.2-4] makes for a fresh store (no state of its own) that a broker
        # kept a session for: what the node published before that first connect was
        # never sent anywhere, and goes out (like its subscriptions) in the new session
        self.dropped += s.pending()
        s.clear()
    if (not present or sx) and s.subs:
        # a new session at the broker: every subscription is owed, in flash too, until
        # acknowledged (a reset before that: the broker answers Session Present 1 then,
        # and only what is owed is made). First: the broker holds the new session from
        # now on, so a failure below (no heap, no flash) must leave them owed, else the
        # next connect finds the session present and never makes them
        td = dict(s.subs)
        td.update(self._todo)
        self._todo = td
        owe(self)
    elif pre:
        owe(self)  # the file held every subscription for this CONNECT: back to what is owed
    s.restart(present)
    s.version = self.version
    s.connected()
    self._cn[_HOPS] = 0
    self._cn[_LOST] = False  # (what is owed is in _todo: made next, or on the next connect)
    try:
        self._log("connected, session present %d", present)
    except BaseException as x:
        # the log hook's KeyboardInterrupt or SystemExit (an Exception stops in _hook): it
        # comes out of the call once the connect is made, as the callback's (client._steps,
        # aio_tasks.connect); raised here it left the reconnect half made
        c[6] = x  # (Session Present: taken already)
    if present:
        # resent with their IDs within the broker's Receive Maximum; those beyond it wait,
        # keeping their IDs (as Session.assign does), and go out as acknowledgements come
        n = 0
        for i in range(s.n):
            k = s.slot(i)
            f = s.fl[k]
            if f & _PID:
                if f & _REL or n < self._quota:
                    n += 1
                    self._send_slot(k)
                else:
                    s.fl[k] = f & ~_PID
                    s.nin -= 1
                    s.nq += 1
    return present


def offline_clean(self):
    # connect(clean_session=True)'s first attempt failed and the keeper goes on (connect
    # returns None): the clean start the application asked for is made here in the node
    # now (what the old session held is given up, and counted), and the keeper's connect
    # makes it at the broker keeping what the application publishes and subscribes to
    # from now on (2, as ctl.resume's): that belongs to the new session. The store
    # failing: the clean start stays whole for that connect (resume)
    c = self._cn
    if c[9] is True:  # (_CC, args.py)
        s = self._s
        try:
            n = s.pending()
            s.clear()
        except (OSError, MemoryError):
            return
        self.dropped += n
        c[9] = 2


def bye(self, end, aio=False):
    # DISCONNECT and close; a link keeper does not reconnect after this. end: with
    # MQTT 5 Session Expiry 0, the broker discards the session. aio: the asyncio client
    # waits for the broker's close itself (aio_rare.linger) when this returns True
    self._want = False
    self._log("disconnect", ())
    if self.sock:
        try:
            self._write(self._tx, P.disconnect(self._tx, self.version, 0, 0 if end else None))
            if aio:
                return True
            # the broker closes once it has read the DISCONNECT. Closed first, with input
            # unread or still coming, the kernel resets the connection, and the reset
            # makes the broker drop what it has not read yet: the last messages and
            # answers, and the DISCONNECT itself (it then sends the will). So what comes
            # is read and dropped until the broker closes, for a second at most
            t = time.ticks_ms()
            self._poll.modify(self.sock, 1)  # POLLIN
            while self.sock.readinto(self._rx) != 0 and \
                    time.ticks_diff(time.ticks_ms(), t) < _LINGER:
                self._poll.poll(20)
        except OSError:
            pass
    self._close()
