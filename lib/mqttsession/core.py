# The protocol core shared by the blocking and asyncio front ends: the session on the
# wire (publishing, acknowledging, subscribing, resuming) over wire.Wire, which holds the
# socket, the connect steps and the receive and write paths (its header says how a front
# end drives them).
from micropython import const
# builtins the publish and receive path calls, as names of this module: a builtin is
# looked up in the module's dictionary first (a miss, probed to an empty slot) and then
# among the builtins; imported, it is one hit
from builtins import len, type, bytes, int

from . import packet as P
from .wire import Wire, _write

# packet types and reason codes, as local constants so they fold at compile time
_PUBLISH = const(0x30)
_PUBACK = const(0x40)
_PUBREC = const(0x50)
_PUBREL = const(0x60)
_PUBCOMP = const(0x70)
_PINGRESP = const(0xD0)
_CONNACK = const(0x20)
_MALFORMED = const(0x81)
_TOO_LARGE = const(0x95)
_ETIMEDOUT = const(110)
# Session.fl flags (session.py), as local constants: an imported name is a dictionary
# lookup at every use
_SENT = const(8)
_REL = const(16)
_PID = const(64)
_RS = const(17)  # a stored record's bytes beyond topic and payload (as stored._RS)

_mods = {}  # ctl.py, v5.py, aside.py once loaded (Core._mod)
# the pump's batch: the bytes of its PUBLISHes waiting in _tx, written together (-1: no
# batch, _put writes at once). A global, not an attribute: one more name in the client's
# attribute table makes every lookup that misses there (each method call) probe longer
_tw = -1

# --- the publish path's module functions (see wire.py, the hot path) ---


# Two messages in hand: _t/_m is the one the caller is publishing; _pt/_pm/_rem the one
# going on the wire now (the caller's, or a queued one that a resend loads), so a resend
# never clobbers the caller's.
def _check(c, topic, msg, qos):
    # validates the caller's message (as publish() got it: _topic, and encode() for a
    # str payload, make bytes of what is not) and takes it in hand. A bytes topic object
    # that passed once passes again (it cannot change): a repeated topic is checked once
    if topic is not c._tv:
        topic = c._tb if topic is c._ts else c._topic(topic)  # _tb: _ts encoded once
    if type(msg) is not bytes:
        if isinstance(msg, str):
            msg = msg.encode()
        elif isinstance(msg, memoryview):
            # items wider than a byte (array('h') samples): len() counts items, and the
            # PUBLISH was sized and written by it (cut, or a ValueError from the slice
            # assignment): their bytes instead. (A byte memoryview goes on as it is)
            if len(msg) and len(bytes(msg[:1])) != 1:
                msg = bytes(msg)
        elif not (isinstance(msg, bytes) or isinstance(msg, bytearray)):
            raise P.err(15)  # msg must be bytes, bytearray, memoryview or str
    if topic is not c._tv:
        P.check_topic(topic)
        if type(topic) is bytes:
            c._tv = topic
    if type(qos) is not int or qos > 2 or qos < 0:
        P.check_qos(qos)
    c._t = topic
    c._m = msg
    # its PUBLISH: the exact size only when the largest it can be exceeds the limit
    if len(topic) + len(msg) + 10 > c._maxout:
        n = 2 + len(topic) + (2 if qos else 0) + (c.version == 5) + len(msg)  # as _hand
        if n + 2 + (n > 127) + (n > 16383) + (n > 2097151) > c._maxout:  # + fixed header
            raise P.err(16, _TOO_LARGE)  # message exceeds the broker's maximum packet size


