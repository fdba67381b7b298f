# A stored session found and read from flash when SessionStore.get makes it (stored.py
# says what the files hold): run once, then freed again (SessionStore.get), so a running
# node holds none of this code. Damage is reported and left out; the session starts
# without it.
from micropython import const
from array import array
import binascii
import os
import struct

from .session import Session
from .store import _join, _read, _rm, _exists, NewerFormat
from .stored import StoredSession
from .stored import _parse, tp

_FORMAT = const(2)  # as store._FORMAT
_TAIL = const(32)  # as stored._TAIL
_TDIRS = const(4)  # as stored._TDIRS
_DIR = const(0x4000)  # as store._DIR
_HOT = const(1)  # session.py's: what a _save writes
_IDENT = const(4)
_NONE = const(0xFFFFFFFF)  # an empty tail slot (as qseg._NONE)


def lstr(b, i):
    # a u16-length-prefixed byte string at b[i]: (bytes, next offset)
    n = b[i] | b[i + 1] << 8
    if i + 2 + n > len(b):
        raise ValueError("truncated")
    return bytes(b[i + 2 : i + 2 + n]), i + 2 + n


def _key(s):
    # a directory name for a host or client ID: the name itself when it is plain and
    # short (as every earlier version did), else "~" and its hex digits (long ones: the
    # first 32 bytes', a CRC-32 and the length; the identity file tells them apart). Never
    # ".", "..", empty, with "/" or NUL, a name the store uses itself, or over 80 bytes.
    if isinstance(s, str):
        s = s.encode()
    if 0 < len(s) <= 32 and s not in (b".", b"..", b"last") and s[-2:] != b".t":
        for c in s:
            if c not in b"-_.0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ":
                break
        else:
            return s.decode()
    if len(s) <= 36:
        return "~" + binascii.hexlify(s).decode()
    return "~" + binascii.hexlify(s[:32]).decode() + "~%08x%d" % (binascii.crc32(s), len(s))


def _host_dir(self, host):
    # the directory of SessionStore self for host's sessions
    if isinstance(host, str):
        host = host.encode()
    hd = _join(self.root, _key(host))
    if not _exists(hd) & _DIR:
        # named as 0.1.0 did (a name that is not plain could collide): rename
        old = _join(self.root, "~%08x%d" % (binascii.crc32(host), len(host)))
        if old != hd and _exists(old) & _DIR and not _exists(hd):
            os.rename(old, hd)
    return hd


def init(s, store, path, client_id, host, capacity):
    # StoredSession.__init__. capacity (the client's max(window, queue)) bounds the
    # queue; the RAM ring holds that many, or the store's ram when it is smaller: the rest
    # waits in flash
    r = store.ram
    # its own names first, objects as None: Session.__init__ makes the objects once the
    # attribute table has every name (see there)
    s._st = store
    s._ib = None  # identity as last written
    s.bytes = 0  # bytes of pending messages in flash
    s._tn = 0  # tail slots in use
    s._tb = 0  # their bytes
    s._cur = 0  # seq of the next message to bring into the ring (while more)
    s._lazy = 0
    s._hx = False  # the hot-state file exists
    s._ci = _NONE
    s._co = 0
    s._r = None  # the record just read: seq, flags, pid, epoch, topic, msg, size
    s._cb = None  # the segment being read into the ring: bytes, name, offset
    s._sg = s._sl = s._sc = s._tail = s._done = s._out = None
    Session.__init__(s, client_id, host, min(capacity, r) if r else capacity)
    s.limit = capacity
    s._p = path
    s._sg = array("I")  # segments in order: first seq
    s._sl = array("I")  # and last seq
    s._sc = array("I")  # and count << 24 | bytes
    s._tail = array("I", [_NONE] * _TAIL)  # seq in each tail slot in use
    s._done = []  # completed seqs at or above the watermark
    s._out = {}  # seq -> (pid, released) from the hot state, until loaded


def get(self, host, client_id, capacity):
    # SessionStore.get: the session for (host, client_id) from store self; client ID ""
    # (b""): the null session, fresh every time, until the broker assigns one
    hd = _host_dir(self, host)
    if client_id is None:
        # the client ID last used for the host (see StoredSession._save), or any
        b = self._body(hd, "last", b"l", 1)
        client_id = (b is not None and bytes(b)) or find_any(hd)
        if not client_id:
            # a client ID for a node that names none: from the board's unique ID
            try:
                import machine

                client_id = machine.unique_id()
            except (ImportError, AttributeError):
                client_id = os.urandom(6)
            client_id = b"mqs-" + binascii.hexlify(client_id)
    if isinstance(client_id, str):
        client_id = client_id.encode()
    if client_id:
        p = sdir(self, hd, client_id)
    else:
        p = _join(hd, "~null")
        _rm(p)
    # a collection first: the session's attribute table grows through blocks of up to
    # 600 bytes, and the garbage of the lookups above splits the free heap too finely for
    # them (the node's smallest heap: 67 KB without, 65 KB with)
    import gc

    gc.collect()
    s = StoredSession(self, p, client_id, host, capacity)
    try:
        if not _exists(p) & _DIR:
            self._mkdirs(p)
            scan(s, 0)
        else:
            if _exists(_join(p, "i")):
                from .migrate import migrate

                migrate(self, s)  # format 1 (0.1.0) files: into format 2, in place
            load(s)
    except NewerFormat as e:
        from .migrate import newer

        s = newer(self, s, e)
    s._save(_IDENT if _exists(_join(p, "hot")) else _IDENT | _HOT)  # null: writes nothing
    return s


