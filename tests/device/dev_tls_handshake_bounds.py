# TLS connects into a listener that never answers the ClientHello, one that closes or
# answers something not TLS, or a link that trickles the handshake
# (tests/host/test_tls_handshake_bounds.py). TEST: "plain" (connect()), "keeper" (Link,
# budget_ms 50, connect(wait=False) then check_msg() for RUN_MS or until connected with
# STOP_CONNECTED), "aio" (connect()). TMO: the client's timeout (s).
import ssl
import time

import devlib as d
from mqttsession import Link, MQTTClient

ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.verify_mode = ssl.CERT_REQUIRED
ctx.load_verify_locations(cadata=d.cfg("CA_DER"))
H, P, TMO = d.cfg("HOST"), d.cfg("PORT"), d.cfg("TMO", 2)


def rep(e):
    return ("%s:%r" % (type(e).__name__, e)).replace(" ", "_")


T = d.cfg("TEST")
if T == "plain":
    c = MQTTClient("hsplain", H, P, ssl=ctx, timeout=TMO)
    try:
        c.connect()
        r = "connected"
        c.disconnect()
    except Exception as e:  # (what the application sees)
        r = rep(e)
    print("PLAIN", r, c.sock is None)
elif T == "keeper":
    lk = Link(min_ms=50, max_ms=200, jitter=0)
    c = MQTTClient("hskeep", H, P, ssl=ctx, timeout=TMO, link=lk, budget_ms=50)
    c.connect(wait=False)
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < d.cfg("RUN_MS", 5000):
        c.check_msg()  # never raises for a link failure
        if c.isconnected() and d.cfg("STOP_CONNECTED"):
            break
        time.sleep_ms(5)
    print("KEEPER", c.isconnected(), lk.tries, rep(lk.last_error))
    c.disconnect()
elif T == "aio":
    import asyncio

    from mqttsession.aio import MQTTClient as A

    async def main():
        c = A("hsaio", H, P, ssl=ctx, timeout=TMO)
        ticks = [0]

        async def tick():
            while True:
                ticks[0] += 1
                await asyncio.sleep_ms(10)

        t = asyncio.create_task(tick())
        try:
            await c.connect()
            r = "connected"
            await c.disconnect()
        except Exception as e:  # (what the application sees)
            r = rep(e)
        t.cancel()
        print("AIO", r, ticks[0] > 0)

    asyncio.run(main())
print("PASS")
