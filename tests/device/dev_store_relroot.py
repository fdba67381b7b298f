# A store made with a relative root (tests/host/test_store_shared.py): SessionStore(".mqtt")
# with the current directory at the flash's root, a client of it publishing offline, then
# the application changes directory and publishes again; then a store made with the root
# spelled in full loads the session. Up to 0.2.23 the relative root was looked up again at
# each write: after the chdir the session's files were not found (ENOENT), and the store
# spelled in full was another key of the claims: the earlier client was not refused. The
# root is made absolute once, when the store is made. Prints "AFTER_CHDIR <ok or errno>",
# "ROOT <the store's root>", "TAKEN <errno of the earlier client's publish once the full
# spelling got the session, or ok>", "RELOAD <payloads flash holds>".
import os

import devlib as d
from mqttsession import MQTTClient, SessionStore

ROOT, BD = d.flash()
H = d.cfg("HOST")
P = d.cfg("PORT")
os.chdir(ROOT or "/")
st = SessionStore(".mqtt")
c = MQTTClient("rel", H, P, store=st, keepalive=30)
c.publish(d.topic("x"), b"A0", qos=1)  # offline: into flash
os.mkdir(ROOT + "/other")
os.chdir(ROOT + "/other")


def pub(m):
    try:
        c.publish(d.topic("x"), m, qos=1)
        return "ok"
    except OSError as e:
        return str(e.args[0])


print("AFTER_CHDIR", pub(b"A1"))
print("ROOT", st.root)
s = SessionStore(ROOT + "/.mqtt").get(H, "rel")  # the same directory, spelled in full
print("TAKEN", pub(b"A2"))
os.chdir(ROOT or "/")
print("RELOAD", b" ".join(d.drain(SessionStore(ROOT + "/.mqtt").get(H, "rel"))).decode())
print("PASS")
