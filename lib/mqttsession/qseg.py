# The backlog of the queue in flash (see stored.py): the messages waiting beyond the RAM
# ring, read in order as it drains (nxt, from segments one record at a time and from
# tail files), and sealing the tail into a new segment. Only a queue longer than the ring
# or than stored._TAIL needs them, so they load on first use (a node whose queue fits in
# RAM never loads them).
from micropython import const
from array import array
from time import ticks_diff, ticks_ms

from .packet import err
from .store import _join, _read, _rm
from .stored import _parse, _slack, name, tp

_FORMAT = const(2)  # as store._FORMAT
_MAXF = const(65600)  # as store._MAXF
_RH = const(13)  # as stored._RH
_TAIL = const(32)  # as stored._TAIL
_TDIRS = const(4)  # as stored._TDIRS
_NONE = const(0xFFFFFFFF)
_EIO = const(5)
# a segment file starts with b"MQg" and the store's format (2, as store._FORMAT)


def _eio(s, p, e):
    # True when e is the flash's read error (the driver's EIO, not damage) on file p of
    # session s: the file is kept, and the drain waits for it (nothing behind it passed
    # over: the watermark stays below it), reading it again a second later at the
    # soonest; reported once. The file and when: s._eb, s._et. Any other error is
    # damage (False)
    if not isinstance(e, OSError) or e.errno != _EIO:
        return False
    if p != s._eb:
        n = p[len(s._p) + 1 :]
        s._st._report(s._p, n, e, 54)  # mqttsession: store: %s - kept, read again later
    s._eb = p
    s._et = ticks_ms()
    return True


def _win(s, p, o, need):
    # bytes o.. of segment file p into the read buffer (_cz), as many as it holds: _cb,
    # from offset _cw of the file's _cn bytes (its size as read, not as its name says:
    # damage to a name asks for no buffer of its size). At a file's first window, one
    # too small for them is replaced by one that holds them all if the heap has room,
    # the old one kept until then: in a heap with no piece that large the file is read
    # in windows of the old one (rather than the drain meeting MemoryError at every
    # reconnect), or of 128 bytes if there is none yet (a load). Later windows try no
    # larger one (each failed allocation costs a collection) unless the record at o
    # needs more bytes than the buffer holds
    with open(p, "rb") as f:
        n = f.seek(0, 2)
        if n > _MAXF:
            raise err(33, _MAXF)  # larger than %d bytes: left alone
        z = n - o
        if s._cz is None or len(s._cz) < need or not o and len(s._cz) < z:
            try:
                s._cz = bytearray(max(z, 32))  # (a header and a record's at least)
            except MemoryError:
                if s._cz is None or len(s._cz) < need:
                    s._cz = bytearray(max(need, 128))
        f.seek(o)
        b = memoryview(s._cz)[:z]
        if f.readinto(b) != len(b):
            raise ValueError("truncated")
    s._cb = b
    s._cw = o
    s._cn = n


def read(s, i):
    # reads the next record of segment i (in _cb while pulling from it, _co the next
    # one's offset there) into _r (seq, flags, pid, epoch, topic, payload, size); False
    # at its end or on damage (reported, the rest of it skipped); None when the flash
    # cannot read it now (_eio)
    z = (s._sc[i] & 0xFFFFFF) + 4  # its size, as its name says
    o = 0 if s._cb is None or s._ci != s._sg[i] else -1  # a window to read from o
    k = 0
    while True:
        if o >= 0:
            n = name(s, i)
            p = _join(s._p, "q", n)
            try:
                _win(s, p, o, k)
                if not o and s._cb[:4] != b"MQg\x02":
                    raise err(53)  # not a segment
            except (OSError, ValueError) as e:
                if _eio(s, p, e):
                    return None
                s._st._report(s._p, "q/" + n, e)
                if o:
                    s._co = s._cn - s._cw  # the rest of it skipped
                return False
            if o:
                s._co = 0
            else:
                if s._cn != z and s._ci != s._sg[i]:
                    # shorter (or longer) than its name says: damage, reported (once:
                    # not when the load read it already); the records it holds are read
                    e = "%d bytes, its name says %d" % (s._cn, z)
                    s._st._report(s._p, "q/" + n, e, 55)  # mqttsession: store: %s - read as it is
                s._ci = s._sg[i]
                s._co = 4
        b = s._cb
        j = s._co
        if s._cw + j >= s._cn:
            return False
        # the record's size as its header says, its topic's and payload's lengths
        # (little-endian, at 9 and 11) and CRC; 0: the header runs past the window
        k = len(b) - j >= _RH and _RH + 4 + b[j + 9] + b[j + 11] + (b[j + 10] + b[j + 12] << 8)
        if (not k or j + k > len(b)) and s._cw + len(b) < s._cn and s._cw + j + k <= s._cn:
            o = s._cw + j  # past the window, not the file: a window from it, holding it
            continue
        try:
            r = _parse(b, j)
            break
        except (ValueError, IndexError) as e:
            if s._cn == z:  # else reported already
                s._st._report(s._p, "q/" + name(s, i), e)
            s._co = s._cn - s._cw
            return False
    s._r = r
    s._co += r[6]
    return True


