# The outgoing QoS 1/2 flow across reconnects at a scripted broker that changes its
# limits or acknowledges out of the usual order (tests/host/test_outflow_resume.py).
# devcfg.TEST names the scenario; the host's broker script gives the packet IDs.
import time

import devlib as d
from mqttsession import MQTTClient, SessionStore

ROOT, BD = d.flash()
STORE = ROOT + "/.mqtt"


def node(**kw):
    kw.setdefault("window", 8)
    kw.setdefault("timeout", 5)
    kw.setdefault("keepalive", 30)
    return MQTTClient("hq", d.cfg("HOST"), d.cfg("PORT"), store=SessionStore(STORE),
                      version=d.VERSION, **kw)


def until_closed(c, ms=30000):
    # pumps until the broker closes the connection
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < ms:
        try:
            c.check_msg()
        except OSError as e:
            return e
        time.sleep_ms(2)
    return None


def quota_rel():
    # connection 1: A, B (QoS 1) and C (QoS 2) go out; only C is received (PUBREC), then
    # the broker closes. Connection 2: Session Present 1 with Receive Maximum 1: A and
    # C's PUBREL are resent, B waits for room. The broker completes A and C: B must go out
    c = node()
    c.connect(clean_session=True)
    for m, q in ((b"A", 1), (b"B", 1), (b"C", 2)):
        c.publish(d.topic("q"), m, qos=q)
    print("FIRST pending", c.pending())
    print("CLOSED", repr(until_closed(c)))
    print("SP", c.connect(clean_session=False))
    ok = d.pump(c, lambda: not c.pending(), d.cfg("MS", 20000))
    print("PENDING", c.pending())
    d.check(ok, "every message completed after the Receive Maximum was lowered")


def stale_acks():
    # connection 1: A (QoS 1) completes, B (QoS 2) is released, the broker closes.
    # Connection 2 (Session Present 1): acknowledgements of A's ID again, a PUBACK for the
    # released B, then for a new QoS 2 message C a PUBCOMP before its PUBREC: nothing lost,
    # C released and completed once
    c = node(window=1)
    c.connect(clean_session=True)
    c.publish(d.topic("q"), b"A", qos=1)
    c.publish(d.topic("q"), b"B", qos=2)
    print("CLOSED", repr(until_closed(c)))
    print("SP", c.connect(clean_session=False))
    d.check(d.pump(c, lambda: not c.pending(), 20000), "B completed")
    c.publish(d.topic("q"), b"C", qos=2)
    ok = d.pump(c, lambda: not c.pending(), 20000)
    print("PENDING", c.pending(), "downgraded", c.downgraded, "dropped", c.dropped)
    d.check(ok, "C completed")


globals()[d.cfg("TEST")]()
print("PASS")
