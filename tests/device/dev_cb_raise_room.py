# The blocking callback raising out of publish()'s wait for room in the window: the
# message is accepted all the same (README "Exceptions: one rule"), whatever the
# callback raised (KeyboardInterrupt and SystemExit included, as in connect()).
# devcfg: HOST, PORT, EXC ("value", "kbi", "exit")
import devlib as d
from mqttsession import MQTTClient

EXC = {"value": ValueError, "kbi": KeyboardInterrupt, "exit": SystemExit}[d.cfg("EXC")]
c = MQTTClient("cbroom", d.cfg("HOST"), d.cfg("PORT"), window=2, keepalive=30, timeout=10)


def cb(t, m):
    raise EXC(7)


c.set_callback(cb)
c.connect()
c.publish("t/r", b"a", qos=1)
c.publish("t/r", b"b", qos=1)
try:
    c.publish("t/r", b"c", qos=1)  # waits for room; the broker's message comes instead
    print("PUB returned")
except BaseException as e:
    print("PUB raised", repr(e))
print("PENDING", c.pending())
print("PASS")
