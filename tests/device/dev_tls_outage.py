# QoS 1 and 2 messages over TLS, through a proxy the script switches (CTL, the line
# protocol of tests/host/oneway.py), with a store on littlefs and a keeper; the node
# subscribes to its own topic at QoS 2 and hears every message back. FAULT: "stop" (both
# ways held: half-open, the reconnects stall in the handshake), "drip" (both ways a few
# bytes at a time). Prints "R n" per message heard and "DONE pending".
import socket
import ssl
import time

import devlib as d
from mqttsession import Link, SessionStore

ROOT, BD = d.flash()
API = d.cfg("API", "blocking")
N = d.cfg("N", 30)
_c = socket.socket()
_c.connect(socket.getaddrinfo("127.0.0.1", d.cfg("CTL"))[0][-1])


def ctl(line):
    _c.write((line + "\n").encode())
    _c.readline()


ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.verify_mode = ssl.CERT_REQUIRED
ctx.load_verify_locations(cadata=d.cfg("CA_DER"))
heard = {}
T = d.topic("m")


def got(t, m):
    n = int(m)
    heard[n] = heard.get(n, 0) + 1
    print("R", n)


def fault(on):
    f = d.cfg("FAULT")
    if not on:
        ctl("up pass")
        ctl("down pass")
    elif f == "stop":
        ctl("up stop")
        ctl("down stop")
    else:
        ctl("up drip %d 0.05" % d.cfg("DRIP", 8))
        ctl("down drip %d 0.05" % d.cfg("DRIP", 8))
    print("FAULT", on)


def kw():
    return dict(keepalive=2, timeout=2, window=4, ssl=ctx,
                store=SessionStore(ROOT + "/.mqtt"), link=Link(min_ms=50, max_ms=500, jitter=0))


def blocking():
    c = d.client("tlsout", **kw())
    c.set_callback(got)
    c.connect(clean_session=False)
    c.subscribe(T, 2)
    for n in range(N):
        if n == N // 3:
            fault(True)
        if n == 2 * N // 3:
            t0 = time.ticks_ms()
            while time.ticks_diff(time.ticks_ms(), t0) < d.cfg("HOLD_MS", 7000):
                c.check_msg()
                time.sleep_ms(5)
            fault(False)
        c.publish(T, b"%d" % n, qos=1 + n % 2)
        t0 = time.ticks_ms()
        while time.ticks_diff(time.ticks_ms(), t0) < 50:
            c.check_msg()
            time.sleep_ms(5)
    d.pump(c, lambda: not c.pending() and len(heard) == N, 60000)
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < 1000:
        c.check_msg()
        time.sleep_ms(5)
    print("DONE", c.pending(), c.link.outages)
    c.disconnect()


def aio():
    import asyncio
    from mqttsession.aio import MQTTClient

    async def main():
        c = MQTTClient("tlsout", d.cfg("HOST"), d.cfg("PORT"), **kw())

        async def handler(t, m):
            got(t, m)

        c.set_callback(handler)
        await c.connect(clean_session=False)
        await c.subscribe(T, 2)
        for n in range(N):
            if n == N // 3:
                fault(True)
            if n == 2 * N // 3:
                await asyncio.sleep_ms(d.cfg("HOLD_MS", 7000))
                fault(False)
            await c.publish(T, b"%d" % n, qos=1 + n % 2)
            await asyncio.sleep_ms(50)
        t0 = time.ticks_ms()
        while (c.pending() or len(heard) < N) and time.ticks_diff(time.ticks_ms(), t0) < 60000:
            await asyncio.sleep_ms(20)
        await asyncio.sleep_ms(1000)
        print("DONE", c.pending(), c.link.outages)
        await c.disconnect()

    asyncio.run(main())


blocking() if API == "blocking" else aio()
print("HEARD", " ".join("%d:%d" % (k, heard[k]) for k in sorted(heard)))
print("PASS")
