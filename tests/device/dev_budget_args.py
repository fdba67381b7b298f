# budget_ms: its checks and defaults, and a connect into a silent listener (SILENT_PORT: the
# host accepts TCP and never answers) that goes on in steps across calls with a keeper.
import time

import devlib as d
from mqttsession import Link, MQTTClient

HOST = d.cfg("HOST")
PORT = d.cfg("SILENT_PORT")


def make(**kw):
    return MQTTClient("budget-args", HOST, PORT, **kw)


for bad in ("x", -5, 1.5):
    e = d.raises(ValueError, make, budget_ms=bad)
    d.check("budget_ms" in e.args[0], "bad budget_ms %r named in the error" % (bad,))
d.check(make().budget_ms is None, "no store, no keeper: no budget (umqtt's meaning)")
d.check(make(link=True).budget_ms == 200, "a keeper: the default budget")
d.check(make(link=True, budget_ms=None).budget_ms is None, "budget_ms=None keeps waits whole")

# a keeper: the connect starts, the call returns within about the budget, later calls go on
lk = Link(min_ms=100, max_ms=200)
c = make(link=lk, budget_ms=50, timeout=1)
t = time.ticks_ms()
r = c.connect(clean_session=False, wait=False)
dt = time.ticks_diff(time.ticks_ms(), t)
print("CONNECT", r, dt)
d.check(r is None and not c.isconnected(), "connect(wait=False) returned while under way")
longest = 0
t0 = time.ticks_ms()
while not lk.tries and time.ticks_diff(time.ticks_ms(), t0) < 5000:
    t = time.ticks_ms()
    c.publish("t/budget", b"x", qos=1)
    c.check_msg()
    longest = max(longest, time.ticks_diff(time.ticks_ms(), t))
    time.sleep_ms(10)
print("LONGEST", longest, "TRIES", lk.tries, lk.last_error)
d.check(lk.tries >= 1 and isinstance(lk.last_error, OSError) and lk.last_error.errno == 110,
        "the silent connect ended by its timeout, through later calls")
d.check(c.pending() > 0, "publish queued meanwhile")

# no keeper: wait=False changes nothing, connect blocks until its timeout
c = make(timeout=1)
t = time.ticks_ms()
e = d.raises(OSError, c.connect, False, None, False)
dt = time.ticks_diff(time.ticks_ms(), t)
print("BLOCKING", dt)
d.check(e.errno == 110 and dt >= 900, "without a keeper connect waits for its timeout")
print("PASS")
