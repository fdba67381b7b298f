# The log hook raising KeyboardInterrupt (or SystemExit) at the keeper's reconnect, on
# its "connected" line (tests/host/test_log_hook_kbi.py). README "A log hook": what it
# raises goes no further, the connect it was called from finishes; "Exceptions: one
# rule": KeyboardInterrupt and SystemExit handled alike, then raised. The node's loop
# catches, notes and goes on: the link must end up as after any connect (connected,
# link.up, on_change(True) called) and stay so.
# devcfg: HOST, PORT, EXC ("kbi", "exit"), PREFIX
import time

import devlib as d
from mqttsession import Link, MQTTClient

EXC = {"kbi": KeyboardInterrupt, "exit": SystemExit}[d.cfg("EXC", "kbi")]
CID = "logkbi-" + d.cfg("EXC", "kbi")
T = d.topic("x")
ups = []
got = []
armed = []


def log(line):
    if armed and line.startswith("connected"):
        armed.pop()
        raise EXC("log")


lk = Link(min_ms=50, max_ms=100, jitter=0, on_change=ups.append)
c = MQTTClient(CID, d.cfg("HOST"), d.cfg("PORT"), keepalive=30, link=lk, timeout=10,
               log=log)
c.set_callback(lambda t, m: got.append(m))
c.connect(clean_session=False)
c.subscribe(T, 1)
armed.append(1)
t = MQTTClient(CID, d.cfg("HOST"), d.cfg("PORT"), keepalive=30)
t.connect(clean_session=False)  # takes the client ID over: the broker drops the node
t.sock.close()
errs = []
d.pump_noting(c, lambda: not c.isconnected(), 30000, errs)
t0 = time.ticks_ms()
while lk.due() > 0 and time.ticks_diff(time.ticks_ms(), t0) < 5000:
    time.sleep_ms(10)
d.pump_noting(c, lambda: c.isconnected() and not armed, 30000, errs)
try:
    c.publish(T, b"after", qos=1)
except BaseException as e:
    errs.append(repr(e))
d.pump_noting(c, lambda: b"after" in got, 30000, errs)
print("ERRS", errs, "UPS", ups, "UP", c.isconnected(), lk.up, "GOT", got)
# (it comes out of the call once the connect is made: one of the calls pumping raised it)
raised = [e for e in errs if e.startswith(EXC.__name__)]
ok = b"after" in got and c.isconnected() and lk.up and ups == [True, False, True] and \
    len(raised) == 1
print("RESULT", "ok" if ok else "FAIL")
