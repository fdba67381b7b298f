# The directory names of a SessionStore's hosts and sessions, found when SessionStore.get
# makes a session (load.py): run once, then freed again before the session is made (the
# node's largest heap is the session's making), so a running node holds none of it.
from micropython import const
import binascii
import os

from .store import _join, _read, _exists

_FORMAT = const(2)  # as store._FORMAT
_DIR = const(0x4000)  # as store._DIR


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
    # the directory of SessionStore self for host's sessions. (A host of another type
    # is refused before anything is touched: bytes went on to fail inside the load)
    if not isinstance(host, str):
        raise TypeError("host must be a str")
    host = host.encode()
    hd = _join(self.root, _key(host))
    if not _exists(hd) & _DIR:
        # named as 0.1.0 did (a name that is not plain could collide): rename
        old = _join(self.root, "~%08x%d" % (binascii.crc32(host), len(host)))
        if old != hd and _exists(old) & _DIR and not _exists(hd):
            os.rename(old, hd)
    return hd


def find(p):
    # the client ID in session directory p's identity file (either format), or None when
    # neither can be read
    for f, v in (("id", _FORMAT), ("i", 1)):
        try:
            b = _read(_join(p, f), b"i", v)
            m = 7 + (b[5] | b[6] << 8)  # after version, expiry, ID length, ID
            if m <= len(b):
                return bytes(b[7:m])
        except (OSError, ValueError, IndexError):
            pass
    return None


def moved(c, cid):
    # cid is "<c>~old" or "<c>~old<n>": the name migrate.aside_old moved session c to (a
    # power cut between its rename and its identity's rewrite leaves c's identity there)
    n = len(c or b"") + 4
    return bool(c) and cid[:n] == c + b"~old" and (len(cid) == n or cid[n:].isdigit())


def sdir(self, path, client_id):
    # SessionStore self's directory of this session: its key, or after a collision of
    # long IDs the next free "~<n>" variant; a 0.1.0 name ("~<crc><length>") is renamed
    # to it. client_id: bytes (a str is encoded by the caller); another type is refused
    # before anything is touched
    if not isinstance(client_id, (bytes, bytearray)):
        raise TypeError("client_id must be str or bytes")
    k = _key(client_id)
    o = "~%08x%d" % (binascii.crc32(client_id), len(client_id))  # the 0.1.0 name
    free = None
    for n in (k, "%s~%d" % (k, 1), "%s~%d" % (k, 2), o):
        p = _join(path, n)
        if not _exists(p) & _DIR:
            if free is None and n != o:
                free = p
            continue
        # whose it is: the client ID in its identity file
        c = find(p)
        if c != client_id and (c or n != k) and not (n == k and moved(c, client_id)):
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
            c = find(_join(path, n))  # unreadable ones skipped
            if c:
                return c
    return None
