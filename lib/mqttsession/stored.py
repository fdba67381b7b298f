# StoredSession: one session in flash (format 2). Directory <root>/<host>/<client ID>/:
#   id     identity: protocol version, session expiry, client ID, host       (kind i)
#   subs   subscriptions                                                     (kind u)
#   owed   subscription changes not yet made at the broker (ctl.owe)        (kind o)
#   hot    hot state: last packet ID, epoch, next sequence number, the watermark W
#          (every message below it is complete), completions above W, incoming QoS 2
#          IDs, packet IDs and releases of stored messages                   (kind s)
#   aside  set-aside messages                                                (kind x)
#   t<j % 4>/<j // 4>  tail: the newest messages, one small file each (inline in
#          littlefs metadata: writing one is a metadata commit, no block erase)
#   q/<first><last><count><bytes>  a segment: _TAIL sealed tail messages in one file,
#          written once (one block), removed when all are complete
# A message record: seq, flags, packet ID, epoch, topic and payload lengths, topic,
# payload, CRC-32. Only a window of the queue (the ring's capacity) is in RAM; the rest
# is read from flash in order as the ring drains, so a backlog costs RAM for its window
# and an index of its segments only (12 bytes a segment). QoS 1 completions are written
# with the next hot-state write, at least every _LAZY of them, or by removing the
# complete segment that held them (every message below the oldest segment is complete:
# the hot-state watermark may lag behind it):
# after a power cut at most _LAZY acknowledged QoS 1 messages go out again (DUP set),
# as QoS 1 allows. QoS 2 state is written at once.
from micropython import const
from builtins import len, bytes, memoryview  # as names of this module: one lookup
import binascii
import struct
from struct import unpack_from

from .packet import err
from .session import Session
from .store import _join, _write, _rm, pack

_FORMAT = const(2)  # as store._FORMAT
_TAIL = const(32)  # messages per segment at most
_TDIRS = const(4)  # tail files spread over t0/..t3/: each littlefs metadata pair
# stays small, so rewriting a tail file compacts (erases) it rarely
_SEGB = const(3072)  # a segment is sealed early at this many bytes (one 4 KiB block)
_SEGMAX = const(65596)  # a segment's records at most: store._MAXF less its header
_RH = const(13)  # record header: <IBHHHH
_ENOSPC = const(28)
_LAZY = const(32)  # QoS 1 completions per hot-state write at most
_RS = const(17)  # a record's bytes beyond topic and payload (header 13, CRC 4)
# session.py's flags (Session.fl) and what a _save writes, folded here
_SENT = const(8)
_REL = const(16)
_DISK = const(32)
_PID = const(64)
_PIDDISK = const(128)
_HOT = const(1)
_SUBS = const(2)
_IDENT = const(4)
_TRIM = const(8)  # only: removes complete segments, writes the hot state if owed


# The queue in flash, as functions of the session so they cost no class (reading the
# backlog and sealing segments is in qseg.py, loaded when first needed; finding them at
# start, scan, in resume.py, freed after).
def _parse(b, i):
    # the record at b[i:]: (seq, flags, pid, epoch, topic, payload, its size)
    seq, f, pid, ep, nt, nm = unpack_from("<IBHHHH", b, i)
    j = i + _RH + nt + nm
    v = memoryview(b)  # topic and payload copied once, from the buffer read
    if j + 4 > len(b) or unpack_from("<I", b, j)[0] != binascii.crc32(v[i:j]):
        raise err(37)  # bad record (length or CRC)
    nt += i + _RH  # where the payload starts
    return seq, f, pid, ep, bytes(v[i + _RH : nt]), bytes(v[nt:j]), j + 4 - i


def name(s, i):
    # the file name of segment i
    c = s._sc[i]
    return "%08x%08x%02x%06x" % (s._sg[i], s._sl[i], c >> 24, c & 0xFFFFFF)