def _put(c, i, pid):
    # writes the PUBLISH in hand (_pt, _pm, _rem) with first byte i and packet ID pid
    # (0: none), header and payload in one write when they fit. In the pump's batch
    # (_tw >= 0) it goes behind the batch's earlier PUBLISHes in tx instead, and the pump
    # writes them all at once. i is the first byte, then the remaining length, then the
    # write position (a frame of few words)
    global _tw
    tx = c._tx
    t = c._pt
    n = len(t)
    if n + 10 > len(tx):
        tx = c._tx = bytearray(n + 64)  # a topic longer than tx_size: once
    if _tw > 0:
        tx[_tw] = i  # behind the batch (the pump made room for the whole packet)
        i = c._rem
        if i < 0x80:
            tx[_tw + 1] = i
            i = _tw + 2
        else:
            i = P.put_varint(tx, _tw + 1, i)
        tx[i] = n >> 8
        tx[i + 1] = n & 0xFF
        i += 2
    else:
        tx[0] = i
        i = c._rem
        if i < 0x80:
            tx[1] = i  # the usual case, at fixed positions
            tx[2] = n >> 8
            tx[3] = n & 0xFF
            i = 4
        else:
            i = P.put_varint(tx, 1, i)
            tx[i] = n >> 8
            tx[i + 1] = n & 0xFF
            i += 2
    tx[i : i + n] = t
    i += n
    if pid:
        tx[i] = pid >> 8
        tx[i + 1] = pid & 0xFF
        i += 2
    if c.version == 5:
        tx[i] = 0  # no properties: full topic names, no alias
        i += 1
    t = c._pm
    n = i + len(t)
    if n <= len(tx):
        tx[i:n] = t
        if _tw < 0:
            _write(c, tx, n)
        else:
            _tw = n
    else:
        _write(c, tx, i)  # (never behind a batch: the pump wrote it first)
        _write(c, t, len(t))


