# One node of the fleet benchmark (tools/bench/b_fleet.py), on the unix port: a store on
# its own littlefs image, a link keeper, QoS 1 and 2 in turn every period ms. Prints
# "A seq" once publish(seq) returned (the message is durable from then on) and "UP"/"DOWN"
# as the link changes. Ends, after draining, when the file named by stop= exists.
# Arguments: id= host= port= img= boot= period= jitter= stop=
import os
import time

import bcommon as B
import blockdev
from mqttsession import MQTTClient, SessionStore
from mqttsession.link import Link

NODE = B.num("id", 0)
BOOT = B.num("boot", 0)
PERIOD = B.num("period", 200)
STOP = B.arg("stop", "stop")


def stopped():
    try:
        os.stat(STOP)
        return True
    except OSError:
        return False


def idle(c, ms):
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < ms:
        c.check_msg()
        time.sleep_ms(10)


def main():
    blockdev.mount(B.arg("img"), "/flash", block_count=64)
    link = Link(min_ms=500, max_ms=8000, jitter=float(B.arg("jitter", "0.25")),
                on_change=lambda up: print("UP" if up else "DOWN"))
    c = MQTTClient(f"fleet-{NODE}", B.HOST, B.PORT, keepalive=10, timeout=3, window=4,
                   queue=64, store=SessionStore("/flash/.mqtt"), link=link)
    try:
        c.connect(clean_session=False)
    except OSError as e:
        link.failed(e)  # the keeper tries again on the next call
    topic = f"fleet/{NODE}"
    seq = 0
    while not stopped():
        c.publish(topic, f"{NODE}:{BOOT}:{seq}", qos=1 + (seq & 1))
        print("A", seq)
        seq += 1
        idle(c, PERIOD)
    t0 = time.ticks_ms()
    while c.pending() and time.ticks_diff(time.ticks_ms(), t0) < 30000:
        idle(c, 50)
    print("DONE", c.pending())


main()
