# A message written to the tail after a newer one (tests/host/test_store_order.py): a QoS 1
# message is written when its publish returns unacknowledged (Session.hold), and a QoS 2
# one the callback (or another task) published during that wait is in flash before it.
# The tail then seals into a segment; the QoS 1 messages complete, the QoS 2 one does not;
# a reboot must still hold it.
import devlib as d
from mqttsession import SessionStore

ROOT = d.flash()[0]


def get():
    return SessionStore(ROOT + "/.mqtt", max_bytes=100000).get("h", b"ord", 64)


s = get()
for i in range(30):  # offline: in flash at once
    s._keep(s.add(b"t", b"m%d" % i, 1, False))
kx = s.add(b"t", b"m30", 1, False)  # QoS 1 published online: in RAM while it waits
s.assign(kx)
ky = s.add(b"t", b"m31", 2, False)  # QoS 2 published meanwhile: ID and flash at once
s.assign(ky)
s._keep(ky)
s.hold(kx, s.seq[kx])  # m30's publish returns unacknowledged: into flash, after m31
for i in range(32, 63):  # more offline: the tail files are written again
    s._keep(s.add(b"t", b"m%d" % i, 1, False))
for k in s.live():  # every QoS 1 message acknowledged; m31 waits for its PUBREC
    if s.fl[k] & 3 == 1:
        if not s.fl[k] & 64:
            s.assign(k)
        s.acked(s.ids[k], False)
print("RUNNING", b",".join(s.msg[k] for k in s.live()).decode())
s = get()  # the reboot
got = [s.msg[k] for k in s.live()]
print("REBOOT", s.pending(), got[:3])
d.check(b"m31" in got, "the QoS 2 message never completed is still queued after a reboot")
print("PASS")
