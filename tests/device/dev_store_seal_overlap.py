# A QoS 1 message written to flash after a whole segment of newer ones was sealed
# (tests/host/test_store_order.py): its publish returned unacknowledged (Session.hold)
# after the callback or another task had queued 32 or more messages during its wait. The
# next seal holds it with messages newer than the segment before: the two segments' seq
# ranges overlap. A reboot must still hold every message.
import devlib as d
from mqttsession import SessionStore

ROOT = d.flash()[0]


def get():
    return SessionStore(ROOT + "/.mqtt", max_bytes=200000).get("h", b"ovl", 128)


s = get()
kx = s.add(b"t", b"m0", 1, False)  # QoS 1 published online: in RAM while it waits
s.assign(kx)
for i in range(1, 40):  # queued meanwhile (window full): in flash at once, sealed at 32
    s._keep(s.add(b"t", b"m%d" % i, 1, False))
s.hold(kx, s.seq[kx])  # m0's publish returns unacknowledged: into flash, after m1..m39
for i in range(40, 70):  # more queued: the tail seals again, m0 in that segment
    s._keep(s.add(b"t", b"m%d" % i, 1, False))
print("RUNNING", s.pending())
s = get()  # the reboot
got = sorted(int(s.msg[k][1:]) for k in s.live())
miss = [i for i in range(70) if i not in got]
print("REBOOT", s.pending(), "MISSING", miss)
d.check(not miss, "every queued message is kept after a reboot: %r missing" % miss)
print("PASS")
