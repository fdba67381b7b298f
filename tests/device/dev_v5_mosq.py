# MQTT 5 against a real mosquitto (tests/host/test_v5_mosquitto.py): a broker whose
# Maximum Packet Size a subscription's SUBSCRIBE passes; a fresh store meeting a session
# the broker kept. devcfg.TEST names the scenario;
# results are printed as NAME value lines.
import time

import devlib as d
from mqttsession import MQTTClient, MQTTException, SessionStore
from mqttsession.link import Link

V = d.cfg("VERSION", 5)
ROOT = d.flash()[0] + "/.mqtt" if d.cfg("IMAGE") else None
CID = d.cfg("CID", "v5m")


def kw():
    k = {"version": V, "timeout": 10, "keepalive": 30}
    if ROOT:
        k["store"] = SessionStore(ROOT)
    if d.cfg("LINK"):
        k["link"] = Link(min_ms=100, max_ms=300, jitter=0)
    return k


def attempt(what, fn, *a, **k):
    try:
        print(what, "OK", fn(*a, **k))
    except MQTTException as e:
        print(what, "MQTTException", e.args[0])
    except OSError as e:
        print(what, "OSError", e.args[0] if e.args else "")


def subs_list():
    return [(x.split()[0], int(x.split()[1])) for x in d.cfg("SUBS").split(";")]


def report(c):
    print("UP", c.isconnected())
    print("OUTAGES", c.link.outages if c.link else None)
    print("SUBS", ",".join(sorted(bytes(k).decode() for k in c._s.subs)))


def blocking():
    # PHASE 1: subscribes (a broker without limits) and leaves. PHASE 2: resumes with a
    # keeper after the broker lost the session, runs RUN_MS, then subscribes to MORE online
    c = MQTTClient(CID, d.cfg("HOST"), d.cfg("PORT"), **kw())
    if d.cfg("PHASE") == 1:
        c.connect(clean_session=False)
        for t, q in subs_list():
            attempt("SUB", c.subscribe, t, q)
        c.disconnect()
        return
    attempt("CONNECT", c.connect, clean_session=False, wait=False)
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < d.cfg("RUN_MS", 3000):
        c.check_msg()
        time.sleep_ms(5)
    report(c)
    if d.cfg("MORE"):
        attempt("SUB", c.subscribe, d.cfg("MORE"), 1)
        attempt("UNSUB", c.unsubscribe, d.cfg("MORE"))
        print("UP", c.isconnected())
    c.disconnect()


def aio():
    import asyncio

    from mqttsession.aio import MQTTClient as AsyncClient

    async def main():
        errs = []
        c = AsyncClient(CID, d.cfg("HOST"), d.cfg("PORT"), on_error=errs.append, **kw())
        if d.cfg("PHASE") == 1:
            await c.connect(clean_session=False)
            for t, q in subs_list():
                await c.subscribe(t, q)
            await c.disconnect()
            return
        await c.connect(clean_session=False)
        await asyncio.sleep_ms(d.cfg("RUN_MS", 3000))
        report(c)
        for e in errs:
            print("ERROR", type(e).__name__, e.args[0])
        if d.cfg("MORE"):
            for what, q in (("SUB", 1), ("UNSUB", None)):
                try:
                    print(what, "OK", await (c.subscribe(d.cfg("MORE"), q) if q else
                                             c.unsubscribe(d.cfg("MORE"))))
                except MQTTException as e:
                    print(what, "MQTTException", e.args[0])
                except OSError as e:
                    print(what, "OSError", e.args[0])
            print("UP", c.isconnected())
        await c.disconnect()

    asyncio.run(main())



def fresh():
    # a node with a fresh store (new, or its flash erased) whose client ID the broker
    # still holds a session for: N messages published offline before its first connect
    c = MQTTClient(CID, d.cfg("HOST"), d.cfg("PORT"), **kw())
    if d.cfg("PHASE") == 0:
        c.connect(clean_session=False)
        c.disconnect()
        return
    for i in range(d.cfg("N")):
        attempt("PUB", c.publish, "ok/f", b"%d" % i, qos=1 + i % 2)
    print("QUEUED", c.pending())
    attempt("CONNECT", c.connect, clean_session=False)
    d.pump(c, lambda: c.pending() == 0, 5000)
    print("PENDING", c.pending())
    print("DROPPED", c.dropped)
    c.disconnect()


def fresh_aio():
    import asyncio

    from mqttsession.aio import MQTTClient as AsyncClient

    async def main():
        c = AsyncClient(CID, d.cfg("HOST"), d.cfg("PORT"), **kw())
        for i in range(d.cfg("N")):
            await c.publish("ok/f", b"%d" % i, qos=1 + i % 2)
        print("QUEUED", c.pending())
        await c.connect(clean_session=False, wait=True)
        t0 = time.ticks_ms()
        while c.pending() and time.ticks_diff(time.ticks_ms(), t0) < 5000:
            await asyncio.sleep_ms(20)
        print("PENDING", c.pending())
        print("DROPPED", c.dropped)
        await c.disconnect()

    asyncio.run(main())


globals()[d.cfg("TEST")]()
print("PASS")
