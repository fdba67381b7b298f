# MQTT 5 CONNACK and DISCONNECT content (tests/host/test_v5_broker_rules.py): the
# blocking client. The host judges what the broker saw and what is printed here.
import time

import devlib as d
from mqttsession import MQTTClient, MQTTException
from mqttsession.link import Link


def client(cid="v5rules", **kw):
    kw.setdefault("version", 5)
    kw.setdefault("keepalive", 0)
    kw.setdefault("timeout", 2)
    return MQTTClient(cid, d.cfg("HOST"), d.cfg("PORT"), **kw)


def report(tag, e):
    import sys
    sys.print_exception(e)
    print("EXC", tag, type(e).__name__, e.args[0] if e.args else None)


def connack_ref():
    c = client()
    try:
        c.connect()
        print("EXC connect none")
    except Exception as e:
        report("connect", e)


def disc_ref():
    # no keeper: the DISCONNECT's error reaches the application
    c = client()
    c.connect()
    try:
        t0 = time.ticks_ms()
        while time.ticks_diff(time.ticks_ms(), t0) < 3000:
            c.check_msg()
            time.sleep_ms(20)
        print("EXC check none")
    except Exception as e:
        report("check", e)


def disc_ref_keeper():
    # with a keeper: a DISCONNECT is a link failure; the keeper reconnects, the message
    # queued goes out on the next connection
    lk = Link(min_ms=20, max_ms=100, jitter=0)
    c = client(link=lk)
    c.connect(False)
    try:
        c.publish("t/a", b"x", qos=1)
        t0 = time.ticks_ms()
        while c.pending() and time.ticks_diff(time.ticks_ms(), t0) < 5000:
            c.check_msg()
            time.sleep_ms(20)
        print("EXC loop none")
    except Exception as e:
        report("loop", e)
    print("PENDING", c.pending(), "LAST", repr(lk.last_error))


def resume_quota():
    # window 4, four QoS 1 messages in flight; the next connection's CONNACK (session
    # present) says Receive Maximum 1
    lk = Link(min_ms=20, max_ms=100, jitter=0)
    kw = {}
    if d.cfg("STORE"):
        from mqttsession import SessionStore

        kw["store"] = SessionStore("store")
    c = client(link=lk, window=4, **kw)
    c.connect(False)
    for i in range(4):
        c.publish("t/q", b"m%d" % i, qos=d.cfg("QOS", 1))
    t0 = time.ticks_ms()
    while c.pending() and time.ticks_diff(time.ticks_ms(), t0) < 6000:
        c.check_msg()
        time.sleep_ms(10)
    print("PENDING", c.pending(), "ASIDE", len(c.aside()))
    c.disconnect()


def wild_loop():
    # a wildcard subscription made offline; the broker has no wildcard subscriptions
    # (CONNACK 0x28 = 0) and ends each connection that asks for one (DISCONNECT 0xA2)
    lk = Link(min_ms=20, max_ms=200, jitter=0)
    c = client(link=lk)
    c.subscribe("t/#", 1)
    c.publish("t/a", b"queued", qos=1)
    try:
        c.connect(False)
    except Exception as e:
        report("connect", e)
    n = 0
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < 4000:
        try:
            c.check_msg()
        except Exception as e:
            n += 1
        time.sleep_ms(10)
    print("ASIDE", c.aside())
    print("PENDING", c.pending(), "SUBS", list(c._s.subs), "TODO", c._todo, "ERRS", n,
          "LAST", repr(lk.last_error))


globals()[d.cfg("TEST")]()
print("PASS")
