# MemoryError in the application's calls (tests/host/test_memerr_calls.py; devcfg.TEST;
# injected, so each case is deterministic): a publish whose payload copy finds no heap (heap locked for that
# one call), subscriptions made again after the broker lost the session with an
# allocation failing midway, and a store loaded with the heap running out midway.
import os
import sys
import time

import micropython

import devlib as d
from mqttsession import Link, MQTTClient, SessionStore

ROOT, BD = d.flash()
STORE = ROOT + "/.mqtt"
API = d.cfg("API", "blocking")
CID = "mec-%s" % d.cfg("PREFIX")[-12:].replace("/", "_")


def store():
    return SessionStore(STORE, 1 << 20, ram=16)


def klass():
    if API == "aio":
        from mqttsession.aio import MQTTClient as C

        return C
    return MQTTClient


# ---------------------------------------------------------------- (a) publish
def pub():
    # a QoS 1/2 bytearray payload (SIZE bytes) published with no heap left for its copy:
    # refused (MemoryError), and nothing of it stays: pending as before, never sent; the
    # client goes on with the next messages
    size = d.cfg("SIZE", 4000)
    qos = d.cfg("QOS", 1)
    got = []
    bad = []
    kw = dict(keepalive=30, window=d.cfg("WINDOW", 1), max_packet=size + 512)
    if d.cfg("STORE"):
        kw["store"] = store()
    if d.cfg("LINK"):
        kw["link"] = Link(min_ms=50, max_ms=200)
    C = klass()
    c = C(CID, d.cfg("HOST"), d.cfg("PORT"), **kw)
    c.set_callback(lambda t, m: got.append(bytes(m[:8])))
    top = d.topic("big").encode()
    big = bytearray(b"B" * size)

    def check_after(p0, err):
        print("ERR", repr(err), "pending", p0, "->", c.pending())
        d.check(isinstance(err, MemoryError), "the copy found no heap: %r" % (err,))
        if c.pending() != p0:
            print("FAIL nothing of it stays queued (going on)")
            bad.append("queued")

    if API == "aio":
        import asyncio

        async def main():
            await c.connect(clean_session=False, wait=True)
            await c.subscribe(d.topic("#"), 2)
            if not d.cfg("ONLINE", 1):
                await c.disconnect()  # the broker keeps the subscription
            p0 = c.pending()
            co = c.publish(top, big, qos=qos)
            err = None
            micropython.heap_lock()
            try:
                await co
            except Exception as e:
                err = e
            micropython.heap_unlock()
            check_after(p0, err)
            for i in range(3):
                await c.publish(top, b"ok%d" % i, qos=qos)
            if not c.isconnected():
                await c.connect(clean_session=False, wait=True)
            t0 = time.ticks_ms()
            while (c.pending() or len(got) < 3) and time.ticks_diff(time.ticks_ms(), t0) < 30000:
                await asyncio.sleep_ms(20)
            await asyncio.sleep_ms(300)
            print("GOT", got, "pending", c.pending())
            d.check(c.pending() == 0, "the rest went out")
            d.check(sorted(got) == [b"ok0", b"ok1", b"ok2"], "the refused one never: %r" % got)
            await c.disconnect()

        asyncio.run(main())
        d.check(not bad, "nothing of it stayed queued")
        return
    c.connect(clean_session=False)
    c.subscribe(d.topic("#"), 2)
    if not d.cfg("ONLINE", 1):
        c.disconnect()  # the broker keeps the subscription
    p0 = c.pending()
    err = None
    micropython.heap_lock()
    try:
        c.publish(top, big, qos=qos)
    except Exception as e:
        err = e
    micropython.heap_unlock()
    check_after(p0, err)
    errs = []
    for i in range(3):
        c.publish(top, b"ok%d" % i, qos=qos)
    if not c.isconnected():
        c.connect(clean_session=False)
    d.pump_noting(c, lambda: not c.pending() and len(got) >= 3, 30000, errs, 20)
    print("GOT", got, "pending", c.pending(), "errs", errs[:3])
    d.check(not errs, "no error after it")
    d.check(c.pending() == 0, "the rest went out")
    d.check(sorted(got) == [b"ok0", b"ok1", b"ok2"], "the refused one never: %r" % got)
    c.disconnect()
    d.check(not bad, "nothing of it stayed queued")


