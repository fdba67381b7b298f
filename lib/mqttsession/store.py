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
_LAST = "last"


def _join(*parts):
    return "/".join(parts)


def _exists(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False


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
    # a file name for a host or client ID: kept readable when it is plain and short
    if isinstance(s, str):
        s = s.encode()
    if s and len(s) <= 32 and all(c in b"-_.0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                  for c in s):
        return s.decode()
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
    # failure nothing half-written is left.
    t = path + ".t" if atomic else path
    try:
        with open(t, "wb") as f:
            f.write(data)
        if atomic:
            os.rename(t, path)
    except OSError as e:
        try:
            os.remove(t)
        except OSError:
            pass
        if e.errno == _ENOSPC:
            raise OSError(_ENOSPC, "session store full")
        raise


def _read(path):
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
        self._load_msgs(out)
        return True

    def _load_msgs(self, out):
        names = sorted(n for n in os.listdir(self._p) if n[0] == "m" and len(n) == 9)
        if len(names) > self.cap:
            self._alloc(len(names))  # more stored than the ring holds: make room for all
        used = []
        for n in names:
            q = _join(self._p, n)
            try:
                b = unpack(b"m", _read(q))
                seq = int(n[1:], 16)
                fl, pid, ep = struct.unpack("<BHH", b[:5])
                lstr(b, 5)  # validates the topic length
            except (OSError, ValueError, IndexError) as e:
                # a message whose write a power cut interrupted: publish never returned it
                self._st._report(self._p, n, e)
                try:
                    os.remove(q)
                except OSError:
                    pass
                continue
            k = self.slot(self.n)
            self.n += 1
            self.seq[k] = seq
            self.nseq = max(self.nseq, seq + 1)
            self.top[k] = self.msg[k] = None
            f = (fl & 7) | DISK
            o = out.get(seq)
            if o:
                pid = o[0]
                f |= REL if o[1] else 0
            elif ep != self.epoch:
                pid = 0
            if pid and pid not in used:
                used.append(pid)
                self.ids[k] = pid
                f |= PID | PIDDISK | SENT  # the broker may have it: resend with DUP
            else:
                self.ids[k] = 0
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
                os.remove(_join(self._p, n))
        self.bytes = 0


_ENOTCONN_ID = const(107)


class SessionStore:
    # root: a directory on the board's filesystem. Problems found while loading (corrupt,
    # truncated or foreign files) are printed as "mqttsession: store: ..." lines and kept
    # in .errors; the session starts fresh (or without the damaged part) and loads.
    def __init__(self, root="/.mqtt", max_bytes=32768):
        self.root = root.rstrip("/") or "/"
        self.max_bytes = max_bytes
        self.errors = []
        self._mkdirs(self.root)

    @staticmethod
    def _mkdirs(p):
        q = ""
        for part in p.split("/"):
            if not part:
                continue
            q += "/" + part if (q or p.startswith("/")) else part
            if not _exists(q):
                os.mkdir(q)

    def _report(self, path, name, e):
        msg = "%s/%s: %s" % (path, name, e)
        self.errors.append(msg)
        print("mqttsession: store:", msg, "- starting without it")

    def _host_dir(self, host):
        return _join(self.root, _key(host))

    def _new_id(self):
        try:
            import machine

            u = machine.unique_id()
        except (ImportError, AttributeError):
            u = os.urandom(6)
        return b"mqs-" + binascii.hexlify(u)

    def get(self, host, client_id=None, capacity=16):
        hd = self._host_dir(host)
        if client_id is None:
            try:
                client_id = bytes(unpack(b"l", _read(_join(hd, _LAST))))
            except (OSError, ValueError) as e:
                if not isinstance(e, OSError):
                    self._report(hd, _LAST, e)
                client_id = self._any(hd) or self._new_id()
        if isinstance(client_id, str):
            client_id = client_id.encode()
        if not client_id:
            return self.null_session(host, capacity)
        p = _join(hd, _key(client_id))
        s = StoredSession(self, p, client_id, host, capacity)
        if _exists(p):
            if s._load():
                s._save(IDENT)  # rewrites a damaged identity, else writes nothing
                return s
            self._report(p, "i", "belongs to another client ID")
            _rmtree(p)
            s = StoredSession(self, p, client_id, host, capacity)
        self._mkdirs(p)
        s._save(IDENT)
        return s

    def null_session(self, host, capacity=16):
        # client ID "" until the broker assigns one (MQTT 5); then it is stored
        p = _join(self._host_dir(host), "~null")
        _rmtree(p)
        self._mkdirs(p)
        return StoredSession(self, p, b"", host, capacity)

    def _adopt(self, s):
        # a null session got its ID: move it where get() finds it
        p = _join(self._host_dir(s.host), _key(s.client_id))
        if p == s._p:
            return False
        _rmtree(p)
        os.rename(s._p, p)
        s._p = p
        return True

    def _last(self, s):
        hd = self._host_dir(s.host)
        try:
            if bytes(unpack(b"l", _read(_join(hd, _LAST)))) == s.client_id:
                return
        except (OSError, ValueError):
            pass
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
        _rmtree(_join(hd, _key(client_id)))
        try:
            if bytes(unpack(b"l", _read(_join(hd, _LAST)))) == client_id:
                os.remove(_join(hd, _LAST))
        except (OSError, ValueError):
            pass
