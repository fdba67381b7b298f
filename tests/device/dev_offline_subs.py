# Subscription changes across boots, some online and some offline
# (tests/host/test_offline_boots.py): OPS, words "s<name><qos>" and "u<name>", made
# at this boot (offline with a keeper: recorded, made on the next connect); with ONLINE the
# boot waits for the connect first and, after READY, takes the messages the host sends
# until the go file appears and then EXPECT of them (or 30 s).
import asyncio
import time

import devlib as d
from mqttsession import Link, SessionStore

ROOT, BD = d.flash()
ONLINE = d.cfg("ONLINE", 0)
AIO = d.cfg("AIO", 0)
KW = dict(keepalive=30, timeout=10, version=d.VERSION, link=Link(min_ms=50, max_ms=300),
          store=SessionStore(ROOT + "/.mqtt"))


def subs(c):
    return ["%s:%d" % (t.decode() if isinstance(t, bytes) else t, q)
            for t, q in c._s.subs.items()]


def gotline(got):
    return " ".join(sorted("%s:%s" % (t.decode().split("/")[-1], m.decode())
                           for t, m in got.got))


def blocking():
    from mqttsession import MQTTClient

    c = MQTTClient("subs-node", d.cfg("HOST"), d.cfg("PORT"), **KW)
    got = d.Inbox()
    c.set_callback(got)
    r = c.connect(clean_session=False, wait=False)
    if ONLINE:
        d.check(d.pump(c, c.isconnected, 60000), "connected")
    else:
        d.check(r is None, "offline")
    for op in d.cfg("OPS", "").split():
        if op[0] == "s":
            c.subscribe(d.topic(op[1]), int(op[2]))
        else:
            c.unsubscribe(d.topic(op[1]))
    print("SUBS", " ".join(sorted(subs(c))))
    if ONLINE:
        d.pump(c, lambda: False, 300)
        print("READY")
        d.pump(c, lambda: d.exists("go") or not d.cfg("WAITGO", 1), 60000)
        d.pump(c, lambda: len(got) >= d.cfg("EXPECT", 0), 30000)
        print("GOT", gotline(got))
        c.disconnect()


async def aio():
    from mqttsession.aio import MQTTClient

    c = MQTTClient("subs-node", d.cfg("HOST"), d.cfg("PORT"), **KW)
    got = d.Inbox()
    c.set_callback(got)
    r = await c.connect(clean_session=False)

    async def until(cond, ms):
        t0 = time.ticks_ms()
        while not cond() and time.ticks_diff(time.ticks_ms(), t0) < ms:
            await asyncio.sleep_ms(20)
        return cond()

    if ONLINE:
        d.check(await until(c.isconnected, 60000), "connected")
    else:
        d.check(r is None, "offline")
    for op in d.cfg("OPS", "").split():
        if op[0] == "s":
            await c.subscribe(d.topic(op[1]), int(op[2]))
        else:
            await c.unsubscribe(d.topic(op[1]))
    print("SUBS", " ".join(sorted(subs(c))))
    if ONLINE:
        await asyncio.sleep_ms(300)
        print("READY")
        await until(lambda: d.exists("go") or not d.cfg("WAITGO", 1), 60000)
        await until(lambda: len(got) >= d.cfg("EXPECT", 0), 30000)
        print("GOT", gotline(got))
        await c.disconnect()


if AIO:
    asyncio.run(aio())
else:
    blocking()
print("PASS")
