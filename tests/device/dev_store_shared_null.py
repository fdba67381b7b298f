# One session, two clients, the first a null session (MQTT 5, client ID ""): once the
# broker assigned it an ID, a later client of that session (client ID None: the last
# used session) takes it over, as for any client ID (tests/host/test_store_shared.py).
# Up to this test the claim stayed on the null session's old directory: the earlier
# client's publish returned, and both wrote the session's tail, the later client's
# messages over the earlier one's. Prints "ERRORS", "ACCEPTED" and "RELOAD" as
# dev_store_shared.py.
import devlib as d
from mqttsession import MQTTClient, SessionStore

ROOT, BD = d.flash()
STORE = ROOT + "/.mqtt"
H = d.cfg("HOST")
P = d.cfg("PORT")


def make(cid):
    return MQTTClient(cid, H, P, store=SessionStore(STORE), keepalive=30, version=5,
                      timeout=5)


c1 = make("")
c1.connect(clean_session=False)
cid = c1.client_id
print("CID", cid)
c1.disconnect()
c2 = make(None)  # the last used session: the one the broker assigned c1
d.check(c2.client_id == cid, "the same session")
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
s = SessionStore(STORE).get(H)  # a reboot: what flash holds
print("RELOAD", b" ".join(d.drain(s)).decode())
print("PASS")