class Core(Wire):
    _rs = None  # the asyncio client's: packet ID -> filter of SUBSCRIBEs not waited for
    _q = None  # the asyncio client's messages() queue (see _on_publish)
    _mk = None  # the blocking client's subscriptions being made (subs.make): (list, outer)

    def __init__(self, *a, **kw):
        # MQTTClient(client_id, server, port=0, ...): the parameters, their checks and
        # the attributes they set are args.init's. That module is out of the heap again
        # (see there) before the store loads the session. A collection before each load:
        # code loaded above garbage splits the free heap too finely for the attribute
        # tables that grow next (the node's smallest heap: 82 KB without, 74 KB with)
        import gc

        gc.collect()
        from . import args

        cid, cap = args.init(self, *a, **kw)
        del args
        s = self._s
        if s is None:
            # last: the session loads once the instance has all its attributes
            gc.collect()
            s = self._s = self.store.get(self.server, cid, capacity=cap)
            if s._owed:  # changes made offline before a reset: made on the next connect
                self._todo = s._owed
        # the buffers (args.init left their sizes) once the session is loaded: made before,
        # they would take 1.3 KB more through the load's peak, the node's largest
        self._rx = bytearray(self._rx)
        self._tx = bytearray(self._tx)
        if len(s.client_id) > 65535:
            raise P.err(17)  # client_id longer than 65535 bytes

    def __getattr__(self, name):
        # client_id: the ID in use (a null session's once the broker assigned it). Not a
        # property: a property on the class makes MicroPython look the whole class chain
        # up on every attribute store (measured: 20x slower stores on the publish path)
        if name == "client_id":
            c = self._s.client_id
            return c.decode() if isinstance(c, bytes) else c
        raise AttributeError(name)

    def _topic(self, t):
        # topics as bytes; a repeated str topic object is encoded once (no allocation)
        if type(t) is bytes:
            return t
        if isinstance(t, str):
            if t is not self._ts:
                self._tb = t.encode()
                self._ts = t
            return self._tb
        if isinstance(t, bytes) or isinstance(t, bytearray):
            return t
        raise P.err(18)  # topic must be str or bytes

    def set_callback(self, f, raw=False):
        # f(topic, msg) with both as bytes, as umqtt; raw=True: f(topic, buf, start, end)
        # with the payload in buf[start:end], valid during the call, and topic a bytes
        # object reused for a repeated topic: receiving then allocates nothing
        if f is not None and not callable(f):
            raise P.err(46)  # set_callback(f): f must be callable or None
        self.cb = f
        self._raw = raw

    def set_last_will(self, topic, msg, retain=False, qos=0):
        from . import args  # run once: loaded and freed again (see args.py)

        args.will(self, topic, msg, retain, qos)

    def _close(self):
        # Wire's, and a batch the pump was making (an exception ended it) goes with the
        # link
        global _tw
        _tw = -1
        Wire._close(self)

    def _mod(self, name):
        # the module mqttsession.<name> of rarer work, loaded on first use and kept in
        # _mods (an import at every call would make 32 bytes of garbage each time,
        # measured, and _mod("v5") runs per message with a broker's MQTT 5 limits): "ctl"
        # (the connect's and subscribe's work, each function taking the client), "v5"
        # (MQTT 5's properties and limits, a PUBACK for QoS 2), "aside" (the paths a
        # healthy link never takes: messages set aside, a broker's protocol violations
        # and oversized packets)
        m = _mods.get(name)
        if m is None:
            m = _mods[name] = __import__("mqttsession." + name, None, None, (name,))
        return m

    def _ack(self, first, pid):
        # PUBACK, PUBREC, PUBREL (first 0x62) or PUBCOMP: 4 bytes, reason Success implied
        b = self._ab
        b[0] = first
        b[1] = 2
        b[2] = pid >> 8
        b[3] = pid & 0xFF
        self._write(b, 4)

    def _hand(self, qos):
        # the caller's message goes on the wire next (_put)
        self._pt = self._t
        self._pm = self._m
        # its remaining length: topic length field and topic, packet ID, MQTT 5's empty
        # property block, payload
        self._rem = 2 + len(self._pt) + (2 if qos else 0) + (self.version == 5) + len(self._pm)

    def _send_slot(self, k):
        # (re)send ring slot k: PUBLISH with DUP when resent (_put), or PUBREL once
        # released
        s = self._s
        f = s.fl[k]
        if not f:
            return  # gone to the store's backlog (see _queue)
        if not f & _PID:
            s.assign(k)
            f = s.fl[k]
        if (f & 3 > self._maxq & 3 or f & self._maxq & 4) and not f & _REL:
            f = self._mod("v5").cap(self, k)
        s.fl[k] = f | _SENT
        if f & _REL:
            self._ack(0x62, s.ids[k])
            return
        t = s.top[k]
        if t is None:
            t, self._pm = s.load(k)
        else:
            self._pm = s.msg[k]
        self._pt = t
        # remaining length (a message capped to the broker's Maximum QoS 0 has no ID)
        n = 2 + len(t) + (2 if f & 3 else 0) + (self.version == 5) + len(self._pm)
        self._rem = n
        if n + 2 + (n > 127) + (n > 16383) + (n > 2097151) > self._maxout:  # as _check
            # stored under a broker that allowed it; this one never will: give it up
            if f & 3 == 2 and f & _SENT:
                # QoS 2 on the wire before: the broker may hold its packet ID (freed,
                # the ID would go to a later message, taken as this duplicate and
                # dropped). Released instead: never sent again, its ID free at PUBCOMP
                s.acked(s.ids[k], True)
                self.dropped += 1
                self._ack(0x62, s.ids[k])
                return
            self.dropped += 1
            s.drop(k)
            return
        # first byte: QoS (flags bits 0-1, to bits 1-2), retain (bit 2, to bit 0), sent
        # before (bit 3: DUP, also bit 3)
        if f & 3:
            _put(self, _PUBLISH | f & 8 | (f & 3) << 1 | f >> 2 & 1, s.ids[k])
        else:
            # capped to the broker's Maximum QoS 0: never DUP ([MQTT-3.3.1-2]); sent is done
            _put(self, _PUBLISH | f >> 2 & 1, 0)
            s.acked(s.ids[k], False)

    def _queue(self, qos, retain, online):
        # takes the message in hand into the session; returns its slot. QoS 2 gets its
        # packet ID when online, and with a store a QoS 2 or offline message is in flash
        # before this returns (so a resend after a reboot carries the ID the broker knows).
        # online None: offline. Where a store's queue goes on in flash beyond the ring,
        # the message joins that backlog at once, as behind a full ring (kept in the ring,
        # an outage's first messages held the application's objects wherever each publish
        # made them, among its flash write's garbage: a 104 KiB heap was left in pieces
        # under 1.5 KB by the first seal, and a long backlog's index found no room)
        s = self._s
        # room for its record in a store's flash, where it goes now (offline, QoS 2, behind
        # a backlog) or when publish returns unacknowledged: "drop_oldest" gives up as
        # many of the oldest as it needs room for
        n = _RS + len(self._t) + len(self._m)
        while s.full(n):
            if self.full != "drop_oldest" or not self._mod("aside").drop_oldest(self, n):
                if s.pending() < s.limit:  # the store's max_bytes (stored.append's)
                    raise OSError(28, "session store full")  # kept here: met offline
                raise OSError(105, "session queue full")
        k = s.add(self._t, self._m, qos, retain, online)
        if k == s.cap:
            # behind a backlog in flash (a store's ring is a window): it joins the backlog
            # now and goes out in order as the ring drains; _send_slot(k) does nothing
            self._durable(k, False)
        elif not online or qos == 2:
            self._durable(k, online)
        return k

    def _durable(self, k, online):
        s = self._s
        try:
            if online:
                s.assign(k)
            s._keep(k)
        except (OSError, MemoryError):  # (no heap for its record: as no flash)
            s.pop_tail()  # not accepted: the session stays as it was
            raise

    def _pump(self):
        # send queued messages while the in-flight window has room, in order. The walk
        # ends once the window is full: usually just past the messages in flight, which
        # lead the ring
        s = self._s
        if s.more and s.nin + s.nq < s.cap:
            s._fill()  # again: a MemoryError may have cut Session.acked's short
        if not s.nq or self.sock is None:
            return
        fl = s.fl
        if s.nq == 1:
            # one message waiting: when it is the newest, no walk (a backlog draining
            # from flash adds one at the tail per acknowledgement)
            k = s.head + s.n - 1
            if k >= s.cap:
                k -= s.cap
            if fl[k] and not fl[k] & _PID:
                if s.nin < self._quota:
                    self._send_slot(k)
                return
        # several to send: one batch, written at once (_put; _close ends one that an
        # exception left)
        global _tw
        _tw = 0
        k = s.head
        for _ in range(s.n):
            if s.nin >= self._quota:
                break
            if fl[k] and not fl[k] & _PID:
                if _tw and _tw + len(s.top[k]) + len(s.msg[k]) + 10 > len(self._tx):
                    _write(self, self._tx, _tw)  # the batch so far: this one does not fit
                    _tw = 0
                self._send_slot(k)
            k += 1
            if k == s.cap:
                k = 0
        k = _tw
        _tw = -1
        if k > 0:
            _write(self, self._tx, k)

    def _handle(self, first, i):
        # one packet, its body in _rx[i:_n] (in _i for the handlers); returns its type
        if self._cs:
            self._i = i
            self._cn[6] = self._mod("ctl").connack(self, first)  # Session Present
            self._cs = 0
            return _CONNACK
        if first == _PUBACK and self._n == i + 2:
            # the common acknowledgement, handled here in full (as _on_ack)
            pid = self._rx[i] << 8 | self._rx[i + 1]
            if not pid:
                raise P.err(6, _MALFORMED)  # packet ID 0
            s = self._s
            if s.acked(pid, False) < 0:
                self._mod("v5").puback2(self, pid)
            # the queue's next messages go out once every packet that arrived with this
            # one is handled (wire._recv): together, in one write
            self._sn = 0  # as _healthy
            if self.link is not None:
                self.link.tries = 0
            return _PUBACK
        self._i = i
        t = first & 0xF0
        if t == _PUBLISH:
            _on_publish(self, first)
        elif first == _PUBACK or first == _PUBREC or first == _PUBCOMP:
            _on_ack(self, t)
        elif first == _PINGRESP and self._n == i:
            self._ping = 0
            self._healthy()
        elif first == 0x62:
            _on_ack(self, t)
        else:
            self._mod("ctl").on_other(self, first)
        return t

    def _healthy(self):
        # an acknowledgement: the broker takes messages, the connection works
        self._sn = 0
        if self.link is not None:
            self.link.tries = 0  # the keeper's backoff starts from min_ms again

    def aside(self):
        # the messages set aside (newest kept): (topic, msg, qos, retain, reason)
        return self._mod("aside").records(self._s)

    def pending(self):
        # QoS 1/2 messages accepted and not yet acknowledged (queued or in flight)
        return self._s.pending()

    def unsubscribe(self, topic):
        return self.subscribe(topic, ...)  # (the asyncio client's: a coroutine)

    def _copy(self):
        # the callback's copies of topic and payload (not for a raw one: _on_publish),
        # made before the message is recorded or answered: with no heap for them it is
        # neither, and the link goes (OSError ENOBUFS): the broker sends it again
        try:
            pf = self._pf
            rx = memoryview(self._rx)  # (one copy each, not a slice and its copy)
            return bytes(rx[self._i + 2 : pf[0]]), bytes(rx[pf[2] : self._n])
        except MemoryError:
            e = OSError(105)
            self._cn[11] = e  # the node's own shortage: no strike (aside.struck)
            raise e

    def _deliver(self, m):
        # m: the copies (_copy) for a callback that is not raw
        if self.cb is not None:
            if self._raw:  # (what it returns: for the asyncio client's check)
                return self.cb(self._intern(self._pf[0] - self._i - 2), self._rx, self._pf[2],
                               self._n)
            else:
                self.cb(m[0], m[1])

    def _intern(self, n):
        # the incoming topic (n bytes after the body's length field) as a bytes object,
        # reusing a recent equal one (apart from _deliver: both frames stay small)
        for j in range(8):
            t = self._topics[j]
            if len(t) == n:
                i = 0
                while i < n and t[i] == self._rx[self._i + 2 + i]:
                    i += 1
                if i == n:
                    return t
        t = bytes(self._rx[self._i + 2 : self._i + 2 + n])
        j = self._topics  # the oldest goes (a list of 8 keeps its block: no garbage)
        j.pop(0)
        j.append(t)
        return t


