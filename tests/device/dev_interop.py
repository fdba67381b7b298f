# The client against other brokers (tests/host/test_interop.py): devcfg.TEST names the
# scenario, devcfg.VERSION the protocol, devcfg.IMAGE the littlefs image of the store.
import time

import devlib as d
from mqttsession import MQTTClient, MQTTException, SessionStore

V = d.VERSION
H = d.cfg("HOST")
SIZES = (0, 200, 5000)


def node(store=True, **kw):
    kw.setdefault("window", d.cfg("WINDOW", 1))
    kw.setdefault("timeout", d.cfg("TIMEOUT", 5))
    kw.setdefault("version", V)
    kw.setdefault("keepalive", 30)
    kw.setdefault("max_packet", 6144)
    if store:
        root, _ = d.flash()
        kw["store"] = SessionStore(root + "/.mqtt")
    return MQTTClient(d.cfg("CID"), H, d.cfg("PORT"), **kw)


def body(n, seed):
    return bytes((i * 31 + seed) & 0xFF for i in range(n))


def say_got(t, m):
    print("GOT", t.decode(), m.decode())


def roundtrip():
    # QoS 0, 1 and 2 at 0 B, 200 B and 5 KB, back through the broker, each intact
    c = node(store=False)
    box = d.Inbox()
    c.set_callback(box)
    d.check(c.connect() is False, "clean connect has no session")
    c.subscribe(d.topic("rt/#"), 2)
    want = []
    for q in (0, 1, 2):
        for n in SIZES:
            t = d.topic("rt/q%d/%d" % (q, n))
            m = body(n, q)
            c.publish(t, m, qos=q)
            want.append((t.encode(), m))
    d.check(d.pump(c, lambda: len(box) >= len(want), 10000), "9 messages back: %d" % len(box))
    d.pump(c, lambda: False, 300)
    d.check(sorted(box.got) == sorted(want), "topics and payloads intact")
    d.check(c.pending() == 0, "nothing left unacknowledged")
    c.disconnect()


def retained_set():
    c = node(store=False)
    c.connect()
    c.publish(d.topic("ret"), b"kept", retain=True, qos=1)
    c.disconnect()


def retained_get():
    # a new subscriber gets the retained message; an empty retained message clears it
    t = d.topic("ret")
    c = node(store=False)
    box = d.Inbox()
    c.set_callback(box)
    c.connect()
    c.subscribe(t, 1)
    d.check(d.pump(c, lambda: len(box) >= 1), "retained message delivered")
    d.pump(c, lambda: False, 300)
    d.check(all(g == (t.encode(), b"kept") for g in box.got), "retained payload: %r" % box.got)
    print("COPIES", len(box))
    c.publish(t, b"", retain=True, qos=1)
    c.disconnect()


def will():
    c = node(store=False, keepalive=5)
    c.set_last_will(d.topic("will"), b"node died", qos=1)
    c.connect()
    print("READY")
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < 30000:
        c.check_msg()
        time.sleep_ms(20)


def sub_setup():
    # a persistent session subscribed at QoS 1 and 2; ends with DISCONNECT, or freezes
    # for the host's SIGKILL (END=kill)
    c = node()
    d.check(c.connect(clean_session=False) is False, "new persistent session")
    c.subscribe(d.topic("ps/1"), 1)
    c.subscribe(d.topic("ps/2"), 2)
    if d.cfg("END") == "kill":
        d.freeze("CUT")
    c.disconnect()


def sub_resume():
    # back into the stored session: prints Session Present and every message received
    c = node()
    box = d.Inbox()
    c.set_callback(box)
    print("PRESENT", c.connect(clean_session=False))
    d.pump(c, lambda: len(box) >= d.cfg("COUNT", 0), 10000)
    d.pump(c, lambda: False, d.cfg("LINGER", 700))  # and nothing more comes
    for t, m in box.got:
        say_got(t, m)
    c.disconnect()
    print("PENDING", c.pending())


