# Session state held in RAM: the packet-ID allocator, outgoing QoS 1/2 messages in send
# order, incoming QoS 2 packet IDs and subscriptions. The flash store's session
# (stored.py) is this class with a directory (_p set): it overrides _save, _keep and
# _forget, which do nothing here, and the steps below that only a store takes check _p
# or `more` (messages in flash beyond the ring, 0 here).
from micropython import const
# builtins the publish and receive path calls, as names of this module: a builtin is
# looked up in the module's dictionary first (a miss, probed to an empty slot) and then
# among the builtins; imported, it is one hit
from builtins import len, type, bytes
from array import array

from .packet import err

# Per-message flags in Session.fl (bits 0-1 hold the QoS)
_RETAIN = const(4)
_SENT = const(8)  # on the wire at least once: a resend carries DUP
_REL = const(16)  # QoS 2 after PUBREC: only the packet ID matters, PUBREL is (re)sent
_DISK = const(32)  # a copy is in flash
_PID = const(64)  # holds a packet ID (ids[k]) that the broker may know
_PIDDISK = const(128)  # that packet ID is in flash too

# what a _save writes
_HOT = const(1)  # packet IDs, incoming QoS 2 IDs, releases
_SUBS = const(2)
_IDENT = const(4)  # client ID, protocol version, expiry


def unload(name):
    # drops module mqttsession.<name>, code a node runs once, from sys.modules and the
    # package: it is out of the heap at the next collection
    import sys

    sys.modules.pop("mqttsession." + name, None)
    p = sys.modules.get("mqttsession")
    if p:
        p.__dict__.pop(name, None)


