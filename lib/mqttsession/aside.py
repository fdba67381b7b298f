# Set-aside messages of a StoredSession (stored.py), in its file "aside": the naside
# count, then records (flags, reason code, reason text, topic, payload), the newest kept
# within a quarter of the store's max_bytes. Loaded only when a message is set aside or
# the list is read.
import struct

from .store import _join, _write, pack


def add(s, r):
    t, m, q, ret, why = r
    w = why.encode() if isinstance(why, str) else b""
    c = 0 if w or not isinstance(why, int) else why
    room = max(512, s._st.max_bytes // 4)
    cut = room - 11 - len(w) - len(t)
    if len(m) > cut:
        m = m[: max(0, cut)]  # kept cut: the reason and topic still tell what it was
    rec = struct.pack("<BiHHH", q | (4 if ret else 0) | (8 if w else 0), c, len(w),
                      len(t), len(m)) + w + t + m
    b = _raw(s) + rec
    while len(b) > room and len(b) > len(rec):
        b = b[11 + sum(struct.unpack("<HHH", b[5:11])) :]  # the oldest goes
    _write(_join(s._p, "aside"), pack(b"x", struct.pack("<I", s.naside + 1) + b))


def _raw(s):
    b = s._st._body(s._p, "aside", b"x")
    return bytes(b[4:]) if b is not None else b""


def records(s):
    b = _raw(s)
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
