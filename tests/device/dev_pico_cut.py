# Power cuts on a board: publishes messages START.. at QoS 1 (even) and 2 (odd) through a
# SessionStore with a window, printing DONE i once publish(i) returned. The host cuts the
# power (inside a flash write, or at any moment) and runs the script again from the first
# number not yet DONE; the stored session resends what was not acknowledged. A run that
# is not cut ends when nothing is pending: PENDING 0, then PASS.
import devlib as d
from mqttsession import MQTTClient, SessionStore

ROOT, _ = d.flash()
st = SessionStore((ROOT or "") + "/.mqtt-cut")
c = MQTTClient(d.cfg("CID", "picocut"), d.cfg("HOST"), d.cfg("PORT"), keepalive=30,
               store=st, window=d.cfg("WINDOW", 4), timeout=d.cfg("TIMEOUT", 5),
               version=d.VERSION)
print("LOADED", c._s.pending())  # the store loaded after whatever cut came before
c.connect(clean_session=False)
start = d.cfg("START", 0)
for i in range(start, start + d.cfg("COUNT", 20)):
    c.publish(d.topic("cut"), "m%d" % i, qos=1 + (i & 1))
    print("DONE", i)
d.check(d.pump(c, lambda: c._s.pending() == 0, 10000), "everything acknowledged")
print("PENDING", c._s.pending())
c.disconnect()
print("PASS")
