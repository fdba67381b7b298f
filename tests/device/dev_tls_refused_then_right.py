# A keeper whose broker shows a certificate the client refuses (devcfg.WHY on the host:
# another CA, another host name, expired), then the right broker behind the same address
# (the host switches the proxy once "REFUSED" is printed and makes the file GO). QoS 1 and
# 2 messages published while refused are queued in the store (littlefs) and go out once;
# the node hears them back on its own topic (QoS 2). API: "blocking" or "aio".
import ssl
import time

import devlib as d
from mqttsession import Link, SessionStore

ROOT, BD = d.flash()
API = d.cfg("API", "blocking")
N = 6
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.verify_mode = ssl.CERT_REQUIRED
ctx.load_verify_locations(cadata=d.cfg("CA_DER"))
lk = Link(min_ms=50, max_ms=300, jitter=0)
KW = dict(keepalive=5, timeout=3, ssl=ctx, store=SessionStore(ROOT + "/.mqtt"), link=lk)
T = d.topic("m")
heard = {}


def got(t, m):
    n = int(m)
    heard[n] = heard.get(n, 0) + 1


def rep(e):
    return ("%s:%r" % (type(e).__name__, e)).replace(" ", "_")


def blocking():
    c = d.client("tlsright", **KW)
    c.set_callback(got)
    c.connect(clean_session=False, wait=False)
    c.subscribe(T, 2)  # offline: owed, made once connected
    for n in range(N):
        c.publish(T, b"%d" % n, qos=1 + n % 2)
    d.pump(c, lambda: lk.tries >= 3, 30000)
    print("REFUSED", lk.tries, c.isconnected(), rep(lk.last_error))
    d.pump(c, lambda: d.exists("GO"), 60000)
    d.pump(c, lambda: c.isconnected() and not c.pending() and len(heard) == N, 60000)
    time.sleep_ms(300)
    d.pump(c, lambda: False, 500)
    print("DONE", c.isconnected(), c.pending())
    c.disconnect()


def aio():
    import asyncio
    from mqttsession.aio import MQTTClient

    async def main():
        c = MQTTClient("tlsright", d.cfg("HOST"), d.cfg("PORT"), **KW)

        async def h(t, m):
            got(t, m)

        c.set_callback(h)
        try:
            await c.connect(clean_session=False, wait=False)
        except OSError as e:
            print("FIRST", rep(e))
        await c.subscribe(T, 2)
        for n in range(N):
            await c.publish(T, b"%d" % n, qos=1 + n % 2)
        t0 = time.ticks_ms()
        while lk.tries < 3 and time.ticks_diff(time.ticks_ms(), t0) < 30000:
            await asyncio.sleep_ms(20)
        print("REFUSED", lk.tries, c.isconnected(), rep(lk.last_error))
        while not d.exists("GO"):
            await asyncio.sleep_ms(20)
        t0 = time.ticks_ms()
        while not (c.isconnected() and not c.pending() and len(heard) == N) and \
                time.ticks_diff(time.ticks_ms(), t0) < 60000:
            await asyncio.sleep_ms(20)
        await asyncio.sleep_ms(800)
        print("DONE", c.isconnected(), c.pending())
        await c.disconnect()

    asyncio.run(main())


blocking() if API == "blocking" else aio()
print("HEARD", " ".join("%d:%d" % (k, heard[k]) for k in sorted(heard)))
print("PASS")
