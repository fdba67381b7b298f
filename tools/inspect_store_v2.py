"""Format 2 of the session store (lib/mqttsession/stored.py), for tools/inspect_store.py:
the identity, subscriptions, hot state, set-aside messages, and the queue in its tail
files (t0/<j> .. t3/<j>) and segments (q/<first><last><count><bytes>), read the way the device
reads them."""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass, field
from typing import Any, Protocol

TAIL = 32  # tail slots the device reads (stored._TAIL)
RECORD = struct.Struct("<IBHHHH")  # seq, flags, packet ID, epoch, topic and payload lengths


MAXF = 65600  # no store file is larger (store._MAXF): the library reads none of a larger one


class Damaged(Exception):
    """A file that does not parse; str() is the reason."""


class TooLarge(OSError):
    """A file larger than MAXF: the library reports it as damage and reads none of it
    (store._read), so its records are not pending."""

    def __init__(self, n: int) -> None:
        super().__init__(f"larger than {MAXF} bytes: left alone ({n} bytes)")


def unreadable(e: OSError) -> str:
    """The reason for a file that could not be read."""
    return str(e) if isinstance(e, TooLarge) else f"unreadable: {e}"


@dataclass
class Record:
    seq: int
    flags: int
    pid: int
    epoch: int
    topic: bytes
    payload: bytes
    size: int


def parse_record(b: bytes, i: int) -> Record:
    if i + RECORD.size > len(b):
        raise Damaged("truncated record")
    seq, fl, pid, ep, nt, nm = RECORD.unpack_from(b, i)
    j = i + RECORD.size + nt + nm
    if j + 4 > len(b) or struct.unpack_from("<I", b, j)[0] != binascii.crc32(b[i:j]):
        raise Damaged(f"bad record at offset {i}")
    return Record(seq, fl, pid, ep, b[i + RECORD.size : i + RECORD.size + nt],
                  b[i + RECORD.size + nt : j], j + 4 - i)


@dataclass
class Hot2:
    pid: int = 0
    epoch: int = 0
    nseq: int = 0
    watermark: int = 0
    rx2: list[int] = field(default_factory=list)
    done: list[int] = field(default_factory=list)
    out: dict[int, tuple[int, bool]] = field(default_factory=dict)


def parse_hot2(b: bytes) -> Hot2:
    if len(b) < 13:
        raise Damaged("truncated")
    pid, epoch, nseq, w, nr = struct.unpack_from("<HHIIB", b)
    i = 13 + 2 * nr
    if i + 2 > len(b):
        raise Damaged("truncated (incoming QoS 2 IDs)")
    rx2 = list(struct.unpack_from(f"<{nr}H", b, 13))
    nd = struct.unpack_from("<H", b, i)[0]
    i += 2
    if i + 4 * nd > len(b) or (len(b) - i - 4 * nd) % 7:
        raise Damaged("truncated (completions or QoS 2 entries)")
    done = list(struct.unpack_from(f"<{nd}I", b, i))
    i += 4 * nd
    out = {}
    for j in range(i, len(b), 7):
        seq, p, rel = struct.unpack_from("<IHB", b, j)
        out[seq] = (p, bool(rel))
    return Hot2(pid, epoch, nseq, w, rx2, done, out)


@dataclass
class Aside:
    topic: str
    qos: int
    retain: bool
    reason: str
    length: int
    preview: str


def parse_aside(b: bytes) -> tuple[int, list[tuple[bytes, bytes, int, bool, str]]]:
    if len(b) < 4:
        raise Damaged("truncated")
    n = struct.unpack_from("<I", b)[0]
    out = []
    i = 4
    while i < len(b):
        if i + 11 > len(b):
            raise Damaged("truncated record")
        f, c, nw, nt, nm = struct.unpack_from("<BiHHH", b, i)
        i += 11
        if i + nw + nt + nm > len(b):
            raise Damaged("truncated record")
        why = b[i : i + nw].decode("utf-8", "backslashreplace") if f & 8 else f"code {c:#x}"
        out.append((b[i + nw : i + nw + nt], b[i + nw + nt : i + nw + nt + nm], f & 3,
                    bool(f & 4), why))
        i += nw + nt + nm
    return n, out


