# A node that runs for weeks: its ticks wrap (2**30 ms on the ports, 12.4 days). The clock is
# wrapclock/time.py's (a port's ticks on the unix port, starting devcfg.WRAP_START). TEST:
# longup: a connection that lived 7 days (the clock jumps; nothing else happens meanwhile,
#   keepalive 0) is dropped by the broker: the keeper reconnects after its backoff (API
#   blocking or aio): the loss's Link.failed() restarts the backoff's clock, no 7-day-old
#   ticks are compared.
# bigwait: a Link whose backoff passes 2**29 ms (refused since 0.2.24's fix; before it the
#   keeper never reconnected). weekout: link.longest after a 7-day outage.
# across: either client (API) with Link, a store (blocking: budget_ms) through the wrap (5 s in):
#   keepalive pings, QoS 1/2 publishes at window 4, a broker restart after the wrap.
import os
import sys

for _p in sys.path:  # tests/device, by whatever name the harness gives it
    try:
        os.stat(_p + "/wrapclock/time.py")
    except OSError:
        continue
    sys.path.insert(0, _p + "/wrapclock")
    break
import time  # noqa: E402 (wrapclock's)

import utime  # noqa: E402 (the real clock, for the bounds of the waits here)

import devlib as d  # noqa: E402
from mqttsession import Link  # noqa: E402

DAY = 86400000
TEST = d.cfg("TEST")
API = d.cfg("API", "blocking")
print("CLOCK", time.__file__ if hasattr(time, "__file__") else time, time.ticks_ms())
d.check(hasattr(time, "jump"), "the wrapping clock shadows time")


def real_ms(t0):
    return utime.ticks_diff(utime.ticks_ms(), t0)


def link():
    return Link(min_ms=100, max_ms=1000, wifi_timeout_ms=300,
                on_change=lambda up: print("LINK", "up" if up else "down", time.ticks_ms()))


def longup_blocking():
    c = d.client(d.cfg("CID"), keepalive=0, link=link(), budget_ms=50)
    c.connect()
    print("UP")
    time.jump(7 * DAY)
    print("JUMPED", time.ticks_ms())
    t0 = utime.ticks_ms()
    while c.link.outages == 0 and real_ms(t0) < 30000:  # the host restarts the broker
        c.check_msg()
        utime.sleep_ms(5)
    d.check(c.link.outages == 1, "the broker's restart seen")
    print("DUE", c.link.due())
    t0 = utime.ticks_ms()
    while not c.isconnected() and real_ms(t0) < 30000:
        c.check_msg()
        utime.sleep_ms(5)
    d.check(c.isconnected(), "reconnected after the backoff (due %d ms)" % c.link.due())
    c.disconnect()


def longup_aio():
    import asyncio

    from mqttsession.aio import MQTTClient

    async def main():
        c = MQTTClient(d.cfg("CID"), d.cfg("HOST"), d.cfg("PORT"), keepalive=0, link=link())
        await c.connect()
        print("UP")
        time.jump(7 * DAY)
        print("JUMPED", time.ticks_ms())
        t0 = utime.ticks_ms()
        while c.link.outages == 0 and real_ms(t0) < 30000:
            await asyncio.sleep_ms(20)
        d.check(c.link.outages == 1, "the broker's restart seen")
        print("DUE", c.link.due())
        t0 = utime.ticks_ms()
        while not c.isconnected() and real_ms(t0) < 30000:
            await asyncio.sleep_ms(20)
        d.check(c.isconnected(), "reconnected after the backoff (due %d ms)" % c.link.due())
        await c.disconnect()

    asyncio.run(main())