# ---------------------------------------------------------------- (b) subscriptions
N = d.cfg("N", 24)


def filters():
    return [d.topic("s%02d/+" % i) for i in range(N)]


def wipe():
    # the broker loses the session: another connection with the same client ID and a
    # clean start, then gone
    w = MQTTClient(CID, d.cfg("HOST"), d.cfg("PORT"), keepalive=30)
    w.connect(clean_session=True)
    w.disconnect()


class Once:
    # wraps fn: raises MemoryError at the k-th call
    def __init__(self, fn, k):
        self.fn = fn
        self.k = k

    def __call__(self, *a, **kw):
        self.k -= 1
        if self.k == 0:
            raise MemoryError("injected")
        return self.fn(*a, **kw)


class PWrap:
    # a module stand-in whose subscribe() raises once (attributes: the real module's)
    def __init__(self, m, k):
        self.m = m
        self.subscribe = Once(m.subscribe, k)

    def __getattr__(self, n):
        return getattr(self.m, n)


def inject(c):
    where = d.cfg("WHERE")
    from mqttsession import subs, ctl

    if where == "list":  # subs.todo's list of what to make
        subs.list = Once(list, 1)
    elif where == "sub":  # the SUBSCRIBE packet of the K-th filter
        P = PWrap(ctl.P, d.cfg("K", 10))
        ctl.P = P
        if API == "aio":
            from mqttsession import aio_rare

            aio_rare.P = P
    elif where == "connected":  # the session's identity write after CONNACK
        c._s.connected = Once(c._s.connected, 1)
    elif where == "dict":  # ctl.resume's copy of the subscriptions
        ctl.dict = Once(dict, 1)
    elif where == "owe":  # the owed file's write
        import mqttsession.store as st

        subs_pack = Once(st.pack, 1)
        import mqttsession.subs as sm

        sm_owe = sm.owe

        def owe(c):
            import mqttsession.store as st2

            real = st2.pack
            st2.pack = subs_pack
            try:
                sm_owe(c)
            finally:
                st2.pack = real

        sm.owe = owe


def feed(c, got):
    # one message to each filter, from another client, into got (c's callback)
    c.set_callback(lambda t, m: got.add(bytes(m)))
    p = d.client("mec-feed")
    p.connect()
    for i in range(N):
        p.publish(d.topic("s%02d/x" % i), b"%d" % i, qos=1)
    p.disconnect()


def missing(got):
    miss = [i for i in range(N) if b"%d" % i not in got]
    print("MISSING", miss)
    return miss


def heard(c, pump):
    # every filter delivers
    got = set()
    feed(c, got)
    pump(lambda: len(got) == N)
    return missing(got)


def resub():
    C = klass()
    kw = dict(keepalive=30, store=store())
    if d.cfg("LINK"):
        kw["link"] = Link(min_ms=50, max_ms=200)
    if API == "aio":
        import asyncio

        async def main():
            c = C(CID, d.cfg("HOST"), d.cfg("PORT"), **kw)
            await c.connect(clean_session=False, wait=True)
            for f in filters():
                await c.subscribe(f, 1)
            if d.cfg("KEEPER"):
                inject(c)
                wipe()
            else:
                await c.disconnect()
                wipe()
                inject(c)
                p = await c.connect(clean_session=False, wait=True)
                print("PRESENT", p)
            async def apump(cond, ms=30000):
                t0 = time.ticks_ms()
                while not cond() and time.ticks_diff(time.ticks_ms(), t0) < ms:
                    await asyncio.sleep_ms(20)

            # the failure, and the keeper coming back (a MemoryError is a link failure)
            await asyncio.sleep_ms(3000)
            await apump(c.isconnected)
            d.check(c.isconnected(), "connected again")
            got = set()
            feed(c, got)
            await apump(lambda: len(got) == N)
            miss = missing(got)
            print("todo", c._todo, "rs", c._rs)
            d.check(not miss, "every subscription made again")
            await c.disconnect()

        asyncio.run(main())
    else:
        c = C(CID, d.cfg("HOST"), d.cfg("PORT"), **kw)
        c.connect(clean_session=False)
        for f in filters():
            c.subscribe(f, 1)
        o0 = c.link.outages
        if d.cfg("KEEPER"):
            # connected: the broker loses the session under it, the keeper reconnects
            inject(c)
            wipe()
        else:
            c.disconnect()
            wipe()
            inject(c)
            for _ in range(3):
                try:
                    p = c.connect(clean_session=False)
                    print("PRESENT", p)
                    break
                except Exception as e:
                    print("CONNECT", repr(e))

        def pump(cond):
            t0 = time.ticks_ms()
            while not cond() and time.ticks_diff(time.ticks_ms(), t0) < 30000:
                try:
                    c.check_msg()
                except Exception as e:
                    print("CHECK", repr(e))
                time.sleep_ms(2)

        if d.cfg("KEEPER"):
            pump(lambda: c.link.outages > o0 and c.isconnected() and not c._todo)
        d.check(c.isconnected(), "connected again")
        miss = heard(c, pump)
        print("todo", c._todo)
        d.check(not miss, "every subscription made again")
        c.disconnect()
    # and the store agrees: a new load holds every subscription
    s = store().get(d.cfg("HOST"), CID)
    d.check(len(s.subs) == N, "the store keeps them: %d" % len(s.subs))


