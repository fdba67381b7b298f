# A queue or store that fills up (tests/host/test_store_full.py). devcfg.TEST names the
# scenario; the host judges what the broker and the reloaded store show.
import time

import devlib as d
from mqttsession import MQTTClient, SessionStore

ROOT, BD = d.flash()
STORE = ROOT + "/.mqtt"
H = d.cfg("HOST")
P = d.cfg("PORT")


def node(cid, ram=None, **kw):
    kw.setdefault("window", 4)
    kw.setdefault("timeout", 2)
    kw.setdefault("keepalive", 30)
    kw.setdefault("version", d.VERSION)
    mb = d.cfg("MAXB")
    st = SessionStore(STORE, max_bytes=mb, ram=ram)
    return MQTTClient(cid, H, P, store=st, **kw)


def reload(cid, ram=None):
    st = SessionStore(STORE, max_bytes=d.cfg("MAXB"), ram=ram)
    return st, d.peek(st, H, cid)


def payloads(s):
    # pending payloads of a session, in order, without touching flash state
    r = []
    for k in s.live():
        r.append(bytes(s.msg[k]))
    return r


def inflight_then_queue(ram, queue, nin=4, nq=4):
    # hostile broker: CONNACK, never an ack. nin messages go out (packet IDs), then the
    # link goes; nq more queue offline (None: until the session refuses one)
    c = node("full", ram=ram, queue=queue, full="drop_oldest")
    c.connect(clean_session=True)
    for i in range(nin):
        c.publish(d.topic("x"), b"m%02d" % i, qos=1)
    print("INFLIGHT", c._s.nin, "pending", c.pending())
    c.disconnect()
    c.full = "error"
    i = nin
    while nq is None or i < nin + nq:
        try:
            c.publish(d.topic("x"), b"m%02d" % i + bytes(d.cfg("PAD", 0)), qos=1)
        except OSError as e:
            print("FILLED", i, repr(e))
            break
        i += 1
    c.full = "drop_oldest"
    print("QUEUED", c._s.nq, "more", c._s.more, "pending", c.pending(), "bytes", c._s.bytes)
    return c


def backlog_refuses():
    # ram=4 (the ring): 4 in flight, the rest waiting in flash beyond the ring. A full
    # queue (count, or MAXB bytes) with drop_oldest: the oldest not sent (m04) should go,
    # the new one taken; gone after a reboot; the rest delivered
    nq = d.cfg("NQ", 4)
    c = inflight_then_queue(4, d.cfg("QUEUE", 8), nq=nq if nq else None)
    e = None
    try:
        c.publish(d.topic("x"), b"new", qos=1)
    except OSError as x:
        e = x
    print("RESULT", repr(e), "dropped", c.dropped, "pending", c.pending())
    d.check(e is None and c.dropped == 1, "drop_oldest gives up a queued message in flash")
    st, s2 = reload("full", 4)
    d.check(s2.pending() == c.pending() and s2.bytes == c._s.bytes and not st.errors,
            "reload: %d pending %d bytes (%d, %d) %r" % (s2.pending(), s2.bytes, c.pending(),
                                                         c._s.bytes, st.errors))
    if d.cfg("PORT2"):
        c = MQTTClient("full", H, d.cfg("PORT2"), store=st, window=4, queue=d.cfg("QUEUE", 8),
                       keepalive=30, version=d.VERSION, full="drop_oldest")
        c.connect(clean_session=False)
        d.pump(c, lambda: not c.pending())
        print("DRAINED pending", c.pending(), "bytes", c._s.bytes)
        d.check(c.pending() == 0 and c._s.bytes == 0, "drained")


def drift():
    # ram=None (ring = queue 8): 4 in flight, 4 queued; drop_oldest gives up m04 (queued,
    # behind the in-flight ones). A reload must count what the running session counts.
    # NQ=36: the queued ones sealed into a segment
    nq = d.cfg("NQ", 4)
    c = inflight_then_queue(None, 4 + nq, nq=nq)
    c.publish(d.topic("x"), b"new", qos=1)
    print("DROPPED", c.dropped, "pending", c.pending(), "bytes", c._s.bytes)
    d.check(c.dropped == 1, "one dropped")
    st, s2 = reload("full")
    print("RELOAD pending", s2.pending(), "bytes", s2.bytes, payloads(s2))
    d.check(b"m04" not in payloads(s2), "the dropped one is gone after a reboot")
    d.check(s2.pending() == c.pending(), "reload pending %d == %d" % (s2.pending(),
                                                                      c.pending()))
    d.check(s2.bytes == c._s.bytes, "reload bytes %d == %d" % (s2.bytes, c._s.bytes))
    if d.cfg("PORT2"):
        # the rebooted node drains everything to a real broker: nothing pending, nothing
        # in flash, and its count should be 0
        c = MQTTClient("full", H, d.cfg("PORT2"), store=st, window=4, queue=4 + nq,
                       keepalive=30, version=d.VERSION, full="drop_oldest")
        c.connect(clean_session=False)
        d.pump(c, lambda: not c.pending())
        print("DRAINED pending", c.pending(), "bytes", c._s.bytes, "segments",
              len(c._s._sg))
        d.check(c.pending() == 0 and c._s.bytes == 0, "drained: bytes %d" % c._s.bytes)


