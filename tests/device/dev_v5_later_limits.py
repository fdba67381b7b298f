# MQTT 5 limits a later CONNACK announces for messages already in the session
# (tests/host/test_v5_later_limits.py): the blocking client. The host judges what the
# broker saw and what is printed here.
import time

import devlib as d
from mqttsession import MQTTClient
from mqttsession.link import Link


def client(**kw):
    if d.cfg("STORE"):
        from mqttsession import SessionStore

        kw["store"] = SessionStore("store")
    return MQTTClient("v5lim", d.cfg("HOST"), d.cfg("PORT"), version=5, keepalive=0,
                      timeout=2, link=Link(min_ms=20, max_ms=100, jitter=0), **kw)


def resume_capped():
    # one message in flight on the first connection (closed before its acknowledgement);
    # the next CONNACK resumes the session with a lower Maximum QoS
    c = client()
    c.connect(False)
    c.publish("t/q", b"m0", qos=d.cfg("QOS", 1))
    t0 = time.ticks_ms()
    while c.pending() and time.ticks_diff(time.ticks_ms(), t0) < 4000:
        c.check_msg()
        time.sleep_ms(10)
    print("PENDING", c.pending(), "DOWNGRADED", c.downgraded, "DROPPED", c.dropped,
          "ASIDE", len(c.aside()), "LAST", repr(c.link.last_error))
    c.disconnect()


def disc_inflight():
    # window 3: three messages in flight when the broker sends a DISCONNECT that says
    # nothing about them (0x8E session taken over, 0x98 use another server)
    c = client(window=3)
    c.connect(False)
    for i in range(3):
        c.publish("t/d", b"m%d" % i, qos=d.cfg("QOS", 1))
    t0 = time.ticks_ms()
    while c.pending() and time.ticks_diff(time.ticks_ms(), t0) < 8000:
        c.check_msg()
        time.sleep_ms(10)
    print("PENDING", c.pending(), "DROPPED", c.dropped, "ASIDE", len(c.aside()),
          "LAST", repr(c.link.last_error), "OUTAGES", c.link.outages)
    c.disconnect()


globals()[d.cfg("TEST")]()
print("PASS")
