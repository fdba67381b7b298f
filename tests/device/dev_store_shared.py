# One session directory, two writers (tests/host/test_store_shared.py): the session of
# client ID "shared" loaded twice, and both holders publish offline in turn. Up to 0.2.23
# each wrote the tail from its own count, the later over the earlier's messages, every
# publish returned, and after a reboot the earlier client's messages were gone. The later
# load takes the session over now: the earlier holder's writes raise OSError(EBUSY).
# devcfg: FIRST "client" (blocking) or "aio" (the asyncio client); SECOND "client" (a
# blocking client on the same store), "store" (one on another SessionStore on the same
# root) or "get" (a bare store.get(): the application reading the session; only the
# client publishes). Prints
# "ERRORS <errno of each refused publish>", "ACCEPTED <payloads whose publish returned>"
# and "RELOAD <payloads the reloaded session holds>".
import asyncio

import devlib as d
from mqttsession import MQTTClient, SessionStore

ROOT, BD = d.flash()
STORE = ROOT + "/.mqtt"
H = d.cfg("HOST")
P = d.cfg("PORT")
FIRST = d.cfg("FIRST", "client")
SECOND = d.cfg("SECOND", "client")


async def main():
    st = SessionStore(STORE)
    if FIRST == "aio":
        from mqttsession import aio

        c1 = aio.MQTTClient("shared", H, P, store=st, keepalive=30)
    else:
        c1 = MQTTClient("shared", H, P, store=st, keepalive=30)
    if SECOND == "get":
        c2 = st.get(H, "shared")
    else:
        c2 = MQTTClient("shared", H, P, keepalive=30,
                        store=SessionStore(STORE) if SECOND == "store" else st)
    acc = []
    errs = []
    for i in range(3):
        for c, tag in ((c1, b"A"), (c2, b"B")):
            if c is c2 and SECOND == "get":
                continue  # only read: the earlier client alone publishes
            m = tag + b"%d" % i
            try:
                if FIRST == "aio" and c is c1:
                    await c.publish(d.topic("x"), m, qos=1)  # offline: into flash
                else:
                    c.publish(d.topic("x"), m, qos=1)
                acc.append(m)
            except OSError as e:
                errs.append(e.args[0])
    print("ERRORS", " ".join(str(e) for e in errs))
    print("ACCEPTED", b" ".join(acc).decode())
    s = SessionStore(STORE).get(H, "shared")  # a reboot: what flash holds
    print("RELOAD", b" ".join(d.drain(s)).decode())


asyncio.run(main())
print("PASS")
