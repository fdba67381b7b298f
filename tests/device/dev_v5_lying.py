# MQTT 5 brokers that lie or change their limits between connections
# (tests/host/test_v5_lying.py), both clients, a SessionStore on a littlefs image.
# PHASE 1 publishes N messages of QoS QOS and runs until the broker has them in flight
# (or ends at once: a reboot follows); PHASE 2 (a reboot) connects again and runs
# until nothing is pending. The host judges what the broker saw and what is printed.
import time

import devlib as d
from mqttsession import SessionStore
from mqttsession.link import Link

ROOT = d.flash()[0] + "/.mqtt"
CID = d.cfg("CID", "v5lie")
N = d.cfg("N", 4)
QOS = d.cfg("QOS", 1)
RUN = d.cfg("RUN_MS", 6000)


def kw():
    return {"version": 5, "timeout": 5, "keepalive": d.cfg("KA", 0), "window": d.cfg("WINDOW", 4),
            "store": SessionStore(ROOT), "link": Link(min_ms=20, max_ms=100, jitter=0)}


def report(c):
    print("PENDING", c.pending())
    print("DROPPED", c.dropped)
    print("ASIDE", [(r[0], r[4]) for r in c.aside()])
    print("CID", c.client_id)
    print("LAST", repr(c.link.last_error))


def blocking():
    from mqttsession import MQTTClient

    c = MQTTClient(CID, d.cfg("HOST"), d.cfg("PORT"), **kw())
    if d.cfg("PHASE") == 1:
        try:
            c.connect(False)
        except OSError as e:
            print("EXC connect", repr(e))
        for i in range(N):
            c.publish("t/m%d" % i, b"m%d" % i, qos=QOS)
        t0 = time.ticks_ms()
        while time.ticks_diff(time.ticks_ms(), t0) < d.cfg("P1_MS", 0):
            c.check_msg()
            time.sleep_ms(5)
        print("QUEUED", c.pending())
        return  # a reboot: no disconnect
    if d.cfg("PHASE") == 0:  # one boot: publish, then run as boot 2
        c.connect(False)
        for i in range(N):
            c.publish("t/m%d" % i, b"m%d" % i, qos=QOS)
    else:
        try:
            c.connect(False)
        except Exception as e:
            print("EXC connect", repr(e))
    t0 = time.ticks_ms()
    while c.pending() and time.ticks_diff(time.ticks_ms(), t0) < RUN:
        try:
            c.check_msg()
        except Exception as e:
            print("EXC", repr(e))
        time.sleep_ms(5)
    report(c)
    c.disconnect()


def aio():
    import asyncio

    from mqttsession.aio import MQTTClient

    async def main():
        c = MQTTClient(CID, d.cfg("HOST"), d.cfg("PORT"),
                       on_error=lambda e: print("ON_ERROR", repr(e)), **kw())
        if d.cfg("PHASE") == 1:
            # (wait=False: a boot 1 that stays offline goes on)
            await c.connect(False)
            t0 = time.ticks_ms()
            while not c.isconnected() and time.ticks_diff(time.ticks_ms(), t0) < 1000:
                await asyncio.sleep_ms(20)
            for i in range(N):
                await c.publish("t/m%d" % i, b"m%d" % i, qos=QOS)
            await asyncio.sleep_ms(d.cfg("P1_MS", 0))
            print("QUEUED", c.pending())
            return
        if d.cfg("PHASE") == 0:  # one boot: publish, then run as boot 2
            await c.connect(False, wait=True)
            for i in range(N):
                await c.publish("t/m%d" % i, b"m%d" % i, qos=QOS)
        else:
            try:
                await c.connect(False, wait=True)
            except Exception as e:
                print("EXC connect", repr(e))
        t0 = time.ticks_ms()
        while c.pending() and time.ticks_diff(time.ticks_ms(), t0) < RUN:
            await asyncio.sleep_ms(20)
        report(c)
        await c.disconnect()

    asyncio.run(main())


globals()[d.cfg("TEST")]()
print("PASS")
