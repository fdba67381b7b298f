# Subscriptions owed for a resuming CONNECT (ctl.pre_owe) when that connect gets no
# further than a refusal or an unreachable broker (tests/host/test_pre_owe.py). PHASE
# "sub": subscribe SUBS (name:qos,...) at a real broker, with a store. "down": one wake
# whose broker is out of reach (connect raises), then the process ends. "on":
# connect(clean_session=False) until Session Present comes (a refusal first: connect again),
# listen a while, print the subscriptions and whether the owed file is left.
import os
import time

import devlib as d
from mqttsession import Link, MQTTClient, SessionStore

ROOT, BD = d.flash()
API = d.cfg("API", "blocking")
PHASE = d.cfg("PHASE")


def make():
    mod = MQTTClient
    if API == "aio":
        from mqttsession.aio import MQTTClient as mod
    c = mod("po", d.cfg("HOST"), d.cfg("PORT"), version=d.VERSION, keepalive=30, timeout=3,
            store=SessionStore(ROOT + "/.mqtt"),
            link=Link(min_ms=100, max_ms=300) if PHASE == "on" else None)
    c.log = lambda line: print("LOG", line)
    c.set_callback(lambda t, m: print("GOT", t.decode(), m.decode()))
    return c


def state(c):
    print("SUBS", sorted((t.decode(), q) for t, q in c._s.subs.items()))
    print("OWED", d.exists(c._s._p + "/owed"))


def plan():
    for x in d.cfg("SUBS", "").split(","):
        if x:
            t, q = x.split(":")
            yield t, (None if q == "-" else int(q))


def blocking():
    c = make()
    if PHASE == "sub":
        c.connect(clean_session=False)
        for t, q in plan():
            if q is None:
                c.unsubscribe(d.topic(t))
            else:
                c.subscribe(d.topic(t), q)
        state(c)
        c.disconnect()
        return
    if PHASE == "down":
        try:
            c.connect(clean_session=False)
        except Exception as e:
            print("CONNFAIL", repr(e))
        state(c)
        return
    for _ in range(5):
        try:
            print("PRESENT", c.connect(clean_session=False))
            break
        except Exception as e:
            print("CONNFAIL", repr(e))
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < 1500:
        c.check_msg()
        time.sleep_ms(20)
    state(c)


async def aio():
    import asyncio

    c = make()
    if PHASE == "sub":
        await c.connect(clean_session=False, wait=True)
        for t, q in plan():
            if q is None:
                await c.unsubscribe(d.topic(t))
            else:
                await c.subscribe(d.topic(t), q)
        state(c)
        await c.disconnect()
        return
    if PHASE == "down":
        try:
            await c.connect(clean_session=False)
        except Exception as e:
            print("CONNFAIL", repr(e))
        state(c)
        return
    print("PRESENT", await c.connect(clean_session=False, wait=True))
    await asyncio.sleep_ms(1500)
    state(c)


if API == "aio":
    import asyncio

    asyncio.run(aio())
else:
    blocking()
print("PASS")
