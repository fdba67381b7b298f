# What brokers announce and do beyond plain MQTT (tests/host/test_interop_signals.py):
# QoS downgrades, MQTT 5 CONNACK limits, takeovers, redirects, ending a session.
# devcfg.TEST names the scenario; results are printed as NAME value lines.
import time

import devlib as d
from mqttsession import MQTTClient, MQTTException, SessionStore
from mqttsession.link import Link

V = d.VERSION
H = d.cfg("HOST")


ROOT = d.flash()[0] + "/.mqtt" if d.cfg("IMAGE") else None


def node(**kw):
    kw.setdefault("version", V)
    kw.setdefault("timeout", d.cfg("TIMEOUT", 3))
    kw.setdefault("keepalive", d.cfg("KEEPALIVE", 30))
    if ROOT:
        kw["store"] = SessionStore(ROOT)
    port = kw.pop("port", d.cfg("PORT"))
    return MQTTClient(d.cfg("CID", "sig"), H, port, **kw)


def attempt(what, fn, *args, **kw):
    # runs fn; prints "what OK" or "what <exception name> <code>"
    try:
        r = fn(*args, **kw)
        print(what, "OK", r)
        return True
    except MQTTException as e:
        print(what, "MQTTException", e.args[0])
    except (OSError, ValueError) as e:
        print(what, type(e).__name__, e.args[0] if e.args else "")
    return False


def qos2_puback():
    # the broker answers PUBLISH QoS 2 with PUBACK (it has no QoS 2)
    c = node()
    c.connect()
    attempt("PUB", c.publish, d.topic("q2"), b"x", qos=2)
    print("DOWNGRADED", getattr(c, "downgraded", None))
    print("PENDING", c.pending())
    c.disconnect()


def limits():
    # MQTT 5 CONNACK with Maximum QoS and Retain Available; LIMITS: the client's policy
    kw = {} if d.cfg("LIMITS") is None else {"limits": d.cfg("LIMITS")}
    c = node(**kw)
    c.connect()
    attempt("PUBQ2", c.publish, d.topic("l"), b"q2", qos=2)
    attempt("PUBRET", c.publish, d.topic("l"), b"ret", retain=True, qos=d.cfg("RETQOS", 0))
    print("DOWNGRADED", getattr(c, "downgraded", None))
    d.pump(c, lambda: c.pending() == 0, 2000)
    c.disconnect()


def limits_aio():
    # the same limits with the asyncio client
    import asyncio

    from mqttsession.aio import MQTTClient as AsyncClient

    async def main():
        c = AsyncClient(d.cfg("CID", "sig"), H, d.cfg("PORT"), version=V, keepalive=30,
                        timeout=d.cfg("TIMEOUT", 3))
        await c.connect()
        for what, qos, retain in (("PUBQ2", 2, False), ("PUBRET", 0, True)):
            try:
                await c.publish(d.topic("l"), what, qos=qos, retain=retain)
                print(what, "OK")
            except (OSError, ValueError, MQTTException) as e:
                print(what, type(e).__name__)
        t0 = time.ticks_ms()
        while c.pending() and time.ticks_diff(time.ticks_ms(), t0) < 3000:
            await asyncio.sleep_ms(20)
        print("DOWNGRADED", getattr(c, "downgraded", None))
        await c.disconnect()

    asyncio.run(main())


def queued_limits():
    # messages queued offline (in flash) before the broker announced Maximum QoS 1 and
    # Retain Available 0: they go out within those limits, counted
    c = node()
    c.publish(d.topic("q"), b"q2", qos=2)
    c.publish(d.topic("q"), b"r1", qos=1, retain=True)
    print("QUEUED", c.pending())
    c.connect(clean_session=False)
    d.pump(c, lambda: c.pending() == 0, 5000)
    print("PENDING", c.pending())
    print("DOWNGRADED", getattr(c, "downgraded", None))
    c.disconnect()


