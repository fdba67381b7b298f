# SessionStore: MQTT sessions in flash (littlefs), one directory per host and one per
# session below it (stored.py says what a session directory holds). Every file is "MQ",
# a kind byte, a format version byte, the body and a CRC-32 (little-endian); a file that
# is replaced is written beside and renamed over (littlefs renames are atomic), so a
# power cut leaves the old file or the new one.
# Formats: 1 (0.1.0: files i, u, s, m<seq>; migrate.py turns them into 2 in place), 2.
# A format newer than this library is never overwritten: get() raises ValueError naming
# it, unless the store was made with newer="aside" (then it is renamed, kept, and a new
# session starts).
# What a running node needs (writing, reading, reporting) stays here; finding and reading
# a session at get() (load.py, resume.py), and the directory names of hosts and client
# IDs (dirs.py), are freed after.
from micropython import const
import binascii
import os
import struct

from .packet import err

_FORMAT = const(2)  # qseg.py writes it too
_ENOENT = const(2)
_ENOSPC = const(28)
_ENOTDIR = const(20)
_EEXIST = const(17)
_EIO = const(5)
_DIR = const(0x4000)  # os.stat mode bit of a directory
_MAXF = const(65600)  # no store file is larger: anything bigger is damage, never read


def _join(*parts):
    return "/".join(parts)


def _exists(p):
    # the os.stat mode of p (a directory: & _DIR), 0 when there is nothing
    try:
        return os.stat(p)[0]
    except OSError:
        return 0


def _rm(p, d=0):
    # removes a file, or a directory with what it holds (whatever can be removed: a
    # damaged tree goes as far as it can, never raising). One name at a time: a queue's
    # directory of thousands of segments is never listed in RAM whole. d: how deep below
    # the first call's path; the store's own trees are 4 deep at most, and a deeper
    # directory (damage) is left: recursing as deep as it went ended out of the load in
    # MemoryError (a directory listing open per level) or RuntimeError (recursion depth)
    try:
        os.remove(p)
    except OSError as e:
        if e.errno != _ENOENT and d < 8:
            try:
                for n in os.ilistdir(p):
                    _rm(_join(p, n[0]), d + 1)
                os.rmdir(p)
            except OSError:
                pass


def pack(t, data, v):
    # a store file: t is its kind (one byte: b"i" identity, b"s" hot state...), v its
    # format version
    b = b"MQ" + t + bytes((v,)) + data
    return b + struct.pack("<I", binascii.crc32(b))


class NewerFormat(ValueError):
    # a store file written by a newer library: never read, never overwritten
    pass


def _read(path, t, v):
    # the body of file path when it is a file of kind t and format version v (else
    # ValueError; NewerFormat when a newer library wrote it). One
    # open (a stat first would look the name up again: twice the block reads in a large
    # directory), one read into a buffer of the file's size, no larger than any file the
    # store writes
    with open(path, "rb") as f:
        n = f.seek(0, 2)
        if n > _MAXF:
            raise err(33, _MAXF)  # larger than %d bytes: left alone
        f.seek(0)
        b = bytearray(n)
        if f.readinto(b) != n:
            raise ValueError("truncated")
    if n >= 8 and b[:3] == b"MQ" + t:
        if b[3] > _FORMAT:
            raise err(34, b[3], _FORMAT)  # format %d, newer than this library's %d
        if b[3] == v:
            if struct.unpack("<I", b[-4:])[0] != binascii.crc32(b[:-4]):
                raise err(35)  # bad checksum
            return memoryview(b)[4:-4]
    raise err(36, t.decode())  # not a %s file


def _write(path, data, rename):
    # rename: write beside, then rename over (a new file, or one not on littlefs);
    # otherwise in place: littlefs commits an existing file's new content at close, all
    # or nothing, so a failed write leaves the old content, never removed here. A
    # directory in the way is damage: removed.
    t = path + ".t" if rename else path
    try:
        for i in (0, 1):
            try:
                with open(t, "wb") as f:
                    f.write(data)
                if rename:
                    os.rename(t, path)
                SessionStore._err = None
                break
            except OSError as e:
                if i or e.errno == _ENOSPC or not (_exists(t) | _exists(path)) & _DIR:
                    raise
                _rm(t)
                _rm(path)
    except OSError as e:
        if rename:
            try:
                os.remove(t)
            except OSError:
                pass
        if e.errno == _ENOSPC:
            e = OSError(_ENOSPC, "session store full")  # kept here: met when full
        SessionStore._err = e
        raise e


