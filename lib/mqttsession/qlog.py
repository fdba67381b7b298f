# The queue in flash of a StoredSession (stored.py): the tail files t0/<j>..t3/<j> and
# the segments q/<first><last><count><bytes>, as functions of the session so they cost
# no class. A message record: seq, flags, packet ID, epoch, topic and payload lengths,
# topic, payload, CRC-32 of all that. Reading the backlog (messages waiting in flash
# beyond the RAM ring) and sealing segments (more than _TAIL messages queued) is in
# qseg.py, loaded when first needed; finding them at start (scan) in load.py, freed after.
from micropython import const
from builtins import len, bytes, memoryview  # as names of this module: one lookup
import binascii
import struct
from struct import unpack_from

from .store import _join, _write, pack

_TAIL = const(32)  # messages per segment at most
_TDIRS = const(4)  # tail files spread over t0/..t3/: each littlefs metadata pair
# stays small, so rewriting a tail file compacts (erases) it rarely
_SEGB = const(3072)  # a segment is sealed early at this many bytes (one 4 KiB block)
_RH = const(13)  # record header: <IBHHHH
_ENOSPC = const(28)


def _parse(b, i):
    # the record at b[i:]: (seq, flags, pid, epoch, topic, payload, its size)
    seq, f, pid, ep, nt, nm = unpack_from("<IBHHHH", b, i)
    j = i + _RH + nt + nm
    v = memoryview(b)  # topic and payload copied once, from the buffer read
    if j + 4 > len(b) or unpack_from("<I", b, j)[0] != binascii.crc32(v[i:j]):
        raise ValueError("bad record (length or CRC)")
    nt += i + _RH  # where the payload starts
    return seq, f, pid, ep, bytes(v[i + _RH : nt]), bytes(v[nt:j]), j + 4 - i


def name(s, i):
    # the file name of segment i
    c = s._sc[i]
    return "%08x%08x%02x%06x" % (s._sg[i], s._sl[i], c >> 24, c & 0xFFFFFF)


def tp(s, j):
    # the path of tail file j
    return _join(s._p, "t%d/%d" % (j % _TDIRS, j // _TDIRS))


def append(s, seq, f, pid, e, t, m):
    # writes one message (e: the epoch of its packet ID) at the end of the queue in
    # flash; returns its record
    r = struct.pack("<IBHHHH", seq, f, pid, e, len(t), len(m)) + t + m
    r += struct.pack("<I", binascii.crc32(r))
    if len(r) > 65535 or s.bytes + len(r) > s._st.max_bytes:
        raise OSError(_ENOSPC, "session store full")
    if s._tn == _TAIL:
        from .qseg import seal

        seal(s)  # an earlier seal failed (flash full): now or never
    j = s._tn
    _write(tp(s, j), pack(b"t", r), False)
    s._tail[j] = seq
    s._tn += 1
    s._tb += len(r)
    s.bytes += len(r)
    if s._tn == _TAIL or s._tb >= _SEGB:
        from .qseg import seal

        try:
            seal(s)
        except OSError:
            pass  # the message is in flash already; the next one seals
    return r
