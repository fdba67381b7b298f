# The subscriptions a connect makes again (the broker lost the session: Session Present 0)
# answered by a scripted broker (tests/host/test_resub_suback.py). PHASE "sub": subscribe
# SUBS (name:qos,...) at a real broker, with a store. "on": connect(clean_session=False)
# to the scripted one, wait until the subscriptions are answered, print what is left.
# CBRAISE: the callback raises OSError (blocking client); MS: how long "on" runs.
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
    c = mod("rs", d.cfg("HOST"), d.cfg("PORT"), version=d.VERSION, keepalive=30, timeout=3,
            store=SessionStore(ROOT + "/.mqtt"), link=Link(min_ms=100, max_ms=500) if PHASE == "on" else None)
    c.log = lambda line: print("LOG", line)
    c.set_callback(raising if d.cfg("CBRAISE") and PHASE == "on" else lambda t, m: None)
    return c


def raising(t, m):
    # CBRAISE: the application's own OSError (a flash write of its own, say), for every
    # message: the client closes the link, the node's doing, no strike against anything
    print("CALLBACK", m)
    raise OSError(5)


def state(c):
    print("SUBS", sorted((t.decode(), q) for t, q in c._s.subs.items()))
    print("UPNOW", c.isconnected())


def plan():
    for x in d.cfg("SUBS", "").split(","):
        if x:
            t, q = x.split(":")
            yield t, int(q)


def blocking():
    c = make()
    if PHASE == "sub":
        c.connect(clean_session=False)
        for t, q in plan():
            c.subscribe(d.topic(t), q)
        state(c)
        c.disconnect()
        return
    try:
        print("PRESENT", c.connect(clean_session=False))
    except Exception as e:
        print("CONNFAIL", repr(e))
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < d.cfg("MS", 1500):
        try:
            c.check_msg()
        except Exception as e:
            print("CHECKFAIL", repr(e))
        time.sleep_ms(20)
    state(c)


async def aio():
    import asyncio

    c = make()
    if PHASE == "sub":
        await c.connect(clean_session=False, wait=True)
        for t, q in plan():
            await c.subscribe(d.topic(t), q)
        state(c)
        await c.disconnect()
        return
    print("PRESENT", await c.connect(clean_session=False, wait=True))
    await asyncio.sleep_ms(1500)
    print("ERRORS", c.errors if hasattr(c, "errors") else None)
    state(c)


if API == "aio":
    import asyncio

    asyncio.run(aio())
else:
    blocking()
print("PASS")
