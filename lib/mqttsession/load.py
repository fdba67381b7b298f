# A stored session found or made when SessionStore.get asks for it (stored.py says what
# the files hold): run once, then freed again (SessionStore.get), so a running node holds
# none of this code. Its parts load in turn and are freed as soon as they are done, so
# the heap holds the least code while the session is made and read (the node's largest
# heap): the directory's name (dirs.py) before the session is made; an existing
# directory is read by resume.py, a directory made here needs neither.
from micropython import const
from array import array
import binascii
import os

from .session import Session, unload
from .store import _join, _rm, _exists, NewerFormat
from .stored import StoredSession

_TAIL = const(32)  # as stored._TAIL
_DIR = const(0x4000)  # as store._DIR
_HOT = const(1)  # session.py's: what a _save writes
_IDENT = const(4)
_NONE = const(0xFFFFFFFF)  # an empty tail slot (as qseg._NONE)
_ANY = const(0x20000000)  # a capacity above it: the client's queue=None (args.init)


def init(s, store, path, client_id, host, capacity):
    # StoredSession.__init__. capacity (the client's max(window, queue)) bounds the
    # queue; the RAM ring holds that many, or the store's ram when it is smaller: the rest
    # waits in flash. Above _ANY (the client's queue=None): max_bytes alone bounds the
    # queue, and the ring holds the store's ram, else the excess (max(window, 16))
    r = store.ram
    n = capacity - _ANY if capacity > _ANY else capacity
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
    s._cw = s._cn = 0  # where _cb starts in its file, the file's size (qseg._win)
    s._sg = s._sl = s._sc = s._tail = s._done = s._out = None
    Session.__init__(s, client_id, host, (r if capacity > _ANY else min(n, r)) if r else n)
    s.limit = capacity
    s._p = path
    s._sg = array("I")  # segments in order: first seq
    s._sl = array("I")  # and last seq
    s._sc = array("I")  # and count << 24 | bytes
    s._tail = array("I", [_NONE] * _TAIL)  # seq in each tail slot in use
    s._done = []  # completed seqs at or above the watermark
    s._out = {}  # seq -> (pid, released) from the hot state, until loaded


def fresh(st, p):
    # a session's directory where there was none: made with its subdirectories, and
    # nothing in them to find (resume.scan is for a directory that existed already, even
    # one a power cut left half made)
    st._mkdirs(p)
    for d in ("q", "t0", "t1", "t2", "t3"):
        os.mkdir(_join(p, d))


def get(self, host, client_id, capacity):
    # SessionStore.get: the session for (host, client_id) from store self; client ID ""
    # (b""): the null session until the broker assigns one (~null: what it queued offline,
    # on this boot or an earlier one, goes out under the assigned ID)
    if type(capacity) is not int:  # (a bool neither) before anything is read or made
        from .packet import err  # (here: imported at the top, it cost the node 96 bytes)

        raise err(57)  # capacity must be an int
    from . import dirs

    unload("dirs")  # freed once the name is found
    hd = dirs._host_dir(self, host)
    if client_id is None:
        # the client ID last used for the host (see StoredSession._save), or any
        b = self._body(hd, "last", b"l", 1)
        client_id = (b is not None and bytes(b)) or dirs.find_any(hd)
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
    if isinstance(client_id, bytes) and len(client_id) > 65535:
        # the host's "last" file and the session's identity would be larger than any
        # file the store reads back (_MAXF): reported as damage at every later load
        from .packet import err

        raise err(17)  # client_id longer than 65535 bytes
    if client_id or not isinstance(client_id, bytes):
        # (b"": the null session; a client ID not str or bytes: sdir's TypeError)
        p = dirs.sdir(self, hd, client_id)
        if _exists(p + ".t"):
            _rm(p + ".t")  # a delete() the power cut interrupted (migrate.delete)
    else:
        p = _join(hd, "~null")
    del dirs
    # a collection first: the session's attribute table grows through blocks of up to
    # 600 bytes, and the garbage of the lookups above splits the free heap too finely for
    # them (the node's smallest heap: 67 KB without, 65 KB with)
    import gc

    gc.collect()
    s = StoredSession(self, p, client_id, host, capacity)
    # the latest get() of a session takes it over (SessionStore._own) before the load
    # writes anything: from here the earlier holder's writes raise. A load that fails
    # keeps it all the same: what it wrote may be under the earlier holder's feet
    o = self._own
    o[p] = id(s)
    try:
        if not _exists(p) & _DIR:
            fresh(self, p)
        else:
            if _exists(_join(p, "i")):
                from .migrate import migrate

                migrate(self, s)  # format 1 (0.1.0) files: into format 2, in place
            from . import resume

            unload("resume")  # freed once read
            resume.load(s)
            del resume
    except NewerFormat as e:
        from .migrate import newer

        s = newer(self, s, e)
        o[p] = id(s)
    # (the host's "last" file checked at each load: once per boot, see stored._save)
    StoredSession._lk = None
    s._save(_IDENT if _exists(_join(p, "hot")) else _IDENT | _HOT)  # null: writes nothing
    return s
