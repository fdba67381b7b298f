# Accounting: a node publishes N messages of mixed QoS (devcfg.QOS, one digit per message,
# topic p<QoS>, payload the message's number) through the host's fault rig, then drains.
# It prints ACCEPTED i for every publish that returned, FULL i for one refused, the
# counters at the end (COUNTS pending dropped lost0 naside downgraded) and each message set
# aside (ASIDE topic payload); the host checks that every accepted message arrived or is
# counted. PHASE 2 is a reboot: the same session, connect and drain only.
import time

import devlib as d
from mqttsession import Link, MQTTClient, SessionStore

ROOT, BD = d.flash()
API = d.cfg("API", "blocking")
QOS = d.cfg("QOS", "")


def make():
    lk = Link(min_ms=100, max_ms=d.cfg("MAX_BACKOFF", 800))
    store = None
    if d.cfg("STORE", 1):
        store = SessionStore((ROOT or "") + "/.mqtt-acct", max_bytes=d.cfg("MAX_BYTES", 98304),
                             ram=d.cfg("RAM"))
    mod = MQTTClient
    if API == "aio":
        from mqttsession.aio import MQTTClient as mod
    return mod(d.cfg("CID"), d.cfg("HOST"), d.cfg("PORT"), version=d.VERSION, store=store,
               link=lk, window=d.cfg("WINDOW", 1), queue=d.cfg("QUEUE", 512),
               full=d.cfg("FULL", "error"), keepalive=2, timeout=2,
               strikes=d.cfg("STRIKES", 3))


def report(c):
    print("COUNTS", c.pending(), c.dropped, c.lost0, c._s.naside, c.downgraded)
    for t in c.aside():
        print("ASIDE", t[0] if isinstance(t[0], str) else t[0].decode(), bytes(t[1]).decode())


def full(e):
    return e.errno in (105, 28)


def sync():
    c = make()
    try:
        c.connect(clean_session=False, wait=False)
    except OSError:
        pass
    print("BOOT pending", c.pending())
    if d.cfg("PHASE", 1) == 1:
        for i in range(len(QOS)):
            q = int(QOS[i])
            try:
                c.publish(d.topic("p" + str(q)), b"%d" % i, qos=q)
                print("ACCEPTED", i)
            except OSError as e:
                if not full(e):
                    raise
                print("FULL", i)
            c.check_msg()
            time.sleep_ms(d.cfg("GAP", 15))
    print("PUBLISHED")
    if d.cfg("DRAIN", 1):
        last = c.pending()
        t0 = time.ticks_ms()
        while c.pending() and time.ticks_diff(time.ticks_ms(), t0) < 60000:
            c.check_msg()
            n = c.pending()
            if n > last:
                print("PENDING_GREW", last, n)
            last = n
            time.sleep_ms(5)
    report(c)


async def aio_main():
    import asyncio

    c = make()
    try:
        await c.connect(clean_session=False, wait=False)
    except OSError:
        pass
    print("BOOT pending", c.pending())
    if d.cfg("PHASE", 1) == 1:
        for i in range(len(QOS)):
            q = int(QOS[i])
            try:
                await c.publish(d.topic("p" + str(q)), b"%d" % i, qos=q)
                print("ACCEPTED", i)
            except OSError as e:
                if not full(e):
                    raise
                print("FULL", i)
            await asyncio.sleep_ms(d.cfg("GAP", 15))
    print("PUBLISHED")
    if d.cfg("DRAIN", 1):
        last = c.pending()
        t0 = time.ticks_ms()
        while c.pending() and time.ticks_diff(time.ticks_ms(), t0) < 60000:
            await asyncio.sleep_ms(10)
            n = c.pending()
            if n > last:
                print("PENDING_GREW", last, n)
            last = n
    report(c)


if API == "aio":
    import asyncio

    asyncio.run(aio_main())
else:
    sync()
print("PASS")
