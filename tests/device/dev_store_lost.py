# tools/board_test.py's lost_session scenario, apart from dev_store.py: a node's script is
# small, and dev_store.py's other scenarios would add 9 KB of bytecode and a few hundred
# interned names to the heap this one checks (ESP32-sized). (The host suite runs the same
# scenario from dev_store.py, also on old releases: test_store.py, test_store_upgrade.py.)
# Phase 1: three messages queued offline in flash; the host makes the broker forget the
# session; phase 2, after a reboot: Session Present 0 with local state: subscribed again,
# the messages published again.
import devlib as d
from mqttsession import MQTTClient, SessionStore

ROOT, BD = d.flash()
T = d.topic("l")
c = MQTTClient(d.cfg("CID"), d.cfg("HOST"), d.cfg("PORT"), version=d.VERSION, keepalive=30,
               store=SessionStore((ROOT or "") + "/.mqtt-test"), window=8, timeout=3)
c.set_callback(lambda t, m: print("GOT", t.decode(), m.decode()))
if d.cfg("PHASE") == 1:
    c.connect(clean_session=False)
    c.subscribe(T, 1)
    c.disconnect()
    for i in range(3):
        c.publish(T, "q%d" % i, qos=1 + i % 2)  # offline: into flash
    d.check(c._s.pending() == 3, "three queued in flash")
else:
    d.check(c._s.pending() == 3, "three queued after reboot")
    d.check(c.connect(clean_session=False) is False, "the broker lost the session")
    d.pump(c, lambda: c._s.pending() == 0, 5000)
    d.pump(c, lambda: False, 800)
    d.check(T.encode() in c._s.subs, "subscription kept")
print("PASS")
