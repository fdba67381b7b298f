# One store root spelled in several ways (tests/host/test_store_shared.py): a client of
# SessionStore(<root>) publishes offline, then a store of the same directory spelled
# another way ("." and ".." parts, repeated and trailing "/", relative) gets the session.
# Up to 0.2.24 each spelling was a key of its own in the claims: the earlier client was
# not refused and both wrote. Each spelling is resolved to one when the store is made.
# Prints "ROOT <each spelling's store's root>...", "TAKEN <for each later spelling: the
# errno of the earlier client's publish once the later one got the session, or ok>...",
# "RELOAD <payloads flash holds>".
import os

import devlib as d
from mqttsession import MQTTClient, SessionStore

ROOT, BD = d.flash()
H = d.cfg("HOST")
P = d.cfg("PORT")
os.mkdir(ROOT + "/sub")
os.chdir(ROOT + "/sub")
WAYS = (ROOT + "/.mqtt", ROOT + "/./.mqtt/", ROOT + "//sub/../.mqtt//.", "../.mqtt",
        "./.././.mqtt", ROOT + "/../.." + ROOT + "/.mqtt")
print("ROOT", " ".join(SessionStore(w).root for w in WAYS))
c = MQTTClient("sp", H, P, store=SessionStore(WAYS[0]), keepalive=30)
c.publish(d.topic("x"), b"A0", qos=1)  # offline: into flash
taken = []
for i, w in enumerate(WAYS[1:]):
    c2 = MQTTClient("sp", H, P, store=SessionStore(w), keepalive=30)  # takes it over
    try:
        c.publish(d.topic("x"), b"X%d" % i, qos=1)
        taken.append("ok")
    except OSError as e:
        taken.append(str(e.args[0]))
    c = c2
    c.publish(d.topic("x"), b"A%d" % (i + 1), qos=1)
print("TAKEN", " ".join(taken))
os.chdir("/")
print("RELOAD", b" ".join(d.drain(SessionStore(ROOT + "/.mqtt").get(H, "sp"))).decode())
print("PASS")
