# A backlog of thousands in flash and a board's heap. devcfg.PHASE "queue": the node boots
# with its broker out of reach (a keeper; connect(wait=False); devcfg.AIO: the asyncio
# client, whose connect() returns at once with a keeper) and queues devcfg.COUNT
# messages (payload: the number; QoS 2 every tenth, else QoS 1) into its store, then
# stops as a power cut would. A later boot (devcfg.AIO: the asyncio client) loads that
# store and prints "BOOT <pending> <free heap>"; "load" stops there
# (tools/bench/b_boot_heap.py), "boot" connects, drains the backlog and prints
# "DRAINED <pending>", "clean" does so with a clean start (the backlog given up),
# "pieces" drains with the heap in pieces of about devcfg.PIECE bytes from the connect on
# and prints "BUFFER <n>": the largest buffer the segments were read into. devcfg.PAD:
# the payloads after the first 32 (the first segment) padded with that many dots.
# devcfg.DIR: the store on that directory of the host (the unix port's own filesystem,
# which lists a directory in no particular order) instead of a littlefs image.
import gc
import time

import devlib as d
from mqttsession import Link, SessionStore

ROOT = d.cfg("DIR") or d.flash()[0]
N = d.cfg("COUNT")
PHASE = d.cfg("PHASE")
ARGS = dict(window=16, queue=max(N, 16), keepalive=30, version=d.VERSION, link=Link(min_ms=50),
            store=SessionStore(ROOT + "/.mqtt", d.cfg("MAXB"), ram=16))


most = [0]  # "pieces": the largest segment buffer seen


def pieces():
    # "pieces", once connected: the application's data takes the heap in blocks of PIECE
    # bytes, every other one given back; returns what holds them
    if PHASE != "pieces":
        return None
    import heapfill

    held, n = heapfill.pieces(d.cfg("PIECE"))
    print("PIECES", n // 2)
    return held


def note(c):
    # True when drained; the segments' read buffer noted
    most[0] = max(most[0], len(c._s._cz or b""))
    return not c.pending()


def boot(c):
    gc.collect()
    print("BOOT", c.pending(), gc.mem_free())
    return PHASE != "load"


def reading(i):
    # message i of the backlog queued: (payload, QoS)
    return b"%d" % i + (b"." * d.cfg("PAD", 0) if i >= 32 else b""), 2 if i % 10 == 0 else 1


if PHASE == "queue" and d.cfg("AIO"):
    import asyncio

    from mqttsession.aio import MQTTClient

    async def queue():
        c = MQTTClient(d.cfg("CID"), d.cfg("HOST"), d.cfg("PORT"), **ARGS)
        await c.connect(clean_session=False)
        for i in range(N):
            m, q = reading(i)
            await c.publish(d.topic("m"), m, qos=q)
        print("QUEUED", c.pending())

    asyncio.run(queue())
elif PHASE == "queue":
    c = d.client(d.cfg("CID"), **ARGS)
    c.connect(clean_session=False, wait=False)
    for i in range(N):
        m, q = reading(i)
        c.publish(d.topic("m"), m, qos=q)
    print("QUEUED", c.pending())
elif d.cfg("AIO"):
    import asyncio

    from mqttsession.aio import MQTTClient

    async def main():
        c = MQTTClient(d.cfg("CID"), d.cfg("HOST"), d.cfg("PORT"), **ARGS)
        if boot(c):
            await c.connect(clean_session=PHASE == "clean")
            held = pieces()
            t0 = time.ticks_ms()
            while not note(c) and time.ticks_diff(time.ticks_ms(), t0) < 120000:
                await asyncio.sleep_ms(20)
            print("DRAINED", c.pending())
            held = None  # (what disconnect() loads needs room)
            await c.disconnect()

    asyncio.run(main())
else:
    c = d.client(d.cfg("CID"), **ARGS)
    if boot(c):
        c.connect(clean_session=PHASE == "clean")
        held = pieces()
        d.pump(c, lambda: note(c), 120000)
        print("DRAINED", c.pending())
        held = None
        c.disconnect()
if PHASE == "pieces":
    print("BUFFER", most[0])
print("PASS")
