"""The session store's files as the library writes them (lib/mqttsession/store.py), for
tools/inspect_store.py: the names of host and session directories and of a session's
files, the framing every file has (MQ, kind, format, body, CRC-32) and format 1's records
(0.1.0; format 2's are in inspect_store_v2.py)."""

from __future__ import annotations

import binascii
import re
import struct
from dataclasses import dataclass, field

FORMAT = 1  # the files parsed in this module; inspect_store_v2 reads format 2
FORMATS = (1, 2)  # every format the library has written
LAST = "last"
NULL_DIR = "~null"
DEFAULT_ROOT = "/.mqtt"
_PLAIN = frozenset(b"-_.0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
MSG = re.compile(r"m.{8}\Z", re.S)  # what the device takes for a message file
HEX8 = re.compile(r"[0-9a-fA-F]{8}\Z")
# a session of a newer format set aside by SessionStore(newer="aside") (migrate.newer);
# no session directory's own name ends so (store.py's _key)
NEWER_ASIDE = re.compile(r"~new[0-9]*\Z")
SESSION_FILES = frozenset(("i", "u", "s", "id", "subs", "owed", "hot", "aside"))
SESSION_DIRS = frozenset(("q", "t0", "t1", "t2", "t3"))
# the library reports these as damage (and removes them) when it loads the session
NOT_A_FILE = "a directory where a file belongs"
NOT_A_DIR = "a file where a directory belongs"
# the library's report of a session directory without its identity file that the host's
# "last" file names (written only once the identity is): its directory lost its files
ID_LOST = "missing, named by the host's last file: damage"
# the note for one that "last" does not name: not damage
NO_ID = ("no identity file yet (a power cut before its first write, or in a null "
         "session's adoption): the library loads the session as the client ID its "
         "directory names and writes it")


class Damaged(Exception):
    """A file that does not parse; str() is the reason."""



def text(b: bytes) -> str:
    return b.decode("utf-8", "backslashreplace")


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


def named(d: str) -> str | None:
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
