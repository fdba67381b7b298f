"""Print the MQTT sessions kept in a SessionStore (lib/mqttsession/store.py).

    python tools/inspect_store.py --image flash.img                 # littlefs image
    python tools/inspect_store.py --image flash.img --root /.mqtt-test --json
    python tools/inspect_store.py --dir .mqtt                       # copied off a board

A directory comes from ``mpremote cp -r :/.mqtt .`` (give either the copied store or a
directory holding it). Without --root the store is looked for at /.mqtt, then in the
source's top directory itself (a copied store), then in every top-level directory that
holds host directories with sessions.

For each session: host, client ID, protocol version, session expiry, last packet ID,
epoch, incoming QoS 2 IDs, the QoS 2 packet IDs and releases of the hot state,
subscriptions and the pending messages in send order. A message's packet ID is the one
the device would resend it with: the message file's own ID counts only when its epoch is
the hot state's (a later loss of the broker's session voids it), an entry of the hot
state overrides it, and an ID held by an earlier message is not reused ("-": published
as a new message). Damaged files are listed with the reason; the device drops a damaged
message file when it loads the session, and starts without a damaged identity,
subscription or hot-state file. A directory where one of the store's files belongs (or a
file where one of its directories belongs) is damage too, as the device reports it.
Files ending in ".t" are leftovers of an interrupted atomic replace; the device ignores
them and overwrites them with its next write.

Nothing is ever written: an image is read into memory and mounted there.

Exit status: 0 when every file parsed, 1 when some file is damaged (everything else is
still reported), 2 on usage errors, an image that does not mount or no store found.
"""

from __future__ import annotations

import argparse
import binascii
import json
import os
import re
import struct
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import inspect_store_v2 as v2