def sdir(self, path, client_id):
    # SessionStore self's directory of this session: its key, or after a collision of
    # long IDs the next free "~<n>" variant; a 0.1.0 name ("~<crc><length>") is renamed
    # to it
    k = _key(client_id)
    o = "~%08x%d" % (binascii.crc32(client_id), len(client_id))  # the 0.1.0 name
    free = None
    for n in (k, "%s~%d" % (k, 1), "%s~%d" % (k, 2), o):
        p = _join(path, n)
        if not _exists(p) & _DIR:
            if free is None and n != o:
                free = p
            continue
        # whose it is: the client ID in its identity file (either format)
        c = None
        for f, v in (("id", _FORMAT), ("i", 1)):
            try:
                b = _read(_join(p, f), b"i", v)
                m = 7 + (b[5] | b[6] << 8)  # after version, expiry, ID length, ID
                if m <= len(b):
                    c = bytes(b[7:m])
                    break
            except (OSError, ValueError, IndexError):
                pass
        if c != client_id and (c or n != k):
            continue  # another's, or unreadable: only the session's own key claims it
        if n == o and free == _join(path, k):
            os.rename(p, free)
            return free
        return p
    return free or _join(path, "%s~%d" % (k, 3))


def find_any(path):
    # the client ID of some session stored in host directory path, or None
    try:
        names = os.listdir(path)
    except OSError:
        return None
    for n in names:
        if n != "last" and n != "~null" and not n.endswith(".t"):
            # its identity file (either format), unreadable ones skipped
            for f, v in (("id", 2), ("i", 1)):
                try:
                    c = lstr(_read(_join(path, n, f), b"i", v), 5)[0]
                    if c:
                        return c
                    break
                except (OSError, ValueError, IndexError):
                    pass
    return None


def subs(s, b):
    # a subscriptions body (either format): (QoS, filter)... into s.subs; ValueError or
    # IndexError when damaged
    i = 0
    while b is not None and i < len(b):
        f, i = lstr(b, i + 1)
        s.subs[f] = b[i - len(f) - 3]


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
    if cid != s.client_id:
        return False
    # a damaged file is removed once reported (st._body; here when its checksum held but
    # its content does not parse): absent means what damaged does (no subscriptions;
    # epoch 0, no incoming QoS 2 IDs), reported once, not at every boot
    try:
        subs(s, st._body(p, "subs", b"u", _FORMAT))
    except (ValueError, IndexError) as e:
        _bad(st, p, "subs", e)
        s.subs = {}
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
    return True


def scan(s, w):
    # finds the segments and tail messages at or above the watermark w, counts them,
    # and brings the oldest into the ring
    p = s._p
    st = s._st
    for d in ("q", "t0", "t1", "t2", "t3"):
        if not _exists(_join(p, d)) & _DIR:
            st._mkdirs(_join(p, d))
    q = _join(p, "q")
    last = w
    names = sorted(os.listdir(q))
    for n in names:
        try:
            if len(n) != 24:
                raise ValueError
            a, z, c, nb = int(n[:8], 16), int(n[8:16], 16), int(n[16:18], 16), int(n[18:], 16)
        except ValueError:
            if not n.endswith(".t"):
                st._report(q, n, "not a segment")
            _rm(_join(q, n))  # a seal cut short, or not ours
            continue
        if z < w or (n is names[-1] and os.stat(_join(q, n))[6] != nb + 4):
            _rm(_join(q, n))  # complete (its removal was cut short), or a cut seal
            continue
        s.nseq = max(s.nseq, z + 1)
        s._sg.append(a)
        s._sl.append(z)
        s._sc.append(c << 24 | nb)
        s.more += c
        s.bytes += nb
        last = z + 1
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
    # after it) is damage, reported, as is any other unreadable one
    cut = []
    for j in range(_TAIL):
        q = tp(s, j)
        try:
            r = _parse(_read(q, b"t", _FORMAT), 0)
        except (OSError, ValueError, IndexError) as e:
            try:
                m = os.stat(q)
            except OSError:
                continue  # absent
            if m[0] & _DIR or m[6]:
                st._report(p, "t%d/%d" % (j % _TDIRS, j // _TDIRS), e)
                _rm(q)  # reported once (the message in it is lost to the damage)
            else:
                cut.append(j)
            continue
        s.nseq = max(s.nseq, r[0] + 1)
        if r[0] >= last:  # else sealed in a segment already
            tail.append((r[0], j, r[6]))
    for seq, j, n in tail:
        s._tail[j] = seq
        s._tn = max(s._tn, j + 1)
        s._tb += n
        s.bytes += n
        s.more += 1
    for j in cut:
        if j < s._tn:
            st._report(p, "t%d/%d" % (j % _TDIRS, j // _TDIRS), "empty, a later one is not")
            _rm(tp(s, j))
    s._cur = w
    s.more -= len(s._done)
    s._fill()
