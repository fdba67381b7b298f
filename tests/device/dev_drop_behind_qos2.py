# full="drop_oldest" with the oldest message in flash beyond the ring a QoS 2 one sent
# before the reboot (12 in flight under ram=16, the next boot with ram=4, as README's
# test_cuts case) and QoS 1 messages never sent waiting behind it: README says the new
# message is refused only when even giving up the oldest not yet sent leaves no room (it
# alone larger than max_bytes, or the rest in flight). The QoS 1 ones are not in flight.
import devlib as d
from mqttsession import MQTTClient, SessionStore

ROOT = d.flash()[0]
H = "127.0.0.1"

s = SessionStore(ROOT + "/.mqtt", ram=16).get(H, b"dq", 16)
for i in range(6):  # QoS 2 in flight at the cut: packet ID and flash before the PUBLISH
    k = s.add(b"t", b"q2-%d" % i, 2, False)
    s.assign(k)
    s._keep(k)
for i in range(10):  # QoS 1 queued behind them, never sent
    s._keep(s.add(b"t", b"q1-%d" % i, 1, False))
print("BEFORE", s.pending())
# the reboot, with a smaller ring: 4 of the QoS 2 ones in it, 2 of them in flash beyond
c = MQTTClient(b"dq", H, 1, store=SessionStore(ROOT + "/.mqtt", ram=4), queue=16,
               window=4, full="drop_oldest")
print("AFTER", c.pending())
try:
    c.publish("t", b"new", qos=1)
    print("PUBLISHED")
except OSError as e:
    print("REFUSED", e)
d.check(c.dropped == 1, "the oldest QoS 1 message never sent is given up (dropped %d)"
        % c.dropped)
s = c._s
got = d.drain(s, 100)
print("QUEUE", got)
d.check(b"new" in got and b"q1-0" not in got and len(got) == 16,
        "the new message queued, every QoS 2 one kept")
print("PASS")