FORMAT = 1  # the files parsed in this module; inspect_store_v2 reads format 2
FORMATS = (1, 2)  # every format the library has written
LAST = "last"
NULL_DIR = "~null"
DEFAULT_ROOT = "/.mqtt"
PREVIEW = 32  # payload bytes shown
_PLAIN = frozenset(b"-_.0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_MSG = re.compile(r"m.{8}\Z", re.S)  # what the device takes for a message file
_HEX8 = re.compile(r"[0-9a-fA-F]{8}\Z")
# a session of a newer format set aside by SessionStore(newer="aside") (migrate.newer);
# no session directory's own name ends so (store.py's _key)
_NEWER_ASIDE = re.compile(r"~new[0-9]*\Z")
_SESSION_FILES = frozenset(("i", "u", "s", "id", "subs", "owed", "hot", "aside"))
_SESSION_DIRS = frozenset(("q", "t0", "t1", "t2", "t3"))
# the library reports these as damage (and removes them) when it loads the session
NOT_A_FILE = "a directory where a file belongs"
NOT_A_DIR = "a file where a directory belongs"
VERSIONS = {3: "3.1", 4: "3.1.1", 5: "5"}
NEVER = 0xFFFFFFFF


class Damaged(Exception):
    """A file that does not parse; str() is the reason."""


# --------------------------------------------------------------------------------------
# The file format (mirrors lib/mqttsession/store.py)


def key(name: bytes) -> str:
    """The directory name the store uses for a host or client ID (store._key)."""
    if (0 < len(name) <= 32 and name not in (b".", b"..", b"last")
            and not name.endswith(b".t") and all(c in _PLAIN for c in name)):
        return name.decode()
    if len(name) <= 36:
        return "~" + name.hex()
    return f"~{name[:32].hex()}~{binascii.crc32(name):08x}{len(name)}"


def old_key(name: bytes) -> str:
    """The 0.1.0 name of a host or client ID that is not plain (renamed when opened)."""
    return f"~{binascii.crc32(name):08x}{len(name)}"


def belongs(name: bytes, d: str) -> bool:
    """Whether directory d may hold the session or host called name."""
    k = key(name)
    return d in (k, k + "~1", k + "~2", k + "~3", old_key(name))


def _named(d: str) -> str | None:
    """The client ID a session directory without an identity file is named for, when its
    name tells (key() of a plain ID, or of one of up to 36 bytes); else None."""
    if not d.startswith("~"):
        return d
    h = d[1:]
    if len(h) % 2 or len(h) > 72 or not re.fullmatch(r"[0-9a-f]+", h):
        return None
    b = bytes.fromhex(h)
    return text(b) if key(b) == d else None  # (not a 0.1.0 name, old_key)


def moved_to(cid: bytes, d: str) -> bytes | None:
    """The client ID "<cid>~old<n>" whose directory d is, or None: migrate.aside_old
    renames session cid there, then rewrites its identity (a power cut between the two
    leaves cid's identity, which the library takes for the moved session's: dirs.moved)."""
    for i in range(100):  # "~old", "~old1"...: the first free one
        n = cid + b"~old" + (str(i).encode() if i else b"")
        if belongs(n, d):
            return n
    return None


def pack(kind: bytes, body: bytes, version: int = FORMAT) -> bytes:
    """A whole file of this kind: "MQ" + kind + format version + body + CRC-32."""
    b = b"MQ" + kind + bytes((version,)) + body
    return b + struct.pack("<I", binascii.crc32(b))


def unpack(kind: bytes, data: bytes, version: int = FORMAT) -> bytes:
    """The body of a file of this kind and format; Damaged when it is not one."""
    if len(data) < 8:
        raise Damaged(f"too short ({len(data)} bytes)")
    if data[:2] != b"MQ":
        raise Damaged("not a session store file (no MQ header)")
    if data[2:3] != kind:
        raise Damaged(f"not a {kind.decode()} file (kind {data[2:3]!r})")
    if data[3] > max(FORMATS):
        raise Damaged(f"format {data[3]}, newer than this tool reads: the library refuses "
                      "it too")
    if data[3] != version:
        raise Damaged(f"format version {data[3]} where {version} belongs")
    if struct.unpack("<I", data[-4:])[0] != binascii.crc32(data[:-4]):
        raise Damaged("bad checksum")
    return data[4:-4]


def lstr(b: bytes, i: int) -> tuple[bytes, int]:
    """A u16-length-prefixed byte string at b[i]: (bytes, next offset)."""
    if i + 2 > len(b):
        raise Damaged("truncated")
    n = b[i] | b[i + 1] << 8
    if i + 2 + n > len(b):
        raise Damaged("truncated")
    return b[i + 2 : i + 2 + n], i + 2 + n


@dataclass
class Identity:
    version: int
    expiry: int
    client_id: bytes
    host: bytes


def parse_identity(body: bytes) -> Identity:
    if len(body) < 5:
        raise Damaged("truncated")
    version = body[0]
    expiry = struct.unpack("<I", body[1:5])[0]
    cid, i = lstr(body, 5)
    host, i = lstr(body, i)
    if i != len(body):
        raise Damaged(f"{len(body) - i} unexpected bytes after the host")
    return Identity(version, expiry, cid, host)


def parse_subs(body: bytes) -> list[tuple[bytes, int]]:
    subs: list[tuple[bytes, int]] = []
    i = 0
    while i < len(body):
        qos = body[i]
        f, i = lstr(body, i + 1)
        subs.append((f, qos))
    return subs


@dataclass
class Hot:
    pid: int = 0
    epoch: int = 0
    nseq: int = 0
    rx2: list[int] = field(default_factory=list)
    out: dict[int, tuple[int, bool]] = field(default_factory=dict)  # seq -> (pid, released)


def parse_hot(body: bytes) -> Hot:
    if len(body) < 9:
        raise Damaged("truncated")
    pid, epoch, nseq, nr = struct.unpack("<HHIB", body[:9])
    i = 9 + 2 * nr
    if i > len(body):
        raise Damaged("truncated (incoming QoS 2 IDs)")
    rx2 = list(struct.unpack(f"<{nr}H", body[9:i]))
    if (len(body) - i) % 7:
        raise Damaged("truncated (QoS 2 entries)")
    out: dict[int, tuple[int, bool]] = {}
    for j in range(i, len(body), 7):
        seq, p, rel = struct.unpack("<IHB", body[j : j + 7])
        out[seq] = (p, bool(rel))
    return Hot(pid, epoch, nseq, rx2, out)


@dataclass
class RawMessage:
    flags: int
    pid: int
    epoch: int
    topic: bytes
    payload: bytes


def parse_message(body: bytes) -> RawMessage:
    if len(body) < 7:
        raise Damaged("truncated")
    fl, pid, epoch = struct.unpack("<BHH", body[:5])
    topic, i = lstr(body, 5)
    return RawMessage(fl, pid, epoch, topic, body[i:])


# --------------------------------------------------------------------------------------
# Sources: a littlefs image or a plain directory, both seen with "/"-rooted paths


class Source(Protocol):
    label: str

    def entries(self, path: str) -> list[tuple[str, bool]]:
        """(name, is_dir) of a directory, sorted by name; OSError when it is not one."""
        ...

    def read(self, path: str) -> bytes: ...


def _join(*parts: str) -> str:
    return "/" + "/".join(p.strip("/") for p in parts if p.strip("/"))


class ImageSource:
    """A littlefs image, mounted in memory (the file itself is never written)."""

    def __init__(self, path: Path, block_size: int, block_count: int | None) -> None:
        from littlefs import LittleFS
        from littlefs.context import UserContext

        self.label = f"image {path}"
        data = bytearray(path.read_bytes())
        if block_size <= 0:
            raise ValueError(f"bad block size {block_size}")
        if block_size % 32:  # else littlefs's C code aborts the process (an assert)
            raise ValueError(f"bad block size {block_size}: littlefs blocks are a multiple "
                             f"of its 32-byte read and prog size")
        whole = len(data) // block_size
        if whole < 2:
            raise ValueError(f"{path}: {len(data)} bytes is not a littlefs image "
                             f"of {block_size}-byte blocks")
        # From the file size first, then as the superblock says (block_count 0).
        counts = [block_count] if block_count is not None else [whole, 0]
        err: Exception | None = None
        for n in counts:
            fs = LittleFS(context=UserContext(buffer=bytearray(data)), block_size=block_size,
                          block_count=n, read_size=32, prog_size=32, mount=False)
            try:
                fs.mount()
            except Exception as e:  # LittleFSError, or ValueError for a bad geometry
                err = e
                continue
            self.fs = fs
            return
        shown = block_count if block_count is not None else whole
        raise ValueError(f"{path} does not mount as littlefs with {block_size}-byte blocks "
                         f"({shown} blocks): {err}; check --block-size / --block-count")

    def entries(self, path: str) -> list[tuple[str, bool]]:
        try:
            st = self.fs.stat(path)
            if st.type != st.TYPE_DIR:
                raise NotADirectoryError(path)
            return sorted((e.name, e.type == e.TYPE_DIR) for e in self.fs.scandir(path))
        except OSError:
            raise
        except Exception as e:  # LittleFSError
            raise OSError(str(e)) from e

    def read(self, path: str) -> bytes:
        try:
            n = self.fs.stat(path).size
            if n > v2.MAXF:
                raise v2.TooLarge(n)
            with self.fs.open(path, "rb") as f:
                return bytes(f.read())
        except OSError:
            raise
        except Exception as e:  # LittleFSError
            raise OSError(str(e)) from e


class DirSource:
    """A directory tree on the host, e.g. copied off a board with mpremote."""

    def __init__(self, path: Path) -> None:
        if not path.is_dir():
            raise ValueError(f"{path} is not a directory")
        self.base = path
        self.label = f"directory {path}"

    def _p(self, path: str) -> Path:
        return self.base / path.strip("/")

    def entries(self, path: str) -> list[tuple[str, bool]]:
        with os.scandir(self._p(path)) as it:
            return sorted((e.name, e.is_dir()) for e in it)

    def read(self, path: str) -> bytes:
        n = self._p(path).stat().st_size
        if n > v2.MAXF:
            raise v2.TooLarge(n)
        return self._p(path).read_bytes()


def _is_dir(src: Source, path: str) -> bool:
    try:
        src.entries(path)
        return True
    except OSError:
        return False


def _looks_like_session(src: Source, path: str) -> bool:
    if path.rsplit("/", 1)[-1] == NULL_DIR:
        return True
    try:
        names = [n for n, d in src.entries(path) if not d]
    except OSError:
        return False
    return any(n.removesuffix(".t") in _SESSION_FILES or _MSG.match(n) for n in names)


def _looks_like_host(src: Source, path: str) -> bool:
    try:
        ents = src.entries(path)
    except OSError:
        return False
    return any((n == LAST and not d) or (d and _looks_like_session(src, _join(path, n)))
               for n, d in ents)


def _looks_like_store(src: Source, path: str) -> bool:
    try:
        ents = src.entries(path)
    except OSError:
        return False
    return any(d and _looks_like_host(src, _join(path, n)) for n, d in ents)


def find_roots(src: Source) -> list[str]:
    """Where the session stores are when no --root is given."""
    if _is_dir(src, DEFAULT_ROOT):
        return [DEFAULT_ROOT]
    if _looks_like_store(src, "/"):
        return ["/"]  # a store copied off a board, given directly
    return [_join(n) for n, d in src.entries("/") if d and _looks_like_store(src, _join(n))]


# --------------------------------------------------------------------------------------
# The report


def text(b: bytes) -> str:
    return b.decode("utf-8", "backslashreplace")


def preview(b: bytes, n: int = PREVIEW) -> str:
    s = "".join(chr(c) if 32 <= c < 127 else "." for c in b[:n])
    return s + "..." if len(b) > n else s


@dataclass
class Problem:
    path: str
    reason: str


@dataclass
class Message:
    file: str
    seq: int
    qos: int
    retain: bool
    pid: int | None  # the ID it is resent with; None: goes out as a new message
    released: bool  # QoS 2 after PUBREC: only PUBREL is (re)sent
    stored_pid: int
    stored_epoch: int
    topic: str
    length: int
    preview: str


@dataclass
class Release:
    seq: int
    pid: int
    released: bool


@dataclass
class Subscription:
    filter: str
    qos: int | None  # None: an unsubscribe (in SessionReport.owed)


@dataclass
class SessionReport:
    dir: str
    path: str
    null: bool = False
    last: bool = False
    client_id: str | None = None
    host: str | None = None
    version: int | None = None
    expiry: int | None = None
    hot_state: str = "missing"  # ok, missing or damaged
    last_pid: int = 0
    epoch: int = 0
    next_seq: int = 0
    rx2: list[int] = field(default_factory=list)
    releases: list[Release] = field(default_factory=list)
    subscriptions: list[Subscription] = field(default_factory=list)
    # changes made offline, not yet at the broker: the client makes them on its next connect
    owed: list[Subscription] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    damaged: list[Problem] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    format: int | None = None  # store format of the session's files
    watermark: int | None = None  # format 2: every message below it is complete
    set_aside: int = 0  # format 2: messages ever set aside
    aside: list[v2.Aside] = field(default_factory=list)  # the set-aside records kept
    notes: list[str] = field(default_factory=list)


@dataclass
class HostReport:
    dir: str
    path: str
    host: str | None = None
    last: str | None = None  # client ID of the session used last
    sessions: list[SessionReport] = field(default_factory=list)
    damaged: list[Problem] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    # <session>.t: a delete() the power cut interrupted (migrate.delete renames the
    # directory, then removes it); never loaded, removed by the next get() or delete()
    # of that client ID. Listed in leftovers too
    deleting: list[str] = field(default_factory=list)


@dataclass
class StoreReport:
    root: str
    hosts: list[HostReport] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


@dataclass
class Report:
    source: str
    stores: list[StoreReport] = field(default_factory=list)

    def damaged(self) -> list[Problem]:
        out: list[Problem] = []
        for st in self.stores:
            for h in st.hosts:
                out += h.damaged
                for s in h.sessions:
                    out += s.damaged
        return out

    def leftovers(self) -> list[str]:
        out: list[str] = []
        for st in self.stores:
            for h in st.hosts:
                out += h.leftovers
                for s in h.sessions:
                    out += s.leftovers
        return out

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["damaged"] = [asdict(p) for p in self.damaged()]
        d["leftovers"] = self.leftovers()
        d["ok"] = not d["damaged"]
        return d


def _read_kind(src: Source, path: str, kind: bytes) -> bytes:
    try:
        data = src.read(path)
    except OSError as e:
        raise Damaged(v2.unreadable(e)) from e
    return unpack(kind, data)


def inspect_session(src: Source, path: str, host_dir: str) -> SessionReport:
    name = path.rsplit("/", 1)[-1]
    r = SessionReport(dir=name, path=path, null=name == NULL_DIR)
    if _NEWER_ASIDE.search(name):
        r.notes.append("a session of a newer store format, set aside by "
                       "SessionStore(newer='aside'): kept, never read by the library")
        return r
    try:
        ents = src.entries(path)
    except OSError as e:
        r.damaged.append(Problem(path, f"unreadable directory: {e}"))
        return r
    files = {n for n, d in ents if not d}
    dirs = {n for n, d in ents if d}
    for n, d in ents:
        p = _join(path, n)
        if n.endswith(".t") and not d:
            r.leftovers.append(p)
        elif d and n in _SESSION_FILES:
            r.damaged.append(Problem(p, NOT_A_FILE))
            if n in ("hot", "s"):
                r.hot_state = "damaged"
        elif not d and n in _SESSION_DIRS:
            r.damaged.append(Problem(p, NOT_A_DIR))
        elif (d and n not in _SESSION_DIRS) or (not d and not (n in _SESSION_FILES
                                                              or _MSG.match(n))):
            r.unknown.append(p)

    def bad(n: str, e: Exception) -> None:
        r.damaged.append(Problem(_join(path, n), str(e)))

    old = {"i", "u", "s"} & files or any(_MSG.match(n) for n in files)
    # a directory holding neither format's files is a new session a power cut left
    # before its subdirectories and identity were written: format 2, as the library
    # opens it (it migrates only a directory with format 1 files)
    if not old or {"id", "hot", "subs"} & files or _SESSION_DIRS & dirs:
        _inspect_v2(src, path, host_dir, r, files, dirs, bad)
        if old:
            r.notes.append("format 1 files beside format 2 (0.1.0 ran here after an "
                           "upgrade): the library adds their messages to the queue when "
                           "it opens the session")
        return r
    r.format = 1
    if old or not r.null:
        r.notes.append("format 1 (0.1.0): the library migrates it to format 2 in place "
                       "when it opens the session")

    # identity
    if "i" in files:
        try:
            _identity(r, _read_kind(src, _join(path, "i"), b"i"), name, host_dir, bad, "i")
        except Damaged as e:
            bad("i", e)
    elif "i" not in dirs and not r.null:
        bad("i", Damaged("identity file missing"))  # the device reports it, writes a new one
    if r.client_id is None and not r.null and not name.startswith("~"):
        r.client_id = name  # a plain directory name is the client ID itself

    # subscriptions
    if "u" in files:
        try:
            subs = parse_subs(_read_kind(src, _join(path, "u"), b"u"))
            r.subscriptions = [Subscription(text(f), q) for f, q in subs]
        except Damaged as e:
            bad("u", e)

    # hot state; when missing or damaged the device starts from zeros, as shown
    hot = Hot()
    if "s" in files:
        try:
            hot = parse_hot(_read_kind(src, _join(path, "s"), b"s"))
            r.hot_state = "ok"
        except Damaged as e:
            bad("s", e)
            r.hot_state = "damaged"
    r.last_pid, r.epoch, r.next_seq, r.rx2 = hot.pid, hot.epoch, hot.nseq, hot.rx2
    r.releases = [Release(seq, p, rel) for seq, (p, rel) in sorted(hot.out.items())]

    # pending messages, in the order the device loads them
    used: set[int] = set()
    for n in sorted(n for n in files if _MSG.match(n)):
        try:
            if not _HEX8.match(n[1:]):
                raise Damaged("bad sequence number in the file name")
            seq = int(n[1:], 16)
            m = parse_message(_read_kind(src, _join(path, n), b"m"))
        except Damaged as e:
            bad(n, e)
            continue
        pid = m.pid
        released = False
        o = hot.out.get(seq)
        if o:
            pid, released = o
        elif m.epoch != hot.epoch:
            pid = 0  # from before the broker lost the session: void
        r.next_seq = max(r.next_seq, seq + 1)  # as the device counts on
        shown: int | None = None
        if pid and pid not in used:
            used.add(pid)
            shown = pid
        r.messages.append(Message(
            file=n, seq=seq, qos=m.flags & 3, retain=bool(m.flags & 4), pid=shown,
            released=released and shown is not None, stored_pid=m.pid, stored_epoch=m.epoch,
            topic=text(m.topic), length=len(m.payload), preview=preview(m.payload)))
    return r


def _identity(r: SessionReport, body: bytes, name: str, host_dir: str,
              bad: Callable[[str, Exception], None], fname: str) -> None:
    try:
        ident = parse_identity(body)
        r.client_id, r.host = text(ident.client_id), text(ident.host)
        r.version, r.expiry = ident.version, ident.expiry
        moved = None if r.null or belongs(ident.client_id, name) else moved_to(
            ident.client_id, name)
        if moved is not None:
            r.client_id = text(moved)
            r.notes.append(f"moved aside from client ID {text(ident.client_id)!r} (a null "
                           "session was assigned that ID), cut before its identity was "
                           "rewritten: the library loads it as this client ID")
        if not r.null and moved is None and not belongs(ident.client_id, name):
            bad(fname, Damaged(f"belongs to client ID {r.client_id!r}, stored under {name!r}"))
        elif not belongs(ident.host, host_dir):
            bad(fname, Damaged(f"host {r.host!r} does not belong in host directory "
                               f"{host_dir!r}"))
    except Damaged as e:
        bad(fname, e)


def _inspect_v2(src: Source, path: str, host_dir: str, r: SessionReport, files: set[str],
                dirs: set[str], bad: Callable[[str, Exception], None]) -> None:
    # format 2 (lib/mqttsession/stored.py); a directory named as one of its files is
    # reported already (inspect_session)
    r.format = 2
    name = path.rsplit("/", 1)[-1]

    def body(fname: str, kind: bytes) -> bytes | None:
        if fname not in files:
            return None
        try:
            return unpack(kind, src.read(_join(path, fname)), 2)
        except OSError as e:
            bad(fname, Damaged(v2.unreadable(e)))
        except Damaged as e:
            bad(fname, e)
        return None

    b = body("id", b"i")
    if b is not None:
        _identity(r, b, name, host_dir, bad, "id")
    elif "id" not in files | dirs and not r.null:
        # not damage: the library writes the identity after the directory exists (a
        # new session's first write, a null session's adoption: renamed, then written),
        # so a power cut between the two leaves none; it loads the session silently as
        # the client ID asked for and writes the identity then
        r.notes.append("no identity file yet (a power cut before its first write, or in "
                       "a null session's adoption): the library loads the session as the "
                       "client ID its directory names and writes it")
    if r.client_id is None and not r.null:
        r.client_id = _named(name)
    b = body("subs", b"u")
    if b is not None:
        try:
            r.subscriptions = [Subscription(text(f), q) for f, q in parse_subs(b)]
        except Damaged as e:
            bad("subs", e)
    b = body("owed", b"o")
    if b is not None:
        try:
            r.owed = [Subscription(text(f), None if q == 0x80 else q) for f, q in parse_subs(b)]
        except Damaged as e:
            bad("owed", e)
    hot = v2.Hot2()
    b = body("hot", b"s")
    if b is None and "hot" in files:
        r.hot_state = "damaged"
    if b is not None:
        try:
            hot = v2.parse_hot2(b)
            r.hot_state = "ok"
        except v2.Damaged as e:
            bad("hot", Damaged(str(e)))
            r.hot_state = "damaged"
    r.last_pid, r.epoch, r.next_seq, r.rx2 = hot.pid, hot.epoch, hot.nseq, hot.rx2
    r.watermark = hot.watermark
    r.releases = [Release(seq, p, rel) for seq, (p, rel) in sorted(hot.out.items())]
    b = body("aside", b"x")
    if b is not None:
        try:
            r.set_aside, recs = v2.parse_aside(b)
            r.aside = [v2.Aside(text(t), q, ret, why, len(m), preview(m))
                       for t, m, q, ret, why in recs]
        except v2.Damaged as e:
            bad("aside", Damaged(str(e)))

    def bad2(n: str, e: Exception) -> None:
        bad(n, Damaged(str(e)))

    used: set[int] = set()
    for f, m in v2.queue(src, path, hot, bad2, unpack):
        pid = m.pid
        released = False
        o = hot.out.get(m.seq)
        if o:
            pid, released = o
        elif m.epoch != hot.epoch:
            pid = 0
        r.next_seq = max(r.next_seq, m.seq + 1)
        shown: int | None = None
        if pid and pid not in used:
            used.add(pid)
            shown = pid
        r.messages.append(Message(
            file=f, seq=m.seq, qos=m.flags & 3, retain=bool(m.flags & 4), pid=shown,
            released=released and shown is not None, stored_pid=m.pid, stored_epoch=m.epoch,
            topic=text(m.topic), length=len(m.payload), preview=preview(m.payload)))


def inspect_host(src: Source, path: str) -> HostReport:
    name = path.rsplit("/", 1)[-1]
    h = HostReport(dir=name, path=path)
    try:
        ents = src.entries(path)
    except OSError as e:
        h.damaged.append(Problem(path, f"unreadable directory: {e}"))
        return h
    for n, d in ents:
        p = _join(path, n)
        if d and n == LAST:  # never a session's directory name (store.py's _key)
            h.damaged.append(Problem(p, NOT_A_FILE))
        elif d and n.endswith(".t"):  # never a session's directory name either
            h.deleting.append(p)
            h.leftovers.append(p)
        elif d:
            h.sessions.append(inspect_session(src, p, name))
        elif n == LAST:
            try:
                h.last = text(_read_kind(src, p, b"l"))
            except Damaged as e:
                h.damaged.append(Problem(p, str(e)))
        elif n.endswith(".t"):
            h.leftovers.append(p)
        else:
            h.unknown.append(p)
    for s in h.sessions:
        s.last = h.last is not None and s.client_id == h.last and not s.null
        if h.host is None and s.host is not None:
            h.host = s.host
    if h.host is None and not name.startswith("~"):
        h.host = name
    for s in h.sessions:
        if s.host is None and not _NEWER_ASIDE.search(s.dir):
            s.host = h.host  # no identity (yet): the host directory's
    return h


def inspect(src: Source, roots: Sequence[str]) -> Report:
    rep = Report(source=src.label)
    for root in roots:
        st = StoreReport(root=root)
        for n, d in src.entries(root):
            if d:
                st.hosts.append(inspect_host(src, _join(root, n)))
            else:
                st.unknown.append(_join(root, n))
        rep.stores.append(st)
    return rep


# --------------------------------------------------------------------------------------
# Text output


def _expiry(s: int | None, version: int | None = None) -> str:
    if s is None:
        return "?"
    if version in (3, 4):
        # MQTT 3.1.1 has no expiry: a session made with clean_session=False lasts at the
        # broker until the next clean connect (or the broker's own limit)
        return "kept by the broker until a clean connect (MQTT 3.1.1 has no expiry)"
    if s == 0:
        return "0 s: ends when the connection closes"
    return "never (0xffffffff)" if s == NEVER else f"{s} s"


def _version(v: int | None) -> str:
    if v is None:
        return "?"
    return f"MQTT {VERSIONS[v]} ({v})" if v in VERSIONS else f"unknown ({v})"


def format_text(rep: Report) -> str:
    out: list[str] = []
    w = out.append
    for st in rep.stores:
        fm = sorted({s.format for h in st.hosts for s in h.sessions if s.format})
        w(f"Session store {st.root} in {rep.source}: format "
          f"{', '.join(map(str, fm)) or '-'}")
        if not st.hosts:
            w("  (no sessions)")
        for p in st.unknown:
            w(f"  ? unexpected file {p}")
        for h in st.hosts:
            w("")
            last = h.last if h.last is not None else "-"
            w(f"host {h.host or '?'}  (directory {h.dir}, last client ID: {last})")
            for p in h.leftovers:
                if p in h.deleting:
                    w(f"  leftover of an interrupted delete(): {p} (never loaded; removed "
                      "by the next get() or delete() of its client ID)")
                else:
                    w(f"  leftover of an interrupted write: {p}")
            for p in h.unknown:
                w(f"  ? unexpected entry {p}")
            for pr in h.damaged:
                w(f"  DAMAGED {pr.path}: {pr.reason}")
            for s in h.sessions:
                _session_text(s, w)
    dmg = rep.damaged()
    left = rep.leftovers()
    w("")
    if dmg:
        w(f"{len(dmg)} damaged file(s):")
        for pr in dmg:
            w(f"  {pr.path}: {pr.reason}")
    else:
        w("No damaged files.")
    if left:
        w(f"{len(left)} leftover(s) of interrupted atomic writes or deletes (ignored by the "
          "device).")
    return "\n".join(out)


def _session_text(s: SessionReport, w: Callable[[str], None]) -> None:
    tags = [t for t, on in (("last used", s.last), ("null session, awaiting its client ID",
                                                    s.null)) if on]
    w(f"  session {s.dir}" + (f"  [{', '.join(tags)}]" if tags else ""))
    if _NEWER_ASIDE.search(s.dir):
        for n in s.notes:  # its files are of a format this tool does not read
            w(f"    note: {n}")
        return
    cid = s.client_id if s.client_id is not None else "(none yet)" if s.null else "?"
    w(f"    client ID       {cid}")
    w(f"    host            {s.host if s.host is not None else '?'}")
    w(f"    protocol        {_version(s.version)}")
    w(f"    store format    {s.format if s.format is not None else '?'}")
    w(f"    session expiry  {_expiry(s.expiry, s.version)}")
    hot = {"ok": "", "missing": "  (no hot state file yet)",
           "damaged": "  (hot state damaged: the device starts from these)"}[s.hot_state]
    w(f"    last packet ID  {s.last_pid}, epoch {s.epoch}, next sequence {s.next_seq}{hot}")
    w(f"    incoming QoS 2  {', '.join(map(str, s.rx2)) or '-'}")
    rel = ", ".join(f"seq {r.seq}: pid {r.pid}" + (" released" if r.released else "")
                    for r in s.releases)
    w(f"    QoS 2 out       {rel or '-'}")
    w(f"    subscriptions   {len(s.subscriptions)}")
    for sub in s.subscriptions:
        w(f"      QoS {sub.qos}  {sub.filter}")
    if s.owed:
        w(f"    owed            {len(s.owed)}  (changed offline: made on the next connect)")
        for sub in s.owed:
            w(f"      unsubscribe  {sub.filter}" if sub.qos is None
              else f"      QoS {sub.qos}  {sub.filter}")
    w(f"    pending         {len(s.messages)}")
    if s.messages:
        w("      seq       qos retain pid   bytes  topic / payload")
        for m in s.messages:
            pid = "-" if m.pid is None else str(m.pid) + ("r" if m.released else "")
            w(f"      {m.seq:<9} {m.qos:<3} {'yes' if m.retain else 'no':<6} {pid:<5} "
              f"{m.length:<6} {m.topic}  {m.preview!r}")
    if s.format == 2:
        w(f"    set aside       {s.set_aside} ever, {len(s.aside)} kept")
        for a in s.aside:
            w(f"      QoS {a.qos} {'retain ' if a.retain else ''}{a.topic}  {a.preview!r}"
              f" ({a.length} bytes): {a.reason}")
    for n in s.notes:
        w(f"    note: {n}")
    for pr in s.damaged:
        w(f"    DAMAGED {pr.path.rsplit('/', 1)[-1]}: {pr.reason}")
    for p in s.leftovers:
        w(f"    leftover of an interrupted write: {p.rsplit('/', 1)[-1]}")
    for p in s.unknown:
        w(f"    ? unexpected entry {p.rsplit('/', 1)[-1]}")


# --------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        epilog="In the pending list a packet ID ending in r is a QoS 2 message after "
               "PUBREC (PUBREL is resent); '-' means it goes out as a new message.")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--image", type=Path, help="littlefs image file (e.g. flash.img)")
    g.add_argument("--dir", type=Path, help="directory copied off a board")
    p.add_argument("--block-size", type=int, default=4096, help="littlefs block size (4096)")
    p.add_argument("--block-count", type=int,
                   help="littlefs block count (default: image size / block size)")
    p.add_argument("--root", help="store directory in the source (default: /.mqtt or found)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    a = p.parse_args(argv)
    if a.dir is not None and a.block_count is not None:
        p.error("--block-count only applies to --image")
    if a.block_count is not None and a.block_count < 0:
        p.error(f"--block-count {a.block_count}: a count of blocks (0: as the image says)")

    src: Source
    try:
        src = ImageSource(a.image, a.block_size, a.block_count) if a.image else DirSource(a.dir)
    except (OSError, ValueError) as e:
        print(f"inspect_store: {e}", file=sys.stderr)
        return 2
    if a.root is not None:
        roots = [_join(a.root)]
        if not _is_dir(src, roots[0]):
            print(f"inspect_store: no directory {roots[0]} in {src.label}", file=sys.stderr)
            return 2
    else:
        try:
            roots = find_roots(src)
        except OSError as e:
            print(f"inspect_store: {src.label}: {e}", file=sys.stderr)
            return 2
        if not roots:
            print(f"inspect_store: no session store found in {src.label} "
                  f"(looked for {DEFAULT_ROOT}; give --root)", file=sys.stderr)
            return 2
    try:
        rep = inspect(src, roots)
    except OSError as e:
        print(f"inspect_store: {src.label}: {e}", file=sys.stderr)
        return 2
    try:
        print(json.dumps(rep.as_dict(), indent=2) if a.json else format_text(rep))
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. piped into head
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 1 if rep.damaged() else 0


if __name__ == "__main__":
    import usevenv  # a system Python lacks the tools: run in .venv

    usevenv.ensure(modules=("littlefs",))
    sys.exit(main())
