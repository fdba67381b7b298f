# Messages near max_packet in size heard over TLS (tests/host/test_tls_inbound.py): the
# broker sends each in a TLS record larger than what one read takes when a packet has
# started (the transmit buffer's size), so part of a record waits inside the TLS layer,
# not in the socket. keepalive 0: no other traffic wakes the client. API: "blocking" or
# "aio". Prints "HEARD n" and waits for n messages (devcfg.N) at most 30 s.
import ssl
import time

import devlib as d

API = d.cfg("API", "blocking")
N = d.cfg("N", 20)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.verify_mode = ssl.CERT_REQUIRED
ctx.load_verify_locations(cadata=d.cfg("CA_DER"))
KW = dict(keepalive=0, timeout=10, ssl=ctx)
heard = []


def got(t, m):
    heard.append(len(m))


def blocking():
    c = d.client("tlsin", **KW)
    c.set_callback(got)
    c.connect()
    c.subscribe(d.topic("big"), d.cfg("QOS", 1))
    print("READY")
    d.pump(c, lambda: len(heard) >= N, 30000)
    print("HEARD", len(heard))
    c.disconnect()


def aio():
    import asyncio
    from mqttsession.aio import MQTTClient

    async def main():
        c = MQTTClient("tlsin", d.cfg("HOST"), d.cfg("PORT"), **KW)
        c.set_callback(got)
        await c.connect()
        await c.subscribe(d.topic("big"), d.cfg("QOS", 1))
        print("READY")
        t0 = time.ticks_ms()
        while len(heard) < N and time.ticks_diff(time.ticks_ms(), t0) < 30000:
            await asyncio.sleep_ms(20)
        print("HEARD", len(heard))
        await c.disconnect()

    asyncio.run(main())


blocking() if API == "blocking" else aio()
print("PASS")
