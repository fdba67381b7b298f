# A session deleted while a client holds it (tests/host/test_store_shared.py): the client
# publishes offline (into flash), the application deletes the session (store.delete),
# and the client goes on. Up to 0.2.23 its writes raised OSError(ENOENT) with nothing
# said; now delete() takes the session from its holder: every write and its connect()
# raise OSError(EBUSY) naming it, and nothing of the session is made again. A new client
# of that ID starts a fresh session. devcfg: FIRST "client" (blocking) or "aio". Prints
# "ERRORS <errno: text of each refused call>", "ACCEPTED <payloads whose publish
# returned after the delete>", "FLASH <session directories on flash>", "RELOAD
# <payloads the reloaded session holds>".
import asyncio
import os

import devlib as d
from mqttsession import MQTTClient, SessionStore

ROOT, BD = d.flash()
STORE = ROOT + "/.mqtt"
H = d.cfg("HOST")
P = d.cfg("PORT")
AIO = d.cfg("FIRST", "client") == "aio"


async def call(f, *a, **kw):
    r = f(*a, **kw)
    if AIO:
        await r


async def main():
    st = SessionStore(STORE)
    if AIO:
        from mqttsession import aio

        c = aio.MQTTClient("gone", H, P, store=st, keepalive=30)
    else:
        c = MQTTClient("gone", H, P, store=st, keepalive=30)
    for i in range(3):
        await call(c.publish, d.topic("x"), b"A%d" % i, qos=1)  # offline: into flash
    st.delete(H, "gone")
    errs = []
    acc = []
    for i in range(4):
        try:
            if i == 3:
                await call(c.connect)
            else:
                await call(c.publish, d.topic("x"), b"B%d" % i, qos=1)
                acc.append(b"B%d" % i)
        except OSError as e:
            errs.append("%d:%s" % (e.args[0], e.args[1] if len(e.args) > 1 else ""))
    print("ERRORS", "|".join(errs))
    print("ACCEPTED", b" ".join(acc).decode())
    dirs = []
    for h in os.ilistdir(STORE):
        if h[1] & 0x4000:
            dirs += [n[0] for n in os.ilistdir(STORE + "/" + h[0]) if n[1] & 0x4000]
    print("FLASH", " ".join(dirs))
    c2 = MQTTClient("gone", H, P, store=SessionStore(STORE), keepalive=30)
    c2.publish(d.topic("x"), b"C0", qos=1)  # a new client: a fresh session
    s = SessionStore(STORE).get(H, "gone")  # a reboot: what flash holds
    print("RELOAD", b" ".join(d.drain(s)).decode())


asyncio.run(main())
print("PASS")
