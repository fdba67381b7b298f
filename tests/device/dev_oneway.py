# A link whose upstream (node -> broker) stops while the downstream goes on: the node
# (a store, a keeper, the blocking client's budget, or the asyncio client) publishes
# QoS 1 at window 1 into it while a second client, straight to the broker, keeps sending
# the node QoS 0 messages. No PUBACK can come: the wait for it is bounded by timeout
# (README: What the budget does not change), whatever else arrives meanwhile.
# devcfg: HOST, PORT (the proxy), BROKER_PORT, CTL (the proxy's control port), API, KA,
# TO, STOP_MS.
import time
import socket

import devlib as d
from mqttsession import Link, MQTTClient, SessionStore

ROOT, BD = d.flash()
API = d.cfg("API", "blocking")
_c = socket.socket()
_c.connect(socket.getaddrinfo("127.0.0.1", d.cfg("CTL"))[0][-1])


def ctl(line):
    _c.write((line + "\n").encode())
    _c.readline()


downs = []


def on_change(up):
    if not up:
        downs.append(time.ticks_ms())
        print("LINK down")


def make():
    kw = dict(keepalive=d.cfg("KA", 30), timeout=d.cfg("TO", 1), window=1,
              store=SessionStore((ROOT or "") + "/.mqtt"),
              link=Link(min_ms=100, max_ms=500, on_change=on_change))
    if API == "aio":
        from mqttsession.aio import MQTTClient as M
        return M(d.cfg("CID"), d.cfg("HOST"), d.cfg("PORT"), **kw)
    return MQTTClient(d.cfg("CID"), d.cfg("HOST"), d.cfg("PORT"), **kw)


got = []
feeder = MQTTClient(d.cfg("CID") + "f", d.cfg("HOST"), d.cfg("BROKER_PORT"), keepalive=0)


def blocking():
    c = make()
    c.set_callback(lambda t, m: got.append(m))
    c.connect(clean_session=False)
    c.subscribe(d.topic("in"), 0)
    c.subscribe(d.topic("out"), 1)
    feeder.connect()
    ctl("up stop")
    print("STOPPED")
    t0 = time.ticks_ms()
    i = 0
    while time.ticks_diff(time.ticks_ms(), t0) < d.cfg("STOP_MS", 8000):
        feeder.publish(d.topic("in"), b"x")
        if i < 12:
            c.publish(d.topic("out"), b"%d" % i, qos=1)
            i += 1
        c.check_msg()
        time.sleep_ms(100)
    print("STOP OVER down %d pending %d" % (len(downs), c.pending()))
    ctl("up pass")
    t0 = time.ticks_ms()
    while c.pending() and time.ticks_diff(time.ticks_ms(), t0) < 30000:
        c.check_msg()
        time.sleep_ms(20)
    return c, i


def aio():
    import asyncio

    async def main():
        c = make()
        c.set_callback(lambda t, m: got.append(m))
        await c.connect(clean_session=False, wait=True)
        await c.subscribe(d.topic("in"), 0)
        await c.subscribe(d.topic("out"), 1)
        feeder.connect()
        ctl("up stop")
        print("STOPPED")

        async def feed():
            while True:
                feeder.publish(d.topic("in"), b"x")
                await asyncio.sleep_ms(100)

        f = asyncio.create_task(feed())
        t0 = time.ticks_ms()
        i = 0
        while time.ticks_diff(time.ticks_ms(), t0) < d.cfg("STOP_MS", 8000):
            if i < 12:
                await c.publish(d.topic("out"), b"%d" % i, qos=1)
                i += 1
            await asyncio.sleep_ms(100)
        print("STOP OVER down %d pending %d" % (len(downs), c.pending()))
        ctl("up pass")
        t0 = time.ticks_ms()
        while c.pending() and time.ticks_diff(time.ticks_ms(), t0) < 30000:
            await asyncio.sleep_ms(50)
        f.cancel()
        return c, i

    return asyncio.run(main())


c, n = aio() if API == "aio" else blocking()
t0 = time.ticks_ms()
while time.ticks_diff(time.ticks_ms(), t0) < 3000 and API == "blocking":
    c.check_msg()  # our own messages back (QoS 1: at least once)
    time.sleep_ms(20)
print("DRAINED", c.pending(), "downs", len(downs))
d.check(len(downs) >= 1, "the unanswered PUBLISH ended the link within the stop")
d.check(c.pending() == 0, "nothing accepted was lost")
print("PASS")
