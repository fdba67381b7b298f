# Output over TLS behind a slow link (tests/host/test_tls_slow.py): messages of 2 KB, QoS 0
# and QoS 1 (window 4), published faster than the link carries them, with the socket's
# send buffer as small as a node's. devcfg.FRONT: "blocking" (a keeper: the 200 ms budget)
# or "aio"; devcfg.TEST "tasks": plain TCP, several asyncio tasks publishing. Prints LOST0 n (QoS 0 dropped behind the stalled socket, counted); the host
# checks that every other message arrived whole, in order.
import socket
import ssl
import time

import devlib as d
import mqttsession.wire as wire
from mqttsession import Link


class _Sockets:
    # mqttsession.wire's socket module, whose sockets get a node's small send buffer (the
    # TLS socket wraps it: the plain one is set as it is made)
    SOCK_STREAM = socket.SOCK_STREAM
    getaddrinfo = socket.getaddrinfo

    @staticmethod
    def socket(*a):
        return d.small_sndbuf(socket.socket(*a))


wire.socket = _Sockets
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.verify_mode = ssl.CERT_REQUIRED
if d.cfg("CA_DER"):  # (TEST tasks: plain TCP)
    ctx.load_verify_locations(cadata=d.cfg("CA_DER"))
KW = {"ssl": ctx, "link": Link(), "keepalive": 0, "timeout": 20, "window": 4}
T0, T1 = d.topic("q0"), d.topic("q1")


def payload(i):
    return b"m-%03d " % i + b"v" * 2000


def blocking():
    c = d.client("tlsslow-b", **KW)
    c.connect()
    for i in range(20):
        c.publish(T0, payload(i))
        c.publish(T1, payload(i), qos=1)
    t0 = time.ticks_ms()
    while (c.pending() or c._ob is not None) and time.ticks_diff(time.ticks_ms(), t0) < 60000:
        c.check_msg()
        time.sleep_ms(5)
    return c


def aio():
    import asyncio
    from mqttsession.aio import MQTTClient

    async def main():
        c = MQTTClient("tlsslow-a", d.cfg("HOST"), d.cfg("PORT"), **KW)
        await c.connect()
        for i in range(20):
            await c.publish(T0, payload(i))
            await c.publish(T1, payload(i), qos=1)
        t0 = time.ticks_ms()
        while (c.pending() or c._ob is not None) and \
                time.ticks_diff(time.ticks_ms(), t0) < 60000:
            await asyncio.sleep_ms(5)
        return c

    return asyncio.run(main())


def tasks():
    # plain TCP at about 25 KB/s, the asyncio client (timeout 2 s): 16 tasks publishing 2
    # QoS 0 messages of 4 KB each at once (a round of them takes 2.6 s to go out). Each waits its turn for the socket, the link
    # keeps taking output, so none waits past the output's deadline and nothing is lost
    import asyncio
    from mqttsession.aio import MQTTClient

    z = bytes(4096)

    async def one(c, j):
        for i in range(2):
            await c.publish(T0, b"t%d-%d " % (j, i) + z)

    async def main():
        c = MQTTClient("tasks", d.cfg("HOST"), d.cfg("PORT"), keepalive=0, timeout=2,
                       link=Link())
        await c.connect()
        await asyncio.gather(*[one(c, j) for j in range(16)])
        t0 = time.ticks_ms()
        while c._ob is not None and time.ticks_diff(time.ticks_ms(), t0) < 30000:
            await asyncio.sleep_ms(5)
        return c

    return asyncio.run(main())


if d.cfg("TEST") == "tasks":
    c = tasks()
else:
    c = blocking() if d.cfg("FRONT") == "blocking" else aio()
print("LOST0", c.lost0)
print("OUTAGES", c.link.outages)
d.check(not c.pending() and c._ob is None, "all out, every QoS 1 acknowledged")
d.check(c.isconnected(), "connected")
print("PASS")
