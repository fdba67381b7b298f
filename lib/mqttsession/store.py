# SessionStore: MQTT sessions in flash (littlefs), one directory per (host, client ID).
# Files, each "MQ" + kind + format version + body + CRC-32 (little-endian):
#   i  identity: protocol version, session expiry, client ID, host     (rarely written)
#   u  subscriptions                                                  (on (un)subscribe)
#   s  hot state: last packet ID, epoch, incoming QoS 2 IDs, QoS 2 packet IDs and
#      releases (small: stays inline in littlefs metadata)
#   m<seq> one unacknowledged outgoing message, written once, removed when acknowledged
# i, u and s are replaced atomically (write .t, rename over); a message file is valid
# only with its CRC, so a power cut mid-write leaves the previous state.
from micropython import const
from array import array
import binascii
import os
import struct

from .session import Session, REL, DISK, PID, PIDDISK, SENT, HOT, SUBS, IDENT

_FMT = const(1)
_ENOENT = const(2)
_ENOSPC = const(28)
_ENOTDIR = const(20)
_MAXF = const(65600)  # no store file is larger: anything bigger is damage, never read
_LAST = "last"
_PLAIN = b"-_.0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _join(*parts):
    return "/".join(parts)


def _exists(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False


def _isdir(p):
    try:
        return os.stat(p)[0] & 0x4000 != 0
    except OSError:
        return False


def _rm(p):
    # removes a file, or a directory with what it holds
    try:
        os.remove(p)
    except OSError:
        _rmtree(p)


def _rmtree(p):
    try:
        names = [e[0] for e in os.ilistdir(p)]
    except OSError:
        return
    for n in names:
        q = _join(p, n)
        try:
            os.remove(q)
        except OSError:
            _rmtree(q)
    try:
        os.rmdir(p)
    except OSError:
        pass


def _key(s):
    # a directory name for a host or client ID: the name itself when it is plain and
    # short (as every earlier version did), else "~" and its hex digits (long ones: the
    # first 32 bytes', a CRC-32 and the length; the identity file tells them apart). Never
    # ".", "..", empty, with "/" or NUL, a name the store uses itself, or over 80 bytes.
    if isinstance(s, str):
        s = s.encode()
    if (0 < len(s) <= 32 and s not in (b".", b"..", b"last") and s[-2:] != b".t"
            and all(c in _PLAIN for c in s)):
        return s.decode()
    if len(s) <= 36:
        return "~" + binascii.hexlify(s).decode()
    return "~%s~%08x%d" % (binascii.hexlify(s[:32]).decode(), binascii.crc32(s), len(s))


def _oldkey(s):
    # the 0.1.0 name of a host or client ID that is not plain (it could collide)
    return "~%08x%d" % (binascii.crc32(s), len(s))


def pack(kind, body):
    b = b"MQ" + kind + bytes((_FMT,)) + body
    return b + struct.pack("<I", binascii.crc32(b))


def unpack(kind, data):
    # the body of a file of this kind; ValueError when it is not one
    if len(data) < 8 or data[:3] != b"MQ" + kind or data[3] != _FMT:
        raise ValueError("not a %s file" % kind.decode())
    if struct.unpack("<I", data[-4:])[0] != binascii.crc32(data[:-4]):
        raise ValueError("bad checksum")
    return memoryview(data)[4:-4]


def lstr(b, i):
    # a u16-length-prefixed byte string at b[i]: (bytes, next offset)
    n = b[i] | b[i + 1] << 8
    if i + 2 + n > len(b):
        raise ValueError("truncated")
    return bytes(b[i + 2 : i + 2 + n]), i + 2 + n


def _write(path, data, atomic=True):
    # atomic: write beside, then rename over, so a power cut leaves the old file or the
    # new one; otherwise (a message file, valid only with its CRC) write in place. On
    # failure nothing half-written is left. A directory in the way is damage: removed.
    t = path + ".t" if atomic else path
    try:
        for i in (0, 1):
            try:
                with open(t, "wb") as f:
                    f.write(data)
                if atomic:
                    os.rename(t, path)
                break
            except OSError as e:
                if i or e.errno == _ENOSPC or not (_isdir(t) or _isdir(path)):
                    raise
                _rm(t)
                _rm(path)
    except OSError as e:
        try:
            os.remove(t)
        except OSError:
            pass
        if e.errno == _ENOSPC:
            raise OSError(_ENOSPC, "session store full")
        raise


def _read(path):
    # the whole file, when it is no larger than any file the store writes
    if os.stat(path)[6] > _MAXF:
        raise ValueError("larger than %d bytes: left alone" % _MAXF)
    with open(path, "rb") as f:
        return f.read()


class StoredSession(Session):
    def __init__(self, store, path, client_id, host, capacity):
        super().__init__(client_id, host, capacity)
        self._st = store
        self._p = path
        self._ib = None  # identity as last written
        self.bytes = 0  # message bytes in flash

    # --- loading ---
    def _load(self):
        p = self._p
        st = self._st
        cid = self.client_id
        try:
            b = unpack(b"i", _read(_join(p, "i")))
            self.version = b[0]
            self.expiry = struct.unpack("<I", b[1:5])[0]
            cid, i = lstr(b, 5)
            self.host = lstr(b, i)[0].decode()
            self._ib = bytes(b)
            self.fresh = False
        except (OSError, ValueError, IndexError) as e:
            # the caller named the session: keep its messages, rewrite the identity
            st._report(p, "i", e)
        if cid != self.client_id:
            return False
        try:
            b = unpack(b"u", _read(_join(p, "u")))
            i = 0
            while i < len(b):
                f, i = lstr(b, i + 1)
                self.subs[f] = b[i - len(f) - 3]
        except OSError as e:
            if e.errno != _ENOENT:
                st._report(p, "u", e)
        except (ValueError, IndexError) as e:
            st._report(p, "u", e)
            self.subs = {}
        out = {}
        try:
            b = unpack(b"s", _read(_join(p, "s")))
            self.pid, self.epoch, self.nseq, nr = struct.unpack("<HHIB", b[:9])
            self.rx2 = list(struct.unpack("<%dH" % nr, b[9 : 9 + 2 * nr]))
            i = 9 + 2 * nr
            while i < len(b):
                seq, pid, rel = struct.unpack("<IHB", b[i : i + 7])
                out[seq] = (pid, rel)
                i += 7
        except OSError as e:
            if e.errno != _ENOENT:
                st._report(p, "s", e)
        except (ValueError, IndexError) as e:
            # packet IDs unknown: messages go out again as new ones, nothing is lost
            st._report(p, "s", e)
            self.rx2 = []
        try:
            self.naside = struct.unpack("<I", unpack(b"x", _read(_join(p, "x")))[:4])[0]
        except (OSError, ValueError) as e:
            if getattr(e, "errno", 0) != _ENOENT:
                st._report(p, "x", e)
        self._load_msgs(out)
        return True

    def _load_msgs(self, out):
        names = sorted(n for n in os.listdir(self._p) if n[0] == "m" and len(n) == 9)
        if len(names) > self.cap:
            self._alloc(len(names))  # more stored than the ring holds: make room for all
        st = self._st
        for n in names:
            q = _join(self._p, n)
            try:
                seq = int(n[1:], 16)
                self.nseq = max(self.nseq, seq + 1)  # never written over, even if damaged
                b = unpack(b"m", _read(q))
                fl, pid, ep = struct.unpack("<BHH", b[:5])
                lstr(b, 5)  # validates the topic length
            except ValueError as e:
                # damaged: a message whose write a power cut interrupted (publish never
                # returned it); one too large to be ours is left alone
                st._report(self._p, n, e)
                if not str(e).startswith("larger"):
                    _rm(q)
                continue
            except (OSError, IndexError) as e:
                st._report(self._p, n, e)
                _rm(q)
                continue
            k = self.slot(self.n)
            self.n += 1
            self.seq[k] = seq
            self.top[k] = self.msg[k] = None
            f = (fl & 7) | DISK
            o = out.get(seq)
            if o:
                pid = o[0]
                f |= REL if o[1] else 0
            elif ep != self.epoch:
                pid = 0
            if pid and (not self._use[pid % len(self._use)] or self._held(pid) < 0):
                f |= PID | PIDDISK | SENT  # the broker may have it: resend with DUP
            else:
                pid = 0
            self.ids[k] = pid
            self._mark(pid, 1)
            self.fl[k] = f
            self.sz[k] = len(b) + 8
            self.bytes += len(b) + 8
        self.recount()

    def _alloc(self, cap):
        super()._alloc(cap)
        self.sz = array("H", bytes(2 * cap))  # flash bytes per slot

    # --- hooks from Session ---
    def _save(self, what):
        p = self._p
        if what & IDENT:
            cid = self.client_id
            if not cid:
                return  # a null session is written once the broker assigns the ID
            if self._st._adopt(self):
                p = self._p
            h = self.host.encode()
            ib = struct.pack("<BIH", self.version, self.expiry, len(cid)) + cid
            ib += struct.pack("<H", len(h)) + h
            if ib != self._ib:  # a wake-up that changes nothing writes nothing
                _write(_join(p, "i"), pack(b"i", ib))
                self._ib = ib
            self._st._last(self)
        if what & SUBS:
            b = b"".join(struct.pack("<BH", q, len(f)) + f for f, q in self.subs.items())
            _write(_join(p, "u"), pack(b"u", b))
        if what & HOT:
            b = struct.pack("<HHIB", self.pid, self.epoch, self.nseq, len(self.rx2))
            b += struct.pack("<%dH" % len(self.rx2), *self.rx2)
            for i in range(self.n):
                k = self.slot(i)
                f = self.fl[k]
                if f & REL or (f & PID and f & DISK and not f & PIDDISK):
                    b += struct.pack("<IHB", self.seq[k], self.ids[k], 1 if f & REL else 0)
            _write(_join(p, "s"), pack(b"s", b))

    def _assigned(self, k):
        # a stored QoS 2 message gets its packet ID: in flash before the broker sees it
        if self.fl[k] & DISK and self.fl[k] & 3 == 2:
            self._save(HOT)

    def _keep(self, k):
        f = self.fl[k]
        if f & REL:
            self._save(HOT)
            return
        if f & DISK:
            return
        if not self.client_id:
            raise OSError(_ENOTCONN_ID, "null session: connect first")
        t = self.top[k]
        m = self.msg[k]
        n = 19 + len(t) + len(m)
        if n > 65535 or self.bytes + n > self._st.max_bytes:
            raise OSError(_ENOSPC, "session store full")
        _write(_join(self._p, "m%08x" % self.seq[k]),
               pack(b"m", struct.pack("<BHHH", f & 7, self.ids[k] if f & PID else 0, self.epoch,
                                      len(t)) + t + m), False)
        self.bytes += n
        self.sz[k] = n
        self.fl[k] = f | DISK | (PIDDISK if f & PID else 0)

    def _forget(self, k):
        if self.fl[k] & DISK:
            try:
                os.remove(_join(self._p, "m%08x" % self.seq[k]))
            except OSError as e:
                if e.errno != _ENOENT:
                    raise  # still in flash: the acknowledgement did not complete
            self.bytes -= self.sz[k]

    def _move(self, a, b):
        super()._move(a, b)
        self.sz[b] = self.sz[a]

    def durable(self, k):
        return bool(self.fl[k] & DISK)

    def load(self, k):
        b = unpack(b"m", _read(_join(self._p, "m%08x" % self.seq[k])))
        t, i = lstr(b, 5)
        return t, bytes(b[i:])

    def clear(self):
        super().clear()
        for n in os.listdir(self._p):
            if n[0] == "m":
                _rm(_join(self._p, n))
        self.bytes = 0

    # --- set-aside messages: file x, newest kept within a quarter of max_bytes ---
    def _aside_add(self, r):
        t, m, q, ret, why = r
        w = why.encode() if isinstance(why, str) else b""
        c = 0 if w or not isinstance(why, int) else why
        room = max(512, self._st.max_bytes // 4)
        cut = room - 11 - len(w) - len(t)
        if len(m) > cut:
            m = m[: max(0, cut)]  # kept cut: the reason and topic still tell what it was
        rec = struct.pack("<BiHHH", q | (4 if ret else 0) | (8 if w else 0), c, len(w),
                          len(t), len(m)) + w + t + m
        b = self._aside_raw() + rec
        while len(b) > room and len(b) > len(rec):
            b = b[11 + sum(struct.unpack("<HHH", b[5:11])) :]  # the oldest goes
        _write(_join(self._p, "x"), pack(b"x", struct.pack("<I", self.naside + 1) + b))

    def _aside_raw(self):
        try:
            return bytes(unpack(b"x", _read(_join(self._p, "x")))[4:])
        except (OSError, ValueError) as e:
            if getattr(e, "errno", 0) != _ENOENT:
                self._st._report(self._p, "x", e)
            return b""

    def aside(self):
        b = self._aside_raw()
        r = []
        i = 0
        while i + 11 <= len(b):
            f, c, nw, nt, nm = struct.unpack("<BiHHH", b[i : i + 11])
            i += 11
            w = b[i : i + nw].decode() if f & 8 else c
            r.append((b[i + nw : i + nw + nt], b[i + nw + nt : i + nw + nt + nm], f & 3,
                      bool(f & 4), w))
            i += nw + nt + nm
        return r


_ENOTCONN_ID = const(107)


class SessionStore:
    # root: a directory on the board's filesystem. Problems found while loading (corrupt,
    # truncated, foreign or misshapen files) are printed as "mqttsession: store: ..."
    # lines and kept in .errors; the session starts fresh (or without the damaged part).
    # Every path is root/<host key>/<client ID key>/<file>: nothing outside root is
    # touched, whatever the host or client ID (see _key).
    def __init__(self, root="/.mqtt", max_bytes=32768):
        self.root = root.rstrip("/") or "/"
        self.max_bytes = max_bytes
        self.errors = []
        self._mkdirs(self.root)

    def _mkdirs(self, p):
        # makes p and its parents; inside the root, a file where a directory belongs is
        # damage: reported and removed
        q = ""
        for part in p.split("/"):
            if not part:
                continue
            q += "/" + part if (q or p.startswith("/")) else part
            if not _isdir(q):
                if len(q) > len(self.root) and _exists(q):
                    self._report(q, "", "a file where a directory belongs: removed")
                    _rm(q)
                os.mkdir(q)

    def _report(self, path, name, e):
        msg = "%s/%s: %s" % (path, name, e)
        self.errors.append(msg)
        print("mqttsession: store:", msg, "- starting without it")

    def _host_dir(self, host):
        if isinstance(host, str):
            host = host.encode()
        hd = _join(self.root, _key(host))
        if not _isdir(hd):
            old = _join(self.root, _oldkey(host))  # named as 0.1.0 did: rename
            if old != hd and _isdir(old) and not _exists(hd):
                os.rename(old, hd)
        return hd

    def _dir(self, hd, cid):
        # the directory of this session: its key, or after a collision of long IDs the
        # next free "~<n>" variant; a 0.1.0 name ("~<crc><length>") is renamed to it
        k = _key(cid)
        o = _oldkey(cid)
        free = None
        for n in (k, k + "~1", k + "~2", o):
            p = _join(hd, n)
            if not _isdir(p):
                if free is None and n != o:
                    free = p
                continue
            try:
                if lstr(unpack(b"i", _read(_join(p, "i"))), 5)[0] != cid:
                    continue
            except (OSError, ValueError, IndexError):
                if n != k:
                    continue  # an unreadable identity: only the session's own key claims it
            if n == o and free == _join(hd, k):
                os.rename(p, free)
                return free
            return p
        return free or _join(hd, k + "~3")

    def _new_id(self):
        try:
            import machine

            u = machine.unique_id()
        except (ImportError, AttributeError):
            u = os.urandom(6)
        return b"mqs-" + binascii.hexlify(u)

    def _lastid(self, hd):
        try:
            return bytes(unpack(b"l", _read(_join(hd, _LAST))))
        except (OSError, ValueError) as e:
            if getattr(e, "errno", 0) not in (_ENOENT, _ENOTDIR):
                self._report(hd, _LAST, e)
            return None

    def get(self, host, client_id=None, capacity=16):
        hd = self._host_dir(host)
        if client_id is None:
            client_id = self._lastid(hd) or self._any(hd) or self._new_id()
        if isinstance(client_id, str):
            client_id = client_id.encode()
        if not client_id:
            return self.null_session(host, capacity)
        p = self._dir(hd, client_id)
        s = StoredSession(self, p, client_id, host, capacity)
        if _isdir(p) and s._load():
            s._save(IDENT)  # rewrites a damaged identity, else writes nothing
            return s
        self._mkdirs(p)
        s._save(IDENT)
        return s

    def null_session(self, host, capacity=16):
        # client ID "" until the broker assigns one (MQTT 5); then it is stored
        p = _join(self._host_dir(host), "~null")
        _rm(p)
        self._mkdirs(p)
        return StoredSession(self, p, b"", host, capacity)

    def _adopt(self, s):
        # a null session got its ID: move it where get() finds it. A session already
        # stored under that ID is never overwritten: it is what get() finds from now on
        hd = self._host_dir(s.host)
        p = self._dir(hd, s.client_id)
        if p == s._p or not s._p.endswith("~null"):
            return False
        if _exists(p):
            self._report(p, "", "the assigned client ID has a stored session: kept")
            return False
        os.rename(s._p, p)
        s._p = p
        return True

    def _last(self, s):
        hd = self._host_dir(s.host)
        if self._lastid(hd) != s.client_id:
            _write(_join(hd, _LAST), pack(b"l", s.client_id))

    def _any(self, hd):
        # the client ID of some session stored for this host, or None
        try:
            names = os.listdir(hd)
        except OSError:
            return None
        for n in names:
            if n != _LAST and n != "~null" and not n.endswith(".t"):
                try:
                    b = unpack(b"i", _read(_join(hd, n, "i")))
                    return lstr(b, 5)[0]
                except (OSError, ValueError, IndexError):
                    pass
        return None

    def has_any(self, host):
        return self._any(self._host_dir(host)) is not None

    def delete(self, host, client_id):
        if isinstance(client_id, str):
            client_id = client_id.encode()
        hd = self._host_dir(host)
        p = self._dir(hd, client_id)
        if _isdir(p):
            _rmtree(p)
        if self._lastid(hd) == client_id:
            _rm(_join(hd, _LAST))
