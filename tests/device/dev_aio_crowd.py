# Several tasks awaiting the asyncio client at once (tests/host/test_aio_crowd.py), against
# the scripted broker. devcfg.TEST names the scenario; the host judges what the broker saw.
import asyncio
import time

import devlib as d
from mqttsession import Link, SessionStore
from mqttsession.aio import MQTTClient


async def until(cond, ms=30000):
    t0 = time.ticks_ms()
    while not cond() and time.ticks_diff(time.ticks_ms(), t0) < ms:
        await asyncio.sleep_ms(20)
    return cond()


async def crowd():
    # N tasks publish QoS 1 at once at window=1 on a link that acknowledges each message
    # well within timeout (the broker takes its time, but the window keeps moving): each
    # publish returns, the link stays (no false "dead link" from the wait for room)
    n = d.cfg("N", 6)
    c = MQTTClient("crowd", d.cfg("HOST"), d.cfg("PORT"), version=d.VERSION, keepalive=0,
                   timeout=d.cfg("TIMEOUT", 3), window=1)
    await c.connect()
    res = []

    async def one(i):
        try:
            await c.publish("t/c%d" % i, b"%d" % i, qos=1)
            res.append("ok")
        except OSError as e:
            res.append(repr(e))

    await asyncio.gather(*[one(i) for i in range(n)])
    print("RES", " ".join(res))
    d.check(res == ["ok"] * n, "every publish returned")
    d.check(c.isconnected(), "still connected")
    await c.disconnect()


async def storm():
    # three tasks publish QoS 1 and 2 at once (window 2) while a slow messages() consumer
    # that raises now and then (and iterates again) takes QoS 2 commands, and the host
    # restarts the broker (persistence): every command once, every message out
    root, _ = d.flash()
    c = MQTTClient(d.cfg("CID"), d.cfg("HOST"), d.cfg("PORT"), version=d.VERSION,
                   keepalive=2, timeout=3, window=2, queue=256,
                   store=SessionStore((root or "") + "/.mqtt-storm"),
                   link=Link(min_ms=100, max_ms=1000))
    d.check(await c.connect(clean_session=False, wait=True) is not None, "connected")
    await c.subscribe(d.topic("in"), 2)
    got = []
    errs = []

    async def consume():
        k = 0
        while True:
            try:
                async for t, m, r in c.messages(2):
                    got.append(m)
                    k += 1
                    if k % 7 == 0:
                        raise ValueError(k)  # the application's own error: it goes on
                    await asyncio.sleep_ms(40)
                return
            except ValueError as e:
                errs.append(e)

    asyncio.create_task(consume())
    print("READY")
    n = d.cfg("N", 40)

    async def pub(j):
        for i in range(n):
            await c.publish(d.topic("out/%d" % j), b"%d-%d" % (j, i), qos=1 + (i + j) % 2)
            await asyncio.sleep_ms(25)

    await asyncio.gather(*[pub(j) for j in range(3)])
    print("PUBLISHED")
    d.check(await until(lambda: b"end" in got, 60000), "the last command came")
    d.check(await until(lambda: c.pending() == 0, 30000), "every message out")
    print("GOT", " ".join(m.decode() for m in got))
    print("OUTAGES", c.link.outages, len(errs))
    await c.disconnect()


async def cancel_iter():
    # the task iterating messages() is cancelled while it handles a QoS 2 message; a new
    # task iterates on: every message once, none lost
    c = MQTTClient(d.cfg("CID"), d.cfg("HOST"), d.cfg("PORT"), version=d.VERSION,
                   keepalive=5, timeout=3)
    await c.connect()
    await c.subscribe(d.topic("in"), 2)
    got = []

    async def consume(slow):
        async for t, m, r in c.messages(2):
            got.append(m)
            if slow:
                await asyncio.sleep(30)

    a = asyncio.create_task(consume(True))
    print("READY")
    d.check(await until(lambda: got), "the first came")
    a.cancel()
    await asyncio.sleep_ms(50)
    asyncio.create_task(consume(False))
    d.check(await until(lambda: b"end" in got), "the last came")
    await asyncio.sleep_ms(500)
    print("GOT", " ".join(m.decode() for m in got))
    await c.disconnect()


async def wait_for_pub():
    # wait_for() gives up on a QoS 1 publish waiting for its PUBACK (window 1); the
    # next publish waits for room, then goes: each once, the client goes on
    c = MQTTClient("wfp", d.cfg("HOST"), d.cfg("PORT"), version=d.VERSION, keepalive=0,
                   timeout=5)
    await c.connect()
    try:
        await asyncio.wait_for(c.publish("t/a", b"a", qos=1), 0.5)
        print("NOTIMEOUT")
    except asyncio.TimeoutError:
        print("TIMEDOUT")
    await c.publish("t/b", b"b", qos=1)
    d.check(await until(lambda: c.pending() == 0), "both acknowledged")
    d.check(c.isconnected(), "still connected")
    await c.disconnect()


async def bye_crowd():
    # disconnect() while four tasks await QoS 2 publishes (window 1), then connect()
    # twice at once: each message queued once, out once; both connects see one session
    root, _ = d.flash()
    c = MQTTClient(d.cfg("CID"), d.cfg("HOST"), d.cfg("PORT"), version=d.VERSION,
                   keepalive=5, timeout=3, window=1,
                   store=SessionStore((root or "") + "/.mqtt-bye"),
                   link=Link(min_ms=100, max_ms=1000))
    d.check(await c.connect(clean_session=False, wait=True) is not None, "connected")
    res = []

    async def pub(j):
        for i in range(5):
            await c.publish(d.topic("out"), b"%d-%d" % (j, i), qos=2)
        res.append(j)

    ts = [asyncio.create_task(pub(j)) for j in range(4)]
    await asyncio.sleep_ms(30)
    await c.disconnect()
    print("AFTERBYE", c.pending())
    r = await asyncio.gather(c.connect(clean_session=False, wait=True),
                             c.connect(clean_session=False, wait=True))
    print("CONNECTS", r)
    d.check(await until(lambda: len(res) == 4), "every publisher done")
    d.check(await until(lambda: c.pending() == 0), "every message out")
    await c.disconnect()


async def connect_twice():
    # connect() called by two tasks at once while a reader runs (no keeper: each ends
    # the earlier reader first): one reader after them, both get the same attempt's
    # Session Present, and the client works
    c = MQTTClient(d.cfg("CID"), d.cfg("HOST"), d.cfg("PORT"), version=d.VERSION,
                   keepalive=5, timeout=3)
    await c.connect()
    readers = []
    from mqttsession import aio_tasks

    run = aio_tasks.run

    def counted(*a):
        readers.append(1)
        return run(*a)

    aio_tasks.run = counted
    try:
        r = await asyncio.wait_for(asyncio.gather(c.connect(), c.connect()), 20)
    finally:
        aio_tasks.run = run
    print("CONNECTS", r, len(readers))
    d.check(len(readers) == 1, "one reader started")
    await asyncio.wait_for(c.publish(d.topic("out"), b"x", qos=1), 20)
    d.check(c.isconnected(), "still connected")
    await asyncio.wait_for(c.disconnect(), 20)


asyncio.run(globals()[d.cfg("TEST")]())
print("PASS")
