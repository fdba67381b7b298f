# Link(on_change=) raising KeyboardInterrupt (or SystemExit) as the link goes down
# (tests/host/test_on_change_kbi.py): it comes out of the call, and the client goes on
# (README: on_change's exception goes no further than the call; "Exceptions: one rule":
# KeyboardInterrupt and SystemExit handled alike). The broker drops the node (another
# connection takes its client ID over); the node's loop catches, notes, and goes on
# calling check_msg(): the keeper reconnects and a QoS 1 message goes through. Up to
# now the client was left believing it ran inside a hook: every later check_msg()
# raised RuntimeError, for good.
# devcfg: HOST, PORT, EXC ("kbi", "exit"), PREFIX
import time

import devlib as d
from mqttsession import Link, MQTTClient

EXC = {"kbi": KeyboardInterrupt, "exit": SystemExit}[d.cfg("EXC", "kbi")]
CID = "onchg-" + d.cfg("EXC", "kbi")
T = d.topic("x")
ups = []
got = []


def changed(up):
    ups.append(up)
    if not up:
        raise EXC("down")


lk = Link(min_ms=50, max_ms=100, jitter=0, on_change=changed)
c = MQTTClient(CID, d.cfg("HOST"), d.cfg("PORT"), keepalive=30, link=lk, timeout=10)
c.set_callback(lambda t, m: got.append(m))
c.connect(clean_session=False)
c.subscribe(T, 1)
t = MQTTClient(CID, d.cfg("HOST"), d.cfg("PORT"), keepalive=30)
t.connect(clean_session=False)  # takes the client ID over: the broker drops the node
t.sock.close()
errs = []
d.pump_noting(c, lambda: not c.isconnected(), 30000, errs)
t0 = time.ticks_ms()
while lk.due() > 0 and time.ticks_diff(time.ticks_ms(), t0) < 5000:
    time.sleep_ms(10)
d.pump_noting(c, lambda: c.isconnected(), 30000, errs)
try:
    c.publish(T, b"after", qos=1)
except BaseException as e:
    errs.append(repr(e))
d.pump_noting(c, lambda: b"after" in got, 30000, errs)
print("ERRS", errs, "UPS", ups, "UP", c.isconnected(), lk.up, "GOT", got)
ok = b"after" in got and c.isconnected() and lk.up and \
    not any("RuntimeError" in e for e in errs)
print("RESULT", "ok" if ok else "FAIL")
