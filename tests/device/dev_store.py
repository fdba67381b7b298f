# The session in flash: devcfg.TEST names the scenario. On the unix port the store lives
# on a littlefs image (devcfg.IMAGE); on a board, on its own flash.
import os
import time

import devlib as d
from mqttsession import MQTTException, SessionStore

V = d.VERSION
ROOT, BD = d.flash()
STORE = (ROOT or "") + "/.mqtt-test"
H = d.cfg("HOST")


def node(cid=None, ram=None, **kw):
    from mqttsession import MQTTClient  # on first use: the store-only scenarios do without it

    kw.setdefault("window", d.cfg("WINDOW", 1))
    kw.setdefault("timeout", d.cfg("TIMEOUT", 3))
    kw.setdefault("version", V)
    kw.setdefault("keepalive", 30)
    # (ram only when given: the upgrade tests run this script on 0.1.0, which has none)
    st = SessionStore(STORE) if ram is None else SessionStore(STORE, ram=ram)
    return MQTTClient(cid if cid is not None else d.cfg("CID"), H, d.cfg("PORT"), store=st,
                      **kw)


def say_got(t, m):
    print("GOT", t.decode(), m.decode())


def queue_offline(c, name, first, last):
    # a new session subscribed to its own topic (messages come back as GOT lines), then
    # messages first..last-1 published offline: into flash
    c.connect(clean_session=True)
    c.disconnect()
    c.connect(clean_session=False)
    c.subscribe(d.topic(name), 1)
    c.disconnect()
    for i in range(first, last):
        c.publish(d.topic(name), b"%02d" % i, qos=1)


def offline_q0():
    # booted offline with a store and no link: QoS 1 is queued in flash, QoS 0 is fire
    # and forget: counted in lost0, never queued, never sent later
    c = node("q0")
    c.publish(d.topic("m"), b"zero", qos=0)
    c.publish(d.topic("m"), b"one", qos=1)
    d.check(c.lost0 == 1 and c.pending() == 1, "lost0 %d pending %d" % (c.lost0, c.pending()))
    c.connect(clean_session=False)
    d.check(d.pump(c, lambda: not c.pending()), "the QoS 1 message sent")
    c.disconnect()
    # a clean connect gives up what the session held, counted in dropped
    c = node("q0c")
    c.publish(d.topic("c"), b"wiped", qos=1)
    c.publish(d.topic("c"), b"wiped", qos=2)
    c.connect()
    d.check(c.pending() == 0 and c.dropped == 2, "clean connect: dropped %d" % c.dropped)
    c.disconnect()
    d.check(node("q0c").pending() == 0, "and forgotten in flash")


def ids():
    # SessionStore semantics; run twice on one image, PHASE 1 then 2
    st = SessionStore(STORE)
    s = st.get(H)
    print("GEN", s.client_id.decode())
    d.check(st.get(H).client_id == s.client_id, "get(host) returns the same session")
    d.check(st.has_any(H), "has_any(host)")
    d.check(not st.has_any("other.example"), "no session for another host")
    if d.cfg("PHASE") == 2:
        return
    x = st.get(H, "named")
    d.check(x.client_id == b"named", "get(host, id) creates that session")
    d.check(st.get(H).client_id == b"named", "the last used session is returned")
    st.delete(H, "named")
    d.check(st.get(H).client_id == s.client_id, "after delete, an existing session")
    odd = "a/b c\u00e9" + "x" * 40
    y = st.get(H, odd)
    d.check(st.get(H, odd).client_id == odd.encode(), "odd client IDs map to files")
    st.delete(H, odd)
    st.get(H, s.client_id)  # the generated one is the last used again
    d.check(y.client_id == odd.encode(), "round trip")


def sender():
    # publishes COUNT messages at QOS, then cuts power at CUT:
    #   paused: the broker is paused, publish returns with the message in flash only
    #   pubrel: QoS 2 after PUBREC, before PUBREL goes out
    #   pubcomp: QoS 2 after PUBREL, when PUBCOMP arrives
    c = node()
    cut = d.cfg("CUT")
    handle = c._handle
    send = c._send_slot

    def h(first, *i):
        # _handle(first) in the 0.1.0 core (upgrade tests), _handle(first, i) since
        if (cut == "puback" and first == 0x40) or (cut == "pubcomp" and first == 0x70):
            d.freeze("CUT")
        return handle(first, *i)

    def s(k):
        if cut == "pubrel" and c._s.fl[k] & 16:
            d.freeze("CUT")
        send(k)

    c._handle = h
    c._send_slot = s
    c.connect(clean_session=False)
    if cut == "paused":
        print("READY")  # the host pauses the broker now: no acknowledgement will come
        time.sleep_ms(1500)
    for i in range(d.cfg("COUNT", 1)):
        c.publish(d.topic("s"), "n%d" % i, qos=d.cfg("QOS", 1))
        print("ACCEPTED", i)
    if cut == "paused":
        d.check(c._s.fl[c._s.live()[0]] & 32, "unacknowledged message in flash")
        d.freeze("CUT")
    d.pump(c, lambda: False, 3000)
    print("NOCUT")


