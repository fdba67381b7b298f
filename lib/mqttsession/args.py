# The constructors, run once: the client's (Core.__init__ calls init): its arguments
# checked, the client's attributes set, and the session they name when it lives in RAM;
# set_last_will (will), run once before the connect; SessionStore's (store) and Link's
# (link). Loaded by each and taken out of sys.modules again when it ends
# (session.unload): once the caller's reference goes (before the store loads its
# session), a node holds none of it. (The functions are named as the names that exist
# already: a new name would stay interned.)
from array import array
import os
import time

from . import packet as P
from .session import Session, unload


def init(self, client_id, server, port=0, user=None, password=None, keepalive=0, ssl=None,
         version=4, store=None, window=1, max_packet=1024, tx_size=256, timeout=10,
         expiry=None, queue=None, link=None, full="error", strikes=3, log=None,
         limits="downgrade", redirect=False):
    # Core.__init__: the client's attributes, all of them, before the session loads from
    # flash; returns the client ID and capacity the store's session is loaded with (the
    # caller does that, once this module is freed), or sets the RAM session
    # the numbers: ValueError naming the argument and what it may be
    if version not in (4, 5) or type(version) is not int:
        raise ValueError("version must be 4 (MQTT 3.1.1) or 5")
    # queue None: 16 without a store; with one (None on), as many as its max_bytes holds,
    # 16 (or window, or SessionStore(ram=)) of them in RAM
    if queue is None and store is None:
        queue = 16
    for v, n, lo, hi in ((keepalive, "keepalive", 0, 65535), (window, "window", 1, 65535),
                         (1 if queue is None else queue, "queue", 1, 0),
                         (strikes, "strikes", 1, 0),
                         # (MQTT's largest packet: a 268435455-byte body and its header)
                         (max_packet, "max_packet", 64, 268435460),
                         (tx_size, "tx_size", 32, 268435460),
                         (port, "port", 0, 65535)):
        if type(v) is not int or v < lo or hi and v > hi:
            raise ValueError(("%s must be an int from %d to %d" if hi else
                              "%s must be an int >= %d%s") % (n, lo, hi or ""))
    if not isinstance(server, str) or not server:
        raise TypeError("server must be a host name or address (str)")
    # (ms within a 32-bit port's ticks range; "not 0 <": NaN fails too)
    if not isinstance(timeout, (int, float)) or not 0.001 <= timeout <= 536870:
        raise ValueError("timeout must be a number of seconds >= 0.001 and <= 536870")
    if expiry is not None and (type(expiry) is not int or expiry < 0 or expiry > 0xFFFFFFFF):
        raise ValueError("expiry must be None or an int from 0 to 4294967295 (seconds)")
    # the objects the client calls into: by what they do (store.py need not load here)
    if store is not None and not hasattr(store, "get"):
        raise TypeError("store must be a SessionStore or None")
    if link is not None and link is not True and not hasattr(link, "failed"):
        raise TypeError("link must be a Link, True or None")
    # the strings as bytes; user and client_id are MQTT strings: UTF-8 without U+0000
    a = []
    for v, n, lo in ((user, "user", 1), (password, "password", 0), (client_id, "client_id", 1)):
        if isinstance(v, str):
            v = v.encode()
        elif v is not None and not isinstance(v, (bytes, bytearray)):
            raise TypeError(n + " must be str or bytes")
        if lo and v is not None and P.utf8(v, 0, len(v)) == 1:
            raise ValueError(n + " must be UTF-8 without U+0000 or surrogates")
        if v is not None and len(v) > 65535:  # before the store makes the session
            raise ValueError(n + " longer than 65535 bytes")
        a.append(v)
    self.server = server
    self.port = port or (8883 if ssl else 1883)
    if version == 4 and password is not None and user is None:
        raise ValueError("password needs user with MQTT 3.1.1 [MQTT-3.1.2-22]")
    self.keepalive = keepalive
    # TLS is secure by default: ssl=True cannot verify (MicroPython has no CA store), so it
    # is refused; a context that does not verify is the caller's explicit choice (warned
    # once per process: the flag is in wire.py, which stays loaded)
    if ssl is True:
        raise ValueError("ssl=True cannot verify the broker (no CA store on MicroPython): "
                         "pass ssl=ctx with ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), "
                         "ctx.verify_mode = ssl.CERT_REQUIRED, "
                         "ctx.load_verify_locations(cadata=<CA certificate, DER>)")
    # a context wraps the socket at connect: anything else (umqtt's old ssl=1, the ssl
    # module) would only fail there, as AttributeError or TypeError out of the keeper
    if ssl and (not hasattr(ssl, "wrap_socket") or hasattr(ssl, "SSLContext")):
        raise TypeError("ssl must be an ssl.SSLContext (or None for no TLS)")
    if ssl and getattr(ssl, "verify_mode", 2) != 2:
        from . import wire  # imported here: a store or Link alone does not load it

        if not wire._warned:
            wire._warned = True
            print("mqttsession: warning: the TLS context does not verify the broker's "
                  "certificate (verify_mode is not CERT_REQUIRED)")
    self.version = version
    self.window = window
    self._tms = int(timeout * 1000)
    self.expiry = expiry
    self.store = store
    if link is True:
        from .link import Link

        link = Link()
    self.link = link  # a link.Link: ride through outages, reconnect with backoff
    if full not in ("error", "drop_oldest"):
        raise ValueError("full must be 'error' or 'drop_oldest'")
    self.full = full
    self.strikes = strikes  # outages in a row with a message in flight: set aside
    self._sn = 0  # how often the message blamed for the last outages was (_cn: its seq)
    self.on_aside = None  # f(topic, msg, reason) when a message is set aside
    if log is not None and not callable(log):
        # (it was taken, and printed as a log hook that raised at every line)
        raise P.err(58, "log")  # %s must be callable or None
    self.log = log  # f(str): a short line on connect, disconnect, failure, set-aside
    self._maxq = 2  # MQTT 5 Maximum QoS of the broker, | 4 without its Retain Available
    if limits not in ("downgrade", "refuse"):
        raise ValueError("limits must be 'downgrade' or 'refuse'")
    self.limits = limits  # a message above the broker's limits: sent within them, or
    self.downgraded = 0  # ValueError; counted here (also a QoS 2 answered by PUBACK)
    self.redirect = redirect  # follow a Server Reference (MQTT 5), one hop
    self.server_reference = None  # the last one the broker sent
    self.lost0 = 0  # QoS 0 messages published while the link was down
    self._want = False  # connected on purpose: the keeper may reconnect
    self.cb = None
    self._raw = False
    self.sock = None
    self._poll = None
    self._cs = 0  # connect step: 1 TCP, 2 TLS and CONNECT, 3 CONNACK; 0 none under way
    self._r0 = self._r1 = self._skip = 0
    self._hold = False
    self._ob = None  # output the socket has not taken yet
    self._p0 = self._rt = 0
    self._t = self._m = self._pt = self._pm = None  # messages in hand (see _check)
    self._rem = 0
    self._tb = None  # the encoding of the last str topic (_ts)
    self._ping = 0  # ticks when an unanswered PINGREQ went out, 0 if none
    self._ltx = self._lrx = 0
    self._quota = window  # lowered to the broker's Receive Maximum (MQTT 5)
    self._maxout = 268435460  # broker's Maximum Packet Size
    self.dropped = 0  # stored messages a later broker refused as too large
    self.ka = keepalive  # keepalive in force (MQTT 5 Server Keep Alive may change it)
    # set later by the connect and receive paths (wire.py, ctl.py): here, so that the
    # instance's attribute table has its final size before the session loads from
    # flash (grown later, it needs a larger free block in a heap that the session
    # load and the connect have fragmented: MemoryError on an ESP32-sized heap)
    self._i = self._n = self._hl = 0
    # the objects last: the attribute table reaches its final size (73 slots, 1.2 KB,
    # through 12 growths) before any of them, so the tables it leaves behind merge
    # into one free block that the objects then fill (grown between them, it needs
    # fresh blocks in a fragmented heap: MemoryError on a smaller heap; the receive and
    # transmit buffers come after the session load, Core.__init__)
    self._s = self._rx = self._tx = self._ab = self._pf = self._topics = self._ts = None
    self._tv = self._cn = self._todo = None
    # the session the arguments name when it lives in RAM; None for the store's session
    # for (server, client_id), its null session for client_id '' (the caller loads it
    # once this module is freed)
    s = None
    if store is None:
        if client_id is None:
            raise ValueError("client_id None needs a store")
        s = Session(a[2], server, max(window, queue))
        # a RAM session only (a stored session's table, about 40 names, would grow through
        # blocks of up to 1.2 KB while the flash load has the heap in pieces): MicroPython
        # grows an attribute table only once it is full, and a method call first looks its
        # name up there, so on a full table every call walks all of it (a Session fills 23
        # of 23 slots: 0.73 us a call on the unix port, 0.11 us grown). Grown now to 1.5x
        # its attributes (the sizes of py/map.c), with placeholders taken out again: the
        # class's own names, interned already (a new name would cost a qstr)
        try:
            d = s.__dict__
        except AttributeError:
            d = None  # a port without __dict__
        if d is not None:
            n = len(d)
            b = 0
            for v in (17, 23, 29, 37, 47, 59, 73, 97, 127, 167, 223):
                if v * 2 >= n * 3:
                    break
                b = v
            # used > b: the table grows past b (a loop: a comprehension is one more function)
            k = []
            for v in dir(type(s)):
                if len(k) <= b - n and v[0] != "_" and v not in d:
                    k.append(v)
            for v in k:
                setattr(s, v, 0)
            for v in k:
                delattr(s, v)
    elif client_id is not None and not len(client_id) and version != 5:
        raise ValueError("client_id '' (a null session) needs version=5")
    self._s = s
    self._topics = [b""] * 8  # recent incoming topics, for raw callbacks
    self._todo = {}  # filter -> QoS (None: unsubscribe) to make on the next connect
    self._rx = max_packet  # the buffers' sizes: Core.__init__ makes them (see there)
    self._tx = tx_size
    # what the connect and the rare paths use, off the publish/receive path (list indices:
    # const in the modules): 0 user, 1 password, 2 TLS context, 3 will (set_last_will),
    # 4 redirect hops (v5.disconnected), 5 the deadline, 6 Session Present, 7 the CONNECT
    # packet (buffer, size), 8 how much of it went out, 9 a clean start still to make
    # (connect(clean_session=True) until it is made), 10 the seq of the message blamed for
    # the last outages (aside.struck), 11 the known cause that ended the link (the
    # broker's error with a keeper, or the asyncio reader's MemoryError: no message in
    # flight is blamed for that close), 12 an
    # oversized incoming packet refused (the connection stays up), 13 the packet ID of the
    # SUBSCRIBE/UNSUBSCRIBE awaiting its ack, 14 its return code (while it is awaited:
    # minus the type of the ack), 15 a deadline of the link passed (the blocking client's
    # link.last_error is then ETIMEDOUT, not a reset), 16 the length of a write the socket
    # did not take (0: none), which must be made again with that length (wire._flush), 17
    # the bytes still to go of the output that was waiting when _ot was taken, 18
    # application code the client called is running (the blocking client's callback,
    # the hooks a close runs): no call reads input or starts a reconnect then, 19 a
    # resume after the broker lost the session did not finish (ctl.resume: the next
    # Session Present is taken as a loss again), 20 an earlier CONNECT went out and its
    # CONNACK was never taken (the broker may have made a new, empty session with it),
    # 21 the store's owed file holds every subscription for this connect (ctl.pre_owe;
    # None: to be written before the CONNECT's first byte), 22 the TCP socket under the
    # TLS one (wire._close), 23 the subscription blamed for the last closes and how often
    # (subs.struck)
    self._cn = [a[0], a[1], ssl, None, 0, 0, None, None, 0, False, -1, None, False, 0, -1,
                False, 0, 0, False, False, False, False, None, None]
    self._ab = bytearray(4)  # acknowledgements, so they never clobber _tx
    self._pf = array("i", (0, 0, 0, 1 if version == 5 else 0))  # publish_fields
    # the last str topic, and the last bytes topic that passed the checks (at first an
    # object no caller passes as a topic)
    self._ts = self._tv = object()
    unload("args")
    # the capacity the store's session is loaded with: above load._ANY (0x20000000), the
    # queue is bounded by max_bytes only, and the excess is the ring's size (load.init)
    return client_id, max(window, queue) if queue else 0x20000000 + max(window, 16)


