# The asyncio client against the scripted hostile broker: a ticker task measures the
# longest gap in the event loop while the broker trickles. devcfg.TEST names the scenario.
import asyncio
import time

import devlib as d
from mqttsession import MQTTException
from mqttsession.aio import MQTTClient

gap = [0]


async def ticker():
    last = time.ticks_ms()
    while True:
        await asyncio.sleep_ms(10)
        now = time.ticks_ms()
        gap[0] = max(gap[0], time.ticks_diff(now, last))
        last = now


def client():
    return MQTTClient("hostile", d.cfg("HOST"), d.cfg("PORT"), keepalive=0, version=d.VERSION,
                      timeout=d.cfg("TIMEOUT", 2), max_packet=d.cfg("MAX_PACKET", 1024))


async def connect_fails():
    c = client()
    t0 = time.ticks_ms()
    try:
        await c.connect()
        e = None
    except (OSError, MQTTException) as x:
        e = x
    d.check(e is not None, "connect failed")
    print("RAISED", type(e).__name__, e.args[0], time.ticks_diff(time.ticks_ms(), t0))
    d.check(not c.isconnected() and c.sock is None, "no socket left open")


async def reader_ends():
    # the reader meets a packet that never completes: it ends with ETIMEDOUT
    c = client()
    await c.connect()
    print("CONNECTED")
    t0 = time.ticks_ms()
    while c._task is not None and time.ticks_diff(time.ticks_ms(), t0) < 20000:
        await asyncio.sleep_ms(20)
    e = c._err
    d.check(e is not None, "the reader reported an error")
    print("RAISED", type(e).__name__, e.args[0], time.ticks_diff(time.ticks_ms(), t0))


async def main():
    t = asyncio.create_task(ticker())
    await globals()[d.cfg("TEST")]()
    t.cancel()
    print("GAP", gap[0])


asyncio.run(main())
print("PASS")
