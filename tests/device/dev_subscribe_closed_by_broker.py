# A subscription the broker answers by closing the connection (MQTT 3.1.1, a filter past
# mosquitto's max_packet_size), made offline before other subscriptions and messages
# (tests/host/test_subscribe_closed_by_broker.py). The node must not be kept off the
# broker for good: it pings itself on t/small until one comes back.
import time

import devlib as d
from mqttsession import SessionStore
from mqttsession.link import Link

ROOT = d.flash()[0] + "/.mqtt"
BIG = d.topic("f" * 150)


def kw():
    return {"version": d.VERSION, "timeout": 10, "keepalive": 30, "store": SessionStore(ROOT),
            "link": Link(min_ms=100, max_ms=400, jitter=0), "log": print}


def report(c, got):
    print("GOT", len(got) > 0)
    print("UP", c.isconnected())
    print("PENDING", c.pending())
    print("SUBS", sorted(t for t in c._s.subs))


def blocking():
    from mqttsession import MQTTClient

    got = []
    c = MQTTClient("scb", d.cfg("HOST"), d.cfg("PORT"), **kw())
    c.set_callback(lambda t, m: got.append(m))
    c.subscribe(BIG, 1)
    c.subscribe(d.topic("small"), 1)
    for i in range(3):
        c.publish(d.topic("q"), b"m%d" % i, qos=1)
    try:
        c.connect(clean_session=False)
    except OSError as e:  # the link closed at the subscriptions: the keeper goes on
        print("CONNECT", repr(e))
    t0 = time.ticks_ms()
    n = 0
    while not got and time.ticks_diff(time.ticks_ms(), t0) < 15000:
        if c.isconnected() and time.ticks_diff(time.ticks_ms(), t0) > n * 1000:
            n += 1
            c.publish(d.topic("small"), b"ping", qos=1)
        c.check_msg()
        time.sleep_ms(5)
    report(c, got)
    c.disconnect()


def aio():
    import asyncio

    from mqttsession.aio import MQTTClient

    async def main():
        got = []
        c = MQTTClient("scb", d.cfg("HOST"), d.cfg("PORT"), **kw())
        if d.cfg("FLASHFAIL"):
            # the flash fails the first write that gives it up (in the reader's close):
            # the close goes on, the subscription is still owed, given up at a later one
            real = c._s.unsub
            fails = [1]

            def unsub(t):
                if t == BIG.encode() and fails:
                    fails.pop()
                    print("UNSUB EIO")
                    # or no heap for it (FLASHFAIL "memory"): raised out of the close, it
                    # ended the reader, and the keeper with it
                    raise MemoryError if d.cfg("FLASHFAIL") == "memory" else OSError(5)
                return real(t)

            c._s.unsub = unsub
        await c.subscribe(BIG, 1)
        await c.subscribe(d.topic("small"), 1)
        for i in range(3):
            await c.publish(d.topic("q"), b"m%d" % i, qos=1)

        async def reader():
            async for _t, m, _r in c.messages():
                got.append(m)

        c.on_error = lambda e: print("ON_ERROR", repr(e))
        await c.connect(clean_session=False)
        rd = asyncio.create_task(reader())
        t0 = time.ticks_ms()
        n = 0
        while not got and time.ticks_diff(time.ticks_ms(), t0) < 15000:
            if c.isconnected() and time.ticks_diff(time.ticks_ms(), t0) > n * 1000:
                n += 1
                await c.publish(d.topic("small"), b"ping", qos=1)
            await asyncio.sleep_ms(20)
        report(c, got)
        rd.cancel()
        await c.disconnect()

    asyncio.run(main())


def reboot():
    # the next boot: what was given up stays given up (the store's owed file too)
    from mqttsession import MQTTClient

    c = MQTTClient("scb", d.cfg("HOST"), d.cfg("PORT"), **kw())
    c.connect(clean_session=False)
    d.pump(c, lambda: False, 1500)
    print("UP", c.isconnected())
    print("SUBS", sorted(t for t in c._s.subs))
    c.disconnect()


globals()[d.cfg("TEST")]()
print("PASS")
