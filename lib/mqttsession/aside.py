# Messages that leave the send queue without an acknowledgement, and connections the
# broker ends or breaks, loaded only when one does or the set-aside list is read:
# - the client's side (functions of the client, self): a message set aside (refused by
#   the broker, or in flight at `strikes` closes in a row); a protocol violation by the
#   broker (it ends the connection, no strike against the message in flight), a packet
#   the client does not expect, an MQTT 5 DISCONNECT, an incoming packet larger than
#   max_packet (wire.py: dropped as it arrives, acknowledged, refused); the oldest
#   queued message dropped for a new one (full="drop_oldest"); an incoming message whose
#   callback raised (answered before the exception goes on);
# - the set-aside records of a StoredSession (stored.py), in its file "aside": the
#   naside count, then records (flags, reason code, reason text, topic, payload), the
#   newest kept within a quarter of the store's max_bytes.
from micropython import const
import struct

from .packet import MQTTException, disconnect

_FORMAT = const(2)  # as store._FORMAT
_RETAIN = const(4)  # session.py's flags
_SENT = const(8)
_REL = const(16)
_PID = const(64)
_MALFORMED = const(0x81)
_PROTOCOL_ERROR = const(0x82)
_TOO_LARGE = const(0x95)
_PUBLISH = const(0x30)
_PUBACK = const(0x40)
_PUBREC = const(0x50)
_PUBREL = const(0x60)
_PINGRESP = const(0xD0)
_DISCONNECT = const(0xE0)
_ECONNRESET = const(104)


def set_aside(s, k, why):
    # slot k of session s leaves the send queue (as Session.drop) for the set-aside
    # records (topic, payload, qos, retain, reason): never sent again, visible through
    # client.aside(). A RAM session keeps its newest 8 in _xa, a stored one its file
    t, m = s.load(k)
    f = s.fl[k]
    r = (t, m, f & 3, bool(f & _RETAIN), why)
    if s._p is None:
        x = getattr(s, "_xa", None)
        if x is None:
            x = s._xa = []
        x.append(r)
        if len(x) > 8:
            x.pop(0)
    else:
        add(s, r)
    s.naside += 1
    s.drop(k)
    return t, m


def aside(self, k, why):
    # the client's side of it: logged, and on_aside called
    t, m = set_aside(self._s, k, why)
    self._log("set aside %r: %r", (t, why))
    if self.on_aside:
        try:
            self.on_aside(t, m, why)
        except Exception as e:
            # the asyncio client's reader (or its close) runs it: reported as a handler's
            # (on_error), else it ended the reader for good. The blocking client's goes
            # out of the call, as its callback's
            r = getattr(self, "_report", None)
            if r is None:
                raise
            r(e)


def struck(self):
    # the link went down with messages in flight: the oldest is blamed (a broker takes
    # them in order); `strikes` outages in a row with it in flight set it aside
    s = self._s
    for i in range(s.n):
        k = s.slot(i)
        f = s.fl[k]
        if f & _SENT and not f & _REL:
            if s.seq[k] != self._cn[10]:  # the seq blamed last
                self._cn[10] = s.seq[k]
                self._sn = 0
            self._sn += 1
            if self._sn >= self.strikes:
                self._sn = 0
                try:
                    aside(self, k, "in flight at %d closes in a row%s" % (
                        self.strikes, "; the broker may not support QoS 2" if f & 3 == 2 else ""))
                except MemoryError:
                    # no heap for its record (it stays in the queue) or on_aside's own:
                    # the link's failure goes on (raised, it took that failure's place)
                    pass
                except BaseException as x:
                    if self.store and x is self.store._err:
                        # the store could not write its record (it stays in the queue):
                        # as above (handled as on_aside's, the loss was counted twice,
                        # the second time as ECONNRESET: the store's error taken)
                        return
                    # the blocking client's on_aside (the asyncio client's goes to
                    # on_error): it comes out of the call in place of the link's OSError
                    # (this runs in _close), so the loss is handled here as that one's
                    # would have been (client._lost: link.failed, the backoff, the log)
                    if not hasattr(self, "_report"):
                        self._lost(True)
                    raise
            return


def fail(self, e):
    # a protocol violation by the broker ends the connection (MQTT 5 says why)
    self._log("protocol error: %r", (e,))
    if self.sock and self.version == 5:
        c = e.args[0] if e and e.args and type(e.args[0]) is int else 0
        try:
            self._write(self._ab, disconnect(self._ab, 5, c if c >= 0x80 else _MALFORMED, None))
        except OSError:
            pass
    self._cn[11] = e  # the broker's fault, not the message's: no strike (see struck)
    self._close()
    return e


def broke(self):
    # wire._recv caught the broker's protocol violation (MQTTException.last, see
    # packet.py): end the connection and say why. With a keeper, a protocol error or
    # DISCONNECT after the connect is a link failure like any other (link.last_error
    # holds it; the keeper reconnects): OSError, else the MQTTException goes on
    link = self.link and not self._cs
    fail(self, MQTTException.last)
    if link:
        raise OSError(_ECONNRESET)


