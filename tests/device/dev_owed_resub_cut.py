# Subscriptions made again after the broker lost the session, with the callback changing a
# subscription while they are made (tests/host/test_owed_resub_cut.py), store on littlefs.
# PHASE "sub": connect, subscribe (SUBS: name:qos,...), disconnect. "cbcut": connect (the
# broker lost the session: every subscription is made again); the first message that
# arrives (a retained one, while those are made) makes the callback subscribe to "x",
# then a power cut (the host kills the process). "on": connect, print PRESENT, then
# what arrives until a message on "end". "cbunsub": as "on", the broker having lost the
# session; the first message (a retained one, while the subscriptions are made again)
# makes the callback unsubscribe from every topic in TOPICS but its own.
import time

import devlib as d
from mqttsession import Link, MQTTClient, SessionStore

ROOT, BD = d.flash()
API = d.cfg("API", "blocking")
PHASE = d.cfg("PHASE")
end = []
c = None


def got(t, m):
    print("GOT", t.decode(), m.decode())
    if PHASE == "cbcut":
        c.subscribe(d.topic("x"), 1)  # from the callback: owed, made after it
        d.freeze("CUT")
    elif PHASE == "cbunsub" and not end and not t.endswith(b"/end"):
        end.append(0)
        for x in d.cfg("TOPICS", "").split(","):
            if not t.endswith(b"/" + x):
                c.unsubscribe(d.topic(x))
    if t.endswith(b"/end"):
        end.append(1)


def plan():
    for x in d.cfg("SUBS", "").split(","):
        if x:
            t, q = x.split(":")
            yield t, int(q)


c = MQTTClient(None, d.cfg("HOST"), d.cfg("PORT"), version=d.VERSION, keepalive=10,
               timeout=5, store=SessionStore(ROOT + "/.mqtt"), link=Link(min_ms=100, max_ms=500))
c.set_callback(got)
present = c.connect(clean_session=False)
print("PRESENT", present)
if PHASE == "sub":
    for t, q in plan():
        c.subscribe(d.topic(t), q)
    c.disconnect()
elif PHASE == "cbcut":
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < 20000:
        c.check_msg()
        time.sleep_ms(5)
    print("NOMSG")
else:
    print("UP")
    t0 = time.ticks_ms()
    while 1 not in end and time.ticks_diff(time.ticks_ms(), t0) < d.cfg("RUN_MS", 20000):
        c.check_msg()
        time.sleep_ms(5)
    print("SUBS", sorted(t.decode() for t in c._s.subs))
    c.disconnect()
print("PASS")
