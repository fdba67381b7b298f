# The keeper's Wi-Fi step with a board layer whose calls raise (tests/host/test_wifi_raise.py).
# TEST "start": the broker refuses the first connect (the keeper's from then on), and the
# radio is down when the keeper tries again: wifi_start() fails once (the radio's driver did not come up: OSError), and
# wifi_poll() raises while no start has succeeded (as a driver asked to connect while not
# active: "Wifi Not Started"). The keeper must start the radio again on a later attempt:
# the node connects and its queued reading goes out.
import time

import devlib as d
from mqttsession import Link, MQTTClient


class Board:
    def __init__(self):
        self.starts = 0
        self.polls = 0
        self.on = False

    def wifi_isconnected(self):
        return self.on

    def wifi_start(self):
        self.starts += 1
        if self.starts == 1:
            raise OSError(5)  # EIO: the driver did not come up this time
        self.active = True

    def wifi_poll(self):
        self.polls += 1
        if not getattr(self, "active", False):
            raise OSError("Wifi Not Started")
        self.on = True
        return True

    def wifi_connect(self, timeout_ms=15000):
        raise AssertionError("the step API is there: never the blocking connect")


def start():
    b = Board()
    lk = Link(board=b, min_ms=20, max_ms=50, jitter=0, wifi_timeout_ms=200)
    c = MQTTClient(d.cfg("CID"), d.cfg("HOST"), d.cfg("PORT"), link=lk, timeout=5,
                   keepalive=30, budget_ms=200)
    print("CONNECT", c.connect(wait=False))
    c.publish(d.topic("r"), b"reading", qos=1)
    print("OFFLINE")  # the host lets the broker take connections from here
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < 10000 and not (c.isconnected() and not c.pending()):
        c.check_msg()
        time.sleep_ms(5)
    print("STARTS", b.starts, "POLLS", b.polls, "TRIES", lk.tries, "LASTERR", repr(lk.last_error), "DROPPED", c.dropped)
    d.check(c.isconnected(), "connected once the radio started")
    d.check(c.pending() == 0, "the queued reading went out")
    c.disconnect()


globals()[d.cfg("TEST")]()
print("PASS")
