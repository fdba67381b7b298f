# MQTT 5 CONNACK and DISCONNECT content (tests/host/test_v5_broker_rules.py): the
# asyncio client.
import asyncio
import time

import devlib as d
from mqttsession.aio import MQTTClient
from mqttsession.link import Link


async def disc_ref_keeper():
    lk = Link(min_ms=20, max_ms=100, jitter=0)
    c = MQTTClient("v5rules", d.cfg("HOST"), d.cfg("PORT"), version=5, keepalive=0, timeout=2,
                   link=lk, on_error=lambda e: print("ON_ERROR", repr(e)))
    await c.connect(False, wait=True)
    try:
        await c.publish("t/a", b"x", qos=1)
    except Exception as e:
        print("EXC publish", repr(e))
    t0 = time.ticks_ms()
    while c.pending() and time.ticks_diff(time.ticks_ms(), t0) < 5000:
        await asyncio.sleep_ms(20)
    print("PENDING", c.pending(), "READER", c._task is not None, "LAST", repr(lk.last_error))
    await c.disconnect()


async def resume_quota():
    lk = Link(min_ms=20, max_ms=100, jitter=0)
    c = MQTTClient("v5rules", d.cfg("HOST"), d.cfg("PORT"), version=5, keepalive=0, timeout=2,
                   link=lk, window=4)
    await c.connect(False, wait=True)
    for i in range(4):
        await c.publish("t/q", b"m%d" % i, qos=1)
    t0 = time.ticks_ms()
    while c.pending() and time.ticks_diff(time.ticks_ms(), t0) < 6000:
        await asyncio.sleep_ms(20)
    print("PENDING", c.pending(), "ASIDE", len(c.aside()))
    await c.disconnect()


async def wild_loop():
    lk = Link(min_ms=20, max_ms=200, jitter=0)
    c = MQTTClient("v5rules", d.cfg("HOST"), d.cfg("PORT"), version=5, keepalive=0, timeout=2,
                   link=lk, on_error=lambda e: print("ON_ERROR", repr(e)))
    await c.subscribe("t/#", 1)
    await c.publish("t/a", b"queued", qos=1)
    await c.connect(False)
    await asyncio.sleep_ms(4000)
    print("ASIDE", c.aside())
    print("PENDING", c.pending(), "SUBS", list(c._s.subs), "TODO", c._todo,
          "LAST", repr(lk.last_error))
    await c.disconnect()


asyncio.run(globals()[d.cfg("TEST")]())
print("PASS")
