# Ending a session on purpose with the asyncio client (tests/host/test_aio_end_session.py):
# disconnect(end_session=True), after which the broker and the store both forget it.
# devcfg.PHASE 1 ends it (devcfg.MODE: online, offline, taken, fail); PHASE 2 boots again
# and shows what is left. Results are printed as NAME value lines.
import asyncio
import time

import devlib as d
from mqttsession import Link, SessionStore
from mqttsession.aio import MQTTClient

ROOT = d.flash()[0]
T = d.topic("es")


def node(port=None, link=None):
    return MQTTClient(d.cfg("CID"), d.cfg("HOST"), port or d.cfg("PORT"), version=d.VERSION,
                      keepalive=30, timeout=3, window=4, store=SessionStore(ROOT + "/.mqtt"),
                      link=link)


def show(c, when):
    print("PENDING_" + when, c.pending())
    print("SUBS_" + when, len(c._s.subs))


async def offline(c):
    # two QoS 1 messages queued in flash while the node is not connected
    for i in range(2):
        await c.publish(T, "q%d" % i, qos=1)


async def taken(c):
    # another node connects with the same client ID and takes the session over: this
    # node's keeper backs off (10 minutes here) and the end must not wait for it
    from mqttsession import MQTTClient as Blocking

    other = Blocking(d.cfg("CID"), d.cfg("HOST"), d.cfg("PORT"), version=d.VERSION,
                     keepalive=30)
    print("OTHER_PRESENT", other.connect(clean_session=False))
    other.disconnect()
    t0 = time.ticks_ms()
    while (c.isconnected() or not c._nap) and time.ticks_diff(time.ticks_ms(), t0) < 20000:
        await asyncio.sleep_ms(20)
    print("NAPPING", c._nap)


async def phase1(mode):
    lk = Link(min_ms=600000, max_ms=600000) if mode == "taken" else None
    c = node(link=lk)
    await c.connect(clean_session=False)
    await c.subscribe(T, 1)
    if mode == "taken":
        await taken(c)
        await offline(c)
    elif mode in ("offline", "fail"):
        await c.disconnect()
        await offline(c)
    if mode == "fail":
        c = node(port=d.cfg("DEAD_PORT"))  # the same stored session; no broker there
    show(c, "BEFORE")
    try:
        await c.disconnect(end_session=True)
        print("ENDED", "OK")
    except OSError as e:
        print("ENDED", "OSError", e.args[0])
    print("CONNECTED", c.isconnected())
    show(c, "AFTER")


async def phase2():
    c = node()
    show(c, "AT_BOOT")
    print("PRESENT", await c.connect(clean_session=False))
    t0 = time.ticks_ms()  # the resumed session's messages go out and are acknowledged
    while c.pending() and time.ticks_diff(time.ticks_ms(), t0) < 20000:
        await asyncio.sleep_ms(20)
    show(c, "AFTER_CONNECT")
    await c.disconnect()


if d.cfg("PHASE") == 1:
    asyncio.run(phase1(d.cfg("MODE")))
else:
    asyncio.run(phase2())
print("PASS")
