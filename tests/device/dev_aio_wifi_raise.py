# The asyncio client's keeper with a board layer whose Wi-Fi calls raise
# (tests/host/test_aio_wifi_raise.py), as dev_wifi_raise.py for the blocking client:
# wifi_start() fails once (OSError: the radio's driver did not come up), and TEST "poll":
# wifi_poll() raises once as well. A raise is a failed attempt: the keeper backs off and
# starts the radio again; the reader goes on, connect() returns None (offline), the node
# connects and its reading queued offline goes out.
import asyncio
import time

import devlib as d
from mqttsession import Link
from mqttsession.aio import MQTTClient


class Board:
    def __init__(self, poll_raises):
        self.starts = 0
        self.polls = 0
        self.on = False
        self.bad = poll_raises

    def wifi_isconnected(self):
        return self.on

    def wifi_start(self):
        self.starts += 1
        if self.starts == 1:
            raise OSError(5)  # EIO: the driver did not come up this time

    def wifi_poll(self):
        self.polls += 1
        if self.bad:
            self.bad = False
            raise OSError("Wifi Internal Error")
        self.on = True
        return True

    def wifi_connect(self, timeout_ms=15000):
        raise AssertionError("the step API is there: never the blocking connect")


async def main():
    b = Board(d.cfg("TEST") == "poll")
    lk = Link(board=b, min_ms=20, max_ms=50, jitter=0, wifi_timeout_ms=200)
    c = MQTTClient(d.cfg("CID"), d.cfg("HOST"), d.cfg("PORT"), link=lk, timeout=5,
                   keepalive=30, version=d.VERSION)
    try:
        r = await c.connect(wait=False)
    except Exception as e:
        r = e
    print("CONNECT", repr(r))
    d.check(r is None, "connect() with a keeper, offline: None")
    await c.publish(d.topic("r"), b"reading", qos=1)
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < 30000 and not (c.isconnected() and not c.pending()):
        await asyncio.sleep_ms(20)
    print("STARTS", b.starts, "POLLS", b.polls, "TRIES", lk.tries, "LASTERR", repr(lk.last_error), "DROPPED", c.dropped)
    d.check(c.isconnected(), "connected once the radio started")
    d.check(c.pending() == 0, "the queued reading went out")
    await c.disconnect()


asyncio.run(main())
print("PASS")
