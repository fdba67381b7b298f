# The blocking callback raising OSError (or MQTTException) while the node's own QoS 1
# message is in flight (tests/host/test_cb_raise_strike.py): the link is closed as after
# a link failure (README "Exceptions: one rule": a keeper reconnects, the message stays
# queued). The node's own exception is no strike against its message: with strikes=1 it
# is not set aside, and goes out again on the next connection (no PUBACK there either: still pending).
# devcfg: HOST, PORT, EXC ("os", "mqtt"), ROOT (a directory for the store)
import os
import time

import devlib as d
from mqttsession import Link, MQTTClient, SessionStore
from mqttsession.packet import MQTTException

EXC = {"os": OSError, "mqtt": MQTTException}[d.cfg("EXC", "os")]
ROOT = d.cfg("ROOT")
try:
    os.mkdir(ROOT)
except OSError:
    pass
aside = []
raised = []


def cb(t, m):
    if m == b"boom":
        raised.append(m)
        raise EXC(5)


lk = Link(min_ms=50, max_ms=100, jitter=0)
c = MQTTClient("cbstrike", d.cfg("HOST"), d.cfg("PORT"), keepalive=30, link=lk, timeout=10,
               store=SessionStore(ROOT), strikes=1, window=4)
c.on_aside = lambda t, m, why: aside.append((t, m, why))
c.set_callback(cb)
c.connect(clean_session=False)
c.publish("t/reading", b"r1", qos=1)  # in flight: no PUBACK on the first connection
errs = []
d.pump_noting(c, lambda: raised and not c.isconnected(), 30000, errs)
print("RAISED", raised, "UP", c.isconnected(), "ERRS", errs)
t0 = time.ticks_ms()
while lk.due() > 0 and time.ticks_diff(time.ticks_ms(), t0) < 5000:
    time.sleep_ms(10)
d.pump_noting(c, lambda: c.isconnected() or aside, 30000, errs)
d.pump_noting(c, lambda: False, 1000, errs)  # the resend goes out
print("ASIDE", aside, "PENDING", c.pending(), "OUTAGES", lk.outages, "UP", c.isconnected())
print("RESULT", "ok" if not aside and c.pending() == 1 else "FAIL")