class Session:
    _owed = None  # a stored session's subscription changes owed to the broker (resume.py)

    def __init__(self, client_id=b"", host="", capacity=16):
        if not 0 < capacity < 65536:
            raise err(31)  # queue must be 1 to 65535 in RAM (see SessionStore ram)
        self.client_id = client_id
        self.host = host
        self._p = None  # a stored session's directory
        self.more = 0  # a stored session's messages in flash beyond the ring
        self.version = 4
        self.expiry = 0
        self.pid = 0  # last packet ID handed out
        self.cap = capacity
        self.limit = capacity  # messages queued at most
        self.head = 0
        self.n = 0  # slots from head, holes included
        self.nin = 0  # messages holding a packet ID (in flight)
        self.nq = 0  # messages waiting for one (queued)
        self.nseq = 0  # sequence number for the next stored message
        self.fresh = True  # no state from an earlier connection
        self.epoch = 0  # counts the broker's session losses; IDs from older ones are void
        self.naside = 0  # messages ever set aside (see aside.py)
        # the objects last, once the attribute table has every name (a StoredSession's
        # are set before): the tables it outgrew are then free in one piece, not holes
        # between these (a smaller heap fits the session)
        self.subs = {}  # topic filter -> QoS
        self.rx2 = []  # incoming QoS 2 packet IDs between PUBREC and PUBREL
        # outgoing messages: a ring in send order, capacity fixed so publishing allocates
        # nothing; slot k holds ids[k], fl[k], seq[k], top[k], msg[k]. Slot cap, past the
        # ring, is where a store's message waits while it goes to the backlog in flash.
        c = capacity + 1
        self.ids = array("H", bytes(2 * c))
        self.seq = array("I", bytes(4 * c))
        self.fl = bytearray(c)
        self.top = [None] * c
        self.msg = [None] * c
        # packet IDs held by ring slots, counted by ID modulo its length: a zero count
        # proves an ID free without scanning the ring. IDs go out in sequence, so the up
        # to cap in use land on distinct counters; the length divides 65535, so that holds
        # across the wrap from 65535 to 1 too.
        for m in (17, 255, 771, 1285, 3855, 4369, 13107, 21845, 65535):
            if m > capacity:
                break
        self._use = array("H", bytes(2 * m))

    # --- packet IDs: one space for PUBLISH, SUBSCRIBE, UNSUBSCRIBE; never 0 or in use ---
    def next_pid(self):
        u = self._use
        for _ in range(65535):
            p = self.pid % 65535 + 1
            self.pid = p
            if not u[p % len(u)] or self.find(p, 255) < 0:
                return p
        raise OSError(23)  # unreachable while the ring is smaller than 65535

    def find(self, pid, m=_PID):
        # ring slot of the outgoing message with this packet ID, or -1; m=255: also one
        # that only keeps the ID for a resend (any slot in use holding it)
        k = self.head
        for _ in range(self.n):
            if self.ids[k] == pid and self.fl[k] & m:
                return k
            k += 1
            if k == self.cap:
                k = 0
        return -1

    def slot(self, i):
        # ring slot of the i-th oldest message
        k = self.head + i
        return k - self.cap if k >= self.cap else k

    # --- outgoing messages ---
    def pending(self):
        # messages not yet completed (sent or waiting to be)
        return self.nin + self.nq + self.more

    def full(self, n=0):
        # no room for another message (its record n bytes in flash): the queue's count
        # bound or a store's byte bound
        return self.nin + self.nq + self.more >= self.limit or (
            self._p is not None and (n > 65535 or self.bytes + n > self._st.max_bytes))

    def assign(self, k):
        # gives slot k a packet ID before it first goes out; one it kept from an earlier
        # session (restart(False)) goes out again with that ID
        if k == self.cap:
            # a message past a store's ring cannot go out now: the window is larger
            raise err(32, self.cap)  # window larger than SessionStore(ram=%d)
        f = self.fl[k]
        self.fl[k] = f | _PID
        self.nq -= 1
        self.nin += 1
        if not self.ids[k]:
            u = self._use
            p = self.pid % 65535 + 1  # as next_pid, whose scan runs when p may be in use
            if u[p % len(u)]:
                p = self.next_pid()
            self.pid = p
            self.ids[k] = p
            u[p % len(u)] += 1
            # a stored QoS 2 message gets its packet ID: in flash before the broker sees
            # it (an ID it kept is there already: in its record or in the hot state)
            if f & _DISK and f & 3 == 2:
                self._given(k, f)

    def _given(self, k, f):
        # writes the packet ID slot k (its flags f before assign) was given. Not written:
        # not given either (the message waits for the next connection; sent with an ID
        # that is in flash nowhere, it would go out under another after a reboot)
        try:
            self._save(_HOT)
        except (OSError, MemoryError):
            p = self.ids[k]
            self._use[p % len(self._use)] -= 1
            self.ids[k] = 0
            self.fl[k] = f
            self.nq += 1
            self.nin -= 1
            raise

    def _compact(self):
        # closes holes left by out-of-order completions, keeping send order
        j = 0
        for i in range(self.n):
            a = self.slot(i)
            if self.fl[a]:
                b = self.slot(j)
                if a != b:
                    self.ids[b], self.fl[b], self.seq[b] = self.ids[a], self.fl[a], self.seq[a]
                    self.top[b], self.msg[b] = self.top[a], self.msg[a]
                    self.fl[a] = 0
                    self.top[a] = self.msg[a] = None
                j += 1
        self.n = j

    def add(self, topic, msg, qos, retain, online=True):
        # queue a message at the tail; returns its slot (not yet sent, no packet ID), the
        # spare one offline (online None: Core._queue) where the queue goes on in flash
        # beyond the ring (not a given queue= in RAM; online: no new name, a node's 641st
        # interned name takes a pool of 7 KB in one piece). A bytearray or memoryview is
        # copied: the caller may change it once publish returns. The copies come first: no
        # heap for them (MemoryError) leaves the session as it was (made after the slot
        # was counted, an empty slot went out later)
        if type(topic) is not bytes and not isinstance(topic, bytes):
            topic = bytes(topic)
        if type(msg) is not bytes and not isinstance(msg, bytes):
            msg = bytes(msg)
        k = self.cap
        if self.n == k and not self.more:
            self._compact()
        if self.n == k or self.more or online is None and self.limit > k:
            if self._p is None:
                raise OSError(105)  # ENOBUFS: callers check full() first
            # a store's, behind a backlog in flash, with the ring full or offline: the
            # spare slot, from where _keep sends it to the backlog (callers keep it
            # before anything)
        else:
            k = self.head + self.n  # as slot(n)
            if k >= self.cap:
                k -= self.cap
            self.n += 1
            self.nq += 1
        self.ids[k] = 0
        self.fl[k] = qos | (_RETAIN if retain else 0)
        self.seq[k] = self.nseq
        self.nseq = (self.nseq + 1) & 0xFFFFFFF
        self.top[k] = topic
        self.msg[k] = msg
        return k

    def acked(self, pid, rel):
        # PUBACK/PUBCOMP (rel=False) or PUBREC (rel=True) for pid; returns the slot or -1.
        # The ring is searched from the oldest message: acknowledgements come in order.
        # (Few locals: a frame over 11 words would be allocated on every call.)
        fl = self.fl
        k = self.head
        n = self.n
        while n:
            if self.ids[k] == pid and fl[k] & _PID:
                break
            k += 1
            if k == self.cap:
                k = 0
            n -= 1
        else:
            return -1
        n = fl[k]
        if rel:
            if n & 3 != 2:
                return -1
            if not n & _REL:
                fl[k] = n | _REL
                self._keep(k)  # (not written: the stored session takes _REL back)
            return k
        if (n & 3 == 2) != (n & _REL != 0):
            return -1  # PUBACK for QoS 2, or PUBCOMP before PUBREC
        if n & _DISK:
            self._forget(k)  # (only a flash copy has anything to forget)
        n = self._use
        n[pid % len(n)] -= 1
        fl[k] = 0
        self.top[k] = self.msg[k] = None
        self.nin -= 1
        # pop acknowledged messages at the head so the ring keeps send order
        while self.n and not fl[self.head]:
            self.head = 0 if self.head + 1 == self.cap else self.head + 1
            self.n -= 1
        if self.more:
            self._fill()  # the next message waiting in flash comes into the ring
        return k

    def drop(self, k):
        # gives slot k up without an acknowledgement (counted by the caller)
        f = self.fl[k]
        self._forget(k)
        p = self.ids[k]
        if p:
            u = self._use
            u[p % len(u)] -= 1
        self.fl[k] = 0
        self.top[k] = self.msg[k] = None
        if f & _PID:
            self.nin -= 1
        else:
            self.nq -= 1
        # the hole stays: callers may be walking the ring; add() compacts when it must
        if f & _DISK:
            self._save(_HOT)  # given up: for good
        if self.more:
            self._fill()

    def pop_tail(self):
        # takes back the message just added (it could not be made durable)
        k = self.cap
        if self.fl[k]:
            # a store's spare slot: outside the ring and its counts
            self.fl[k] = 0
            self.top[k] = self.msg[k] = None
            return
        self.n -= 1
        self.drop(self.slot(self.n))

    def restart(self, present):
        # after CONNACK: with the broker's session kept, resend everything sent (same IDs,
        # DUP); without it, publish all again as new messages (no DUP) and forget QoS 2
        # releases and incoming QoS 2 state ([MQTT-3.2.2-5], 4.3.3). A message keeps its
        # packet ID for that: a broker that lost the session takes any ID, and one that
        # wrongly answered Session Present 0 recognises these and delivers nothing twice.
        if not present:
            q = 0
            for i in range(self.n):
                k = self.slot(i)
                f = self.fl[k]
                if f & _REL:
                    self._forget(k)
                    p = self.ids[k]
                    if p:
                        u = self._use
                        u[p % len(u)] -= 1
                    self.ids[k] = 0
                    self.fl[k] = 0
                    self.top[k] = self.msg[k] = None
                elif f:
                    self.fl[k] = f & ~(_SENT | _PID | _PIDDISK)
                    q += 1
            self._compact()
            self.nin = 0
            self.nq = q
            self.rx2 = []
            self.epoch = (self.epoch + 1) & 0xFFFF  # packet IDs kept in flash are void now
            self._save(_HOT)
        if self.more:
            self._fill()

    def clear(self):
        # a clean start or an ended session (a stored session's queue in flash too): in
        # clean.py, loaded on first use and kept
        from .clean import clear

        clear(self)

    def live(self):
        # slots of the messages not yet completed, oldest first
        r = []
        for i in range(self.n):
            k = self.slot(i)
            if self.fl[k]:
                r.append(k)
        return r

    def load(self, k):
        # topic and payload of slot k (every ring slot holds its message)
        if self.top[k] is None:
            raise OSError(2)
        return self.top[k], self.msg[k]

    # --- incoming QoS 2 ---
    def rx2_add(self, pid, dup=True):
        # returns True when the message is new (deliver it); records it before PUBREC.
        # dup: the PUBLISH's DUP flag. A recorded ID without it is a new message (a
        # broker's resend carries DUP, [MQTT-3.3.1-1]): the record is of a session the
        # broker lost (a power cut after that CONNACK, before restart wrote it), and it
        # stands for the new message as it is
        # The store's OSError leaves it unrecorded here too: not delivered, not answered,
        # the broker sends it again (kept in RAM only, its resend would be taken as a
        # duplicate and lost)
        r = self.rx2
        if pid in r:
            return not dup
        x = None  # the one forgotten for it
        if len(r) >= 255:
            # bounded by what the hot state records (a count byte). MQTT 3.1.1 has no
            # Receive Maximum, and a broker sending a backlog has its PUBRELs behind more
            # PUBLISHes: mosquitto gets past 64. Beyond 255 the newest goes: after a link
            # loss the broker resends oldest first, and a resend taken as new is recorded
            # again; were the oldest to go, each would push out the next one still to
            # come and every resend would be delivered again. So only those beyond the
            # bound may come twice
            x = r.pop()
        r.append(pid)
        try:
            self._save(_HOT)
        except (OSError, MemoryError):
            r.remove(pid)
            if x is not None:
                r.append(x)
            raise
        return True

    def rx2_del(self, pid):
        # (PUBREL) the store's OSError keeps it recorded: PUBREL comes again
        r = self.rx2
        if pid in r:
            r.remove(pid)
            try:
                self._save(_HOT)
            except (OSError, MemoryError):
                r.append(pid)
                raise

    # --- subscriptions ---
    # A change the store cannot write is not kept in RAM either (subscribe raises): kept,
    # the application's retry would find it made and write nothing
    def sub(self, topic, qos):
        o = self.subs.get(topic)
        if o != qos:
            self.subs[topic] = qos
            try:
                self._save(_SUBS)
            except (OSError, MemoryError):
                if o is None:
                    del self.subs[topic]
                else:
                    self.subs[topic] = o
                raise

    def unsub(self, topic):
        o = self.subs.pop(topic, None)
        if o is not None:
            try:
                self._save(_SUBS)
            except (OSError, MemoryError):
                self.subs[topic] = o
                raise

    def connected(self):
        # after CONNACK: the session now has state at the broker
        self.fresh = False
        self._save(_IDENT)

    def hold(self, k, seq):
        # slot k, while it still holds the message numbered seq unacknowledged and not in
        # flash, survives a power cut from now on (a RAM session keeps nothing)
        f = self.fl[k]
        if f and self.seq[k] == seq and not f & _DISK:
            self._keep_or_drop(k)

    def _keep_or_drop(self, k):
        # (hold's write, apart: a try would take hold's frame past 11 words) not durable:
        # not accepted either, publish raises. On the wire already, the message may
        # arrive; published again, twice (as QoS 1 allows)
        try:
            self._keep(k)
        except Exception:
            self.drop(k)
            raise

    # --- persistence, done by a stored session: _save(kind) writes state, _keep(k)
    # makes slot k durable (its message, or its packet ID once released), _forget(k)
    # records its completion ---
    def _save(self, kind):
        pass

    _keep = _forget = _save
