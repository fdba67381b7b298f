# dev_backlog_cuts.py's drain with the asyncio client (tests/host/test_backlog_cuts.py,
# the api "aio" cases; the backlog is queued by dev_backlog_cuts.py): a boot that loads
# the store, connects through the fault rig and drains (the reader does), publishing
# devcfg.NEW messages "n<boot>.<i>" meanwhile; devcfg.KEEP as there. Prints "BOOT
# <pending>", "HEAP <free>", "A <payload>" for each publish() that returned, "E
# <exception>" for one that raised, "P <pending> <free heap>", "DRAINED <pending> <least
# free heap>".
import asyncio
import gc
import time

import devlib as d
import heapfill
from mqttsession import Link, SessionStore
from mqttsession.aio import MQTTClient

N = d.cfg("COUNT")
c = MQTTClient(d.cfg("CID"), d.cfg("HOST"), d.cfg("PORT"), window=d.cfg("WINDOW", 16),
               queue=N + 1000, keepalive=30, version=d.VERSION,
               link=Link(min_ms=20, max_ms=200),
               store=SessionStore(d.flash()[0] + "/.mqtt", d.cfg("MAXB"), ram=16))


async def drain(low):
    try:
        await c.connect(clean_session=False)
    except Exception as e:  # the keeper goes on
        print("E", type(e).__name__)
    held = heapfill.fill(d.cfg("KEEP")) if d.cfg("KEEP", 0) else None
    gc.collect()
    print("HEAP", gc.mem_free(), held is not None)
    new = d.cfg("NEW", 0)
    boot = d.cfg("BOOTNO", 0)
    i = ne = n = fails = 0
    t0 = time.ticks_ms()
    st = [c.pending(), t0]
    while time.ticks_diff(time.ticks_ms(), t0) < 120000:
        if not c.pending() and i >= new or heapfill.stalled(c, st):
            break
        if i < new and fails < 50:  # (as dev_backlog_cuts.py)
            try:
                await c.publish(d.topic("m"), b"n%d.%d" % (boot, i), qos=1 + i % 2)
                print("A n%d.%d" % (boot, i))
                i += 1
                fails = 0
            except Exception as e:
                fails += 1
                ne += 1
                heapfill.said(e, ne)
        await asyncio.sleep_ms(1)  # the reader drains
        n += 1
        low = heapfill.turn(c, n, low)
    return low


gc.collect()
low = gc.mem_free()
print("BOOT", c.pending(), low)
low = asyncio.run(drain(low))
gc.collect()
print("DRAINED", c.pending(), min(low, gc.mem_free()))
try:
    asyncio.run(c.disconnect())
except Exception as e:
    print("E", repr(e))
print("PASS")
