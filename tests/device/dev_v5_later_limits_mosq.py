# MQTT 5 limits a real mosquitto announces (max_packet_size, max_qos, retain_available)
# met by messages stored offline on an earlier boot (tests/host/test_v5_later_limits.py).
# PHASE 1 publishes offline; PHASE 2 (a reboot) connects; PHASE 3 (another) reports.
import time

import devlib as d
from mqttsession import MQTTClient, SessionStore
from mqttsession.link import Link

ROOT = d.flash()[0] + "/.mqtt"
CID = d.cfg("CID", "v5lm")
MSGS = (("ok/s1", b"a", 1, False), ("ok/big1", b"B" * 200, 1, False),
        ("ok/s2", b"b", 2, True), ("ok/big2", b"C" * 200, 2, False), ("ok/s3", b"c", 2, False))


def kw():
    return {"version": 5, "timeout": 10, "keepalive": 30, "store": SessionStore(ROOT),
            "limits": d.cfg("LIMITS", "downgrade")}


def report(c):
    print("PENDING", c.pending())
    print("DROPPED", c.dropped)
    print("DOWNGRADED", c.downgraded)
    print("ASIDE", len(c.aside()))


def blocking():
    c = MQTTClient(CID, d.cfg("HOST"), d.cfg("PORT"), **kw())
    if d.cfg("PHASE") == 1:
        for t, m, q, r in MSGS:
            c.publish(t, m, retain=r, qos=q)
        print("QUEUED", c.pending())
        return
    if d.cfg("PHASE") == 3:
        print("PENDING", c.pending())
        return
    c.connect(clean_session=False)
    d.pump(c, lambda: c.pending() == 0, 10000)
    report(c)
    c.disconnect()


def aio():
    import asyncio

    from mqttsession.aio import MQTTClient as AsyncClient

    async def main():
        c = AsyncClient(CID, d.cfg("HOST"), d.cfg("PORT"), **kw())
        if d.cfg("PHASE") == 1:
            for t, m, q, r in MSGS:
                await c.publish(t, m, retain=r, qos=q)
            print("QUEUED", c.pending())
            return
        if d.cfg("PHASE") == 3:
            print("PENDING", c.pending())
            return
        await c.connect(clean_session=False, wait=True)
        t0 = time.ticks_ms()
        while c.pending() and time.ticks_diff(time.ticks_ms(), t0) < 10000:
            await asyncio.sleep_ms(20)
        report(c)
        await c.disconnect()

    asyncio.run(main())


def idle():
    # keepalive 0 from the node; the broker's Server Keep Alive rules: pings on its value
    c = MQTTClient(CID, d.cfg("HOST"), d.cfg("PORT"), version=5, keepalive=d.cfg("KA", 0),
                   timeout=10, link=Link(min_ms=100, max_ms=300, jitter=0))
    c.connect(False)
    print("KA", c.ka)
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < d.cfg("RUN_MS", 5000):
        c.check_msg()
        time.sleep_ms(20)
    print("UP", c.isconnected(), "OUTAGES", c.link.outages)
    c.disconnect()


globals()[d.cfg("TEST")]()
print("PASS")