def receiver():
    # subscribes at QoS 2 with a persistent session; CUT: before_pubrec / after_pubrec
    c = node()
    c.set_callback(say_got)
    cut = d.cfg("CUT")
    ack = c._ack

    def a(first, pid):
        if first == 0x50 and cut == "before_pubrec":
            d.freeze("CUT")
        ack(first, pid)
        if first == 0x50 and cut == "after_pubrec":
            d.freeze("CUT")

    c._ack = a
    c.connect(clean_session=False)
    c.subscribe(d.topic("r"), 2)
    print("READY")
    d.pump(c, lambda: False, 20000)


def resume():
    # reboots into the stored session and runs until everything is acknowledged
    c = node()
    c.set_callback(say_got)
    print("PENDING_AT_BOOT", c._s.pending())
    print("PRESENT", c.connect(clean_session=False))
    d.pump(c, lambda: c._s.pending() == 0, 8000)
    d.pump(c, lambda: False, d.cfg("LINGER", 1000))
    print("PENDING", c._s.pending())
    d.check(c._s.pending() == 0, "all acknowledged")
    c.disconnect()


def null():
    # MQTT 5 null session: the broker assigns the ID, the store keeps it
    if d.cfg("PHASE") == 1:
        c = node("")
        d.check(c.connect(clean_session=False) is False, "new session")
        print("ASSIGNED", c.client_id)
        d.check(c.client_id.startswith("auto-"), "mosquitto assigned an ID")
        c.subscribe(d.topic("n"), 1)
        c.disconnect()
    else:
        c = node(None)
        print("ASSIGNED", c.client_id)
        d.check(c.connect(clean_session=False) is True, "Session Present on the next boot")
        d.check(d.topic("n").encode() in c._s.subs, "subscriptions kept")
        c.disconnect()


def batched():
    # 40 QoS 1 messages queued offline in flash (16 in RAM, as README's backlog) go out,
    # once connected, in batches: the window's 16 in the first write, never one write per
    # message (core._write counted)
    import io
    import select

    from mqttsession import core

    class Short(io.IOBase):
        # a socket that takes at most 7 bytes a write: each batch goes out in pieces,
        # the rest waiting in the client's _ob; the client's poller waits on this object
        # (ioctl: the real socket's readiness)
        def __init__(self, s):
            self.s = s
            self.p = select.poll()
            self.p.register(s, select.POLLIN | select.POLLOUT)
            self.n = 0  # writes the socket took in part

        def readinto(self, buf, n=0):
            return self.s.readinto(buf, n) if n else self.s.readinto(buf)

        def write(self, buf, n=None):
            n = len(buf) if n is None else n
            self.n += n > 7
            return self.s.write(memoryview(buf)[: min(7, n)])

        def ioctl(self, req, arg):
            if req != 3:  # MP_STREAM_POLL
                return 0
            r = 0
            for _, ev in self.p.poll(0):
                r |= ev
            return r & arg

        def close(self):
            self.s.close()

    tx = d.cfg("TX")  # the client's buffer: a batch that outgrows it is written in parts
    c = node(ram=16, window=16, queue=40, tx_size=tx)
    c.set_callback(say_got)
    queue_offline(c, "bat", 0, 40)
    writes = []
    w = core._write

    def count(c_, buf, n):
        writes.append(n)
        w(c_, buf, n)

    core._write = count
    try:
        c.connect(clean_session=False)
        if d.cfg("SHORT"):  # the 24 after the first window go out a few bytes a write
            c._poll.unregister(c.sock)
            c.sock = Short(c.sock)
            c._poll.register(c.sock, select.POLLIN)
        d.check(d.pump(c, lambda: c.pending() == 0), "40 queued messages acknowledged")
        if d.cfg("SHORT"):
            d.check(c.sock.n > 0, "writes taken in part: %d" % c.sock.n)
    finally:
        core._write = w
    one = 2 + 2 + len(d.topic("bat")) + 2 + (V == 5) + 2  # one PUBLISH's bytes
    d.check(sum(writes) == 40 * one, "the 40 PUBLISHes, nothing else: %r" % writes)
    d.check(all(n % one == 0 and n <= tx for n in writes), "whole PUBLISHes: %r" % writes)
    if tx >= 16 * one + 16:  # room for the window (the pump keeps a header's margin)
        d.check(writes[0] == 16 * one, "the window's 16 in the first write: %r" % writes)
        n = 1 + 24  # then at worst one write per acknowledgement
    else:
        d.check(writes[0] >= 2 * one, "a batch in the first write: %r" % writes)
        n = 8 + 24
    d.check(len(writes) <= n, "%d writes for 40 messages (at most %d)" % (len(writes), n))
    print("WRITES", len(writes), n)
    d.pump(c, lambda: False, 500)  # the last ones back from the broker
    c.disconnect()


