# messages() iteration cut in the middle of a QoS 2 delivery (tests/host/test_aio_iter_cancel.py).
# The broker sends QoS 2 "m1" (pid 7); the consumer task takes it and is cancelled
# (task.cancel()) while it handles it; the broker closes the link, the keeper reconnects
# (Session Present 1), the broker resends "m1" (DUP) and sends "m2" (pid 8). A new
# consumer (wait_for-polled __anext__, with timeouts that fire while nothing comes) must
# get "m2" once and never "m1" again. Prints GOT per message handed out.
import asyncio
import time

import devlib as d
from mqttsession import Link
from mqttsession.aio import MQTTClient

got = []


async def consumer(c, hold):
    async for t, m, r in c.messages():
        got.append(m)
        print("GOT", m.decode())
        if hold:
            await asyncio.sleep_ms(60000)  # handling it: cancelled here


async def main():
    c = MQTTClient("iter", d.cfg("HOST"), d.cfg("PORT"), version=d.VERSION, keepalive=0,
                   timeout=10, link=Link(min_ms=200, max_ms=500, jitter=0))
    await c.connect(clean_session=False, wait=True)
    t = asyncio.create_task(consumer(c, True))
    t0 = time.ticks_ms()
    while not got and time.ticks_diff(time.ticks_ms(), t0) < 20000:
        await asyncio.sleep_ms(10)
    t.cancel()
    await asyncio.sleep_ms(0)
    it = c.messages().__aiter__()
    t0 = time.ticks_ms()
    while len(got) < 2 and time.ticks_diff(time.ticks_ms(), t0) < 20000:
        try:
            m = await asyncio.wait_for_ms(it.__anext__(), 50)
        except asyncio.TimeoutError:
            continue
        got.append(m[1])
        print("GOT", m[1].decode())
    # a last ask: m2's PUBREC goes; anything more within a second is a duplicate
    try:
        m = await asyncio.wait_for_ms(it.__anext__(), 1500)
        got.append(m[1])
        print("GOT", m[1].decode())
    except asyncio.TimeoutError:
        pass
    print("OUTAGES", c.link.outages)
    d.check(got == [b"m1", b"m2"], "m1 once, m2 once")
    await c.disconnect()


asyncio.run(main())
print("PASS")
