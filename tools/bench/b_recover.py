# Recovery: time from the link's return to the backlog being acknowledged. The host
# (tools/bench.py) runs a fault proxy between this node and the broker and drives the
# steps through stdin lines; this script prints what it did.
#   inflight: K QoS 1 messages sent into a blackholed link (window K, RAM session),
#             then the link goes down; after it returns they are resent (DUP)
#   offline:  the link is down; K QoS 1 messages are queued in the store, sent on return
import sys
import time

import bcommon as B

MODE = B.arg("mode", "inflight")
K = B.num("k", 32)
RETRY_MS = 5


def line():
    return sys.stdin.readline().strip()


def reconnect(c):
    # the bench's own retry loop (the library leaves the reconnect policy to its caller)
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < 20000:
        try:
            c.connect(clean_session=False, timeout=5)
            return time.ticks_ms()
        except OSError:
            time.sleep_ms(RETRY_MS)
    raise OSError(110)


def main():
    store = None
    if MODE == "offline":
        bdev, why = B.mount(B.arg("img", "bench-recover.img"), 32)
        if bdev is not None:
            store, why = B.make_store()
        if store is None:
            print("NA", why)
            return
    c = B.client("bench-recover", window=K + 1, store=store, queue=K + 1)
    c.connect(clean_session=True)
    c.disconnect()
    c.connect(clean_session=False)  # the broker keeps the session from here on
    print("READY")
    if MODE == "inflight":
        line()  # the link is blackholed now
        for i in range(K):
            c.publish(B.TOPIC, b"backlog %d" % i, False, 1)
        print("SENT")
    line()  # the link goes down (connections reset, new ones refused)
    t0 = time.ticks_ms()
    try:
        while time.ticks_diff(time.ticks_ms(), t0) < 10000:
            c.check_msg()
            time.sleep_ms(1)
    except OSError:
        pass
    c._close()  # a no-op when the library noticed the reset itself
    if MODE == "offline":
        for i in range(K):
            c.publish(B.TOPIC, b"backlog %d" % i, False, 1)
    print("LOST", c._s.pending())
    up = reconnect(c)
    t0 = time.ticks_ms()
    while c._s.pending() and time.ticks_diff(time.ticks_ms(), t0) < 10000:
        c.wait_msg()
    print("DONE", c._s.pending(), time.ticks_diff(time.ticks_ms(), up))
    c.disconnect()


main()
