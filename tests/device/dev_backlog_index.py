# The backlog's segment index in RAM (12 bytes a segment, given room by qseg.seal).
# devcfg.PHASE "queue": offline (nothing at devcfg.PORT), devcfg.COUNT more messages
# queued, on a fresh store or on one a first run left (the load grows the index as it
# finds the segments); once 10 segments are sealed, the heap the next ones took ("GREW
# <bytes> <segments>"): the room is given with the ninth (the first 8 take the 8 entries
# of an array's first growth), or at the first seal after the load, so later seals
# allocate nothing for the index. "drain": a later boot with them connects, drains every
# one, and then the index has no room left ("AFTER <bytes>": what one more entry
# allocates): the last segment removed frees it. Then QoS 2 messages online, each sealed
# into a segment of its own while it waits for its answer: "SAME <0/1> <room>" whether
# the index's arrays are the same ones after 160 of them as after 64 (none made and
# given up at each segment's seal and removal).
import gc
import time

import devlib as d
from mqttsession import Link, SessionStore

N = d.cfg("COUNT")
PHASE = d.cfg("PHASE")
c = d.client(d.cfg("CID"), window=16, queue=4 * N, link=Link(min_ms=50),
             store=SessionStore(d.flash()[0] + "/.mqtt", d.cfg("MAXB"), ram=16))
s = c._s


def heap():
    gc.collect()
    return gc.mem_alloc()


def probe():
    # the heap one more entry of the index takes (0 while it has room); taken back
    h = heap()
    s._sg.append(0)
    n = heap() - h
    s._sg[len(s._sg) - 1 :] = s._sg[:0]
    return n


if PHASE == "queue":
    c.connect(clean_session=False, wait=False)
    q = c.pending()
    for i in range(q, q + N):
        if i == q + 320:
            h = heap()
            k = len(s._sg)
        c.publish(d.topic("m"), b"%d" % i, qos=1)
    print("GREW", heap() - h, len(s._sg) - k)
    print("QUEUED", c.pending())
else:
    print("BOOT", c.pending(), len(s._sg))
    c.connect(clean_session=False)
    d.pump(c, lambda: not c.pending(), 120000)
    t0 = time.ticks_ms()
    while s._sg and time.ticks_diff(time.ticks_ms(), t0) < 30000:
        c.check_msg()  # the last acknowledgements: the last segment goes
    print("DRAINED", c.pending(), len(s._sg))
    print("AFTER", probe())
    ids = None
    for i in range(160):
        if i == 64:
            ids = (id(s._sg), id(s._sl), id(s._sc))
        c.publish(d.topic("q2"), b"%d" % i, qos=2)
        d.pump(c, lambda: not c.pending(), 30000)
    print("SAME", int(ids == (id(s._sg), id(s._sl), id(s._sc))), s._sk)
    c.disconnect()
print("PASS")