def remount():
    # readsize and mtime belong to the mount, not to the filesystem (README, "The mount's
    # readsize" and "The mount's mtime"): a backlog queued under the port's mount, more
    # queued after mounting again with other settings, and the port's mount again at the
    # next boot: every message back once and in order
    import blockdev
    import vfs

    def mount(bd, read, mtime):
        vfs.umount("/flash")
        bd.close()
        return d.nosync(blockdev.mount(d.cfg("IMAGE"), "/flash", prog_size=d.cfg("PROG"),
                                       read_size=read, mtime=mtime))

    queue_offline(node(ram=16, window=16, queue=60), "rm", 0, 20)
    bd = mount(BD, d.cfg("READ"), False)
    c = node(ram=16, window=16, queue=60)
    d.check(c.pending() == 20, "pending after the remount: %d" % c.pending())
    for i in range(20, 40):
        c.publish(d.topic("rm"), b"%02d" % i, qos=1)
    bd = mount(bd, 32, True)
    c = node(ram=16, window=16, queue=60)
    c.set_callback(say_got)
    d.check(c.pending() == 40, "pending at the port's mount again: %d" % c.pending())
    c.connect(clean_session=False)
    d.check(d.pump(c, lambda: c.pending() == 0), "40 queued messages acknowledged")
    d.pump(c, lambda: False, 500)  # the last ones back from the broker
    c.disconnect()
    bd.close()


def lost_session():
    # Session Present 0 with local state: re-subscribe and publish stored messages again
    c = node(window=8)
    c.set_callback(say_got)
    if d.cfg("PHASE") == 1:
        c.connect(clean_session=False)
        c.subscribe(d.topic("l"), 1)
        c.disconnect()
        for i in range(3):
            c.publish(d.topic("l"), "q%d" % i, qos=1 + i % 2)  # offline: into flash
        d.check(c._s.pending() == 3, "three queued in flash")
        return
    d.check(c._s.pending() == 3, "three queued after reboot")
    present = c.connect(clean_session=False)
    d.check(present is False, "the broker lost the session")
    d.pump(c, lambda: c._s.pending() == 0, 5000)
    d.pump(c, lambda: False, 800)
    d.check(d.topic("l").encode() in c._s.subs, "subscription kept")


def present_without_state():
    # MQTT 5 [MQTT-3.2.2-4]: the broker has a session the store does not know: close,
    # start clean
    c = node("pws")
    c.connect(clean_session=False)
    c.disconnect()
    SessionStore(STORE).delete(H, "pws")
    c = node("pws")
    d.check(c._s.fresh, "no local state")
    d.check(c.connect(clean_session=False) is False, "reconnected clean: no session")


