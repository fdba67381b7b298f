# MQTT 5 Session Expiry across a node's boots (tests/host/test_session_expiry.py): a node
# away longer than its expiry, one that changes its expiry between boots, and one that
# leaves with disconnect() at expiry 0. Each PHASE is one boot; results are NAME value lines.
import time

import devlib as d
from mqttsession import MQTTClient, SessionStore

ROOT = d.flash()[0] + "/.mqtt"
CID = d.cfg("CID", "sx")
EXP = d.cfg("EXPIRY")  # None: the default
IN = "sx/in/" + CID
OUT = "sx/out/" + CID


def kw():
    k = {"version": 5, "timeout": 10, "keepalive": 30, "store": SessionStore(ROOT)}
    if EXP is not None:
        k["expiry"] = EXP
    if d.cfg("LINK"):
        from mqttsession.link import Link

        k["link"] = Link(min_ms=100, max_ms=300, jitter=0)
    return k


def blocking():
    got = []
    c = MQTTClient(CID, d.cfg("HOST"), d.cfg("PORT"), **kw())
    c.set_callback(lambda t, m: got.append(bytes(m)))
    for i in range(d.cfg("N", 0)):  # published offline, before the connect
        c.publish(OUT, b"%d-%d" % (d.cfg("PHASE"), i), qos=1 + i % 2)
    print("PRESENT", c.connect(clean_session=False))
    if d.cfg("SUB"):
        c.subscribe(IN, 2)
    d.pump(c, lambda: c.pending() == 0, 30000)
    print("PENDING", c.pending())
    print("DROPPED", c.dropped)
    print("SUBS", ",".join(sorted(bytes(k).decode() for k in c._s.subs)))
    if d.cfg("ECHO"):
        c.publish(IN, b"echo-%d" % d.cfg("PHASE"), qos=2)
        d.pump(c, lambda: len(got) > 0, d.cfg("ECHO_MS", 30000))
        t0 = time.ticks_ms()
        while time.ticks_diff(time.ticks_ms(), t0) < 500:
            c.check_msg()
            time.sleep_ms(10)
    print("RX", ",".join(m.decode() for m in got))
    print("STORED_EXPIRY", c._s.expiry)
    if d.cfg("END"):
        c.disconnect(end_session=True)
    elif d.cfg("LEAVE"):
        c.disconnect()
    else:
        c._close()  # the link lost: no DISCONNECT


def aio():
    import asyncio

    from mqttsession.aio import MQTTClient as AsyncClient

    async def main():
        got = []
        c = AsyncClient(CID, d.cfg("HOST"), d.cfg("PORT"), **kw())
        c.set_callback(lambda t, m: got.append(bytes(m)))
        for i in range(d.cfg("N", 0)):
            await c.publish(OUT, b"%d-%d" % (d.cfg("PHASE"), i), qos=1 + i % 2)
        print("PRESENT", await c.connect(clean_session=False))
        if d.cfg("SUB"):
            await c.subscribe(IN, 2)
        t0 = time.ticks_ms()
        while c.pending() and time.ticks_diff(time.ticks_ms(), t0) < 30000:
            await asyncio.sleep_ms(20)
        print("PENDING", c.pending())
        print("DROPPED", c.dropped)
        print("SUBS", ",".join(sorted(bytes(k).decode() for k in c._s.subs)))
        if d.cfg("ECHO"):
            await c.publish(IN, b"echo-%d" % d.cfg("PHASE"), qos=2)
            t0 = time.ticks_ms()
            while not got and time.ticks_diff(time.ticks_ms(), t0) < d.cfg("ECHO_MS", 30000):
                await asyncio.sleep_ms(20)
            await asyncio.sleep_ms(500)
        print("RX", ",".join(m.decode() for m in got))
        print("STORED_EXPIRY", c._s.expiry)
        if d.cfg("END"):
            await c.disconnect(end_session=True)
        elif d.cfg("LEAVE"):
            await c.disconnect()

    asyncio.run(main())


def stale():
    # PHASE 1: connected and subscribed, the node sleeps (no call into the client) while the
    # broker restarts, then ends the session. PHASE 2: the next boot
    got = []
    k = kw()
    k["timeout"] = d.cfg("TIMEOUT", 10)
    c = MQTTClient(CID, d.cfg("HOST"), d.cfg("PORT"), **k)
    c.set_callback(lambda t, m: got.append(bytes(m)))
    if d.cfg("PHASE") == 1:
        c.connect(clean_session=False)
        c.subscribe(IN, 2)
        print("READY")
        while not d.exists("go"):
            time.sleep_ms(50)
        try:
            c.disconnect(end_session=True)
            print("END OK")
        except OSError as e:
            print("END OSError", e.args[0])
        print("SUBS", ",".join(sorted(bytes(k).decode() for k in c._s.subs)))
        return
    print("PRESENT", c.connect(clean_session=False))
    print("SUBS", ",".join(sorted(bytes(k).decode() for k in c._s.subs)))
    c.publish(IN, b"echo", qos=2)
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < 1500:
        c.check_msg()
        time.sleep_ms(10)
    print("RX", ",".join(m.decode() for m in got))
    c.disconnect()


def stale_aio():
    import asyncio

    from mqttsession.aio import MQTTClient as AsyncClient

    async def main():
        got = []
        k = kw()
        k["timeout"] = d.cfg("TIMEOUT", 10)
        c = AsyncClient(CID, d.cfg("HOST"), d.cfg("PORT"), **k)
        c.set_callback(lambda t, m: got.append(bytes(m)))
        if d.cfg("PHASE") == 1:
            await c.connect(clean_session=False)
            await c.subscribe(IN, 2)
            print("READY")
            while not d.exists("go"):
                await asyncio.sleep_ms(50)
            try:
                await c.disconnect(end_session=True)
                print("END OK")
            except OSError as e:
                print("END OSError", e.args[0])
            print("SUBS", ",".join(sorted(bytes(k).decode() for k in c._s.subs)))
            return
        print("PRESENT", await c.connect(clean_session=False))
        print("SUBS", ",".join(sorted(bytes(k).decode() for k in c._s.subs)))
        await c.publish(IN, b"echo", qos=2)
        await asyncio.sleep_ms(1500)
        print("RX", ",".join(m.decode() for m in got))
        await c.disconnect()

    asyncio.run(main())


globals()[d.cfg("TEST", "blocking")]()
print("PASS")
