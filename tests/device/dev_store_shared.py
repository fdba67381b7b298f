# One session directory, two writers (tests/host/test_store_shared.py): two clients made
# on the same client ID from one store (or from two SessionStore objects on the same
# root) each load the session and write its tail from their own count. Both publish
# offline: up to this test the second one's tail files overwrote the first one's, every
# publish returned, and after a reboot the first client's messages were gone. The later
# client takes the session over now: the earlier one's writes raise OSError(EBUSY).
# devcfg: TWO (0: one store, 1: two stores on the same root). Prints "ACCEPTED <payloads
# whose publish returned>" and "RELOAD <payloads the reloaded session holds>".
import devlib as d
from mqttsession import MQTTClient, SessionStore

ROOT, BD = d.flash()
STORE = ROOT + "/.mqtt"
H = d.cfg("HOST")
P = d.cfg("PORT")

st = SessionStore(STORE)
c1 = MQTTClient("shared", H, P, store=st, keepalive=30)
c2 = MQTTClient("shared", H, P, store=SessionStore(STORE) if d.cfg("TWO") else st,
                keepalive=30)
acc = []
errs = []
for i in range(3):
    for c, tag in ((c1, b"A"), (c2, b"B")):
        m = tag + b"%d" % i
        try:
            c.publish(d.topic("x"), m, qos=1)  # offline: into flash
            acc.append(m)
        except OSError as e:
            errs.append(e.args[0])
print("ERRORS", " ".join(str(e) for e in errs))
print("ACCEPTED", b" ".join(acc).decode())
s = SessionStore(STORE).get(H, "shared")  # a reboot: what flash holds
print("RELOAD", b" ".join(d.drain(s)).decode())
print("PASS")