def tp(s, j):
    # the path of tail file j
    return _join(s._p, "t%d/%d" % (j % _TDIRS, j // _TDIRS))


def _slack(s, nb):
    # the flash a segment of nb bytes of records takes beyond them: its header and the
    # rest of its last block (counted in the session's bytes while the segment exists)
    return -(nb + 4) % s._st._bs + 4


def _mine(s):
    # a session a later client took over (SessionStore._own) is never written by the
    # earlier one: its writes would overwrite the other's (nor one delete() removed)
    if s._st._taken(s):
        raise err(56, 16)  # session taken over by a later client of the same client ID, or deleted


def append(s, seq, f, pid, e, t, m):
    # writes one message (e: the epoch of its packet ID) at the end of the queue in
    # flash; returns its record
    _mine(s)
    r = struct.pack("<IBHHHH", seq, f, pid, e, len(t), len(m)) + t + m
    r += struct.pack("<I", binascii.crc32(r))
    # the session's bytes after it, and after the seal it makes, if it makes one: up to
    # a block past max_bytes (an earlier seal may have gone that far, and a full queue
    # with full="drop_oldest" gives up one message for each new one)
    n = s.bytes + len(r)
    # a segment is one file, and no file the store reads is larger than _MAXF: a large
    # record behind the tail's messages seals them first and starts a segment of its
    # own (sealed with the tail's, the segment was taken for damage at the next load
    # and every message in it lost)
    big = s._tn and s._tb + len(r) > _SEGMAX
    if big:
        n += _slack(s, s._tb) + _slack(s, len(r))
    elif s._tn + 1 >= _TAIL or s._tb + len(r) >= _SEGB:
        n += _slack(s, s._tb + len(r))
    if len(r) > 65535 or n > s._st.max_bytes + s._st._bs:
        raise OSError(_ENOSPC, "session store full")  # kept here: met when full
    if s._tn == _TAIL or big:
        from .qseg import seal

        seal(s)  # an earlier seal failed (flash full): now or never; or the large one's
    j = s._tn
    _write(tp(s, j), pack(b"t", r, _FORMAT), False)
    s._tail[j] = seq
    s._tn += 1
    s._tb += len(r)
    s.bytes += len(r)
    if s._tn == _TAIL or s._tb >= _SEGB:
        from .qseg import seal

        try:
            seal(s)
        except (OSError, MemoryError):
            pass  # the message is in flash already; the next one seals
    return r


# qseg.nxt, which reads the backlog (messages in flash beyond the RAM ring): loaded when
# one is first read, kept from then on (an import per call would make garbage)
_nxt = None


class StoredSession(Session):
    # the buffer segments of the backlog are read into (qseg.read), kept while one is
    # left to read; in the class until then (no instance attribute)
    _cz = None
    _eb = None  # a file of the backlog the flash could not read, and when (qseg._eio)
    _lk = None  # the session its host's "last" file is known to name (_save)
    _sk = 8  # the room of the segment index (qseg.seal)

    def __init__(self, store, path, client_id, host, capacity):
        # its attributes: load.init (made only while load.py is loaded, by SessionStore.get;
        # a running node holds none of that code)
        from .load import init

        init(self, store, path, client_id, host, capacity)

    def _fill(self):
        # brings pending messages from flash into free ring slots, in order
        global _nxt
        while self.more > 0:
            if self.n == self.cap:
                if self.nin + self.nq == self.cap:
                    return  # full, no holes to close
                self._compact()
            if _nxt is None:
                from .qseg import nxt as _nxt
            if not _nxt(self):
                return
            self.more -= 1
            seq, f, pid, ep, t, m, _ = self._r
            k = self.head + self.n  # as slot(n)
            if k >= self.cap:
                k -= self.cap
            self.n += 1
            self.seq[k] = seq
            self.top[k] = t
            self.msg[k] = m
            f = (f & 7) | _DISK
            o = self._out.pop(seq, None) if self._out else None
            if o:
                pid = o[0]
                f |= _REL if o[1] else 0
            if not pid or (self._use[pid % len(self._use)] and self.find(pid, 255) >= 0):
                pid = 0
                f &= ~_REL
            elif o or ep == self.epoch:
                # the broker may have it: it goes out again with this ID and DUP. Queued,
                # not in flight: it may come in after the connection's resend of what
                # was in flight (connected, as the ring drains), and only what the pump
                # sends is on this connection. An ID from the hot state (o) is written
                # there again until completion (_save), one from its record is there
                f |= _SENT if o else _SENT | _PIDDISK
                if (pid - self.pid) % 65535 < 32768:
                    # given after the hot state's last ID was written (an ID in its
                    # record only): the IDs go on after it, so one the broker may hold
                    # is not given again at once should this message leave unanswered
                    self.pid = pid
            # else an ID from before the broker lost the session: kept for the resend
            self.ids[k] = pid
            if pid:
                self._use[pid % len(self._use)] += 1  # counted as in assign
            self.fl[k] = f
            self.nq += 1

    def _save(self, kind):
        _mine(self)
        p = self._p
        if kind & _IDENT:
            cid = self.client_id
            if not cid:
                return  # a null session is written once the broker assigns the ID
            if p.endswith("~null"):
                from .v5 import adopt

                adopt(self._st, self)
                p = self._p
            h = self.host.encode()
            ib = struct.pack("<BIH%dsH%ds" % (len(cid), len(h)), self.version, self.expiry,
                             len(cid), cid, len(h), h)
            if ib != self._ib:  # a wake-up that changes nothing writes nothing
                _write(_join(p, "id"), pack(b"i", ib, _FORMAT), True)
                self._ib = ib
            # the last session used for this host ("last", format 1, as 0.1.0 reads it),
            # in the host's directory: the session's parent (dirs._host_dir named it).
            # Checked when the session loads (load.get clears _lk) and after another
            # session's check (_lk: the directory of the session it names, one for every
            # store): a reconnect reads no flash for it, nor opens a file (300 bytes of
            # heap in one piece)
            if StoredSession._lk != p:
                hd = p[: p.rfind("/")]
                try:
                    b = self._st._body(hd, "last", b"l", 1)
                except OSError:
                    b = None  # the flash cannot read it (EIO): written again, as if absent
                if b is None or bytes(b) != cid:
                    _write(_join(hd, "last"), pack(b"l", cid, 1), True)
                StoredSession._lk = p
        if kind & _SUBS:
            b = b""  # (QoS, filter)...; the owed file's records are the same (ctl.owe)
            for f, q in self.subs.items():
                b += bytes((q, len(f) & 255, len(f) >> 8)) + f
            _write(_join(p, "subs"), pack(b"u", b, _FORMAT), True)
        if not kind & (_HOT | _TRIM):
            return
        # the watermark: the oldest pending message's seq
        w = self._cur if self.more else self.nseq
        for i in range(self.n):
            k = self.slot(i)
            if self.fl[k] and self.seq[k] not in self._done:
                w = self.seq[k]
                break
        # (a comprehension: on the drain path, where a loop's append calls cost more)
        d = self._done = [s for s in self._done if s >= w]
        if self._out:
            # IDs kept for messages beyond the ring that completed before they came
            # into it (nxt skips those) are void
            for x in [x for x in self._out if x < w or x in d]:
                del self._out[x]
        if kind & _TRIM:
            # complete segments go; their removal is the durable record of their
            # completions (resume.py takes the oldest segment's first seq as a watermark):
            # the hot state is written only when the completions left unrecorded (at or
            # above the first seq of the oldest segment left, and in _done) reach
            # _LAZY, or when no segment would be left to record them
            i = 0
            while i < len(self._sg) and self._sl[i] < w:
                i += 1
            if i and i < len(self._sg) and self._sg[i] <= w < self._sg[i] + _LAZY - len(d):
                self._lazy = w - self._sg[i] + len(d)
                kind = 0
            elif not i and self._lazy < _LAZY:
                return
        if kind:
            self._lazy = 0
            b = struct.pack("<HHIIB", self.pid, self.epoch, self.nseq, w, len(self.rx2))
            b += struct.pack("<%dH" % len(self.rx2), *self.rx2)
            b += bytes((len(d) & 255, len(d) >> 8)) + struct.pack("<%dI" % len(d), *d)
            for i in range(self.n):
                k = self.slot(i)
                f = self.fl[k]
                # QoS 2 packet IDs only: a QoS 1 message may go out again with another
                # ID, and the hot state stays small enough to be inline in littlefs
                if f & _REL or (f & 3 == 2 and self.ids[k] and f & _DISK and not f & _PIDDISK):
                    b += struct.pack("<IHB", self.seq[k], self.ids[k], 1 if f & _REL else 0)
            for sq, o in self._out.items():  # for messages still beyond the ring
                b += struct.pack("<IHB", sq, o[0], o[1])
            # an existing file in place: littlefs commits its new content at close, all
            # or nothing (one metadata commit instead of two for a write beside and a
            # rename); creating one commits an empty file first, so that is done beside
            _write(_join(p, "hot"), pack(b"s", b, _FORMAT), not self._hx)
            self._hx = True
        # segments whose messages are all complete go
        while self._sg and self._sl[0] < w:
            _rm(_join(p, "q", name(self, 0)))
            self.bytes -= _slack(self, self._sc[0] & 0xFFFFFF)
            # each loses its first in place (a copy of the rest, per segment, would take
            # RAM in proportion to the backlog while it drains)
            e = self._sg[:0]
            self._sc[:1] = e
            self._sg[:1] = e
            self._sl[:1] = e
            if not self._sg and self._sk > 8:
                # the last one of a backlog: the index's room goes (qseg.seal; a
                # segment at a time, as QoS 2 messages online seal them, keeps its 8)
                self._sg, self._sl, self._sc = e, e[:], e[:]
                self._sk = 8

    def _keep(self, k):
        f = self.fl[k]
        if f & _REL:
            self._release(k, f)
            return
        if f & _DISK:
            return
        # older messages of the ring not in flash yet (a publish waiting for its PUBACK
        # while its callback or another task publishes this one) go first: flash holds
        # the queue in order, each segment a range of seqs that nxt and resume trust (one
        # written later would fall inside or below a sealed segment's range: passed over).
        # Only a message in flight can be out of flash (a queued one is written at once,
        # one in flight at a link loss when its publish ends): none, no walk (a backlog
        # queued offline costs no walk of the ring per message)
        for i in range(self.n if self.nin else 0):
            j = self.slot(i)
            if j == k:
                break
            if self.fl[j] and not self.fl[j] & _DISK:
                self._keep(j)
        append(self, self.seq[k], f & 7, self.ids[k] if f & _PID else 0, self.epoch,
                    self.top[k], self.msg[k])
        if k == self.cap:
            # the spare slot (it never holds a packet ID): the message joins the backlog,
            # the first one waiting there when none was
            if not self.more:
                self._cur = self.seq[k]
            self.more += 1
            self.fl[k] = 0
            self.top[k] = self.msg[k] = None
        else:
            self.fl[k] = f | _DISK | (_PIDDISK if f & _PID else 0)

    def _release(self, k, f):
        # _keep of a PUBREC (Session.acked set _REL in f): released once that is in
        # flash. Not written: not released either (no PUBREL goes out, the broker's
        # PUBREC comes again), else a reboot would send the PUBLISH again after the
        # broker completed it
        try:
            self._save(_HOT)
        except (OSError, MemoryError):
            self.fl[k] = f & ~_REL
            raise

    def _forget(self, k):
        f = self.fl[k]
        if f & _DISK:
            n = _RS + len(self.top[k]) + len(self.msg[k])  # its record's
            # recorded first: no heap for the list's growth (MemoryError) changes nothing
            self._done.append(self.seq[k])
            self.bytes -= n
            self._lazy += 1
            if f & 3 == 2 or (self.nin + self.nq <= 1 and not self.more):
                self._rec(k, n, _HOT)
            elif self._lazy >= _LAZY or (self._sg and self.seq[k] >= self._sl[0]):
                # the oldest segment may be complete: removed, or the hot state written
                # when _LAZY completions are owed
                self._rec(k, n, _TRIM)

    def _rec(self, k, n, kind):
        # _forget's write (slot k's record: n bytes). Not written: not counted either (the
        # message stays, its answer comes again: counted at each, the session's bytes
        # would drift below what flash holds)
        z = self._lazy
        try:
            self._save(kind)
        except (OSError, MemoryError):
            if self.seq[k] in self._done:
                self._done.remove(self.seq[k])
            self.bytes += n
            self._lazy = z - 1
            raise