class SessionStore:
    # root: a directory on the board's filesystem. Problems found while loading (corrupt,
    # truncated, foreign or misshapen files) are printed as "mqttsession: store: ..."
    # lines and kept in .errors; the session starts fresh (or without the damaged part).
    # Every path is root/<host key>/<client ID key>/<file>: nothing outside root is
    # touched, whatever the host or client ID (see dirs._key).
    def __init__(self, root="/.mqtt", max_bytes=None, newer="refuse", ram=None):
        # max_bytes: flash a session's queued messages may take (their records, and the
        # whole blocks of each segment: stored._slack); None: a quarter of the
        # filesystem (os.statvfs), at least 32 KB where it has them. ram: messages a
        # session keeps in RAM (at least the client's window); a longer queue (the
        # client's queue=) waits in flash and is read in order. None: the whole queue.
        # Checked and set by args.py, loaded for that and freed again (a running node
        # holds none of that code)
        from .args import store

        store(self, root, max_bytes, newer, ram)

    def _body(self, p, name, t, v):
        # the body of file p/name, None when absent or damaged (damage is reported). Read
        # as the current format, a newer one propagates NewerFormat, and a damaged file is
        # removed once reported (absent means what damaged does: reported once, not at
        # every boot); as format 1 (a file only 0.1.0 wrote, or that no format changes) it
        # is damage like any other, left for migrate.py or the next write. The flash's
        # read error (the driver's EIO) is no damage: it propagates, the file kept
        try:
            return _read(_join(p, name), t, v)
        except (OSError, ValueError) as e:
            if v == _FORMAT and isinstance(e, NewerFormat):
                raise
            x = getattr(e, "errno", 0)
            if x == _EIO:
                raise
            if x not in (_ENOENT, _ENOTDIR):
                self._report(p, name, e)
                if v == _FORMAT:
                    _rm(_join(p, name))
            return None

    def _mkdirs(self, p):
        # makes p and its parents; inside the root, a file where a directory belongs is
        # damage: reported and removed (p is the root or a path below it, so a q longer
        # than the root is below it). The root or a directory above it that is a file is
        # refused (ValueError naming it), never removed
        q = ""
        for part in p.split("/"):
            if not part:
                continue
            q += "/" + part if (q or p.startswith("/")) else part
            m = _exists(q)
            if not m & _DIR:
                if m and len(q) > len(self.root):
                    # (an exception stands for its text here)
                    self._report(q, "", err(39))  # a file where a directory belongs: removed
                    _rm(q)
                elif m:
                    # the root, or a directory above it, is a file: the application's,
                    # never the store's to remove
                    raise ValueError("root: %s is not a directory" % q)
                try:
                    os.mkdir(q)
                except OSError as e:
                    # there after all: the stat above failed (the flash's EIO, say). Its
                    # own error, not EEXIST; a directory now readable is used
                    if e.errno != _EEXIST or not os.stat(q)[0] & _DIR:
                        raise

    def _report(self, path, name, e, k=40):
        # k: the text printed, err(40) "mqttsession: store: %s - starting without it",
        # err(54) "... - kept, read again later" (qseg._eio), or err(55) "... - read as it
        # is" (a segment whose size is not as its name says: every record in it read)
        msg = "%s/%s: %s" % (path, name, e)
        self.errors.append(msg)
        print(err(k, msg))

    def get(self, host, client_id=None, capacity=16):
        # load.py finds and reads the session (with dirs.py and resume.py): run once per
        # get(), freed again after (between uses its code would only hold heap;
        # session.py is loaded by then, stored.py imports it)
        from .load import get
        from .session import unload

        try:
            return get(self, host, client_id, capacity)
        finally:
            unload("load")

    def has_any(self, host):
        from .dirs import find_any, _host_dir
        from .session import unload

        try:
            return find_any(_host_dir(self, host)) is not None
        finally:
            unload("dirs")

    _err = None  # the error of the last write (_write) if it failed
    # a session's directory -> id() of the session its latest get() made (load.get):
    # two clients on one session would each write its tail from their own count, one
    # over the other's messages. The later one takes it over; the earlier one's writes
    # raise (stored._mine), as do those of one delete() removed (0 here). Class-wide
    # (two stores on one root share it), an int per path: nothing is kept in a session,
    # nor is a session kept alive
    _own = {}

    def _taken(self, s):
        # session s, a get() of this store's, taken over by a later one (_own)
        g = self._own.get(s._p)
        return g is not None and g != id(s)

    def _failed(self):
        # the error of the last write if it failed, once (the blocking client's
        # link.last_error when the store's write, not the socket, broke the link)
        e = SessionStore._err
        SessionStore._err = None
        return e

    def null_session(self, host, capacity=16):
        # client ID "" until the broker assigns one (MQTT 5); then it is stored (v5.adopt)
        return self.get(host, b"", capacity)

    # --- rarely used: in a module loaded on first use ---

    def delete(self, host, client_id):
        from .migrate import delete

        delete(self, host, client_id)