def across():
    from mqttsession import SessionStore

    root, _ = d.flash()
    store = SessionStore(root + "/.mqtt-wrap", max_bytes=32768)
    c = d.client(d.cfg("CID"), keepalive=2, link=link(), budget_ms=50, store=store,
                 window=4, queue=64, timeout=3)
    c.connect(clean_session=False)
    print("UP", time.ticks_ms())
    longest = 0
    n = 0
    wrapped = False
    t0 = utime.ticks_ms()
    # 12 s of real time: the wrap at 5 s, the broker restarted by the host after it
    while real_ms(t0) < 14000:
        t1 = utime.ticks_ms()
        if n < 200 and real_ms(t0) < 11000:
            c.publish(d.topic("p%d" % (1 + (n & 1))), b"%d" % n, qos=1 + (n & 1))
            print("ACCEPTED", n)
            n += 1
        c.check_msg()
        longest = max(longest, real_ms(t1))
        if not wrapped and time.ticks_ms() < 1000000:
            wrapped = True
            print("WRAPPED", time.ticks_ms(), "outages", c.link.outages)
        utime.sleep_ms(50)
    t1 = utime.ticks_ms()
    while c.pending() and real_ms(t1) < 30000:
        t2 = utime.ticks_ms()
        c.check_msg()
        longest = max(longest, real_ms(t2))
        utime.sleep_ms(5)
    print("DRAINED", c.pending(), "outages", c.link.outages, "longest_call", longest)
    d.check(c.pending() == 0, "backlog delivered")
    d.check(longest < 10000, "no call blocked for long (%d ms, budget 50)" % longest)
    # idle across nothing: keepalive alone keeps the link for 8 s (4 keepalive periods)
    o = c.link.outages
    t1 = utime.ticks_ms()
    while real_ms(t1) < 8000:
        c.check_msg()
        utime.sleep_ms(20)
    d.check(c.link.outages == o and c.isconnected(), "keepalive kept the link")
    c.disconnect()


def across_aio():
    import asyncio

    from mqttsession import SessionStore
    from mqttsession.aio import MQTTClient

    root, _ = d.flash()
    store = SessionStore(root + "/.mqtt-wrap", max_bytes=32768)

    async def main():
        c = MQTTClient(d.cfg("CID"), d.cfg("HOST"), d.cfg("PORT"), keepalive=2, link=link(),
                       store=store, window=4, queue=64, timeout=3)
        await c.connect(clean_session=False)
        print("UP", time.ticks_ms())
        longest = 0
        n = 0
        wrapped = False
        t0 = utime.ticks_ms()
        while real_ms(t0) < 14000:
            t1 = utime.ticks_ms()
            if n < 200 and real_ms(t0) < 11000:
                await c.publish(d.topic("p%d" % (1 + (n & 1))), b"%d" % n, qos=1 + (n & 1))
                print("ACCEPTED", n)
                n += 1
            longest = max(longest, real_ms(t1))
            if not wrapped and time.ticks_ms() < 1000000:
                wrapped = True
                print("WRAPPED", time.ticks_ms(), "outages", c.link.outages)
            await asyncio.sleep_ms(50)
        t1 = utime.ticks_ms()
        while c.pending() and real_ms(t1) < 30000:
            await asyncio.sleep_ms(20)
        print("DRAINED", c.pending(), "outages", c.link.outages, "longest_call", longest)
        d.check(c.pending() == 0, "backlog delivered")
        d.check(longest < 10000, "no publish waited for long (%d ms)" % longest)
        o = c.link.outages
        await asyncio.sleep_ms(8000)
        d.check(c.link.outages == o and c.isconnected(), "keepalive kept the link")
        await c.disconnect()

    asyncio.run(main())


