# Messages in flight when the node lost power that are beyond the RAM ring when it boots
# again go out on the first connection as the ring drains, with no reconnect.
# devcfg.BOOT 1: SessionStore(ram=16), window 16; connects, prints "UP", waits for the
# file devcfg.GO (the host stalls the link first), publishes devcfg.COUNT QoS 2 messages
# (all in flight, held by the link) and prints "SENT", where the host cuts it.
# BOOT 2: SessionStore(ram=4), window 4; connects, waits until nothing is pending (at most
# 20 s) and prints "PENDING <n>". devcfg.AIO: the asyncio client, else the blocking one.
import os
import time

import devlib as d
from mqttsession import SessionStore

ROOT, BD = d.flash()
BOOT1 = d.cfg("BOOT") == 1
RAM = 16 if BOOT1 else 4
KW = {"window": RAM, "queue": 32, "store": SessionStore(ROOT + "/.mqtt", ram=RAM),
      "keepalive": 30, "timeout": 10}


def go():
    # the host's signal: the link holds what is sent from now on
    for _ in range(600):
        try:
            os.stat(d.cfg("GO"))
            return
        except OSError:
            time.sleep_ms(100)
    raise OSError("no go")


if d.cfg("AIO"):
    import asyncio

    from mqttsession.aio import MQTTClient

    async def main():
        c = MQTTClient(d.cfg("CID"), d.cfg("HOST"), d.cfg("PORT"), version=d.VERSION, **KW)
        await c.connect(clean_session=False)
        if BOOT1:
            print("UP")
            go()
            for i in range(d.cfg("COUNT")):
                await c.publish(d.topic("m"), b"%d" % i, qos=2)
            d.freeze("SENT")
        t = time.ticks_ms()
        while c.pending() and time.ticks_diff(time.ticks_ms(), t) < 20000:
            await asyncio.sleep_ms(20)
        print("PENDING", c.pending())
        await c.disconnect()

    asyncio.run(main())
else:
    c = d.client(d.cfg("CID"), **KW)
    c.connect(clean_session=False)
    if BOOT1:
        print("UP")
        go()
        for i in range(d.cfg("COUNT")):
            c.publish(d.topic("m"), b"%d" % i, qos=2)
        d.freeze("SENT")
    d.pump(c, lambda: not c.pending(), 20000)
    print("PENDING", c.pending())
    c.disconnect()
print("PASS")