def will(self, topic, msg, retain, qos):
    # Core.set_last_will
    try:
        topic = self._topic(topic)
        P.check_topic(topic)
        P.check_qos(qos)
        if isinstance(msg, str):
            msg = msg.encode()
        elif isinstance(msg, (bytes, bytearray, memoryview)):
            msg = bytes(msg)  # (a memoryview's len() counts its items, not its bytes)
        else:
            raise TypeError("msg must be bytes, bytearray, memoryview or str")
        if len(msg) > 65535:  # MQTT binary data: a 2-byte length
            raise ValueError("msg longer than 65535 bytes")
        self._cn[3] = (bytes(topic), bytes(msg), retain, qos)
    finally:
        unload("args")


def store(self, root, max_bytes, newer, ram):
    # SessionStore.__init__ (store.py says what the arguments mean): checked before
    # anything is touched, each error naming its argument
    try:
        if not isinstance(root, str):
            raise TypeError("root must be a str")
        if "\x00" in root:
            # the port's filesystem ends a path at NUL: another directory than the one
            # named (where a directory of the store's names was never to be removed)
            raise P.err(59)  # root must not contain NUL
        for v, n in ((max_bytes, "max_bytes"), (ram, "ram")):
            if v is not None and (type(v) is not int or v < 1):
                raise ValueError(n + " must be None or an int >= 1")
        if newer not in ("refuse", "aside"):
            raise ValueError("newer must be 'refuse' or 'aside'")
        if not root.startswith("/"):
            # relative: to the current directory once, now. Looked up at each write, a
            # later chdir moved the store from under its sessions
            root = os.getcwd() + "/" + root
        # one spelling of each directory ("." and ".." resolved, no repeated or trailing
        # "/"): two spellings of one directory were two sessions to the claims
        # (SessionStore._own), and both holders wrote
        p = []
        for x in root.split("/"):
            if x == "..":
                p = p[:-1]  # ("/.." is "/")
            elif x and x != ".":
                p.append(x)
        p = "/" + "/".join(p)
        self.root = root if p == root else p  # (the caller's string when the same: no copy)
        self.ram = ram
        self.errors = []
        self.newer = newer
        self._mkdirs(self.root)
        try:
            v = os.statvfs(self.root)
        except (OSError, AttributeError):
            v = (4096, 0, 0)
        # the filesystem's block: a segment takes whole ones (stored._slack)
        self._bs = v[0] or 4096
        if max_bytes is None:
            max_bytes = max(v[1] * v[2] // 4, 32768)
        self.max_bytes = max_bytes
    finally:
        unload("args")


def link(self, board, min_ms, max_ms, factor, jitter, wifi_timeout_ms, on_change):
    # Link.__init__ (link.py says what the arguments mean): each error names its
    # argument; factor < 1 would shrink the waits (0: none at all, a reconnect storm)
    try:
        for v, n in ((min_ms, "min_ms"), (max_ms, "max_ms"), (factor, "factor"),
                     (jitter, "jitter"), (wifi_timeout_ms, "wifi_timeout_ms")):
            if not isinstance(v, (int, float)):
                raise TypeError(n + " must be a number")
        if not 0 < min_ms <= max_ms:
            raise ValueError("backoff needs 0 < min_ms <= max_ms")
        if not factor >= 1:  # (NaN too)
            raise ValueError("factor must be >= 1")
        if not 0 <= jitter < 1:
            raise ValueError("jitter must be 0 to <1")
        if not wifi_timeout_ms > 0:
            raise ValueError("wifi_timeout_ms must be > 0")
        if on_change is not None and not callable(on_change):
            # (as set_callback: else reported at every change of the link, never refused)
            raise P.err(58, "on_change")  # %s must be callable or None
        # (as budget_ms: a 32-bit port's ticks range, else the wait never ends there)
        for v, n in ((max_ms, "max_ms"), (wifi_timeout_ms, "wifi_timeout_ms")):
            if v > 536870000:
                raise ValueError(n + " must be <= 536870000")
        self.board = board
        self.min_ms = min_ms
        self.max_ms = max_ms
        self.factor = factor
        self.jitter = jitter
        self.wifi_timeout_ms = wifi_timeout_ms
        self.on_change = on_change
        self.up = False
        self.delay = 0  # ms until the next attempt, counted from .at
        self.at = time.ticks_ms()
        self.tries = 0  # failed attempts since the link was last up
        self.outages = 0
        self.down_since = self.at
        self._dn = 0  # ms of the outage before down_since (Link.failed)
        self.longest = 0  # longest outage ridden through, ms
        self.last_error = None
        self._wt = None  # ticks when the Wi-Fi attempt under way started
        if board is not None:
            from . import wifi  # noqa: F401 (now, not at the first reconnect: see wifi.py)
    finally:
        unload("args")
