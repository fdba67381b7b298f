# A node that reboots into its stored session with a damaged file or other settings
# (devcfg.TEST names the case): what it held goes out, nothing else is given up.
import os

import devlib as d
from mqttsession import MQTTClient, SessionStore

V = d.VERSION
ROOT, BD = d.flash()
STORE = ROOT + "/.mqtt-test"
H = d.cfg("HOST")


def node(cid, **kw):
    kw.setdefault("version", V)
    kw.setdefault("keepalive", 30)
    kw.setdefault("timeout", 5)
    st = kw.pop("store", None) or SessionStore(STORE)
    return MQTTClient(cid, H, d.cfg("PORT"), store=st, **kw)


def flip(path, at):
    with open(path, "rb") as f:
        b = bytearray(f.read())
    b[at] ^= 0x55
    with open(path, "wb") as f:
        f.write(b)


def id_damaged():
    # a session the broker keeps (MQTT 5: Session Present 1 at the next connect) with
    # messages queued offline; its identity file is damaged before the reboot. The
    # damaged identity is rewritten and the queue goes out: the node has session state,
    # so the broker's Session Present is taken, not answered by a clean start
    c = node("iddmg")
    c.connect(clean_session=True)
    c.disconnect()
    c.connect(clean_session=False)
    c.disconnect()
    for i in range(3):
        c.publish(d.topic("m"), b"m%d" % i, qos=1)
    p = c._s._p
    flip(p + "/id", 6)
    st = SessionStore(STORE)
    c = node("iddmg", store=st)
    print("ERRORS", st.errors)
    d.check(len(st.errors) == 1 and "/id" in st.errors[0], "the damage reported")
    d.check(c.pending() == 3, "the queue loaded: %d" % c.pending())
    present = c.connect(clean_session=False)
    print("PRESENT", present)
    d.check(d.pump(c, lambda: not c.pending()), "the queue drained")
    print("DROPPED", c.dropped)
    d.check(c.dropped == 0, "nothing given up: dropped %d" % c.dropped)
    c.disconnect()


def keep(s, payload):
    s._keep(s.add(b"c/t", payload, 1, False))


def drain(s):
    got = []
    while s.live():
        k = s.live()[0]
        got.append(s.load(k)[1])
        s.drop(k)
    return got


def newest_segment_cut():
    # the newest segment (m32-m63), sealed long ago (the tail has moved on to m64-m69),
    # is cut short inside record 10: damage, not a seal a power cut interrupted (the tail
    # no longer holds its messages). Reported, and its records before the cut drain
    s = SessionStore(STORE, ram=4).get(H, "segcut", 80)
    for i in range(70):
        keep(s, b"m%02d" % i)
    q = s._p + "/q"
    names = sorted(os.listdir(q))
    d.check(len(names) == 2, "two segments: %r" % names)
    rs = 13 + 3 + 3 + 4  # one record: header, topic c/t, payload mNN, CRC
    with open(q + "/" + names[1], "rb") as f:
        b = f.read()
    with open(q + "/" + names[1], "wb") as f:
        f.write(b[: 4 + 10 * rs + 6])
    st = SessionStore(STORE, ram=4)
    s = st.get(H, "segcut", 80)
    got = drain(s)
    print("ERRORS", st.errors)
    want = [b"m%02d" % i for i in list(range(42)) + list(range(64, 70))]
    d.check(got == want, "every intact record drained in order: %r" % got)
    d.check(len(st.errors) == 1 and names[1] in st.errors[0], "the damage reported once")
    d.check(s.pending() == 0, "nothing left counted")


def q2_released():
    # PHASE 1: a QoS 2 message whose PUBREC came, the power cut before its PUBREL went
    # out. PHASE 2: the reboot, the queue full (queue=1) with full="drop_oldest": the
    # released message is in flight (the broker holds it, its packet ID in flash), so
    # it is not given up for a new one; the PUBREL goes out and it is delivered
    if d.cfg("PHASE") == 1:
        c = node("q2rel", window=1)
        send = c._send_slot

        def s(k):
            if c._s.fl[k] & 16:  # session._REL: PUBREL next
                d.freeze("CUT")
            send(k)

        c._send_slot = s
        c.connect(clean_session=False)
        c.publish(d.topic("m"), b"old", qos=2)
        d.pump(c, lambda: False, 30000)
        return
    c = node("q2rel", window=1, queue=1, full="drop_oldest")
    d.check(c.pending() == 1, "the released message loaded")
    try:
        c.publish(d.topic("m"), b"new", qos=2)
        print("NEW accepted")
    except OSError as e:
        print("NEW refused", e)
    print("DROPPED", c.dropped)
    c.connect(clean_session=False)
    d.check(d.pump(c, lambda: not c.pending()), "drained")
    d.check(c.dropped == 0, "the message in flight not given up: dropped %d" % c.dropped)
    c.disconnect()


def segment_short():
    # a segment cut at a record's end (devcfg.WHICH: 0 the oldest, 2 the newest, whose
    # messages the tail no longer holds): it holds fewer messages than its name says.
    # Damage: reported, the records it still holds drain, and all the others
    which = d.cfg("WHICH")
    s = SessionStore(STORE, ram=4).get(H, "segshort", 120)
    for i in range(100):
        keep(s, b"m%02d" % i)
    q = s._p + "/q"
    names = sorted(os.listdir(q))
    d.check(len(names) == 3, "three segments: %r" % names)
    rs = 13 + 3 + 3 + 4  # one record: header, topic c/t, payload mNN, CRC
    with open(q + "/" + names[which], "rb") as f:
        b = f.read()
    with open(q + "/" + names[which], "wb") as f:
        f.write(b[: 4 + 20 * rs])  # records 0-19 whole, nothing of the rest
    st = SessionStore(STORE, ram=4)
    s = st.get(H, "segshort", 120)
    got = drain(s)
    print("ERRORS", st.errors)
    lost = range(32 * which + 20, 32 * which + 32)
    want = [b"m%02d" % i for i in range(100) if i not in lost]
    d.check(got == want, "every other message drained in order: %r" % got)
    d.check(len(st.errors) == 1 and names[which] in st.errors[0], "the damage reported once")
    d.check(s.pending() == 0, "nothing left counted")


globals()[d.cfg("TEST")]()
print("PASS")
