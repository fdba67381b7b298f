# An MQTT 5 node with a null session (client_id "") that boots offline and reboots offline
# before the broker appears (tests/host/test_offline_boots.py), either client (AIO): what
# each offline boot published at QoS 1/2 was accepted (in flash), so the boot that finds
# the broker sends all of it under the ID the broker assigns.
import asyncio
import time

import devlib as d
from mqttsession import Link, SessionStore

ROOT, BD = d.flash()
BOOT = d.cfg("BOOT")
LAST = d.cfg("LAST")
KW = dict(keepalive=30, timeout=10, version=5, store=SessionStore(ROOT + "/.mqtt"),
          link=Link(min_ms=50, max_ms=300))


def blocking():
    from mqttsession import MQTTClient

    c = MQTTClient("", d.cfg("HOST"), d.cfg("PORT"), **KW)
    print("HELD", c.pending())
    r = c.connect(clean_session=False, wait=False)
    if BOOT != LAST:
        d.check(r is None, "offline: connect() returns None")
        for q in (1, 2):
            try:
                c.publish(d.topic("r"), "b%d-q%d" % (BOOT, q), qos=q)
                print("ACCEPTED", "b%d-q%d" % (BOOT, q))
            except OSError as e:
                print("REFUSED", "b%d-q%d" % (BOOT, q), repr(e))
    else:
        d.check(d.pump(c, lambda: c.isconnected() and not c.pending(), 60000), "all sent")
        print("CID", c.client_id)
        c.disconnect()
    print("PENDING", c.pending(), "DROPPED", c.dropped)


async def aio():
    from mqttsession.aio import MQTTClient

    c = MQTTClient("", d.cfg("HOST"), d.cfg("PORT"), **KW)
    print("HELD", c.pending())
    r = await c.connect(clean_session=False)
    if BOOT != LAST:
        d.check(r is None, "offline: connect() returns None")
        for q in (1, 2):
            try:
                await c.publish(d.topic("r"), "b%d-q%d" % (BOOT, q), qos=q)
                print("ACCEPTED", "b%d-q%d" % (BOOT, q))
            except OSError as e:
                print("REFUSED", "b%d-q%d" % (BOOT, q), repr(e))
    else:
        t0 = time.ticks_ms()
        while (not c.isconnected() or c.pending()) and \
                time.ticks_diff(time.ticks_ms(), t0) < 60000:
            await asyncio.sleep_ms(20)
        d.check(c.isconnected() and not c.pending(), "all sent")
        print("CID", c.client_id)
    print("PENDING", c.pending(), "DROPPED", c.dropped)
    await c.disconnect()


if d.cfg("AIO", 0):
    asyncio.run(aio())
else:
    blocking()
print("PASS")
