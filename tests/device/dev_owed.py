# Subscription changes made offline survive a reset before the next connect (the store's
# "owed" file, ctl.owe). PHASE 1: a session at the broker, subscribed to "old". PHASE 2:
# a boot with the broker out of reach: subscribe "cmd" (QoS 2) and unsubscribe "old",
# then a reset (the script ends, never connected). PHASE 3: a boot that only connects, as
# code that subscribes only when the broker has no session for it: the broker kept the
# session, and the changes are made on that connect. "UP" once they are acknowledged;
# then what arrives is printed ("GOT topic payload") until "cmd/end" or RUN_MS.
# API=aio: the asyncio client. PHASE 4: the owed file damaged (a byte of its body flipped);
# PHASE 5: a boot that loads the session and prints what the store reported.
import time

import devlib as d
from mqttsession import Link, MQTTClient, SessionStore

ROOT, BD = d.flash()
API = d.cfg("API", "blocking")
PHASE = d.cfg("PHASE")
end = []


def got(t, m):
    print("GOT", t.decode(), m.decode())
    if t.endswith(b"/end"):
        end.append(1)


def make():
    mod = MQTTClient
    if API == "aio":
        from mqttsession.aio import MQTTClient as mod
    c = mod(d.cfg("CID"), d.cfg("HOST"), d.cfg("PORT"), version=d.VERSION, keepalive=10,
            timeout=5, store=SessionStore(ROOT + "/.mqtt-owed"), link=Link(min_ms=100))
    c.set_callback(got)
    return c


def damage():
    import os

    for h in os.listdir(ROOT + "/.mqtt-owed"):
        for n in os.listdir(ROOT + "/.mqtt-owed/" + h):
            f = "%s/.mqtt-owed/%s/%s/owed" % (ROOT, h, n)
            try:
                with open(f, "rb") as x:
                    b = bytearray(x.read())
            except OSError:
                continue
            b[6] ^= 0xFF
            with open(f, "wb") as x:
                x.write(b)
            print("DAMAGED", f)


def reload():
    c = make()
    e = c.store.errors
    print("REPORTED", len(e), e)
    d.check(sorted(c._s.subs) == [d.topic("cmd/#").encode()], "the subscriptions loaded")
    d.check(not c._todo, "nothing owed")


def blocking():
    if PHASE == 4:
        return damage()
    if PHASE == 5:
        return reload()
    c = make()
    if PHASE == 1:
        d.check(c.connect(clean_session=False) is False, "a new session")
        c.subscribe(d.topic("old"), 1)
        c.disconnect()
    elif PHASE == 2:
        d.check(c.connect(clean_session=False, wait=False) is None, "offline")
        c.subscribe(d.topic("cmd/#"), 2)
        c.unsubscribe(d.topic("old"))
        print("OWED", sorted(c._s.subs.items()))
    else:
        present = c.connect(clean_session=False)
        print("UP", present)  # the blocking connect waits for the SUBACKs it asks for
        t0 = time.ticks_ms()
        while not end and time.ticks_diff(time.ticks_ms(), t0) < d.cfg("RUN_MS", 30000):
            c.check_msg()
            time.sleep_ms(5)
        c.disconnect()


async def aio():
    import asyncio

    c = make()
    if PHASE == 1:
        d.check(await c.connect(clean_session=False) is False, "a new session")
        await c.subscribe(d.topic("old"), 1)
        await c.disconnect()
    elif PHASE == 2:
        d.check(await c.connect(clean_session=False) is None, "offline")
        await c.subscribe(d.topic("cmd/#"), 2)
        await c.unsubscribe(d.topic("old"))
        print("OWED", sorted(c._s.subs.items()))
    else:
        present = await c.connect(clean_session=False, wait=True)
        t0 = time.ticks_ms()
        # the asyncio client sends them without waiting: its reader takes the SUBACKs
        while (c._todo or c._rs) and time.ticks_diff(time.ticks_ms(), t0) < 30000:
            await asyncio.sleep_ms(10)
        print("UP", present)
        while not end and time.ticks_diff(time.ticks_ms(), t0) < d.cfg("RUN_MS", 30000):
            await asyncio.sleep_ms(10)
        await c.disconnect()


if API == "aio":
    import asyncio

    asyncio.run(aio())
else:
    blocking()
print("PASS")