def other(self, first):
    # a packet ctl.on_other does not take: a DISCONNECT from an MQTT 5 broker, or a
    # protocol error (the connection ends: see fail)
    t = first & 0xF0
    if first == _DISCONNECT and self.version == 5:
        from . import v5

        v5.disconnected(self)  # raises
    # CONNACK, the acknowledgements, PINGRESP, DISCONNECT, AUTH: flags or length wrong
    if t in b"\x20\x40\x50\x60\x70\x90\xb0\xd0\xe0\xf0" and (
            first & 15 != (2 if t == _PUBREL else 0) or t == _PINGRESP):
        raise MQTTException(_MALFORMED, "bad flags or length 0x%02x" % first)
    raise MQTTException(_PROTOCOL_ERROR, "unexpected packet 0x%02x" % first)


def oversize(self, n):
    # a packet of n bytes that _rx cannot hold goes by as it arrives (discard). A QoS 1/2
    # PUBLISH is acknowledged: its packet ID follows the topic, which may be longer than
    # _rx, so discard picks the ID's two bytes out as they pass. Until then no PUBLISH is
    # parsed, and _pf (publish fields) holds the packet's: [0] _skip's value when the
    # ID's first byte is next (0: no ID to find), [1] the ID with the QoS bits above it,
    # [2] n. Found without allocating: _rx may be tiny and the topic any length
    if self._cs:
        raise MQTTException(_TOO_LARGE, "CONNACK exceeds max_packet")
    rx = self._rx
    r0 = self._r0
    h = r0 + self._hl
    if self._r1 < h + 2:
        return 0  # the topic's length is still to come
    first = rx[r0]
    pf = self._pf
    pf[0] = pf[1] = 0
    pf[2] = n
    if first & 0xF0 == _PUBLISH and 0 < first & 6 < 6:
        j = self._hl + 2 + (rx[h] << 8 | rx[h + 1])  # the packet ID's offset
        if j + 2 <= n:  # else malformed: refused, not acknowledged
            pf[0] = n - j
            pf[1] = (first & 6) << 15
    self._skip = n
    discard(self)  # what has arrived; more is to come (n > len(rx))
    return 0


def discard(self):
    # drops buffered bytes of an oversized packet, keeping its packet ID as it passes;
    # once it has all gone, acknowledges it (the broker would redeliver it forever) and
    # refuses it. True: a QoS 2 resend of one refused before, acknowledged again only
    rx = self._rx
    r0 = self._r0
    k = min(self._skip, self._r1 - r0)
    pf = self._pf
    if pf[0]:
        i = self._skip - pf[0]  # the ID's first byte is at r0 + i
        if 0 <= i < k:
            pf[1] |= rx[r0 + i] << 8
        if -1 <= i < k - 1:
            pf[1] |= rx[r0 + i + 1]
    self._r0 = r0 + k
    self._skip -= k
    if self._skip:
        return False
    self._p0 = self._rt
    pid = pf[1] & 0xFFFF
    if pid:
        if pf[1] >> 17:
            # QoS 2: recorded (in flash with a store) before PUBREC, as a delivery is: a
            # resend, PUBREC lost, is not refused twice
            new = self._s.rx2_add(pid)
            self._ack(_PUBREC, pid)
            if not new:
                return True
        else:
            self._ack(_PUBACK, pid)
    self._cn[12] = True  # oversized: for _recv's handler, which resets it
    # packets behind it in _rx are handled at the next _recv, with no wait for input
    self._hold = self._r0 != self._r1
    raise MQTTException(_TOO_LARGE, "incoming packet of %d bytes exceeds max_packet" % pf[2])


def raised(self):
    # the blocking client's callback raised (client._deliver): its message is answered,
    # and with a store the message a publish() waiting meanwhile accepted (in flight, not
    # in flash yet) is written now: publish raises the callback's exception, its message
    # accepted all the same (a power cut after that lost it). A failed write drops that
    # message and raises the store's error (as Session.hold)
    self._cbr = True  # (pubpath._room: the exception is the callback's)
    if self.link:
        # the broker delivered: the outage that an OSError or MemoryError from the
        # callback makes is the node's own, and the keeper's backoff starts from min_ms
        # (grown at each, a callback that raised at every message stopped the flow)
        self.link.tries = 0
    if self.sock:  # (not after a disconnect() in it: answered there)
        answer(self)
    s = self._s
    if s._p is not None:
        for k in s.live():
            s.hold(k, s.seq[k])


def answer(self):
    # the blocking client's callback raised (client._deliver): its message is answered
    # (PUBACK, PUBREC) before the exception goes on, as _on_publish would have after it
    q = self._rx[self._i - self._hl] & 6  # the QoS, from the packet's first byte
    if q:
        self._ack(_PUBREC if q == 4 else _PUBACK, self._pf[1])


