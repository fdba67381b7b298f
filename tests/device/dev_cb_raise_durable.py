# The blocking callback raising out of publish()'s own read: the message publish
# accepted must be durable with a store all the same (README "Exceptions: one rule": a
# publish that raised the callback's exception had accepted its message; "Durability":
# with a store, a QoS 1/2 publish returns once the message is durable). A scripted
# broker sends an incoming QoS 0 message right after CONNACK and never a PUBACK; the
# callback raises on it as publish() reads. The process then ends without another call (a power cut), and
# the next boot loads the store.
# devcfg: HOST, PORT, ROOT, STEP ("pub": publish and cut; "boot": load and report),
# WINDOW, EXC ("value", "mqtt")
import os

import devlib as d
from mqttsession import MQTTClient, SessionStore
from mqttsession.packet import MQTTException

ROOT = d.cfg("ROOT")
try:
    os.mkdir(ROOT)
except OSError:
    pass
c = MQTTClient("cbdur", d.cfg("HOST"), d.cfg("PORT"), store=SessionStore(ROOT),
               window=d.cfg("WINDOW", 1), keepalive=30, timeout=10)
if d.cfg("STEP") == "pub":
    EXC = {"value": ValueError, "mqtt": MQTTException}[d.cfg("EXC", "value")]

    def cb(t, m):
        raise EXC(7)

    c.set_callback(cb)
    c.connect(clean_session=False)
    # the broker's message is in the socket (or the buffer) before publish reads
    import select

    po = select.poll()
    po.register(c.sock, select.POLLIN)
    if c._r1 == c._r0:  # (not read with CONNACK already)
        po.poll(30000)
    try:
        c.publish("t/reading", b"r1", qos=1)
        print("PUB returned")
    except BaseException as e:
        print("PUB raised", repr(e))
    print("PENDING", c.pending())
    # power cut: no further call
else:
    print("BOOT PENDING", c.pending())
print("PASS")