def refused_v5():
    c = node()
    t0 = time.ticks_ms()
    attempt("CONNECT", c.connect)
    print("MS", time.ticks_diff(time.ticks_ms(), t0))


def expiry():
    # the broker's Session Expiry Interval and Server Keep Alive in CONNACK
    c = node()
    c.connect(clean_session=False)
    print("EXPIRY", c._s.expiry)
    print("KA", c.ka)
    d.pump(c, lambda: False, d.cfg("LINGER", 0))
    c.disconnect()
    print("STORED_EXPIRY", SessionStore(ROOT).get(H, d.cfg("CID")).expiry)


def takeover():
    # another node took the session over (DISCONNECT 0x8E): the application hears it (the
    # keeper's last_error, or the exception without a keeper), and the keeper waits its
    # longest backoff before trying again
    lk = Link(min_ms=100, max_ms=20000, jitter=0)
    c = node(link=lk)
    c.connect()
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < 8000:
        try:
            c.check_msg()
        except MQTTException as e:
            print("RAISED", e.args[0])
            break
        if not c.isconnected():
            break
        time.sleep_ms(10)
    e = lk.last_error
    print("TAKEN", e.args[0] if isinstance(e, MQTTException) else repr(e))
    print("DUE", lk.due())
    print("CONNECTED", c.isconnected())


def redirect():
    # CONNACK 0x9C/0x9D with a Server Reference; REDIRECT: follow it (opt-in, one hop)
    kw = {} if d.cfg("REDIRECT") is None else {"redirect": d.cfg("REDIRECT")}
    c = node(**kw)
    attempt("CONNECT", c.connect)
    print("PORT", c.port)
    print("SERVER", c.server)
    print("REF", getattr(c, "server_reference", None))


def redirect_later():
    # DISCONNECT 0x9C/0x9D with a Server Reference: the keeper reconnects there (opt-in)
    lk = Link(min_ms=100, max_ms=20000, jitter=0)
    c = node(link=lk, redirect=True)
    c.connect()
    first = c.port
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < 8000:
        c.check_msg()
        if c.isconnected() and c.port != first:
            break
        time.sleep_ms(10)
    e = lk.last_error
    print("DISCONNECTED", e.args[0] if isinstance(e, MQTTException) else repr(e))
    print("PORT", c.port)
    print("CONNECTED", c.isconnected())


def end_session():
    # ending a session on purpose: the broker and the store both forget it. FAIL: the
    # broker cannot be reached (nothing listens on DEAD_PORT): the connect's error is
    # raised and nothing is forgotten; PHASE 2 then resumes the session at the broker
    c = node(window=4)
    phase = d.cfg("PHASE")
    if phase == 1:
        c.connect(clean_session=False)
        c.subscribe(d.topic("es"), 1)
        if d.cfg("OFFLINE") or d.cfg("FAIL"):
            c.disconnect()
            for i in range(2):
                c.publish(d.topic("es"), "q%d" % i, qos=1)  # queued in flash
        if d.cfg("FAIL"):
            c = node(window=4, port=d.cfg("DEAD_PORT"))  # the same stored session; no broker
        print("PENDING_BEFORE", c.pending())
        print("SUBS_BEFORE", len(c._s.subs))
        attempt("ENDED", c.disconnect, end_session=True)
        print("CONNECTED", c.isconnected())
        print("PENDING_AFTER", c.pending())
        print("SUBS_AFTER", len(c._s.subs))
    else:
        print("PENDING_AT_BOOT", c.pending())
        print("SUBS_AT_BOOT", len(c._s.subs))
        print("PRESENT", c.connect(clean_session=False))
        d.pump(c, lambda: c.pending() == 0, 20000)  # the resumed session's messages go out
        print("PENDING_AFTER_CONNECT", c.pending())
        c.disconnect()


globals()[d.cfg("TEST")]()
print("PASS")
