# disconnect() from a coroutine handler of a QoS 0 message ("stop") read in one batch with
# a QoS 2 message behind it (tests/host/test_aio_disconnect_in_batch.py). README: disconnect()
# acknowledges the message a handler is running for; "the messages read but not handled
# yet are dropped unacknowledged (their handlers closed unrun): a persistent session gets
# them on the next connect". The QoS 2 message behind "stop" must come on the next
# connection and be delivered then, once.
import asyncio
import time

import devlib as d
from mqttsession.aio import MQTTClient

got = []
bye = []


async def handler(t, m):
    got.append(m)
    print("GOT", m.decode())
    if m == b"stop":
        await c.disconnect()
        bye.append(1)


c = MQTTClient("bye", d.cfg("HOST"), d.cfg("PORT"), version=d.VERSION, keepalive=0,
               timeout=10)


async def until(cond, ms=20000):
    t0 = time.ticks_ms()
    while not cond() and time.ticks_diff(time.ticks_ms(), t0) < ms:
        await asyncio.sleep_ms(10)
    return cond()


async def main():
    c.set_callback(handler)
    await c.connect(clean_session=False)
    d.check(await until(lambda: bye), "stopped")
    await asyncio.sleep_ms(200)
    print("RX2", c._s.rx2)
    print("PRESENT", await c.connect(clean_session=False))
    await until(lambda: b"m2" in got, 8000)
    await asyncio.sleep_ms(500)
    print("GOTALL", got)
    d.check(got == [b"w", b"stop", b"m2"], "m2 delivered on the next connection, once")
    await c.disconnect()


asyncio.run(main())
print("PASS")
