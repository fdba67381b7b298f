# The asyncio client's keeper brings Wi-Fi up in steps (tests/host/test_aio_wifi.py): a node
# that boots with the virtual board's Wi-Fi down keeps its other tasks running while the
# keeper waits for the network, and connects once it is there. A 10 ms ticker reports the
# largest gap between its ticks (GAP ms).
import asyncio
import time

import board  # the virtual board: its Wi-Fi follows the host's control file
import devlib as d
from mqttsession import Link
from mqttsession.aio import MQTTClient

gap = [0]


async def ticker():
    t = time.ticks_ms()
    while True:
        await asyncio.sleep_ms(10)
        n = time.ticks_ms()
        gap[0] = max(gap[0], time.ticks_diff(n, t))
        t = n


async def main():
    asyncio.create_task(ticker())
    lk = Link(board=board, min_ms=100, max_ms=500, wifi_timeout_ms=d.cfg("WIFI_MS", 8000))
    c = MQTTClient(d.cfg("CID"), d.cfg("HOST"), d.cfg("PORT"), version=d.VERSION,
                   keepalive=10, timeout=2, link=lk)
    await asyncio.sleep_ms(50)
    d.check(not board.wifi_isconnected(), "booted with Wi-Fi down")
    first = asyncio.create_task(c.connect(wait=True))
    print("BOOTED")
    t0 = time.ticks_ms()
    while not c.isconnected() and time.ticks_diff(time.ticks_ms(), t0) < 30000:
        await asyncio.sleep_ms(20)
    d.check(c.isconnected(), "connected once Wi-Fi came up")
    print("GAP", gap[0])
    d.check(await first is False, "connect(wait=True) returned once connected")
    await c.publish(d.cfg("TOPIC"), b"after wifi", qos=1)
    await c.disconnect()


asyncio.run(main())
print("PASS")
