# The session store's paths that a running node seldom needs, loaded on first use (by
# store.py, load.py and v5.adopt): deleting a session, a session of a newer format set
# aside, a stored session whose ID a null session is assigned moved aside, and
# (below) format 1 migration.
#
# Format 1 (0.1.0) session directories into format 2, in place. Run only when a
# session directory holds format 1 files (i, u, s, m<seq>). Power-cut safe: the format 2
# files are written first and the hot state last (the commit); only then are the format
# 1 files removed, the marker file "mig" saying that is under way. A cut before the commit
# leaves format 1 whole (the next boot starts over); after it, format 2 is whole.
# Found beside a format 2 session (a library rolled back to 0.1.0 ran here, then this one
# again), the format 1 messages join the end of its queue, each removed once it has; a
# cut between the two sends that one message twice.
from micropython import const
import os
import struct

from .packet import err
from .store import _join, _read, _rm, _exists
from .stored import append

_HOT = const(1)  # session.py's: what a _save writes
_SUBS = const(2)
_IDENT = const(4)
_ENOSPC = const(28)
_EIO = const(5)


def delete(st, host, client_id):
    if isinstance(client_id, str):
        client_id = client_id.encode()
    from .dirs import sdir, _host_dir
    from .session import unload

    unload("dirs")  # run once (see SessionStore.get), freed also when a name is refused
    hd = _host_dir(st, host)
    p = sdir(st, hd, client_id)
    # a client still holding it (its get()) writes no more: its writes raise EBUSY
    # (stored._mine), rather than ENOENT with nothing said, or a half session made again
    st._own[p] = 0
    # the host's "last" first: naming a session whose identity is gone, it tells a load
    # that the directory lost its files (resume.load), not a delete() cut short
    b = st._body(hd, "last", b"l", 1)  # the client ID last used for the host
    if b is not None and bytes(b) == client_id:
        _rm(_join(hd, "last"))
    if _exists(p) & 0x4000:  # a directory
        # renamed first (atomic), then removed: a power cut while its files go, one at a
        # time, would leave the rest of it to load (with "hot" gone, its completed QoS 2
        # messages pending again). A name ending in ".t" is never a session's (dirs._key);
        # one a cut left is removed by the next get() or delete() of that client ID
        t = p + ".t"
        _rm(t)
        try:
            os.rename(p, t)
        except OSError:
            t = p
        _rm(t)


def newer(st, s, e):
    # session directory of a newer format (NewerFormat e): refused, or with
    # SessionStore(newer="aside") renamed to <dir>~new (or ~new1...), kept, and a new
    # session started
    from .stored import StoredSession

    p = s._p
    if st.newer != "aside":
        raise ValueError("mqttsession: store: %s: %s: upgrade the library, or use "
                         "SessionStore(newer='aside')" % (p, e))
    # beside any set aside before (<dir>~new, then ~new1...): each is kept
    q = p + "~new"
    i = 0
    while _exists(q):
        i += 1
        q = "%s~new%d" % (p, i)
    st._report(p, "", "%s: renamed to %s, kept" % (e, q))
    os.rename(p, q)
    s = StoredSession(st, p, s.client_id, s.host, s.limit)
    from .load import fresh  # freed again by the caller, SessionStore.get

    fresh(st, p)
    return s


def aside_old(st, hd, p, cid):
    # the session directory p of client ID cid in host directory hd, when a null session
    # is assigned cid (v5.adopt: a broker whose assigned IDs repeat, an ID used before):
    # renamed to client ID "<cid>~old" ("~old1"... when taken), which get(host, that)
    # loads, its identity saying so (either format; an unreadable one is claimed by its
    # directory's name, dirs.sdir), and reported. Power cut between the two: the
    # directory is kept, its identity still cid's
    from .dirs import sdir
    from .store import _write, pack

    i = 0
    while True:
        n = cid + b"~old" + (str(i).encode() if i else b"")
        q = sdir(st, hd, n)
        if not _exists(q):
            break
        i += 1
    os.rename(p, q)
    for f, v in (("id", 2), ("i", 1)):
        try:
            b = _read(_join(q, f), b"i", v)
            m = 7 + (b[5] | b[6] << 8)  # after version, expiry, ID length, ID
            _write(_join(q, f), pack(b"i", bytes(b[:5]) + struct.pack("<H", len(n)) + n
                                     + bytes(b[m:]), v), True)
        except (OSError, ValueError, IndexError):
            pass
    st._report(p, "", "the assigned client ID had a stored session: kept as client ID %s "
               "(%s)" % (n.decode(), q))


# --- format 1 (0.1.0) into format 2 ---


