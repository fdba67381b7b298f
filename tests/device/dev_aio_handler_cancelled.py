# A coroutine message handler that raises a BaseException that is no Exception
# (tests/host/test_aio_handler_cancelled.py): asyncio.CancelledError, as awaiting a task that was
# cancelled raises. The README: "An exception raised by the message handler ... never ends
# the reader: it goes to on_error(exc) ... the connection goes on", the message counts as
# delivered. The broker (scripted) sends QoS 1 "m1" (the handler raises), then, once it has
# its PUBACK, QoS 1 "m2". Prints GOT <topic> per message, ERRORS, and the reader's state.
import asyncio
import time

import devlib as d
from mqttsession.aio import MQTTClient

got = []
errs = []


async def victim():
    await asyncio.sleep_ms(10000)


async def handler(t, m):
    got.append(m)
    print("GOT", m.decode())
    if m == b"m1":
        v = asyncio.create_task(victim())
        await asyncio.sleep_ms(0)
        v.cancel()
        await v  # raises CancelledError: the victim was cancelled


async def main():
    c = MQTTClient("raiser", d.cfg("HOST"), d.cfg("PORT"), version=d.VERSION, keepalive=0,
                   timeout=10, on_error=lambda e: errs.append(repr(e)))
    c.set_callback(handler)
    await c.connect()
    t0 = time.ticks_ms()
    while len(got) < 2 and time.ticks_diff(time.ticks_ms(), t0) < 20000:
        await asyncio.sleep_ms(10)
    await asyncio.sleep_ms(300)
    print("ERRORS", errs)
    print("READER", c._task is not None, "CONNECTED", c.isconnected())
    d.check(got == [b"m1", b"m2"], "both delivered")
    d.check(c._task is not None, "the reader runs on")
    await c.disconnect()


asyncio.run(main())
print("PASS")
