# A node that boots offline and reboots offline (tests/host/test_offline_boots.py): each
# BOOT (a new process on the same littlefs image) connects with wait=False to a broker not
# there yet, subscribes, unsubscribes and publishes QoS 0/1/2, and exits. The last boot
# (BOOT == LAST) finds the broker: everything accepted goes out, and the subscriptions are
# what the offline boots left.
import asyncio
import time

import devlib as d
from mqttsession import Link, SessionStore

ROOT, BD = d.flash()
BOOT = d.cfg("BOOT")
LAST = d.cfg("LAST")
AIO = d.cfg("AIO", 0)
PAD = " " + "x" * d.cfg("PAD", 0)  # (the host reads the first word)
CID = d.cfg("CID")  # None: the last used session
LINK = d.cfg("LINK", 1)  # 0: a store without a keeper (connect() raises offline)
KW = dict(keepalive=30, timeout=10, version=d.VERSION, queue=d.cfg("QUEUE", 16),
          link=Link(min_ms=50, max_ms=300) if LINK else None)
if d.cfg("FULL"):
    KW["full"] = d.cfg("FULL")


def store():
    mb = d.cfg("MAX_BYTES")
    return SessionStore(ROOT + "/.mqtt", max_bytes=mb) if mb else SessionStore(ROOT + "/.mqtt")


def offline_steps(c, pub, sub, unsub):
    # the boot's work while offline; pub/sub/unsub are plain calls or awaited by the caller
    pass


def plan():
    # (what, args) the boot does offline
    steps = [("sub", ("s%d" % BOOT, 1 + BOOT % 2))] if LINK else []
    if BOOT > 1 and LINK:
        steps.append(("unsub", ("s%d" % (BOOT - 1),)))
    for i in range(d.cfg("N", 3)):
        for q in (0, 1, 2):
            steps.append(("pub", ("b%d-q%d-%d" % (BOOT, q, i), q)))
    return steps


def subs(c):
    return [t.decode() if isinstance(t, bytes) else t for t in c._s.subs]


def report(c, accepted, errs):
    print("CID", c.client_id)
    print("ACCEPTED", " ".join(accepted))
    print("ERRS", " ".join(errs))
    print("PENDING", c.pending(), "DROPPED", c.dropped, "LOST0", c.lost0)


def blocking():
    from mqttsession import MQTTClient

    c = MQTTClient(CID, d.cfg("HOST"), d.cfg("PORT"), store=store(), **KW)
    got = d.Inbox()
    c.set_callback(got)
    try:
        r = c.connect(clean_session=False, wait=False)
    except OSError as e:
        d.check(not LINK and BOOT != LAST, "without a keeper an offline connect() raises")
        r = None
        print("CONNECT", repr(e))
    accepted, errs = [], []
    if BOOT != LAST:
        d.check(r is None, "offline: connect() returns None")
        for what, a in plan():
            try:
                if what == "pub":
                    c.publish(d.topic("r"), a[0] + PAD, qos=a[1])
                    if a[1]:
                        accepted.append(a[0])
                elif what == "sub":
                    c.subscribe(d.topic(a[0]), a[1])
                else:
                    c.unsubscribe(d.topic(a[0]))
            except OSError as e:
                errs.append("%s:%d" % (a[0], e.errno))
        report(c, accepted, errs)
        return
    d.check(d.pump(c, lambda: c.isconnected() and not c.pending(), 60000), "all sent")
    report(c, accepted, errs)
    print("SUBS", " ".join(sorted(subs(c))))
    print("READY")
    d.pump(c, lambda: d.exists("go"), 60000)
    d.pump(c, lambda: len(got) >= d.cfg("EXPECT", 1), 30000)
    print("GOT", " ".join(sorted(t.decode() for t, m in got.got)))
    c.disconnect()


async def aio():
    from mqttsession.aio import MQTTClient

    c = MQTTClient(CID, d.cfg("HOST"), d.cfg("PORT"), store=store(), **KW)
    got = d.Inbox()
    c.set_callback(got)
    r = await c.connect(clean_session=False)
    accepted, errs = [], []
    if BOOT != LAST:
        d.check(r is None, "offline: connect() returns None")
        for what, a in plan():
            try:
                if what == "pub":
                    await c.publish(d.topic("r"), a[0] + PAD, qos=a[1])
                    if a[1]:
                        accepted.append(a[0])
                elif what == "sub":
                    await c.subscribe(d.topic(a[0]), a[1])
                else:
                    await c.unsubscribe(d.topic(a[0]))
            except OSError as e:
                errs.append("%s:%d" % (a[0], e.errno))
        report(c, accepted, errs)
        return
    t0 = time.ticks_ms()
    while (not c.isconnected() or c.pending()) and time.ticks_diff(time.ticks_ms(), t0) < 60000:
        await asyncio.sleep_ms(20)
    d.check(c.isconnected() and not c.pending(), "all sent")
    report(c, accepted, errs)
    print("SUBS", " ".join(sorted(subs(c))))
    print("READY")
    t0 = time.ticks_ms()
    while not d.exists("go") and time.ticks_diff(time.ticks_ms(), t0) < 60000:
        await asyncio.sleep_ms(20)
    t0 = time.ticks_ms()
    while len(got) < d.cfg("EXPECT", 1) and time.ticks_diff(time.ticks_ms(), t0) < 30000:
        await asyncio.sleep_ms(20)
    print("GOT", " ".join(sorted(t.decode() for t, m in got.got)))
    await c.disconnect()


if AIO:
    asyncio.run(aio())
else:
    blocking()
print("PASS")
