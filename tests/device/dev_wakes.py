# One wake of a deep-sleeping node (tests/host/test_wakes_chaos.py): a new process per wake
# on the same littlefs image. Connects (LINK=1: with a keeper, connect(wait=False); else a
# plain connect, an offline wake going on with the store alone), subscribes on wake 0 only,
# publishes one QoS 1 and one QoS 2 reading, reads for CHECK_MS, then disconnects
# (END="disconnect") or just stops. FINAL=1: the last wake, the broker up: drain, "UP",
# then read until the command "final" arrives.
import time

import devlib as d
from mqttsession import Link, MQTTClient, SessionStore

ROOT, BD = d.flash()
WAKE = d.cfg("WAKE", 0)
LINK = d.cfg("LINK", 0)
final = []


def got(t, m):
    print("GOT", t.decode(), m.decode())
    if m == b"final":
        final.append(1)


kw = {}
if LINK:
    kw["link"] = Link(min_ms=50, max_ms=200)
c = MQTTClient(d.cfg("CID"), d.cfg("HOST"), d.cfg("PORT"), version=d.VERSION, keepalive=10,
               timeout=3, store=SessionStore(ROOT + "/.mqtt"), **kw)
c.set_callback(got)
try:
    if LINK:
        print("PRESENT", c.connect(clean_session=False, wait=not d.cfg("NOWAIT", 1)))
    else:
        print("PRESENT", c.connect(clean_session=False))
except OSError as e:
    print("OFFLINE", repr(e))
if WAKE == 0:
    c.subscribe(d.topic("cmd"), 2)
    print("SUBSCRIBED")
if d.cfg("FINAL"):
    d.check(d.pump(c, lambda: c.isconnected() and c.pending() == 0 and not c._todo, 30000),
            "drained")
    print("UP")
    t0 = time.ticks_ms()
    while not final and time.ticks_diff(time.ticks_ms(), t0) < 30000:
        c.check_msg()
        time.sleep_ms(5)
    d.check(final, "the subscription made on wake 0 still takes commands")
    c.disconnect()
else:
    for q in (1, 2):
        m = "%d" % (WAKE * 10 + q)
        c.publish(d.topic("r%d" % q), m, qos=q)
        print("ACCEPTED", m)
    print("READY")
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < d.cfg("CHECK_MS", 300):
        try:
            c.check_msg()
        except OSError as e:  # no keeper: offline
            print("CHECK", repr(e))
            break
        time.sleep_ms(20)
    print("PENDING", c.pending())
    if d.cfg("END") == "disconnect" and c.isconnected():
        c.disconnect()
print("PASS")