def drop_oldest(self, n):
    # queue-full policy "drop_oldest": the oldest message not yet on the wire goes; none
    # for a message whose record (n bytes) a store's max_bytes cannot hold at all
    s = self._s
    if s._p is not None and (n > s._st.max_bytes or n > 65535):
        return False
    for k in s.live():
        f = s.fl[k]
        # no packet ID: the broker never saw it. A QoS 2 one sent before a reboot (its
        # ID kept in flash, _SENT, or its PUBREC come, _REL) is in flight: the broker
        # holds it, and given up here, its PUBREL would never go out
        if not f & _PID and not (f & 3 == 2 and f & (_SENT | _REL)):
            p = s.pending()
            try:
                s.drop(k)
            finally:
                if s.pending() < p:
                    self.dropped += 1  # given up, even where a write after failed
            return True
    if s.more > 0 and _drop_flash(s):  # the ring in flight: the oldest waiting in flash
        self.dropped += 1
        return True
    return False


def _drop_flash(s):
    # gives up the oldest message waiting in flash beyond the ring, as drop() a slot:
    # its completion written, or nothing changed
    from .qseg import nxt

    c = s._cur
    q = -1
    for i in range(s.more):  # (s.more > 0)
        if not nxt(s):
            break
        if not (s._r[0] in s._out or (s._r[1] & 3 == 2 and s._r[2] and s._r[3] == s.epoch)):
            q = s._r[0]
            break
        # a QoS 2 message in flight before the reboot (its packet ID in flash): the
        # broker may hold it (as in drop_oldest's ring); the next one waiting may go
    if q < 0 or i:
        # passed over one in flight (or none to give up): the read position back where it
        # was, the ring reads on from there (and nxt passes over the one given up,
        # complete)
        s._cur = c
        s._cb = None  # read its segment again from the start
        if q < 0:
            return False
    n = s._r[6]
    try:
        s._done.append(q)  # first: no heap for the list to grow changes nothing
        try:
            s.more -= 1
            s.bytes -= n
            s._save(1)  # session._HOT
        except (OSError, MemoryError):
            if q in s._done:  # (_save's first step keeps only those above the watermark)
                s._done.remove(q)
            s.bytes += n
            s.more += 1
            raise
    except (OSError, MemoryError):
        s._cur = c
        s._cb = None  # read its segment again from the start
        raise
    return True


# --- the set-aside records of a StoredSession (records: of any session) ---


def add(s, r):
    from .store import _join, _write, pack
    from .stored import _mine

    _mine(s)  # a session a later client took over: its aside file is that one's
    t, m, q, ret, why = r
    w = why.encode() if isinstance(why, str) else b""
    c = 0 if w or not isinstance(why, int) else why
    # within a quarter of max_bytes, and below what the store reads of any file
    # (_MAXF, 65600: a larger file is damage, and every record in it was lost)
    room = min(max(512, s._st.max_bytes // 4), 65472)
    cut = room - 11 - len(w) - len(t)
    if len(m) > cut:
        m = m[: max(0, cut)]  # kept cut: the reason and topic still tell what it was
    # alone, a record is kept up to what the store reads of a file (_MAXF less the
    # file's 12 bytes and the record's 11): past that (a long topic, at most 65518 bytes
    # in a stored message) its reason is cut too, at a character's start
    cut = 65577 - len(t) - len(m)
    if len(w) > cut:
        while cut > 0 and w[cut] & 0xC0 == 0x80:
            cut -= 1
        w = w[: max(0, cut)]
    rec = struct.pack("<BiHHH", q | (4 if ret else 0) | (8 if w else 0), c, len(w),
                      len(t), len(m)) + w + t + m
    b = s._st._body(s._p, "aside", b"x", _FORMAT)
    b = (bytes(b[4:]) if b is not None else b"") + rec
    while len(b) > room and len(b) > len(rec):
        b = b[11 + sum(struct.unpack("<HHH", b[5:11])) :]  # the oldest goes
    _write(_join(s._p, "aside"), pack(b"x", struct.pack("<I", s.naside + 1) + b, _FORMAT),
           True)


def records(s):
    # the set-aside records kept, oldest first
    if s._p is None:
        return list(getattr(s, "_xa", ()))
    b = s._st._body(s._p, "aside", b"x", _FORMAT)  # naside, then the records
    b = bytes(b[4:]) if b is not None else b""
    r = []
    i = 0
    while i + 11 <= len(b):
        f, c, nw, nt, nm = struct.unpack("<BiHHH", b[i : i + 11])
        i += 11
        w = b[i : i + nw] if f & 8 else c
        if f & 8:
            try:
                w = w.decode()
            except UnicodeError:
                pass  # not UTF-8 (this library never wrote it): kept as bytes
        r.append((b[i + nw : i + nw + nt], b[i + nw + nt : i + nw + nt + nm], f & 3,
                  bool(f & 4), w))
        i += nw + nt + nm
    return r
