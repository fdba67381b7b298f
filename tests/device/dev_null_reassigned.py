# A null session (MQTT 5, client ID "") whose Assigned Client Identifier the store already
# holds a session under (tests/host/test_null_reassigned.py). PHASE "old": client ID ""
# assigned X, one QoS 1 message acknowledged, one not. "new": client ID "" again, X again,
# one QoS 1 message not acknowledged (RUN: its number). "resume": client ID None (the last
# used session), run until everything is acknowledged. "inspect": no network, what the
# store holds (ASIDE: the client IDs of sessions moved aside).
import devlib as d
from mqttsession import MQTTClient, SessionStore

ROOT, BD = d.flash()
PHASE = d.cfg("PHASE")
HOST = d.cfg("HOST")


def show(st):
    for e in st.errors:
        print("REPORT", e)


def payloads(s):
    return [bytes(s.load(k)[1]) for k in s.live()]


def node(cid, st):
    return MQTTClient(cid, HOST, d.cfg("PORT"), version=5, keepalive=30, timeout=5,
                      window=4, store=st)


if PHASE == "inspect":
    st = SessionStore(ROOT + "/.mqtt")
    s = st.get(HOST)
    print("LAST", s.client_id.decode(), payloads(s))
    for a in d.cfg("ASIDE").split(","):
        o = st.get(HOST, a)
        print("ASIDE", o.client_id.decode(), payloads(o))
    show(st)
else:
    st = SessionStore(ROOT + "/.mqtt")
    c = node(None if PHASE == "resume" else "", st)
    print("PRESENT", c.connect(clean_session=False))
    cid = c.client_id
    print("CID", cid.decode() if isinstance(cid, bytes) else cid)
    if PHASE == "old":
        c.publish(d.topic("d"), b"r1-acked", qos=1)
        d.check(d.pump(c, lambda: c.pending() == 0, 30000), "the first one acknowledged")
        c.publish(d.topic("d"), b"r1-pending", qos=1)  # not acknowledged
    elif PHASE == "new":
        c.publish(d.topic("d"), "r%d-pending" % d.cfg("RUN"), qos=1)  # not acknowledged
    else:
        d.pump(c, lambda: c.pending() == 0, 30000)
    print("PENDING", c.pending())
    show(st)
    c.disconnect()
print("PASS")
