# Incoming QoS 2 messages from a scripted broker (tests/host/test_rx2_burst.py) that
# drops the link with many of them between PUBREC and PUBREL, or comes back without the
# session while the application still holds some. A client with a store and a keeper
# takes them (devcfg.TAKE: the blocking client's callback "blocking", the asyncio
# client's plain callback "plain", coroutine callback "coro" or messages() "messages";
# SLOW ms per message the application takes) until COUNT distinct payloads arrived or
# RUN_MS passed; prints "GOT" with every payload delivered, in order, and "DISTINCT".
import time

import devlib as d
from mqttsession import Link, SessionStore

ROOT, BD = d.flash()
HOW = d.cfg("TAKE", "blocking")
COUNT = d.cfg("COUNT", 100)
SLOW = d.cfg("SLOW", 0)
got = []


def make(aio):
    if aio:
        from mqttsession.aio import MQTTClient
    else:
        from mqttsession import MQTTClient
    return MQTTClient("burst", d.cfg("HOST"), d.cfg("PORT"), keepalive=30, timeout=5,
                      version=d.VERSION, store=SessionStore(ROOT + "/.mqtt"),
                      link=Link(min_ms=50, max_ms=200))


def done():
    return len(set(got)) >= COUNT


def blocking():
    c = make(False)
    c.set_callback(lambda t, m: got.append(m))
    c.connect(clean_session=False)
    t0 = time.ticks_ms()
    while not done() and time.ticks_diff(time.ticks_ms(), t0) < d.cfg("RUN_MS", 30000):
        c.check_msg()
        time.sleep_ms(1)
    c.disconnect()


def aio():
    import asyncio

    async def coro(t, m):
        got.append(m)
        await asyncio.sleep_ms(SLOW)

    async def reading(c):
        async for t, m, r in c.messages():
            got.append(m)
            await asyncio.sleep_ms(SLOW)

    async def main():
        c = make(True)
        if HOW == "coro":
            c.set_callback(coro)
        elif HOW == "plain":
            c.set_callback(lambda t, m: got.append(m))
        else:
            asyncio.create_task(reading(c))
        await c.connect(clean_session=False)
        t0 = time.ticks_ms()
        while not done() and time.ticks_diff(time.ticks_ms(), t0) < d.cfg("RUN_MS", 30000):
            await asyncio.sleep_ms(20)
        await c.disconnect()

    asyncio.run(main())


blocking() if HOW == "blocking" else aio()
print("GOT", " ".join(m.decode() for m in got))
print("DISTINCT", len(set(got)))
print("PASS")
