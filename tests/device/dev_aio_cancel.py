# The asyncio client when the application cancels or times out a publish(): a message
# publish() accepted (pending() counts it) must be in flash with a store, as when it
# returns or raises (README "Durability"; the blocking client's publish that raised keeps
# its message): a power cut right after loses nothing. A scripted broker never sends a
# PUBACK. The process then ends without another call (a power cut), and the next boot
# loads the store.
# devcfg: HOST, PORT, ROOT, STEP ("pub": publish, cancel, cut; "boot": load and report),
# WINDOW, QOS, HOW ("wait_for": asyncio.wait_for; "cancel": task.cancel(); "broke": the
# broker breaks the protocol meanwhile, no keeper: the ended reader's error)
import os
import asyncio

import devlib as d
from mqttsession import SessionStore
from mqttsession.aio import MQTTClient

ROOT = d.cfg("ROOT")
try:
    os.mkdir(ROOT)
except OSError:
    pass


async def main():
    c = MQTTClient("aiocancel", d.cfg("HOST"), d.cfg("PORT"), store=SessionStore(ROOT),
                   window=d.cfg("WINDOW", 1), keepalive=30, timeout=20)
    if d.cfg("STEP") != "pub":
        print("BOOT PENDING", c.pending())
        return
    await c.connect(clean_session=False)
    how = d.cfg("HOW", "wait_for")
    try:
        if how == "wait_for":
            await asyncio.wait_for(c.publish("t/reading", b"r1", qos=d.cfg("QOS", 1)), 1)
        elif how == "broke":
            await c.publish("t/reading", b"r1", qos=d.cfg("QOS", 1))
        else:
            t = asyncio.create_task(c.publish("t/reading", b"r1", qos=d.cfg("QOS", 1)))
            await asyncio.sleep(1)
            t.cancel()
            await t
        print("PUB returned")
    except BaseException as e:
        print("PUB raised", repr(e))
    print("PENDING", c.pending())
    # power cut: no further call


asyncio.run(main())
print("PASS")
