# Segments whose seq ranges overlap, as 0.2.23 and earlier wrote them (a QoS 1 message
# held to flash after a whole segment of newer ones was sealed went into a later segment
# with newer messages: [0, 33..63] beside [1..32]). qseg.nxt reads segments in order with
# one cursor and would pass over one of them, and stored._save would remove a segment
# whose messages are not all complete. resume.scan finds them (once, at load) and loads
# this only then: each group of overlapping segments is rewritten as segments that do not
# overlap, each seq in one of them. Power-cut safe: every new segment is written (as a
# ".t", renamed when whole) before an old one is removed; a cut leaves the old ones (and
# some new ones: the same records twice), and the next load makes the same new ones,
# keeps those that are whole, and removes the rest. Run once, then freed (resume.scan).
# Also 0.2.23's held message still in the tail at the upgrade (held, below).
from micropython import const
import os

from .qseg import read
from .store import _join, _read, _rm

_FORMAT = const(2)  # as store._FORMAT
_TDIRS = const(4)  # as stored._TDIRS
_EIO = const(5)


def mend(s, w):
    # rewrites the overlapping groups of segments (s._sg in order of first seq); records
    # below the watermark w are complete and left out
    g, l, c = s._sg, s._sl, s._sc
    keep = []  # the index after: (first, last, count << 24 | bytes)
    old = []  # names of the segments replaced
    i = 0
    while i < len(g):
        j = i + 1
        z = l[i]
        while j < len(g) and g[j] <= z:
            z = max(z, l[j])
            j += 1
        if j == i + 1:
            keep.append((g[i], l[i], c[i]))  # overlaps none
        else:
            group(s, w, range(i, j), keep, old)
        i = j
    s._cb = None
    for n in old:
        _rm(_join(s._p, "q", n))
    keep.sort()
    for a in (g, l, c):
        a[:] = a[:0]
    for a, z, n in keep:
        g.append(a)
        l.append(z)
        c.append(n)


def group(s, w, m, keep, old):
    # segments m (indexes) overlap: their records by seq, each from one segment (of two
    # holding it, a copy a cut rewrite left, the narrower: the new one)
    from .stored import name

    g, l, c = s._sg, s._sl, s._sc
    own = {}  # seq -> (segment, record size)
    whole = []  # names of the segments read whole
    for i in m:
        s._cb = None  # (two segments may share a first seq: read's cache is by it)
        k = 0
        r = read(s, i)
        while r:
            k += 1
            q = s._r[0]
            o = own.get(q)
            if q >= w and (o is None or l[i] - g[i] < l[o[0]] - g[o[0]]):
                own[q] = (i, s._r[6])
            r = read(s, i)
        if r is None:
            # the flash cannot read it now (qseg._eio, reported): the group stays as it
            # was (its records are not all known), for the next load to mend
            for i in m:
                keep.append((g[i], l[i], c[i]))
            return
        if s._cb is not None and k == c[i] >> 24 and s._cn == (c[i] & 0xFFFFFF) + 4:
            whole.append(name(s, i))
    q = sorted(own)
    made = []
    a = 0
    while a < len(q):
        # a run of seqs from one segment: a new segment (up to 32: each old one holds
        # no more), unless one whole already (a cut rewrite made it, or the run is all of
        # an old one)
        o = own[q[a]][0]
        b = a
        nb = 0
        while b < len(q) and own[q[b]][0] == o:
            nb += own[q[b]][1]
            b += 1
        n = "%08x%08x%02x%06x" % (q[a], q[b - 1], b - a, nb)
        if n not in whole:
            s._cb = None
            p = _join(s._p, "q", n)
            # written as a ".t" and renamed: a cut leaves a ".t" (resume.scan removes it
            # without a report), never a segment shorter than its name says (damage).
            # The run may be all of segment o, which is not whole (bytes past its
            # records): the new one has its name, and is renamed over it (opened for
            # writing, it would be emptied before its records are read from it)
            t = p + ".t"
            try:
                with open(t, "wb") as f:
                    f.write(b"MQg\x02")
                    e = read(s, o)
                    while e:
                        r = s._r[0]
                        if q[a] <= r <= q[b - 1] and own[r][0] == o:
                            f.write(memoryview(s._cb)[s._co - s._r[6] : s._co])
                        e = read(s, o)
                    if e is None:
                        raise OSError(5)  # EIO: unreadable now (qseg._eio)
                s._cb = None
                os.rename(t, p)
            except OSError as e:
                # flash full, or unreadable now: the group stays as it was (this load
                # may pass over some of it; the next one tries again)
                s._st._report(s._p, "q/" + n, e)
                _rm(t)
                for i in m:
                    keep.append((g[i], l[i], c[i]))
                return
        made.append((q[a], q[b - 1], (b - a) << 24 | nb, n))
        a = b
    n = []
    for r in made:
        keep.append(r[:3])
        n.append(r[3])
    for i in m:
        if name(s, i) not in n:
            old.append(name(s, i))


def held(s, hs, w, gone, gap, e):
    # 0.2.23 wrote a QoS 1 message in flight to the tail when its publish returned, after
    # newer ones were sealed meanwhile: pending, in no segment, below the newest.
    # resume.scan found these (hs: (tail slot, record), record None: in a segment of its
    # own already; none past the run below) and loads this only
    # then. Each goes into a segment of its own, in order
    # of seq before the others (resent first, as it was sent first), written whole (a
    # ".t" renamed); its tail file goes after the tail is sealed (a file missing below
    # the newest is damage): its slot into gone, gap set when the tail must be sealed.
    # Only up to the run of them from the slot next to the tail's newest (0.2.23 held
    # one for each publish that returned unacknowledged, slot after slot), and that run
    # only when the slot after it holds a message a segment holds (0.2.23 wrote them
    # after a round it sealed). An earlier round's copies there, their segment gone, have
    # one of that round or an older one after them (rounds fill the slots from the
    # first), or nothing: no segment's. e: the slot after that run. Returns the
    # watermark and gap
    from .resume import _put
    from .stored import _parse, _slack, tp

    g = s._sg
    v = None  # the seq in slot e, read once
    for j, b in hs:
        if b is not None:
            if j >= s._tn:
                if v is None:
                    try:
                        v = _parse(_read(tp(s, e), b"t", _FORMAT), 0)[0]
                    except (OSError, ValueError, IndexError):
                        v = -1  # (none: the last slot, or no file there)
                for i in range(len(g)):
                    if g[i] <= v <= s._sl[i]:
                        break
                else:
                    continue  # no segment's after it: an earlier round's copy
            r = _parse(b, 0)
            n = _join(s._p, "q", "%08x%08x01%06x" % (r[0], r[0], len(b)))
            try:
                with open(n + ".t", "wb") as f:
                    f.write(b"MQg\x02")
                    f.write(b)
                os.rename(n + ".t", n)
            except (OSError, MemoryError) as x:
                _rm(n + ".t")
                if isinstance(x, OSError) and x.errno == _EIO:
                    raise  # the flash fails now: the next load does it
                s._st._report(s._p, "t%d/%d" % (j % _TDIRS, j // _TDIRS), x)
                continue  # (lost once the hot state's watermark passes it)
            _put(s, r[0], r[0], 1 << 24 | len(b))
            s.more += 1
            s.bytes += len(b) + _slack(s, len(b))
            w = min(w, r[0])
        gone.append(j)
        if j < s._tn:
            gap = 1
    return w, gap
