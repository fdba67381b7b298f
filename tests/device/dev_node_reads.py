# What a blocking node reads, and when (tests/host/test_node_reads.py). TEST:
# - ping: a node that only publishes QoS 0 (every 100 ms) and never calls check_msg(),
#   keepalive 2 s: the broker's PINGRESPs keep the link up (KEEPER=1: with a keeper)
# - big: a 16 KB message arriving in two pieces, check_msg() every 100 ms (timeout 2 s):
#   delivered, the link up
# - refused: every CONNECT refused; connect() and the keeper say why
# - slow: the application's loop (SLOW=app: check_msg() every 1.6 s) or its callback
#   (SLOW=cb: 2 s on a message that came with a ping out) keeps the node from reading
#   past 3/4 keepalive (1.5 s) after a ping: the PINGRESP that came meanwhile is read,
#   the link stays up (KEEPER=1: with a keeper)
import time

import devlib as d
from mqttsession import Link, MQTTClient


def ping():
    kw = {}
    if d.cfg("KEEPER", 1):
        kw["link"] = Link(min_ms=50, max_ms=200, jitter=0)
    c = MQTTClient("reads", d.cfg("HOST"), d.cfg("PORT"), keepalive=2, timeout=3, **kw)
    c.connect()
    t0 = time.ticks_ms()
    err = None
    n = 0
    while time.ticks_diff(time.ticks_ms(), t0) < 6000:
        try:
            c.publish("t/p", b"%d" % n)
        except OSError as e:
            err = e
            break
        n += 1
        time.sleep_ms(100)
    print("RAISED", repr(err))
    if kw:
        print("OUTAGES", c.link.outages, repr(c.link.last_error))
    d.check(err is None, "no publish raised")
    d.check(not kw or c.link.outages == 0, "the link stayed up")
    c.disconnect()


def big():
    got = []
    lk = Link(min_ms=50, max_ms=200, jitter=0)
    c = MQTTClient("reads", d.cfg("HOST"), d.cfg("PORT"), keepalive=0, timeout=2, link=lk,
                   budget_ms=200, max_packet=20000)
    c.set_callback(lambda t, m: got.append(len(m)))
    c.connect()
    t0 = time.ticks_ms()
    while not got and time.ticks_diff(time.ticks_ms(), t0) < 8000:
        c.check_msg()
        time.sleep_ms(100)
    print("GOT", got, "LASTERR", repr(lk.last_error), "OUTAGES", lk.outages)
    d.check(got == [16000], "delivered once")
    d.check(lk.last_error is None and lk.outages == 0, "the link stayed up")
    c.disconnect()


def refused():
    lk = Link(min_ms=20, max_ms=50, jitter=0)
    c = MQTTClient("reads", d.cfg("HOST"), d.cfg("PORT"), link=lk, timeout=2,
                   version=d.VERSION, budget_ms=200)
    try:
        c.connect()
        print("WAITED", "None")
    except Exception as e:  # (what the application sees)
        print("WAITED", type(e).__name__, e.args[0])
    r = c.connect(wait=False)
    print("NOWAIT", r, type(lk.last_error).__name__, lk.last_error.args[0])
    t0 = time.ticks_ms()
    n = lk.tries
    while lk.tries < n + 2 and time.ticks_diff(time.ticks_ms(), t0) < 10000:
        c.check_msg()
        time.sleep_ms(5)
    print("KEEPER", type(lk.last_error).__name__, lk.last_error.args[0])


def slow():
    kw = {}
    if d.cfg("KEEPER", 1):
        kw["link"] = Link(min_ms=50, max_ms=200, jitter=0)
    c = MQTTClient("reads", d.cfg("HOST"), d.cfg("PORT"), keepalive=2, timeout=3, **kw)
    got = []

    def cb(t, m):
        got.append(m)
        time.sleep_ms(2000)

    c.set_callback(cb)
    c.connect()
    app = d.cfg("SLOW") == "app"
    t0 = time.ticks_ms()
    err = None
    while time.ticks_diff(time.ticks_ms(), t0) < 5000:
        try:
            c.check_msg()
        except OSError as e:
            err = e
            break
        time.sleep_ms(1600 if app else 20)
    print("RAISED", repr(err), "GOT", got)
    if kw:
        print("OUTAGES", c.link.outages, repr(c.link.last_error))
    d.check(err is None, "no check_msg() raised")
    d.check(not kw or c.link.outages == 0, "the link stayed up")
    d.check(app or got == [b"slow"], "the message delivered")
    c.disconnect()


globals()[d.cfg("TEST")]()
print("PASS")
