# disconnect() and ping() while the blocking client's keeper is in the middle of a TLS
# connect (tests/host/test_tls_midway.py): the keeper's attempt started with budget 0 (its
# first step only: the ClientHello out), the broker's answer has arrived. WRONG: the
# client trusts another CA, so the handshake the call would run refuses the certificate.
import ssl
import time

import devlib as d
from mqttsession import Link, MQTTClient


def rep(e):
    return ("%s:%r" % (type(e).__name__, e)).replace(" ", "_")


def midway(call):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=d.cfg("CA_DER"))
    lk = Link(min_ms=50, max_ms=200, jitter=0)
    c = MQTTClient("mid" + call, d.cfg("HOST"), d.cfg("PORT"), ssl=ctx, timeout=2, link=lk,
                   budget_ms=0)
    c.connect(wait=False)
    cs = c._cs
    time.sleep_ms(300)
    try:
        getattr(c, call)()
        r = "returned"
    except Exception as e:  # (what the application sees)
        r = rep(e)
    print("MID", call, cs, r, c.sock is None, rep(lk.last_error))
    return c, lk


for call in ("disconnect", "ping"):
    c, lk = midway(call)
if not d.cfg("WRONG"):
    # the keeper's connect goes on after ping(), and the session works
    t0 = time.ticks_ms()
    while not c.isconnected() and time.ticks_diff(time.ticks_ms(), t0) < 10000:
        c.check_msg()
        time.sleep_ms(10)
    c.publish("tls/mid", b"x", qos=1)
    t0 = time.ticks_ms()
    while c.pending() and time.ticks_diff(time.ticks_ms(), t0) < 10000:
        c.check_msg()
        time.sleep_ms(10)
    print("AFTER", c.isconnected(), c.pending())
    c.disconnect()
print("PASS")
