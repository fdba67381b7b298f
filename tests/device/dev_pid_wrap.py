# Packet-ID wraparound with a store holding a backlog and a released QoS 2 message
# (tests/host/test_pid_wrap.py). devcfg.KIND: "sync" (blocking client) or "aio".
import time

import devlib as d
from mqttsession import SessionStore

ROOT, BD = d.flash()
STORE = ROOT + "/.mqtt"
AIO = d.cfg("KIND") == "aio"
if AIO:
    import asyncio
    from mqttsession.aio import MQTTClient
else:
    from mqttsession import MQTTClient


def node(**kw):
    if AIO:  # a keeper: publish offline queues (its backoff outlasts run 1)
        from mqttsession import Link

        kw["link"] = Link(min_ms=d.cfg("BACKOFF", 60000), max_ms=60000, jitter=0)
    return MQTTClient("wrap", d.cfg("HOST"), d.cfg("PORT"), version=d.VERSION,
                      store=SessionStore(STORE, ram=4), window=kw.pop("window", 2), timeout=5,
                      keepalive=30, **kw)


def sync_until_closed(c, ms=30000):
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < ms:
        try:
            c.check_msg()
        except OSError as e:
            return e
        time.sleep_ms(2)
    return None


def wrap1_sync():
    c = node()
    c.connect(clean_session=True)
    c.publish(d.topic("q"), b"A", qos=2)
    d.check(d.pump(c, lambda: c._s.nin == 1 and c._s.fl[c._s.slot(0)] & 16, 20000), "A released")
    c._s.pid = 65532
    i = 0
    while c.isconnected() if hasattr(c, "isconnected") else c.sock is not None:
        try:
            c.publish(d.topic("q"), b"m%d" % i, qos=1 + i % 2)
        except OSError as e:
            print("PUBERR", i, repr(e))
        i += 1
        if i > 8:
            break
    print("CLOSED", repr(sync_until_closed(c, 5000)))
    while i < 12:
        c.publish(d.topic("q"), b"m%d" % i, qos=1 + i % 2)  # offline: queued
        i += 1
    print("PENDING", c.pending(), "more", c._s.more, "pid", c._s.pid)
    d.check(c.pending() >= 6, "a backlog")


def wrap2_sync():
    c = node()
    print("SP", c.connect(clean_session=False))
    ok = d.pump(c, lambda: not c.pending(), 30000)
    print("PENDING", c.pending(), "pid", c._s.pid)
    d.check(ok, "all completed")


async def publish_12(c):
    # m0..m11 at QoS 1/2 from three tasks at once; the ones whose publish returned
    res = []

    async def pub(j):
        for i in range(j, 12, 3):
            try:
                await c.publish(d.topic("q"), b"m%d" % i, qos=1 + i % 2)
                res.append(i)
            except OSError as e:
                print("PUBERR", i, repr(e))

    await asyncio.gather(*[pub(j) for j in range(3)])
    return res


async def wrap1_aio():
    c = node()
    await c.connect(clean_session=True)
    await c.publish(d.topic("q"), b"A", qos=2)
    t0 = time.ticks_ms()
    while not (c._s.nin == 1 and c._s.fl[c._s.slot(0)] & 16):
        await asyncio.sleep_ms(10)
        d.check(time.ticks_diff(time.ticks_ms(), t0) < 20000, "A released")
    c._s.pid = 65532
    res = await publish_12(c)
    print("RES", sorted(res), "PENDING", c.pending(), "more", c._s.more, "pid", c._s.pid)
    d.check(sorted(res) == list(range(12)), "every publish accepted")
    d.check(c.pending() >= 6, "a backlog")


async def wrap2_aio():
    c = node()
    print("SP", await c.connect(clean_session=False, wait=True))
    t0 = time.ticks_ms()
    while c.pending() and time.ticks_diff(time.ticks_ms(), t0) < 30000:
        await asyncio.sleep_ms(20)
    print("PENDING", c.pending(), "pid", c._s.pid)
    d.check(not c.pending(), "all completed")
    await c.disconnect()


async def quota_rel_aio():
    c = node(window=8)
    await c.connect(clean_session=True)

    async def pub(m, q):
        await c.publish(d.topic("q"), m, qos=q)

    await asyncio.gather(pub(b"A", 1), pub(b"B", 1), pub(b"C", 2))
    t0 = time.ticks_ms()
    while c.pending() and time.ticks_diff(time.ticks_ms(), t0) < 30000:
        await asyncio.sleep_ms(20)
    print("PENDING", c.pending(), "conns", c._att)
    d.check(not c.pending(), "every message completed after the Receive Maximum was lowered")
    await c.disconnect()


async def crowd_aio():
    c = node(window=d.cfg("WINDOW", 1))
    await c.connect(clean_session=True)
    await c.publish(d.topic("q"), b"A", qos=2)
    t0 = time.ticks_ms()
    while c.pending() and not (c._s.fl[c._s.slot(0)] & 16):
        await asyncio.sleep_ms(10)
        d.check(time.ticks_diff(time.ticks_ms(), t0) < 20000, "A released")
    c._s.pid = 65532
    res = await publish_12(c)
    print("RES", sorted(res))
    t0 = time.ticks_ms()
    while c.pending() and time.ticks_diff(time.ticks_ms(), t0) < 30000:
        await asyncio.sleep_ms(20)
    print("PENDING", c.pending(), "attempts", c._att, "pid", c._s.pid)
    d.check(sorted(res) == list(range(12)), "every publish accepted")
    d.check(not c.pending(), "all completed")
    await c.disconnect()


async def stale_acks_aio():
    c = node(window=1)
    await c.connect(clean_session=True)

    async def pub(m, q):
        await c.publish(d.topic("q"), m, qos=q)

    await asyncio.gather(pub(b"A", 1), pub(b"B", 2))

    async def done():
        t0 = time.ticks_ms()
        while c.pending() and time.ticks_diff(time.ticks_ms(), t0) < 20000:
            await asyncio.sleep_ms(20)
        return not c.pending()

    d.check(await done(), "B completed")
    await c.publish(d.topic("q"), b"C", qos=2)
    ok = await done()
    print("PENDING", c.pending(), "downgraded", c.downgraded, "dropped", c.dropped)
    d.check(ok, "C completed")
    await c.disconnect()


f = globals()[d.cfg("TEST") + "_" + d.cfg("KIND")]
if AIO:
    asyncio.run(f())
else:
    f()
print("PASS")