# ---------------------------------------------------------------- (c) load
def files(p):
    r = {}
    for e in os.ilistdir(p):
        q = p + "/" + e[0]
        if e[1] & 0x4000:
            r.update(files(q))
        else:
            with open(q, "rb") as f:
                r[q] = f.read()
    return r


def load():
    # a store with a backlog (COUNT queued offline), N subscriptions and owed changes;
    # each get() has the K-th call of the injected function raise MemoryError, K = 1, 2,
    # ... until one completes: every failed get raises MemoryError, flash unchanged, and
    # the completed one holds everything
    count = d.cfg("COUNT", 150)
    c = MQTTClient(CID, d.cfg("HOST"), d.cfg("PORT"), keepalive=30, queue=1000,
                   store=store(), link=Link(min_ms=50, max_ms=200))
    for i in range(N):
        c._s.sub(b"f/%d" % i, 1)
    c.subscribe(d.topic("owed"), 1)  # offline: owed
    for i in range(count):
        c.publish(d.topic("m"), b"m%04d" % i, qos=1 + (i % 2))
    del c
    import gc

    gc.collect()
    before = files(STORE)
    # (the messages expected, made now: after forty loads cut short the heap is in pieces
    # of under 1 KB, 65 to 95 KB free in a 200 to 240 KB heap, and a list of 150 made then
    # did not always find its 2 KB: the check failed, not the store)
    want = [b"m%04d" % i for i in range(count)]
    what = d.cfg("WHERE", "read")
    import mqttsession.store as st
    import mqttsession.stored as sd

    k = 0
    while True:
        k += 1
        if what == "read":
            real = st._read
            st._read = Once(real, k)
        elif what == "parse":
            real = sd._parse
            sd._parse = Once(real, k)
        else:  # "win": a segment's read (its buffer, its windows)
            import mqttsession.qseg as qs

            real = qs._win
            qs._win = Once(real, k)
        try:
            s = store().get(d.cfg("HOST"), CID, 1000)
            ok = True
        except MemoryError:
            ok = False
        except Exception as e:
            sys.print_exception(e)
            d.check(False, "only MemoryError at k=%d: %r" % (k, e))
        finally:
            if what == "read":
                st._read = real
            elif what == "parse":
                sd._parse = real
            import mqttsession

            for m in ("qseg", "resume", "load"):
                sys.modules.pop("mqttsession." + m, None)
                mqttsession.__dict__.pop(m, None)
        if ok:
            break
        now = files(STORE)
        if now != before:
            ch = [x for x in set(now) | set(before) if now.get(x) != before.get(x)]
            d.check(False, "flash unchanged at k=%d: %r" % (k, ch[:6]))
    print("LOADS", k)
    d.check(s.pending() == count, "every message: %d" % s.pending())
    d.check(len(s.subs) == N + 1, "every subscription: %d" % len(s.subs))
    d.check(s._owed is not None and len(s._owed) == 1, "the owed change")
    n = 0
    for m in want:
        ks = s.live()
        if not ks or s.load(ks[0])[1] != m:
            break
        s.drop(ks[0])
        n += 1
    d.check(n == count and not s.live(), "in order: %d" % n)


globals()[d.cfg("TEST")]()
print("PASS")
