# Making a session: the state a Session (session.py) or a StoredSession (stored.py) starts
# with, and its ring's arrays. Run once per session made, then freed again
# (session.unload): a running node holds none of this code.
from micropython import const
from array import array

_TAIL = const(32)  # as qlog._TAIL
_NONE = const(0xFFFFFFFF)


def init(s, *args, **kw):
    # Session.__init__: five arguments make a StoredSession, up to three a Session
    if len(args) + len(kw) == 5:
        stored(s, *args, **kw)
    else:
        session(s, *args, **kw)


def session(s, client_id=b"", host="", capacity=16):
    # a Session's state
    state(s, client_id, host, capacity, 0)


def state(s, client_id, host, capacity, spare):
    # spare=1: the ring has one slot more (a StoredSession's, where a message waits
    # while it goes to the backlog in flash)
    if not 0 < capacity < 65536:
        raise ValueError("capacity must be 1 to 65535")
    s.client_id = client_id
    s.host = host
    s.version = 4
    s.expiry = 0
    s.pid = 0  # last packet ID handed out
    s.subs = {}  # topic filter -> QoS
    s.rx2 = []  # incoming QoS 2 packet IDs between PUBREC and PUBREL
    # outgoing messages: a ring in send order, capacity fixed so publishing allocates
    # nothing; slot k holds ids[k], fl[k], seq[k], top[k], msg[k]
    s.cap = capacity
    c = capacity + spare
    s.ids = array("H", bytes(2 * c))
    s.seq = array("I", bytes(4 * c))
    s.fl = bytearray(c)
    s.top = [None] * c
    s.msg = [None] * c
    # packet IDs held by ring slots, counted by ID modulo its length: a zero count
    # proves an ID free without scanning the ring. IDs go out in sequence, so the up
    # to c in use land on distinct counters; the length divides 65535, so that holds
    # across the wrap from 65535 to 1 too.
    for m in (17, 255, 771, 1285, 3855, 4369, 13107, 21845, 65535):
        if m > c:
            break
    s._use = array("H", bytes(2 * m))
    if spare:
        s.sz = array("H", bytes(2 * c))  # record bytes per slot
    s.head = 0
    s.n = 0  # slots from head, holes included
    s.nin = 0  # messages holding a packet ID (in flight)
    s.nq = 0  # messages waiting for one (queued)
    s.nseq = 0  # sequence number for the next stored message
    s.fresh = True  # no state from an earlier connection
    s.epoch = 0  # counts the broker's session losses; IDs from older ones are void
    s.naside = 0  # messages ever set aside (see set_aside)
    s._xa = []  # the newest set-aside records (RAM session)


def stored(s, store, path, client_id, host, capacity):
    # a StoredSession's state (store, path, ...: see stored.py)
    s._st = store
    s._p = path
    s._ib = None  # identity as last written
    s.bytes = 0  # bytes of pending messages in flash
    s.more = 0  # pending messages in flash beyond the ring
    s._sg = array("I")  # segments in order: first seq
    s._sl = array("I")  # and last seq
    s._sc = array("I")  # and count << 24 | bytes
    s._tail = array("I", [_NONE] * _TAIL)  # seq in each tail slot in use
    s._tn = 0  # tail slots in use
    s._tb = 0  # their bytes
    s._cur = 0  # seq of the next message to bring into the ring
    s._done = []  # completed seqs at or above the watermark
    s._lazy = 0
    s._hx = False  # the hot-state file exists
    s._out = {}  # seq -> (pid, released) from the hot state, until loaded
    s._cb = None  # the segment being read into the ring: bytes, name, offset
    s._ci = _NONE
    s._co = 0
    s._r = None  # the record just read: seq, flags, pid, epoch, topic, msg, size
    # capacity (the client's max(window, queue)) bounds the queue; the RAM ring holds
    # that many, or the store's ram when it is smaller: the rest waits in flash
    s.limit = capacity
    r = store.ram
    state(s, client_id, host, min(capacity, r) if r else capacity, 1)