def corrupt():
    # damaged files are reported; the node still starts, with what is intact
    st = SessionStore(STORE)
    s = st.get(H, "cor")
    s.sub(b"x/#", 1)
    s.rx2_add(7)  # writes the hot state file
    for i in range(3):
        k = s.add(b"c/t", b"p%d" % i, 1, False)
        s._keep(k)
    p = s._p
    kind = d.cfg("DAMAGE")
    names = sorted(os.listdir(p))
    print("FILES", names)
    victim = {"msg": "t1/0", "ident": "id", "subs": "subs", "hot": "hot"}[kind]
    how = d.cfg("HOW")
    with open(p + "/" + victim, "rb") as f:
        b = f.read()
    if how == "truncate":
        b = b[: len(b) // 2]
    elif how == "flip":
        b = b[:5] + bytes((b[5] ^ 0xFF,)) + b[6:]
    elif how == "random":
        b = os.urandom(len(b))
    elif how == "empty":
        b = b""
    with open(p + "/" + victim, "wb") as f:
        f.write(b)
    st2 = SessionStore(STORE)
    s2 = st2.get(H, "cor")
    print("ERRORS", len(st2.errors))
    d.check(len(st2.errors) == 1, "the damage is reported once")
    left = sorted(s2.load(k)[1] for k in s2.live())
    print("LEFT", left)
    want = [b"p0", b"p1", b"p2"] if kind != "msg" else [b"p0", b"p2"]
    d.check(left == want, "intact messages kept")
    d.check(s2.subs == ({} if kind == "subs" else {b"x/#": 1}), "subscriptions as expected")
    # reported once, not at every boot: a node that boots again before it writes anything
    st3 = SessionStore(STORE)
    s3 = st3.get(H, "cor")  # (the session now: s2 is taken over, SessionStore._own)
    d.check(st3.errors == [], "not reported again at the next boot: %r" % st3.errors)
    # the damaged session works: a new message is stored and loads again
    k = s3.add(b"c/t", b"after", 1, False)
    s3._keep(k)
    d.check(SessionStore(STORE).get(H, "cor").pending() == len(want) + 1, "usable after repair")


def full():
    # a full filesystem: OSError(ENOSPC, "session store full"), nothing stored before lost
    c = node("full", window=8)
    c.connect()
    c.disconnect()
    kept = 0
    e = None
    junk = open(ROOT + "/junk", "wb")
    try:
        while True:
            junk.write(bytes(4096))
            junk.flush()
    except OSError:
        pass
    junk.close()
    try:
        for i in range(400):
            c.publish(d.topic("f"), bytes(200) + b"%d" % i, qos=1)
            kept += 1
    except OSError as x:
        e = x
    print("KEPT", kept, "ERROR", e)
    # the same error as at the store's max_bytes (ENOBUFS is the queue count's, not this)
    d.check(e is not None and e.args == (28, "session store full"),
            "a full filesystem raises OSError(ENOSPC, 'session store full')")
    n = c._s.pending()
    d.check(n == kept, "accepted messages all in the session: %d" % n)
    st2 = SessionStore(STORE)
    s2 = d.peek(st2, H, "full")
    d.check(s2.pending() == kept, "and all in flash after a reload")
    # the refused message was never stored: its write cut short is not damage
    d.check(not st2.errors, "no damage reported: %r" % st2.errors)
    os.remove(ROOT + "/junk")
    c.publish(d.topic("f"), b"after", qos=1)
    d.check(c._s.pending() == kept + 1, "room again after freeing space")


def qlimit():
    # the store's byte bound: refused with ENOSPC, earlier messages kept
    st = SessionStore(STORE, max_bytes=2000)
    from mqttsession import MQTTClient

    c = MQTTClient("ql", H, d.cfg("PORT"), store=st, window=8, queue=64, version=V)
    n = 0
    try:
        for i in range(64):
            c.publish(d.topic("q"), bytes(100), qos=1)
            n += 1
    except OSError as e:
        print("LIMIT", n, e)
        d.check(e.errno == 28, "ENOSPC at the byte bound")
    d.check(0 < n < 64 and c._s.pending() == n, "bounded at %d messages" % n)


def footprint():
    # the store's bound counts the flash its segments take (whole blocks), so the default
    # (a quarter of the filesystem) bounds the blocks a backlog of small messages uses:
    # before 0.2.11 it counted their bytes only, and 3-byte messages filled the whole
    # filesystem. Full: ENOSPC, everything kept; a reload counts the same; "drop_oldest"
    # then gives up the oldest for each new one, within the bound
    def used():
        v = os.statvfs(ROOT)
        return (v[2] - v[3]) * v[0]

    c = node("fp", ram=16, queue=100000, window=16)
    mb = c.store.max_bytes
    u0 = used()
    n = 0
    e = None
    try:
        for i in range(20000):
            c.publish(d.topic("fp"), b"%03d" % (i % 1000), qos=1)
            n += 1
    except OSError as x:
        e = x
    grown = used() - u0
    print("KEPT", n, "GROWN", grown, "MAX", mb, "ERROR", e)
    d.check(e is not None and e.args == (28, "session store full"), "full: ENOSPC")
    d.check(n > 64 and c.pending() == n, "all %d kept" % n)
    # past the bound by less than a block (a seal), and the directories' metadata grows
    # a little too: two blocks of room for both
    d.check(grown <= mb + 2 * 4096, "flash used %d within max_bytes %d" % (grown, mb))
    b = c._s.bytes
    d.check(b <= mb + 4096, "counted %d: at most a block past %d" % (b, mb))
    st2 = SessionStore(STORE, ram=16)
    s2 = st2.get(H, "fp")
    d.check(s2.pending() == n and s2.bytes == b and not st2.errors,
            "reload: %d pending, %d bytes (%d before), %r" % (s2.pending(), s2.bytes, b,
                                                                st2.errors))
    c = node("fp", ram=16, queue=100000, window=16, full="drop_oldest")
    for i in range(200):
        c.publish(d.topic("fp"), b"new", qos=1)
    print("DROPPED", c.dropped, "PENDING", c.pending())
    d.check(c._s.bytes <= mb + 4096, "counted %d: at most a block past" % c._s.bytes)
    # (the first new one may take more than one: a seal left the session past its bound)
    d.check(200 <= c.dropped <= 210 and c.pending() == n + 200 - c.dropped,
            "drop_oldest: %d dropped, %d pending" % (c.dropped, c.pending()))
    d.check(used() - u0 <= mb + 2 * 4096, "still within max_bytes: %d" % (used() - u0))


globals()[d.cfg("TEST")]()
print("PASS")
