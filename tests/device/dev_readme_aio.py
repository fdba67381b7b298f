# The README's asyncio example ("The asyncio client"), run as written on a board layer
# (devcfg.BOARD_DIR: boards/esp32 or boards/rp2040, their Wi-Fi on the scripted network
# module of tests/device/fakeboard): the host wrote the block to readme_block.py with only
# the broker's address and the store's root changed. Wi-Fi is there; the node must connect
# and publish its first reading, as the text around the block says.
import sys
import time

import devlib as d

sys.path.insert(0, d.cfg("FAKE"))
sys.path.insert(0, d.cfg("BOARD_DIR"))
import asyncio  # noqa: E402

import mqttsession.aio as aio  # noqa: E402
import network  # noqa: E402  (the fake)

network.UP = d.cfg("UP")
network.PLAN = [[network.UP]] * 50  # every connect joins at once

made = []


class Recorded(aio.MQTTClient):
    # the block's client, so this script can watch it (the block keeps it in main())
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        made.append(self)


aio.MQTTClient = Recorded

with open("readme_block.py") as f:
    src = f.read()
run = "asyncio.run(main())"
d.check(src.rstrip().endswith(run), "the block ends with " + run)
g = {"__name__": "readme_block"}
exec(src.rstrip()[: -len(run)], g)


async def watch():
    t = asyncio.create_task(g["main"]())
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < 30000:
        await asyncio.sleep_ms(100)
        if t.done():
            try:
                await t
            except Exception as e:  # what ended the block's main()
                print("MAIN ENDED", repr(e))
            break
        if made and made[0].isconnected() and made[0].pending() == 0:
            break
    c = made[0] if made else None
    print("CONNECTED", c is not None and c.isconnected(), "LAST_ERROR",
          c is not None and repr(c.link.last_error))
    d.check(c is not None and c.isconnected(), "the README's node connected")
    d.check(c.pending() == 0, "its first reading was delivered")
    await c.disconnect()


asyncio.run(watch())
print("PASS")
