# A backlog of thousands drained through link drops and power cuts in a small heap
# (tests/host/test_backlog_cuts.py). devcfg.PHASE "queue": offline (a keeper, the broker
# out of reach), devcfg.COUNT messages queued (payload "b<n>"; QoS 2 every third, retained
# every seventh, else QoS 1), then a stop as a power cut. "drain": a boot that loads the
# store, connects (through the fault rig) and drains; devcfg.NEW: "n<boot>.<i>" published
# while the backlog drains; devcfg.KEEP: the node's own data (ballast) leaves about that
# many bytes of the heap free once connected, so that the drain meets MemoryError at every
# step. Prints "BOOT <pending>", "HEAP <free>", "P <pending> <free heap>" as it goes,
# "E <exception>" for any exception out of a call, "DRAINED <pending> <least free heap>".
import gc
import time

import devlib as d
import heapfill
from mqttsession import Link, SessionStore

ROOT = d.flash()[0]
N = d.cfg("COUNT")
W = d.cfg("WINDOW", 16)
ARGS = dict(window=W, queue=N + 1000, keepalive=30, version=d.VERSION,
            link=Link(min_ms=20, max_ms=200),
            store=SessionStore(ROOT + "/.mqtt", d.cfg("MAXB"), ram=d.cfg("RAM", 16)))


def drain(low):
    # (a function: its names are locals, so a heap kept short by KEEP has no module
    # dictionary to grow; what an exception prints allocates little)
    held = heapfill.fill(d.cfg("KEEP")) if d.cfg("KEEP", 0) else None
    gc.collect()
    print("HEAP", gc.mem_free())
    new = d.cfg("NEW", 0)
    boot = d.cfg("BOOTNO", 0)
    i = ne = n = fails = 0
    t0 = time.ticks_ms()
    st = [c.pending(), t0]
    while time.ticks_diff(time.ticks_ms(), t0) < d.cfg("MS", 120000):
        if not c.pending() and i >= new or heapfill.stalled(c, st):
            break
        # new messages until 50 publish() calls in a row have failed (a heap kept that
        # short by KEEP fails them all: the drain goes on)
        if i < new and fails < 50 and (held or c.pending() < N // 2):
            try:
                c.publish(d.topic("m"), b"n%d.%d" % (boot, i), qos=1 + i % 2)
                print("A n%d.%d" % (boot, i))
                i += 1
                fails = 0
            except Exception as e:
                fails += 1
                ne += 1
                heapfill.said(e, ne)
        ne = heapfill.check(c, ne)
        n += 1
        low = heapfill.turn(c, n, low)
        time.sleep_ms(1)
    return low


c = d.client(d.cfg("CID"), **ARGS)
if d.cfg("PHASE") == "queue":
    if d.cfg("PRE"):
        # QoS 2 messages "p<i>" given packet IDs and sent before the link goes (the host
        # blackholes or passes them, then refuses the link and writes "go")
        c.connect(clean_session=False)
        print("CONNECTED")
        while not d.exists("ready"):
            time.sleep_ms(10)
        for i in range(d.cfg("PRE")):
            c.publish(d.topic("m"), b"p%d" % i, qos=2)
        print("PRE", c.pending())
        while not d.exists("go"):
            time.sleep_ms(10)
    else:
        c.connect(clean_session=False, wait=False)
    for i in range(N):
        c.publish(d.topic("m"), b"b%d" % i, qos=2 if i % 3 == 0 else 1, retain=i % 7 == 0)
    print("QUEUED", c.pending())
else:
    gc.collect()
    low = gc.mem_free()
    print("BOOT", c.pending(), low)
    errs = []
    try:
        c.connect(clean_session=False)
    except Exception as e:
        errs.append(repr(e))
        print("E", repr(e))
        import sys
        sys.print_exception(e)
    low = drain(low)
    gc.collect()
    print("DRAINED", c.pending(), min(low, gc.mem_free()))
    try:
        c.disconnect()
    except Exception as e:
        print("E", repr(e))
print("PASS")
