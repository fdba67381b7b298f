# A stored session read from its directory when SessionStore.get finds one there
# (load.py; stored.py says what the files hold): run once, then freed again, so a running
# node holds none of this code. Damage is reported and left out; the session starts
# without it.
from micropython import const
import os
import struct

from .packet import check_filter, err
from .store import _join, _read, _rm, _exists
from .stored import _parse, _slack, name, tp

_FORMAT = const(2)  # as store._FORMAT
_TAIL = const(32)  # as stored._TAIL
_TDIRS = const(4)  # as stored._TDIRS
_DIR = const(0x4000)  # as store._DIR
_ENOENT = const(2)
_EIO = const(5)
_SUBS = const(2)  # as stored._SUBS


def lstr(b, i):
    # a u16-length-prefixed byte string at b[i]: (bytes, next offset)
    n = b[i] | b[i + 1] << 8
    if i + 2 + n > len(b):
        raise ValueError("truncated")
    return bytes(b[i + 2 : i + 2 + n]), i + 2 + n


def subs(d, b, u=False):
    # a subscriptions body (either format): (QoS, filter)... into dict d (u: QoS 0x80 is
    # None, an unsubscribe owed); ValueError or IndexError when damaged. An entry whose
    # filter or QoS the client refuses (written by no library: nothing else checks it)
    # is left out; returns how many
    i = n = 0
    while b is not None and i < len(b):
        f, i = lstr(b, i + 1)
        q = b[i - len(f) - 3]
        try:
            check_filter(f)
            if q > 2 and not (u and q == 0x80):
                raise ValueError
            d[f] = None if q == 0x80 else q
        except ValueError:
            n += 1
    return n


def _bad(st, p, name, e):
    # a file whose checksum held but whose content does not parse: damage like a bad
    # checksum (SessionStore._body), reported and removed
    st._report(p, name, e)
    _rm(_join(p, name))


def load(s):
    # False when the directory holds another client's session
    p = s._p
    st = s._st
    cid = s.client_id
    n = len(st.errors)
    b = st._body(p, "id", b"i", _FORMAT)
    if b is not None:
        try:
            s.version = b[0]
            s.expiry = struct.unpack("<I", b[1:5])[0]
            cid, i = lstr(b, 5)
            s.host = lstr(b, i)[0].decode()
            s._ib = bytes(b)
            s.fresh = False
        except (ValueError, IndexError) as e:
            _bad(st, p, "id", e)
            cid = s.client_id
    elif cid and len(st.errors) == n:
        # no identity (a null session has none to lose): a directory load.fresh made and
        # a power cut left before it, or one whose entries littlefs no longer lists
        # (damage to a directory's metadata drops its newer commits without an error).
        # The host's "last" names a session only once its identity is written
        # (StoredSession._save; migrate.delete removes it first): naming this one, it
        # tells the damage, reported. Unless a session of this ID was moved aside
        # (v5.adopt, cut before the new one's identity: "last" still names the old one's
        # ID)
        from .dirs import _key
        from .session import unload

        unload("dirs")
        h = p[: p.rfind("/")]
        b = st._body(h, "last", b"l", 1)
        if b is not None and bytes(b) == cid and not _exists(_join(h, _key(cid + b"~old"))):
            st._report(p, "id", err(60))  # missing, named by the host's last file: damage
    if cid != s.client_id:
        from .dirs import moved
        from .session import unload

        unload("dirs")  # run once (see SessionStore.get)
        if not moved(cid, s.client_id):
            return False
        # moved aside by migrate.aside_old, cut before its identity was rewritten: it is
        # this session (get() writes its identity again: s._ib is the old one)
    # a damaged file is removed once reported (st._body; here when its checksum held but
    # its content does not parse): absent means what damaged does (no subscriptions;
    # epoch 0, no incoming QoS 2 IDs), reported once, not at every boot
    try:
        if subs(s.subs, st._body(p, "subs", b"u", _FORMAT)):
            st._report(p, "subs", err(51))  # a filter or QoS the client refuses, left out
            s._save(_SUBS)  # written without it: reported once
    except (ValueError, IndexError) as e:
        _bad(st, p, "subs", e)
        s.subs = {}
    # subscription changes made offline and not yet at the broker (ctl.owe): the client
    # makes them on its next connect (Core.__init__)
    o = {}
    try:
        if subs(o, st._body(p, "owed", b"o", _FORMAT), True):
            raise err(51)  # a filter or QoS the client refuses, left out
    except (ValueError, IndexError) as e:
        _bad(st, p, "owed", e)
        o = {}
    if o:
        s._owed = o
    b = st._body(p, "hot", b"s", _FORMAT)
    w = 0
    s._hx = b is not None
    try:
        if b is not None:
            s.pid, s.epoch, s.nseq, w, nr = struct.unpack("<HHIIB", b[:13])
            s.rx2 = list(struct.unpack("<%dH" % nr, b[13 : 13 + 2 * nr]))
            i = 13 + 2 * nr
            nd = b[i] | b[i + 1] << 8
            s._done = list(struct.unpack("<%dI" % nd, b[i + 2 : i + 2 + 4 * nd]))
            i += 2 + 4 * nd
            while i < len(b):
                seq, pid, rel = struct.unpack("<IHB", b[i : i + 7])
                s._out[seq] = (pid, rel)
                i += 7
            if w > s.nseq:
                # past every message ever numbered: taken as it is, it would pass over
                # (and remove) the whole queue
                raise err(52)  # watermark beyond the queue
    except (ValueError, IndexError) as e:
        # packet IDs unknown: messages go out again as new ones, nothing is lost
        _bad(st, p, "hot", e)
        s.pid = s.epoch = s.nseq = w = s._hx = 0  # as with no hot state
        s._out = {}
        s.rx2 = []
        s._done = []
    b = st._body(p, "aside", b"x", _FORMAT)
    if b is not None and len(b) >= 4:
        s.naside = struct.unpack("<I", b[:4])[0]
    scan(s, w)
    if s.fresh and (s._hx or s.subs or o or s.pending()):
        # the identity was damaged, but the session holds state: not a fresh one (an
        # MQTT 5 client answers a kept session without local state with a clean start,
        # which would give up the queue the damage did not touch)
        s.fresh = False
    return True


