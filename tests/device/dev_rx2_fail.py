# A QoS 2 message that arrives while the store cannot write (every flash write fails, EIO,
# as on a damaged or full flash): it is neither delivered nor answered, the link goes,
# and once the flash writes again the broker's resend delivers it, once. devcfg.TAKE: the
# blocking client's callback ("blocking"), or the asyncio client's plain callback
# ("plain"), coroutine callback ("coro") or messages() ("messages"); a store-less client
# in the same process publishes the messages; prints "GOT <list>" at the end. "session":
# the session's record and release alone, and what a reload finds.
import time

import devlib as d
from mqttsession import Link, SessionStore

ROOT, BD = d.flash()
HOW = d.cfg("TAKE", "blocking")
got = []


def make(aio):
    if aio:
        from mqttsession.aio import MQTTClient
    else:
        from mqttsession import MQTTClient
    return MQTTClient(d.cfg("CID"), d.cfg("HOST"), d.cfg("PORT"), keepalive=30,
                      version=d.VERSION, store=SessionStore(ROOT + "/.mqtt"),
                      link=Link(min_ms=50, max_ms=200))


feed = None


def send(m):
    global feed
    if feed is None:
        feed = d.client(d.cfg("CID") + "-feed")
        feed.connect()
    feed.publish(d.topic("cmd"), m, qos=2)


def session():
    # each load after a remount: what is in flash (after a failed write littlefs may
    # read back from its cache what never reached the flash, until it is mounted again).
    # The old mount's block device is kept and takes no more writes, as flash after a
    # power cut: littlefs may still write a failed commit's cache out later (when the old
    # mount is collected), which is not what this checks
    old = []

    def load():
        global BD
        import vfs

        vfs.umount("/flash")
        BD.fail_after = 0
        old.append(BD)
        BD = d.flash()[1]
        return d.peek(SessionStore(ROOT + "/.mqtt"), "h", "cid")

    s = load()
    d.check(s.rx2_add(7), "recorded")
    BD.fail_after = 0
    d.raises(OSError, s.rx2_add, 8)
    d.check(s.rx2 == [7], "a record the store could not make is not kept in RAM either")
    d.raises(OSError, s.rx2_del, 7)
    d.check(s.rx2 == [7], "a release the store could not record keeps the record")
    BD.fail_after = None
    d.check(load().rx2 == [7], "reloaded: the record made, the failed ones not")
    d.check(s.rx2_add(8) and s.rx2 == [7, 8], "recorded once the flash writes again")
    s.rx2_del(7)
    d.check(load().rx2 == [8], "reloaded: released once the flash writes again")


def blocking():
    c = make(False)
    c.set_callback(lambda t, m: got.append(m))
    c.connect(clean_session=False)
    c.subscribe(d.topic("cmd"), 2)
    send(b"m0")
    d.check(d.pump(c, lambda: got and not c._s.rx2), "first message delivered, its exchange done")
    BD.fail_after = 0  # every flash write fails from here
    send(b"m1")
    d.check(d.pump(c, lambda: not c.isconnected(), 10000), "the link went")
    d.check(got == [b"m0"], "not delivered while it could not be recorded")
    e = c.link.last_error
    print("LAST", e.args[0] if isinstance(e, OSError) else repr(e))  # the store's error
    BD.fail_after = None
    d.check(d.pump(c, lambda: len(got) > 1), "delivered after the flash came back")
    send(b"m2")
    d.pump(c, lambda: len(got) > 2)
    c.disconnect()


def aio():
    import asyncio

    async def until(cond, ms):
        t0 = time.ticks_ms()
        while not cond() and time.ticks_diff(time.ticks_ms(), t0) < ms:
            await asyncio.sleep_ms(20)
        return cond()

    async def coro(t, m):
        got.append(m)
        await asyncio.sleep_ms(1)

    async def reading(c):
        async for t, m, r in c.messages():
            got.append(m)

    async def main():
        c = make(True)
        if HOW == "coro":
            c.set_callback(coro)
        elif HOW == "plain":
            c.set_callback(lambda t, m: got.append(m))
        await c.connect(clean_session=False)
        await c.subscribe(d.topic("cmd"), 2)
        if HOW == "messages":
            asyncio.create_task(reading(c))
        send(b"m0")
        d.check(await until(lambda: got and not c._s.rx2, 30000),
                "first message delivered, its exchange done")
        BD.fail_after = 0
        send(b"m1")
        d.check(await until(lambda: not c.isconnected(), 10000), "the link went")
        d.check(got == [b"m0"], "not delivered while it could not be recorded")
        e = c.link.last_error
        print("LAST", e.args[0] if isinstance(e, OSError) else repr(e))  # the store's error
        BD.fail_after = None
        d.check(await until(lambda: len(got) > 1, 30000), "delivered after the flash came back")
        send(b"m2")
        await until(lambda: len(got) > 2, 30000)
        await c.disconnect()

    asyncio.run(main())


if HOW == "session":
    session()
else:
    blocking() if HOW == "blocking" else aio()
    time.sleep_ms(500)
    feed.disconnect()
    print("GOT", " ".join(m.decode() for m in got))
print("PASS")
