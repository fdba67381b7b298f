# A TLS connect that fails in the handshake (a certificate the client refuses, or a port
# that does not speak TLS) closes its TCP socket (README: a failed connect closes the
# socket), both clients, with and without a keeper (tests/host/test_tls_refused_certificate.py).
# MicroPython's TLS socket, closed after its handshake failed, leaves the TCP socket under
# it open: each attempt held a socket until a garbage collection (a board has few).
# Unix port: the process's open file descriptors are counted, the collector off meanwhile.
import gc
import os
import ssl
import time

import devlib as d
from mqttsession import Link, MQTTClient

ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.verify_mode = ssl.CERT_REQUIRED
ctx.load_verify_locations(cadata=d.cfg("CA_DER"))
H, P = d.cfg("HOST"), d.cfg("PORT")


def fds():
    return len(os.listdir("/proc/self/fd"))


def rep(e):
    return ("%s:%r" % (type(e).__name__, e)).replace(" ", "_")


def blocking():
    c = MQTTClient("refused", H, P, ssl=ctx, timeout=5)
    e = d.raises(OSError, c.connect)
    return rep(e)


def keeper():
    lk = Link(min_ms=10, max_ms=20, jitter=0)
    c = MQTTClient("refusedk", H, P, ssl=ctx, timeout=5, link=lk)
    c.connect(wait=False)
    d.pump(c, lambda: lk.tries >= 4, 30000)
    c.disconnect()
    return "%d:%s" % (lk.tries, rep(lk.last_error))


def aio():
    import asyncio
    from mqttsession.aio import MQTTClient as A

    async def main():
        c = A("refuseda", H, P, ssl=ctx, timeout=5)
        try:
            await c.connect()
            return "connected"
        except OSError as e:
            return rep(e)

    return asyncio.run(main())


os.urandom(4)  # (the TLS layer's entropy source, opened once)
gc.collect()
gc.disable()  # a collection would close what a failed attempt left open
for f in (blocking, keeper, aio):
    n0 = fds()
    r = f()
    print("LEFT", f.__name__, fds() - n0, r)
gc.enable()
print("PASS")