def pub_stream():
    # COUNT messages, QoS 1 and 2 in turn, window 8; at CUT_AT the power is cut with
    # messages in flight (QOS=2: QoS 2 only)
    c = node(window=8)
    c.connect(clean_session=False)
    only2 = d.cfg("QOS") == 2
    cut = d.cfg("CUT_AT", -1)
    for i in range(d.cfg("COUNT")):
        c.publish(d.topic("pub"), "n%d" % i, qos=2 if only2 else 1 + (i & 1))
        print("ACCEPTED", i)
        if i == cut:
            print("INFLIGHT", c.pending())
            d.freeze("CUT")
    d.pump(c, lambda: c.pending() == 0, 8000)
    c.disconnect()


def pub_resume():
    # after the cut: resend what is unacknowledged, then publish the rest. RELS_AT_BOOT:
    # QoS 2 messages past PUBREC whose PUBREL goes out again (only PUBCOMP is missing)
    c = node(window=8)
    rels = sum(1 for k in c._s.live() if c._s.fl[k] & 16)
    print("PENDING_AT_BOOT", c.pending())
    print("RELS_AT_BOOT", rels)
    print("PRESENT", c.connect(clean_session=False))
    t0 = time.ticks_ms()
    # all acknowledged; or, after 3 s, only PUBRELs a broker may never answer left
    d.pump(c, lambda: c.pending() == 0 or (
        c.pending() <= rels and time.ticks_diff(time.ticks_ms(), t0) > 3000), 10000)
    only2 = d.cfg("QOS") == 2
    stuck = c.pending()
    for i in range(d.cfg("CUT_AT") + 1, d.cfg("COUNT")):
        c.publish(d.topic("pub"), "n%d" % i, qos=2 if only2 else 1 + (i & 1))
    d.pump(c, lambda: c.pending() <= stuck, 10000)  # the new ones all complete
    print("PENDING", c.pending())
    print("DOWNGRADED", c.downgraded)  # QoS 2 completed by a PUBACK (no QoS 2 there)
    c.disconnect()


def restart_setup():
    # before a broker restart: a persistent session with a subscription, disconnected,
    # and three messages published offline (in flash until the next connect)
    c = node(window=8)
    c.connect(clean_session=False)
    c.subscribe(d.topic("rs/in"), 1)
    c.disconnect()
    for i in range(3):
        c.publish(d.topic("rs/out"), "o%d" % i, qos=1 + i % 2)
    d.check(c.pending() == 3, "three queued in flash")


def restart_resume():
    c = node(window=8)
    box = d.Inbox()
    c.set_callback(box)
    print("PRESENT", c.connect(clean_session=False))
    d.check(d.pump(c, lambda: c.pending() == 0, 10000), "stored messages acknowledged")
    print("READY")  # the host publishes one more now: the subscription must hold
    d.pump(c, lambda: any(m == b"after" for _, m in box.got), 10000)
    d.pump(c, lambda: False, 500)
    for t, m in box.got:
        say_got(t, m)
    c.disconnect()


def v5_refused():
    # a broker that speaks only 3.1.1, asked for MQTT 5
    c = node(store=False, version=5, timeout=d.cfg("TIMEOUT", 8))
    t0 = time.ticks_ms()
    try:
        c.connect()
        print("CONNECTED")
    except MQTTException as e:
        print("MQTTEXC", e.args[0])
    except OSError as e:
        print("OSERROR", e.args[0])
    print("MS", time.ticks_diff(time.ticks_ms(), t0))


def qos2_downgrade():
    # a broker without QoS 2 answers PUBLISH QoS 2 with PUBACK: completed, counted
    c = node(store=bool(d.cfg("IMAGE")), window=d.cfg("WINDOW", 1))
    c.connect(clean_session=False)
    for i in range(3):
        try:
            c.publish(d.topic("dg"), "d%d" % i, qos=2)
            print("PUBLISHED", i)
        except OSError as e:
            print("OSERROR", e.args[0])
            c.connect(clean_session=False)
    d.pump(c, lambda: c.pending() == 0, 3000)
    print("PENDING", c.pending())
    print("DOWNGRADED", getattr(c, "downgraded", None))
    c.publish(d.topic("dg"), "after", qos=1)
    c.disconnect()


globals()[d.cfg("TEST")]()
print("PASS")