class Source(Protocol):
    def entries(self, path: str) -> list[tuple[str, bool]]: ...

    def read(self, path: str) -> bytes: ...


def segment_name(n: str) -> tuple[int, int, int, int]:
    """(first seq, last seq, count, bytes) from a segment's file name."""
    if len(n) != 24:
        raise ValueError(n)
    return int(n[:8], 16), int(n[8:16], 16), int(n[16:18], 16), int(n[18:], 16)


def slot(n: str) -> int:
    """The tail slot of tail file t<j % 4>/<j // 4>; -1 for a name the device never reads."""
    return int(n[3:]) * 4 + int(n[1]) if n[3:].isdigit() and n[3:] == str(int(n[3:])) else -1


def _tail_seqs(src: Source, path: str, unpack: Any) -> list[int]:
    """The seqs the tail slots the device reads (0..31) hold, damaged ones left out."""
    out = []
    for sub in ("t0", "t1", "t2", "t3"):
        try:
            ents = src.entries(f"{path}/{sub}")
        except OSError:
            continue
        for n, d in ents:
            if d or not 0 <= slot(f"{sub}/{n}") < TAIL:
                continue
            try:
                out.append(parse_record(unpack(b"t", src.read(f"{path}/{sub}/{n}"), 2), 0).seq)
            except Exception:  # OSError, Damaged, struct.error: as the device skips it
                continue
    return out