def bigwait():
    # a backoff of 7 days (max_ms past 2**29 ms): the host's broker stops, the keeper's
    # backoff begins, the broker is back; days pass a few hours at a time (jump), check_msg() in each.
    # Before the fix due() never came below 0 past 6.2 days (ticks_diff's range): the
    # keeper never tried again. Now such a Link is refused as budget_ms is
    lk = None
    try:
        lk = Link(min_ms=7 * DAY, max_ms=7 * DAY, jitter=0)
    except ValueError as e:
        print("BIGWAIT refused", e)
        d.check("max_ms" in str(e) or "min_ms" in str(e), "the error names the argument")
        d.check(d.raises(ValueError, Link, max_ms=7 * DAY) is not None, "max_ms refused")
        d.check(d.raises(ValueError, Link, wifi_timeout_ms=7 * DAY) is not None,
                "wifi_timeout_ms refused")
        lk = Link(min_ms=536870000, max_ms=536870000, jitter=0.9)  # the largest is taken
        for _ in range(20):  # the jitter never takes its delay past it
            lk.failed(OSError(111))
            d.check(0 < lk.delay <= 536870000, "delay %d within the ticks range" % lk.delay)
        return
    print("BIGWAIT taken")
    if API == "aio":
        return bigwait_aio(lk)
    c = d.client(d.cfg("CID"), keepalive=0, link=lk, budget_ms=50)
    c.connect()
    print("UP")
    t0 = utime.ticks_ms()
    while lk.outages == 0 and real_ms(t0) < 30000:  # the host stops the broker
        c.check_msg()
        utime.sleep_ms(5)
    d.check(lk.outages == 1, "the broker's stop seen")
    print("DOWN", lk.due())
    while not d.exists(d.cfg("GO")):
        utime.sleep_ms(20)
    for i in range(8 * 14):  # 14 days, 3 hours at a time
        time.jump(3 * 3600000)
        c.check_msg()
        if c.isconnected():
            break
    print("AFTER", i, "due", lk.due(), "tries", lk.tries)
    d.check(c.isconnected(), "reconnected after its 7-day backoff")


def bigwait_aio(lk):
    # the asyncio client's reader sleeps the backoff: asyncio.sleep_ms(7 days) raised
    # OverflowError (ticks_add past 2**29 ms on a port) and the reader ended for good
    import asyncio

    from mqttsession.aio import MQTTClient

    async def main():
        c = MQTTClient(d.cfg("CID"), d.cfg("HOST"), d.cfg("PORT"), keepalive=0, link=lk)
        await c.connect()
        print("UP")
        t0 = utime.ticks_ms()
        while lk.outages == 0 and real_ms(t0) < 30000:
            await asyncio.sleep_ms(20)
        d.check(lk.outages == 1, "the broker's stop seen")
        print("DOWN", lk.due())
        while not d.exists(d.cfg("GO")):
            await asyncio.sleep_ms(20)
        for i in range(8 * 14):
            time.jump(3 * 3600000)
            await asyncio.sleep_ms(30)
            if c.isconnected():
                break
        print("AFTER", i, "due", lk.due(), "tries", lk.tries, "error", repr(c._err))
        d.check(c.isconnected(), "reconnected after its 7-day backoff")
        await c.disconnect()

    asyncio.run(main())


def weekout():
    # an outage of 7 days ridden through (the broker down; the keeper tries every second,
    # the clock passing an hour at a time): link.longest is at least the 7 days
    c = d.client(d.cfg("CID"), keepalive=0, link=link(), budget_ms=50)
    c.connect()
    print("UP")
    t0 = utime.ticks_ms()
    while c.link.outages == 0 and real_ms(t0) < 30000:  # the host stops the broker
        c.check_msg()
        utime.sleep_ms(5)
    d.check(c.link.outages == 1, "the broker's stop seen")
    for i in range(7 * 24):
        time.jump(3600000)
        utime.sleep_ms(2)
        c.check_msg()
    print("WEEK", c.link.tries)
    t0 = utime.ticks_ms()
    while not c.isconnected() and real_ms(t0) < 30000:  # the host starts it again
        c.check_msg()
        utime.sleep_ms(5)
    d.check(c.isconnected(), "reconnected")
    print("LONGEST", c.link.longest)
    d.check(c.link.longest >= 7 * DAY, "longest outage %d ms >= 7 days" % c.link.longest)


if TEST == "longup":
    longup_aio() if API == "aio" else longup_blocking()
elif TEST == "bigwait":
    bigwait()
elif TEST == "weekout":
    weekout()
elif TEST == "across":
    across_aio() if API == "aio" else across()
print("PASS")