def drift_cycles():
    # as drift, repeated: each boot gives up one more queued behind the in-flight ones;
    # the reloaded count grows by each record never subtracted
    c = inflight_then_queue(None, 8)
    for r in range(d.cfg("ROUNDS", 5)):
        c.publish(d.topic("x"), b"new%02d" % r, qos=1)
        st, s2 = reload("full")
        print("ROUND", r, "running", c._s.bytes, "reload", s2.bytes, "pending",
              c.pending(), s2.pending())
    d.check(s2.bytes == c._s.bytes, "reload bytes %d == %d" % (s2.bytes, c._s.bytes))


# Write failures (BD.fail_after n progs): each run is one boot; the host runs phase 1 (the
# failure) and then phase 2 (a new process: the reboot) on the same image, so nothing is
# read back from littlefs's caches of the failed boot


def subs_owed():
    # offline with a link keeper (after disconnect() it does not reconnect: subscribe is
    # recorded for the next connect), a subscription whose write fails part-way; the
    # application retries once the flash works. After a reboot the change must still be
    # owed to the broker (its session is present: only owed changes are made)
    from mqttsession import Link

    c = node("subs", link=Link(min_ms=10, max_ms=20))
    t = d.topic("s")
    if d.cfg("PHASE") == 1:
        c.connect(clean_session=True)
        c.disconnect()
        c.connect(clean_session=False)  # a session the broker keeps
        c.disconnect()
        BD.fail_after = d.cfg("N")
        e = None
        try:
            c.subscribe(t, 1)
        except OSError as x:
            e = x
        BD.fail_after = None
        r = None
        if e is not None:
            try:
                c.subscribe(t, 1)  # the application's retry
            except OSError as x:
                r = x
        print("FIRST", repr(e), "RETRY", repr(r))
        return
    got = []
    c.set_callback(lambda t, m: got.append(t))
    print("OWED", t.encode() in (c._todo or {}), "SUBS", t.encode() in c._s.subs)
    c.connect(clean_session=False)
    print("PRESENT", c._s.fresh)
    c.publish(t, b"ping", qos=1)
    d.pump(c, lambda: got, 3000)
    c.disconnect()
    print("GOT", len(got))
    d.check(got, "the rebooted node gets its own message on the topic it subscribed to")


def drop_eio():
    # offline, a full queue (queue=4) with drop_oldest; the flash refuses a write
    # part-way through the publish that gives up the oldest (fail_after N progs).
    # devcfg.RAM: a ring of RAM messages (SessionStore ram), the queue beyond it in flash,
    # where messages published offline wait: the oldest is given up there
    q = d.cfg("QOS", 1)
    c = node("de", ram=d.cfg("RAM"), queue=4, full="drop_oldest")
    if d.cfg("PHASE") == 1:
        c.connect(clean_session=True)
        c.disconnect()
        for i in range(4):
            c.publish(d.topic("x"), b"m%02d" % i, qos=q)
        BD.fail_after = d.cfg("N")
        e = None
        try:
            c.publish(d.topic("x"), b"new", qos=q)
        except OSError as x:
            e = x
        BD.fail_after = None
        print("RESULT", repr(e).replace(" ", ""), "dropped", c.dropped, "ram",
              b",".join(payloads(c._s)).decode(), "more", c._s.more)
        return
    print("FLASH", b",".join(d.drain(c._s)).decode())

def backlog_refuses_aio():
    # as backlog_refuses, the asyncio client
    import asyncio
    from mqttsession.aio import MQTTClient as AClient

    async def main():
        st = SessionStore(STORE, max_bytes=d.cfg("MAXB"), ram=4)
        c = AClient("full", H, P, store=st, window=4, queue=8, keepalive=30, timeout=2,
                    version=d.VERSION, full="drop_oldest")
        await c.connect(clean_session=True)
        for i in range(4):
            await c.publish(d.topic("x"), b"m%02d" % i, qos=1)
        await asyncio.sleep_ms(100)
        print("INFLIGHT", c._s.nin)
        await c.disconnect()
        for i in range(4, 8):
            await c.publish(d.topic("x"), b"m%02d" % i, qos=1)
        e = None
        try:
            await c.publish(d.topic("x"), b"new", qos=1)
        except OSError as x:
            e = x
        print("RESULT", repr(e), "dropped", c.dropped, "pending", c.pending())
        d.check(e is None and c.dropped == 1, "drop_oldest gives up a queued message in flash")

    asyncio.run(main())


globals()[d.cfg("TEST")]()
print("PASS")