def migrate(st, s):
    p = s._p
    ms = sorted(n for n in os.listdir(p) if n[0] == "m" and len(n) == 9)
    if _exists(_join(p, "hot")):
        if not _exists(_join(p, "mig")):
            # format 1 messages written beside format 2: to the end of its queue
            from .resume import load

            load(s)
            s.epoch = (s.epoch + 1) & 0xFFFF  # packet IDs from either side are void now
            for n in ms:
                r = _msg(st, p, n)
                if r:
                    append(s, s.nseq, r[0], 0, 0, r[3], r[4])
                    s.nseq = (s.nseq + 1) & 0xFFFFFFF
                _rm(_join(p, n))
            s._save(_HOT)
            with open(_join(p, "mig"), "wb") as f:
                f.write(b"MQ")
            s.__init__(st, p, s.client_id, s.host, s.limit)  # the caller loads it
        _drop(p, ms)
        return
    _undo(p)  # a migration cut short: format 2 is written again from format 1
    try:
        _v1(st, s, p, ms)
    except OSError as e:
        # no room before the commit: what was written of format 2 goes (its directories
        # alone take tens of KB), format 1 stays as it was, the next get() starts over.
        # Any other error is left to that start (a failing flash may fail the removal too)
        if e.errno == _ENOSPC and not _exists(_join(p, "hot")):
            _undo(p)
        raise
    _drop(p, ms)
    s.__init__(st, p, s.client_id, s.host, s.limit)  # the caller loads it from flash


def _undo(p):
    for n in ("q", "t0", "t1", "t2", "t3", "id", "subs", "aside", "mig", "hot.t", "id.t",
              "subs.t"):
        _rm(_join(p, n))


def _v1(st, s, p, ms):
    # writes format 2 from the format 1 files, the hot state last (the commit)
    from .resume import scan, subs

    scan(s, 0)
    b = st._body(p, "i", b"i", 1)
    try:
        s.version = b[0]
        s.expiry = struct.unpack("<I", b[1:5])[0]
        s.fresh = False
    except (TypeError, IndexError, ValueError):
        pass
    try:
        if subs(s.subs, st._body(p, "u", b"u", 1)):
            st._report(p, "u", err(51))  # a filter or QoS the client refuses, left out
    except (ValueError, IndexError) as e:
        st._report(p, "u", e)
    b = st._body(p, "s", b"s", 1)
    out = {}
    try:
        if b is not None:
            s.pid, s.epoch, s.nseq, nr = struct.unpack("<HHIB", b[:9])
            s.rx2 = list(struct.unpack("<%dH" % nr, b[9 : 9 + 2 * nr]))
            i = 9 + 2 * nr
            while i < len(b):
                seq, pid, rel = struct.unpack("<IHB", b[i : i + 7])
                out[seq] = (pid, rel)
                i += 7
    except (ValueError, IndexError) as e:
        st._report(p, "s", e)
        s.rx2 = []
    w = None
    mb = st.max_bytes
    st.max_bytes = 1 << 30  # what 0.1.0 accepted is kept, whatever the bound now
    try:
        for n in ms:
            r = _msg(st, p, n)
            if r:
                seq = int(n[1:], 16)
                append(s, seq, r[0], r[1], r[2], r[3], r[4])
                s.nseq = max(s.nseq, seq + 1)
                s.more += 1
                w = seq if w is None else w
                if seq in out:
                    s._out[seq] = out[seq]
    finally:
        st.max_bytes = mb
    s._save(_SUBS | _IDENT)
    s._cur = w if w is not None else s.nseq
    with open(_join(p, "mig"), "wb") as f:
        f.write(b"MQ")  # the marker: format 1 files are being removed
    s._save(_HOT)  # the commit: format 2 is whole from here on


def _msg(st, p, n):
    # a format 1 message file: (flags, pid, epoch, topic, payload) or None (reported)
    try:
        b = _read(_join(p, n), b"m", 1)
        fl, pid, ep, nt = struct.unpack("<BHHH", b[:7])
        if 7 + nt > len(b):
            raise ValueError("truncated")
        return fl & 7, pid, ep, bytes(b[7 : 7 + nt]), bytes(b[7 + nt :])
    except (OSError, ValueError, IndexError) as e:
        if isinstance(e, OSError) and e.errno == _EIO:
            raise  # the flash cannot read it now: no damage (the next get() starts over)
        st._report(p, n, e)
        return None


def _drop(p, ms):
    for n in ms:
        _rm(_join(p, n))
    for n in ("s", "u", "s.t", "u.t", "i.t", "i", "mig"):
        _rm(_join(p, n))
