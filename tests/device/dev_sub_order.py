# Subscription changes in the order the application made them (tests/host/test_sub_order.py).
# The callback subscribes "x" while publish(qos=1) waits for its PUBACK (the broker sends a
# message first): recorded, made by a later call. The application then unsubscribes "x"
# online. The callback's earlier change must not come after it: check_msg() then makes
# nothing that resubscribes "x". Prints the session's subscriptions at the end ("SUBS").
import time

import devlib as d
from mqttsession import MQTTClient


def cb(t, m):
    print("CB", t.decode())
    c.subscribe("x", 2)


c = MQTTClient("order", d.cfg("HOST"), d.cfg("PORT"), version=d.VERSION, keepalive=0,
               timeout=2)
c.set_callback(cb)
c.connect()
c.publish("t/out", b"1", qos=1)  # the callback runs in its wait
c.unsubscribe("x")
t0 = time.ticks_ms()
while time.ticks_diff(time.ticks_ms(), t0) < 1000:
    try:
        c.check_msg()
    except OSError as e:  # a SUBSCRIBE the scripted broker does not answer
        print("LOST", e)
        break
    time.sleep_ms(10)
print("SUBS", sorted(c._s.subs))
c.disconnect()
print("PASS")