def nxt(s):
    # the next pending message in flash (at or after _cur) into _r; False if none, or
    # none now: the flash could not read the next file (_eio) less than a second ago
    if s._eb is not None and ticks_diff(ticks_ms(), s._et) < 1000:
        return False
    while s.more > 0:
        c = s._cur
        for i in range(len(s._sg)):
            if s._sl[i] < c:
                continue
            r = read(s, i)
            while r:
                q = s._r[0]
                if q >= c:
                    s._cur = q + 1
                    if q not in s._done:
                        return True
                r = read(s, i)
            if r is None:
                return False  # read again later, from here
            s._cb = None
            s._cur = c = s._sl[i] + 1
        j = -1
        for x in range(s._tn):
            sq = s._tail[x]
            if sq != _NONE and sq >= c and (j < 0 or sq < s._tail[j]):
                j = x
        if j < 0:
            s.more = 0  # counted but not found: lost to damage, reported
            return False
        p = tp(s, j)
        try:
            r = _parse(_read(p, b"t", _FORMAT), 0)
        except (OSError, ValueError, IndexError) as e:
            if _eio(s, p, e):
                return False
            s._cur = s._tail[j] + 1  # damage: passed over (reported)
            s._st._report(s._p, "t%d/%d" % (j % _TDIRS, j // _TDIRS), e)
            s.more -= 1
            continue
        # past it once read: no heap for the read (MemoryError) leaves it to read again
        # (passed over, it was never sent, and the watermark went past it)
        s._cur = s._tail[j] + 1
        if r[0] not in s._done:
            s._r = r
            return True
    s._cb = s._cz = None  # nothing left beyond the ring: its room goes
    return False


def seal(s):
    # the tail's messages into one segment file, named for what it holds; the tail
    # slots are free again. A seal the power cut interrupted leaves a segment shorter
    # than its name says (the newest one): resume.scan removes it, the tail still has all.
    # (No rename: a littlefs rename in a directory of many files reads it all.)
    p = s._p
    n = len(s._sg)
    if n >= s._sk:
        # the segment index (_sg, _sl, _sc: 12 bytes a segment) is full (_sk: its room;
        # the first 8 segments take the 8 entries an array's first append makes room for,
        # then a backlog's next seal, and the first after a load, which grows it as it
        # finds them): room at once for as many segments as the store holds (max_bytes,
        # a block each at least; 1,024 at most), its entries kept. Grown 8 at a time, the
        # three arrays reallocated side by side left the heap in pieces: queueing 10,000
        # offline took 122 KiB of heap, booting with them 97. A heap with no piece that
        # large gets room for half as many, and so on; none: 8 more, as before, and
        # another try 8 segments on. Given before the tail's records are read (the heap
        # in fewer pieces); stored._save frees it when the last segment goes
        k = min(s._st.max_bytes // s._st._bs + 2, 1024)
        s._sk = n + 8
        while k > n + 8:
            try:
                for x in ("_sg", "_sl", "_sc"):
                    a = array("I", range(k))  # (from a range: no buffer of k items beside)
                    a[0:] = getattr(s, x)  # its entries, the room of k kept
                    setattr(s, x, a)
                s._sk = k
                break
            except MemoryError:
                k >>= 1
    recs = []
    nb = 0
    for j in range(s._tn):
        if s._tail[j] == _NONE:
            continue  # complete before the last boot: not pending
        try:
            b = _read(tp(s, j), b"t", _FORMAT)
        except (OSError, ValueError) as e:
            if _eio(s, tp(s, j), e):
                raise  # unreadable now: the tail stays as it is (no seal)
            s._st._report(p, "t%d/%d" % (j % _TDIRS, j // _TDIRS), e)
            continue
        recs.append((s._tail[j], b))
        nb += len(b)
    if recs:
        # in order of seq: a message is written to the tail when its publish returns
        # unacknowledged (Session.hold), after a newer one made durable meanwhile (a QoS 2
        # or offline one the callback or another task published during its wait). Out of
        # order, the segment's name would give a last seq below a message in it (removed
        # while that one is pending) and nxt would pass over the older one
        recs.sort()
        n = "%08x%08x%02x%06x" % (recs[0][0], recs[-1][0], len(recs), nb)
        q = _join(p, "q", n)
        i = len(s._sg)
        e = s._sg[:0]
        try:
            with open(q, "wb") as f:
                f.write(b"MQg\x02")
                for r in recs:
                    f.write(r[1])
            # the index grows by one segment in all three arrays or in none (each array
            # grows its buffer as it goes: a MemoryError may come between them)
            s._sg.append(recs[0][0])
            s._sl.append(recs[-1][0])
            s._sc.append(len(recs) << 24 | nb)
        except (OSError, MemoryError):
            for a in (s._sg, s._sl, s._sc):
                a[i:] = e
            _rm(q)  # the tail still holds its messages
            raise
        s.bytes += _slack(s, nb)  # may pass max_bytes by less than a block
    for j in range(_TAIL):
        s._tail[j] = _NONE
    s._tn = s._tb = 0

