# Incoming QoS 1/2 messages through link resets with the heap held short
# (tests/host/test_rx_short_heap.py). The node (a store, a keeper) subscribes at QoS 2,
# prints "READY", then takes devcfg.COUNT messages the host publishes (payload: its number
# in two bytes, then its QoS) with the node's own data (ballast, heapfill.fill) leaving
# about devcfg.KEEP bytes of the heap free. devcfg.API "blocking": a callback and
# check_msg(); "aio" with devcfg.MODE "cb" (a plain callback), "coro" (a coroutine one) or
# "iter" (messages()). Each delivery is counted in a bytearray (the application itself
# allocates nothing); the ballast goes after 5 s without a new message or 30 s in all
# (freed), and the node stops once it has each message or 60 s passed without a new one. Prints "HEAP <free>", "E <exception>" out of a call (the first 300),
# "NOHEAP <link failures for want of heap>" (from the log hook: a lower bound, a line the
# heap could not format is not counted), "LOW <least free heap>", then "GOT <distinct>",
# "TWICE <QoS 2 messages delivered more than once>" and "MISS <first missing>"; and
# "L <line>" from the log hook (the first 60), "K ..." every 2,000 turns (blocking).
import gc
import time

import devlib as d
import heapfill

heapfill.reserve(d.cfg("HOLE", 0))  # (before the library: see reserve)
from mqttsession import Link, SessionStore  # noqa: E402

N = d.cfg("COUNT")
API = d.cfg("API", "blocking")
MODE = d.cfg("MODE", "cb")
seen = bytearray(N)  # deliveries of each message
qos = bytearray(N)  # its QoS, from its payload
nb = [0, 0]  # link failures for want of heap, log lines printed


def log(s):
    if nb[1] < 60:  # "L <line>", the first 60
        nb[1] += 1
        print("L", s)
    if "105" in s:  # ENOBUFS: the client's no heap
        nb[0] += 1


def took(m):
    i = m[0] << 8 | m[1]
    if i < N and seen[i] < 255:
        seen[i] += 1
        qos[i] = m[2]


def cb(t, m):
    took(m)


async def acb(t, m):
    took(m)


ARGS = dict(keepalive=30, version=d.VERSION, log=log, link=Link(min_ms=20, max_ms=200),
            store=SessionStore(d.flash()[0] + "/.mqtt", 256 * 1024, ram=16))


def distinct():
    n = 0
    for x in seen:
        if x:
            n += 1
    return n


def done(st):
    # True once each message came, or 60 s passed without a new one (st: [distinct,
    # when it last changed, when the ballast was taken])
    n = distinct()
    if n != st[0]:
        st[0] = n
        st[1] = time.ticks_ms()
    return n == N or time.ticks_diff(time.ticks_ms(), st[1]) > 60000


held = [None]  # the ballast: only here (a reference in a frame's stale stack slot, as
# an asyncio coroutine keeps them, held it after it was given up)


def ballast():
    # takes the ballast (heapfill.fill) and prints "HEAP <free> <blocks>"
    held[0] = heapfill.fill(d.cfg("KEEP"), d.cfg("HOLE", 0))
    print("HEAP", low_now(1 << 30), len(held[0]))


def freed(st):
    # the ballast goes after 5 s without a new message or 30 s in all: a heap short for
    # good leaves the node reconnecting into the same MemoryError, every message left
    # waiting at the broker, until the application frees some. Prints "FREED <got so far>"
    t = time.ticks_ms()
    if held[0] is None or (time.ticks_diff(t, st[1]) < 5000 and
                           time.ticks_diff(t, st[2]) < 30000):
        return
    held[0] = None
    print("FREED", distinct())


def low_now(low):
    gc.collect()
    return min(low, gc.mem_free())


def blocking():
    from mqttsession import MQTTClient

    c = MQTTClient(d.cfg("CID"), d.cfg("HOST"), d.cfg("PORT"), **ARGS)
    c.set_callback(cb)
    c.connect(clean_session=False)
    c.subscribe(d.topic("rx"), 2)
    print("READY")
    ballast()
    low = low_now(1 << 30)
    st = [0, time.ticks_ms(), time.ticks_ms()]
    ne = n = 0
    while not done(st):
        freed(st)
        ne = heapfill.check(c, ne)
        n += 1
        if n % 200 == 0:
            low = low_now(low)
            if n % 2000 == 0:  # "K <tries> <last error> <connected> <got> <free heap>"
                print("K", c.link.tries, repr(c.link.last_error), c.sock is not None,
                      distinct(), gc.mem_free())
        time.sleep_ms(1)
    held[0] = None
    return low


async def aio():
    import asyncio
    from mqttsession.aio import MQTTClient

    c = MQTTClient(d.cfg("CID"), d.cfg("HOST"), d.cfg("PORT"), **ARGS)
    if MODE != "iter":
        c.set_callback(acb if MODE == "coro" else cb)
    await c.connect(clean_session=False)
    await c.subscribe(d.topic("rx"), 2)
    # (loaded with the first QoS 1/2 message) before the ballast, as on a node that has
    # run a while: loaded into the heap left short, its code took the one run of free
    # heap that fill leaves, and no file (304 bytes) could be opened after that
    import mqttsession.aio_held

    print("READY")
    ballast()
    low = low_now(1 << 30)
    st = [0, time.ticks_ms(), time.ticks_ms()]
    if MODE == "iter":
        async def take():
            # (an exception out of the iteration: "I <exception>" for the first 20, and
            # the application iterates again, as a node must: a MemoryError can come
            # out of any await)
            ni = 0
            while True:
                try:
                    async for t, m, r in c.messages():
                        took(m)
                except Exception as e:
                    ni += 1
                    if ni <= 20:
                        print("I", repr(e))
                    await asyncio.sleep_ms(5)

        asyncio.create_task(take())
    n = 0
    while not done(st):
        freed(st)
        await asyncio.sleep_ms(5)
        n += 1
        if n % 40 == 0:
            low = low_now(low)
    held[0] = None
    return low


if API == "blocking":
    low = blocking()
else:
    import asyncio

    low = asyncio.run(aio())
gc.collect()
print("NOHEAP", nb[0])
print("LOW", low)
print("GOT", distinct())
print("TWICE", " ".join(str(i) for i in range(N) if qos[i] == 2 and seen[i] > 1))
print("MISS", " ".join(str(i) for i in range(N) if not seen[i])[:200])
