# MemoryError at random in the store's work while a backlog drains
# (tests/host/test_memerr_random.py). devcfg.PHASE "queue": COUNT messages queued offline
# (payload "b<n>", QoS 2 every third, else QoS 1). "drain": the store's segment and tail
# reads, record parses, file writes and record and hot-state builds each raise
# MemoryError with probability PROB (seeded with SEED), as a heap near its end would, from
# the connect on; the node connects (through the host's fault rig, which resets the link
# at random) and drains while it publishes NEW messages ("n<i>", QoS 1 and 2); the
# application catches what reaches it and goes on, and CUT loop turns after the first
# exception it stops as at a power cut (CUT 0: never). "check": a boot without
# injection that drains what is left. devcfg.API "aio": the asyncio client (its reader
# drains; the loop publishes). devcfg.FAULT "eio": the segment and tail reads raise the
# flash's OSError(EIO) instead (the drain waits for the file). Prints "A <payload>" for each publish() that returned,
# "E <exception>" for each one caught, "LEFT <pending>".
import asyncio
import random
import struct
import sys
import time

import devlib as d
from mqttsession import Link, SessionStore, qseg, stored

N = d.cfg("COUNT", 150)
AIO = d.cfg("API") == "aio"
KW = dict(window=16, queue=N + 1000, keepalive=30, link=Link(min_ms=20, max_ms=100, jitter=0),
          store=SessionStore(d.flash()[0] + "/.mqtt", 1 << 20, ram=16))
if AIO:
    from mqttsession.aio import MQTTClient

    c = MQTTClient("memrand", d.cfg("HOST"), d.cfg("PORT"), **KW)
else:
    c = d.client("memrand", **KW)
PHASE = d.cfg("PHASE")


injected = [0]


def inject():
    random.seed(d.cfg("SEED"))
    P = d.cfg("PROB")

    def failing(real, eio=False):
        def f(*a):
            if random.random() < P:
                injected[0] += 1
                if eio:
                    raise OSError(5)  # the flash's read error (a driver's EIO)
                raise MemoryError("injected")
            return real(*a)

        return f

    class Struct:  # stored's struct: pack fails at random (records, identity, hot state)
        pack = failing(struct.pack)
        unpack = struct.unpack
        unpack_from = struct.unpack_from
        calcsize = struct.calcsize

    for m, n in ((qseg, "_read"), (qseg, "_win"), (qseg, "_parse"), (stored, "_write"),
                 (stored, "pack"), (stored, "append")):
        setattr(m, n, failing(getattr(m, n), n in ("_read", "_win") and d.cfg("FAULT") == "eio"))
    qseg.bytearray = failing(bytearray)  # the segment buffer
    stored.bytes = failing(bytes)
    stored.struct = Struct


async def res(r):
    # a call's result: the asyncio client's calls are coroutines
    return await r if AIO else r


async def drain():
    inject()
    try:
        await res(c.connect(clean_session=False))
    except Exception as e:
        print("E", repr(e))  # the keeper goes on
    new = d.cfg("NEW", 40)
    cut = d.cfg("CUT", 0)
    errs = i = 0
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < 20000 and (c.pending() or i < new):
        try:
            # a few new ones while the backlog drains, the rest after it
            if i < new and (c.pending() % 3 == 0 or c.pending() < 20):
                await res(c.publish(d.topic("m"), b"n%d" % i, qos=1 + i % 2))
                print("A n%d" % i)
                i += 1
            if AIO:
                await asyncio.sleep_ms(1)  # the reader drains
            else:
                c.check_msg()
        except Exception as e:
            print("E", repr(e))
            errs += 1
        if cut and errs:
            cut -= 1
            if not cut:
                print("CUT", injected[0])
                sys.exit(0)
        time.sleep_ms(1)
    print("DRAINED", c.pending(), "injected", injected[0])


async def check():
    await res(c.connect(clean_session=False))
    t0 = time.ticks_ms()
    while c.pending() and time.ticks_diff(time.ticks_ms(), t0) < 30000:
        if AIO:
            await asyncio.sleep_ms(10)
        else:
            c.check_msg()
    print("LEFT", c.pending())
    await res(c.disconnect())


async def queue():
    # offline: the broker out of reach (port 1)
    await res(c.connect(clean_session=False, wait=False))
    for i in range(N):
        await res(c.publish(d.topic("m"), b"b%d" % i, qos=2 if i % 3 == 0 else 1))
    print("QUEUED", c.pending())


asyncio.run({"queue": queue, "drain": drain}.get(PHASE, check)())
print("PASS")
