# The ESP32 and Pico W board layers' Wi-Fi connect in steps (devcfg.BOARD: esp32, rp2040),
# against a scripted network module (tests/device/fakeboard): wifi_start() and every
# wifi_poll() return at once; a failed try is reported and retried; wifi_connect() still
# waits, and gives up after timeout_ms with the reason.
import sys
import time

import devlib as d

sys.path.insert(0, d.cfg("FAKE"))
sys.path.insert(0, d.cfg("BOARD_DIR"))
import network  # noqa: E402  (the fake)
import board  # noqa: E402

ESP = d.cfg("BOARD") == "esp32"
network.UP = 1010 if ESP else 3
JOIN, FAIL = (1001, 201) if ESP else (1, -2)
network.PLAN = [[JOIN, JOIN, FAIL], [JOIN, JOIN, JOIN, network.UP]]

t = time.ticks_ms()
board.wifi_start("net", "key")
longest = time.ticks_diff(time.ticks_ms(), t)
polls = 0
reasons = set()
t0 = time.ticks_ms()
while time.ticks_diff(time.ticks_ms(), t0) < 5000:
    t = time.ticks_ms()
    up = board.wifi_poll()
    longest = max(longest, time.ticks_diff(time.ticks_ms(), t))
    polls += 1
    if board.wifi_reason():
        reasons.add(board.wifi_reason())
    if up:
        break
    time.sleep_ms(10)
print("POLLS", polls, "LONGEST", longest, "REASONS", reasons)
d.check(up and board.wifi_isconnected(), "connected through wifi_poll()")
d.check(network.calls["connect"] == 2, "the failed try was retried")
d.check(any("SSID" in r for r in reasons), "the failure was reported")
d.check(board.wifi_reason() == "", "no reason once connected")
d.check(longest < 50, "no step waited")

board.wifi_disconnect()
network.PLAN = [[JOIN]] * 10  # never joins
t = time.ticks_ms()
ok = board.wifi_connect("net", "key", timeout_ms=300)
dt = time.ticks_diff(time.ticks_ms(), t)
print("CONNECT", ok, dt, board.wifi_reason())
d.check(not ok and dt >= 300 and "timeout" in board.wifi_reason(),
        "wifi_connect gives up after timeout_ms with the reason")

# the keeper's step over the same board: None while under way, then True
from mqttsession import Link  # noqa: E402

network.PLAN = [[JOIN, JOIN, network.UP]]
lk = Link(board=board, wifi_timeout_ms=2000)
steps = []
for _ in range(200):
    r = lk.wifi_step()
    steps.append(r)
    if r is not None:
        break
    time.sleep_ms(10)
print("STEPS", steps[:4], len(steps))
d.check(steps[0] is None and steps[-1] is True, "Link.wifi_step: under way, then up")
print("PASS")