def _put(s, a, z, c):
    # segment a..z (c: count << 24 | bytes) into the index in order of first seq:
    # littlefs lists names in order (each one goes last), another filesystem may not
    g = s._sg
    i = len(g)
    g.append(a)
    s._sl.append(z)
    s._sc.append(c)
    while i and g[i - 1] > a:
        g[i] = g[i - 1]
        s._sl[i] = s._sl[i - 1]
        s._sc[i] = s._sc[i - 1]
        i -= 1
    g[i] = a
    s._sl[i] = z
    s._sc[i] = c


def scan(s, w):
    # finds the segments and tail messages at or above the watermark w, counts them,
    # and brings the oldest into the ring
    p = s._p
    st = s._st
    for d in ("q", "t0", "t1", "t2", "t3"):
        if not _exists(_join(p, d)) & _DIR:
            st._mkdirs(_join(p, d))
    q = _join(p, "q")
    g = s._sg
    w0, d0 = w, s._done  # as the hot state has them (0.2.23's held messages, below)
    top = ""  # the last name in order: a cut seal is the last segment
    for e in os.ilistdir(q):
        # one name at a time (a listing of every segment would cost RAM in proportion to
        # the backlog, at every boot)
        n = e[0]
        try:
            if len(n) != 24:
                raise ValueError
            a, z, c, nb = int(n[:8], 16), int(n[8:16], 16), int(n[16:18], 16), int(n[18:], 16)
        except ValueError:
            if not n.endswith(".t"):
                st._report(q, n, err(53))  # not a segment
            _rm(_join(q, n))  # a seal cut short (or a qmend rewrite), or not ours
            continue
        top = max(top, n)  # (a removed name above is none: "<top>.t" would pass it)
        if z < w:
            _rm(_join(q, n))  # complete (its removal was cut short)
            continue
        _put(s, a, z, c << 24 | nb)
    i = len(g) - 1
    if i >= 0 and name(s, i) == top and os.stat(_join(q, top))[6] != (s._sc[i] & 0xFFFFFF) + 4:
        # shorter than its name says: a cut seal when the tail still holds every one of
        # its messages (it is reused only after a seal), else damage (kept: its records
        # before the damage are read, and the damage reported, as in any other segment)
        a = g[i]
        z = s._sl[i]
        c = 0
        for j in range(_TAIL):
            try:
                r = _parse(_read(tp(s, j), b"t", _FORMAT), 0)[0]
            except (OSError, ValueError, IndexError):
                continue  # (the tail's damage is reported below)
            if a <= r <= z:
                c += 1
        if c == s._sc[i] >> 24:
            _rm(_join(q, top))  # a cut seal
            s._sg = g = g[:i]
            s._sl = s._sl[:i]
            s._sc = s._sc[:i]
    # segments whose seq ranges overlap (0.2.23 and earlier wrote them: see qmend.py) are
    # rewritten first; the rest of the session trusts them not to
    last = -1
    old = 49  # err(49): a tail slot older than one before it (see below)
    for i in range(len(g)):
        if g[i] <= last:
            from .qmend import mend
            from .session import unload

            unload("qmend")  # run once
            mend(s, w)
            old = 0  # 0.2.23 wrote the tail out of order too: removed, not reported
            break
        if s._sl[i] > last:
            last = s._sl[i]
    last = w
    for i in range(len(g)):
        c = s._sc[i]
        s.more += c >> 24
        s.bytes += (c & 0xFFFFFF) + _slack(s, c & 0xFFFFFF)
        last = s._sl[i] + 1
        s.nseq = max(s.nseq, last)
    if len(s._sg) > 8:
        s._sk = len(s._sg)  # grown as found: room at the next seal, freed by the drain
    if s._sg and s._sg[0] > w:
        # every message below the oldest segment is complete: a segment is removed
        # when all of its messages are, without a hot-state write (stored._save)
        w = s._sg[0]
        d = []
        for x in s._done:
            if x >= w:
                d.append(x)
        s._done = d
        for x in list(s._out):
            if x < w:
                del s._out[x]
    if s._sg and s._sg[0] < w:
        # the oldest segment holds complete messages too: not pending
        s._cur = w
        from .qseg import read

        while read(s, 0) and s._r[0] < w:
            s.more -= 1
            s.bytes -= s._r[6]
        s._cb = None
    tail = []
    # A tail write creates its file (a littlefs commit), then commits the content: a
    # power cut or a full filesystem between the two leaves an empty file, and that
    # publish never returned, so nothing was stored there (the next write to the slot
    # replaces it). An existing file rewritten keeps its old content on a cut. Slots are
    # written in order: an empty file before a slot holding a pending message (written
    # after it) is damage, reported, as is any other unreadable one. So is a missing one
    # there, or one older than a slot before it: the tail is written in order of seq,
    # slot after slot, so a slot below the newest holds a copy from an earlier round, or
    # nothing, only when littlefs dropped its directory's newest commits (a damaged byte
    # in its metadata does that without an error), and the message written there is lost
    cut = []
    held = []
    hi = -1
    gap = 0
    for j in range(_TAIL):
        q = tp(s, j)
        try:
            b = _read(q, b"t", _FORMAT)
            r = _parse(b, 0)
        except (OSError, ValueError, IndexError) as e:
            # the flash cannot read it now (the driver's EIO, at its read or its stat):
            # not damage, and its seq unknown, so no slot of the tail could be trusted to
            # be free. The load raises it, as any other read of the session the flash
            # fails; the next one reads it
            if isinstance(e, OSError) and e.errno == _EIO:
                raise
            try:
                m = os.stat(q)
            except OSError as x:
                if x.errno == _EIO:
                    raise
                if x.errno != _ENOENT:
                    # the filesystem cannot read it (a corrupt directory): damage,
                    # reported, not taken for an absent file; left to the next write
                    st._report(p, "t%d/%d" % (j % _TDIRS, j // _TDIRS), x)
                else:
                    cut.append((j, 48))  # missing, a later one is not
                continue
            if m[0] & _DIR or m[6]:
                st._report(p, "t%d/%d" % (j % _TDIRS, j // _TDIRS), e)
                _rm(q)  # reported once (the message in it is lost to the damage)
                cut.append((j, 0))  # (reported: below, the tail sealed if it must)
            else:
                cut.append((j, 47))  # empty, a later one is not
            continue
        s.nseq = max(s.nseq, r[0] + 1)
        if r[0] >= last:  # else sealed in a segment already
            tail.append((r[0], j, r[6]))
            if r[0] < hi and old and not gap:
                # a message of the round before still pending: the segment it was sealed
                # into is gone (dropped with its directory's newest commits), and those
                # of that round the newer ones overwrote are lost
                e = err(50, j)  # a segment lost: tail slot %d is from an older round
                st._report(p, "q", e)
                gap = 1
        else:
            # below the newest segment: a sealed message's older copy, unless 0.2.23
            # wrote it. Its _keep wrote a QoS 1 message in flight (a packet ID) to the
            # tail when its publish returned, after newer ones were sealed meanwhile: a
            # pending message that no segment holds, older than the tail's others (the
            # segments' first seq, taken above for the watermark, would pass over it):
            # qmend.held puts it in a segment
            o = r[0] >= w0 and r[1] & 3 == 1 and r[2] and r[0] not in d0
            for i in range(len(g) if o else 0):
                if g[i] <= r[0] <= s._sl[i]:
                    # a segment holds it; one of its own (the same bytes) is where an
                    # earlier load put it, cut short before the tail was sealed
                    if g[i] == s._sl[i] and s._sc[i] == 1 << 24 | len(b):
                        b = None
                    else:
                        o = 0
                    break
            if o:
                held.append((j, b))
            elif r[0] < hi:
                cut.append((j, old))
        hi = max(hi, r[0])
    for seq, j, n in tail:
        s._tail[j] = seq
        s._tn = max(s._tn, j + 1)
        s._tb += n
        s.bytes += n
        s.more += 1
    gone = []  # tail files of messages now in a segment of their own: removed below
    # past the run of them from the slot next to the tail's newest (0.2.23 held one for
    # each publish that returned unacknowledged, slot after slot) is a slot an earlier
    # round wrote (no boot loads qmend for those); one in a segment of its own goes anywhere
    k = s._tn
    while any(h[0] == k for h in held):
        k += 1
    held = [h for h in held if h[1] is None or h[0] < k]
    if held:
        from .qmend import held as put_held
        from .session import unload

        unload("qmend")  # run once
        w, gap = put_held(s, held, w, gone, gap, k)
    for j, e in cut:
        if j < s._tn:
            if e == 47:
                e = err(47)  # empty, a later one is not
            elif e == 48:
                e = err(48)  # missing, a later one is not
            elif e:
                e = err(49)  # older than the one before it: its message lost
            if e:
                st._report(p, "t%d/%d" % (j % _TDIRS, j // _TDIRS), e)
            _rm(tp(s, j))
            gap = 1
    s._cur = w
    # completions recorded above the watermark, of the messages counted above: one whose
    # record is gone to damage was not counted, and subtracted it would hide a later one
    # (and their records' bytes, counted above: the running session subtracted them)
    for x in s._done:
        c = 0
        for i in range(len(g)):
            if g[i] > x:
                break
            if x <= s._sl[i]:
                from .qseg import read

                c = 1
                if s._cb is not None and s._ci == g[i]:
                    s._co = 4  # this segment is read already: from its first record
                    if s._cw:
                        s._cb = None  # (in windows: from its first one, read again)
                while read(s, i):
                    if s._r[0] == x:
                        s.bytes -= s._r[6]
                        break
                break
        for t in tail:
            if t[0] == x:
                c = 1
                s.bytes -= t[2]
        s.more -= c
    s._cb = None
    if gap:
        # a slot below the newest of the tail was given up above: the tail is sealed now
        # (its later messages into a segment), so the next load meets no gap there and
        # reports it once (the next writes to it start a new round)
        from .qseg import seal

        try:
            seal(s)
        except (OSError, MemoryError):
            pass  # (reported again at the next load)
    for j in gone:
        if j >= s._tn:
            _rm(tp(s, j))  # (in the tail still, when the seal failed: the next load)
    s._fill()