def queue(src: Source, path: str, hot: Hot2, bad: Any, unpack: Any) -> list[tuple[str, Record]]:
    """The pending messages in send order: (file, record), as the device loads them
    (resume.scan): a seal a power cut interrupted is passed over, segments whose seq
    ranges overlap (0.2.23 and earlier, mended at load by qmend.py) give each message
    once, and a tail file holding a message a segment holds is a sealed one's old copy."""
    w = hot.watermark
    done = set(hot.done)
    try:
        ents = src.entries(path + "/q")
    except OSError:
        ents = []
    segs: list[tuple[int, str, int, int, int]] = []  # (first, name, last, count, bytes)
    for n, d in ents:
        if d:  # the library reports it (and removes it)
            bad("q/" + n, Damaged("a directory where a file belongs"))
            continue
        try:
            a, z, c, nb = segment_name(n)
        except ValueError:
            if not n.endswith(".t"):
                bad("q/" + n, Damaged("not a segment"))
            continue
        if z >= w:  # else complete; the device removes it
            segs.append((a, n, z, c, nb))
    segs.sort()
    top = max((n for n, _ in ents), default="")
    if segs and segs[-1][1] == top:
        # shorter (or longer) than its name says, the newest segment: a seal the power
        # cut interrupted when the tail still holds every one of its messages (resume.scan
        # removes it, silently); else damage, its records before the damage read
        a, n, z, c, nb = segs[-1]
        try:
            size = len(src.read(f"{path}/q/{n}"))
        except OSError:
            size = nb + 4
        if size != nb + 4 and sum(a <= q <= z for q in _tail_seqs(src, path, unpack)) == c:
            segs.pop()
    last = max([w] + [z + 1 for _, _, z, _, _ in segs])
    # overlapping ranges: 0.2.23 wrote them, and its tail out of order too (the device
    # mends them and removes the tail's older copies without a report)
    mend = any(segs[i][0] <= max(x[2] for x in segs[:i]) for i in range(1, len(segs)))
    # by seq: of two segments holding one (a mend the power cut interrupted), the narrower
    best: dict[int, tuple[int, str, Record]] = {}
    for a, n, z, _c, nb in segs:
        try:
            b = src.read(f"{path}/q/{n}")
            if b[:4] != b"MQg\x02":
                raise Damaged("not a segment")
            whole = len(b) == nb + 4
            if not whole:
                bad("q/" + n, Damaged(f"{len(b)} bytes, its name says {nb + 4}"))
            i = 4
            while i < len(b):
                try:
                    r = parse_record(b, i)
                except Damaged:
                    if whole:
                        raise
                    break  # reported already (its size)
                i += r.size
                o = best.get(r.seq)
                if r.seq >= w and r.seq not in done and (o is None or z - a < o[0]):
                    best[r.seq] = (z - a, "q/" + n, r)
        except (OSError, Damaged) as e:
            bad("q/" + n, e if isinstance(e, Damaged) else Damaged(unreadable(e)))
    recs: list[tuple[str, Record]] = [(f, r) for _, f, r in best.values()]
    tails = []
    have: set[int] = set()  # the slots with an entry
    for sub in ("t0", "t1", "t2", "t3"):
        try:
            for n, d in src.entries(f"{path}/{sub}"):
                have.add(slot(f"{sub}/{n}"))
                if d:
                    bad(f"{sub}/{n}", Damaged("a directory where a file belongs"))
                else:
                    tails.append(f"{sub}/{n}")
        except OSError:
            pass
    # an empty tail file is a tail write cut short (a power cut or a full filesystem
    # between creating the file and writing it: that publish never returned), unless a
    # later slot holds a message written after it: then it is damage (as the device sees
    # it). So is a sealed message older than one in a slot before it, below that slot,
    # or no file there: the tail is written in order of seq, so that is littlefs having
    # dropped the newest commits of its directory, and the message written there is lost
    cut: list[tuple[int, str, str]] = []
    held: list[tuple[int, str, Record]] = []
    for n in tails:
        try:
            b = src.read(f"{path}/{n}")
            if not b:
                cut.append((slot(n), n, "empty, a later one is not"))
                continue
            held.append((slot(n), n, parse_record(unpack(b"t", b, 2), 0)))
        except (OSError, Damaged, Exception) as e:
            bad(n, Damaged(str(e)))
    newest = hi = -1
    lost = False
    # 0.2.23 wrote a QoS 1 message in flight (a packet ID) to the tail when its publish
    # returned, after newer ones were sealed meanwhile: pending, in no segment, below the
    # newest. The device puts it in a segment of its own and sends it first (resume.scan),
    # below the tail's newest, and in the run of them from the slot next to it (one for
    # each publish that returned unacknowledged) only when the slot after that run holds
    # a message a segment holds (else they are an earlier round's copies)
    end = 1 + max((j for j, _, r in held if r.seq >= last), default=-1)
    at = {j: r for j, _, r in held}

    def sealed(seq: int) -> bool:
        return any(a <= seq <= z for a, _, z, _, _ in segs)

    def old(r: Record) -> bool:
        return bool(r.seq < last and r.seq >= w and r.flags & 3 == 1 and r.pid
                    and r.seq not in done)

    def own(r: Record) -> bool:
        # in the segment of its own an earlier load made
        return any(a == z == r.seq and c == 1 and nb == r.size for a, _, z, c, nb in segs)

    stop = end  # the slot after that run
    while stop in at and old(at[stop]) and (not sealed(at[stop].seq) or own(at[stop])):
        stop += 1
    ran = stop in at and sealed(at[stop].seq)
    for j, n, r in sorted(held, key=lambda x: x[0]):
        if old(r) and not sealed(r.seq) and (0 <= j < end or end <= j < stop and ran):
            recs.append((n, r))
        elif old(r) and own(r):
            pass
        elif r.seq >= last:
            newest = max(newest, j)
            if r.seq >= w and r.seq not in done:
                recs.append((n, r))
            if 0 <= j and r.seq < hi and not mend and not lost:
                # a message of the round before still pending: its segment is gone, and
                # those of that round the newer ones overwrote are lost
                bad("q", Damaged(f"a segment lost: tail slot {j} is from an older round"))
                lost = True
        elif 0 <= j and r.seq < hi and not mend:
            cut.append((j, n, "older than the one before it: its message lost"))
        if j >= 0:
            hi = max(hi, r.seq)
    cut += [(j, f"t{j % 4}/{j // 4}", "missing, a later one is not") for j in range(newest)
            if j not in have]
    for j, n, why in sorted(cut):
        if 0 <= j < newest:
            bad(n, Damaged(why))
    recs.sort(key=lambda x: x[1].seq)
    return recs