# --- the receive path's handlers of PUBLISH and the acknowledgements (Core._handle
# calls them; module functions: a method call would first miss in the instance's
# attribute table). Malformed packets raise MQTTException here; the front end ends the
# connection (wire._recv) for all but a refused oversized packet. ---
def _on_publish(c, first):
    if first & 6 == 6:
        raise P.err(19, _MALFORMED)  # PUBLISH QoS 3
    pf = c._pf
    P.publish_fields(c._rx, c._n, first, pf, c._i)
    if pf[3] and c._rx[pf[0] + (2 if first & 6 else 0)]:
        c._mod("v5").check(c._rx, pf[0] + (2 if first & 6 else 0), pf[2], _PUBLISH)
    if first & 6 and c._q is not None and c._later(first):
        return  # the asyncio client's (aio_held.py): answered once the application has it
    # (a blocking callback may have closed the link: disconnect() in it answered its
    # message, a link lost under its publish leaves it to the broker's resend)
    m = c.cb is not None and not c._raw and c._copy()  # (no heap: OSError, see _copy)
    if first & 4:
        # QoS 2: recorded (in flash with a store) before delivery and PUBREC
        if c._s.rx2_add(pf[1], first & 8):
            c._deliver(m)
        if c.sock:
            c._ack(_PUBREC, pf[1])
    else:
        c._deliver(m)
        if first & 2 and c.sock:
            c._ack(_PUBACK, pf[1])

def _on_ack(c, t):
    r = P.ack_fields(c._rx, c._n, c.version, c._i)
    if c._n > c._i + 3:
        c._mod("v5").check(c._rx, c._i + 3, c._n, t)
    if t == _PUBREL:
        c._s.rx2_del(r & 0xFFFF)
        c._ack(_PUBCOMP, r & 0xFFFF)
    elif t == _PUBREC and r >> 16 < 0x80:
        k = c._s.acked(r & 0xFFFF, True)
        if k >= 0:
            c._send_slot(k)  # PUBREL
    elif r >> 16 >= 0x80 and t != _PUBCOMP:
        # MQTT 5: the broker refused the message; it never will take it: set aside
        k = c._s.find(r & 0xFFFF)
        if k >= 0:
            c._mod("aside").aside(c, k, r >> 16)
        return  # (the queue's next messages: see wire._recv)
    else:
        # PUBACK or PUBCOMP: it ends here (a PUBACK for QoS 2: see v5.puback2)
        if c._s.acked(r & 0xFFFF, False) < 0 and t == _PUBACK:
            c._mod("v5").puback2(c, r & 0xFFFF)
    c._healthy()
