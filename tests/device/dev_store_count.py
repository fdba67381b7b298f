# The store's running count of its flash (SessionStore max_bytes) over random rounds of
# offline publishing, partial drains and restarts, seeded (devcfg.SEED): after every round
# a reload counts the same bytes and the same pending messages, the count stays within a
# block of the bound, and every message is delivered once the link stays up or was given
# up to "drop_oldest" (counted). Payloads of 0 to 2,500 bytes: records inline in littlefs
# and not, segments sealed by count and by size. Each payload starts with its number, so
# the host's observer checks what arrived.
import os
import random
import time

import devlib as d
from mqttsession import MQTTClient, SessionStore

ROOT, BD = d.flash()
STORE = ROOT + "/.mqtt-test"
MB = d.cfg("MAXB", 60000)
SIZES = (0, 3, 50, 120, 700, 2500)
random.seed(d.cfg("SEED", 1))
bs = os.statvfs(ROOT)[0]


def node(full):
    return MQTTClient("count", d.cfg("HOST"), d.cfg("PORT"), keepalive=30, window=16,
                      version=d.VERSION, queue=5000, full=full,
                      store=SessionStore(STORE, max_bytes=MB, ram=16))


def drain(c, calls, secs):
    # the link up for at most calls check_msg() calls and secs seconds (a bound, not a
    # pace: the rounds stop draining at random points either way)
    c.connect(clean_session=False)
    t = time.ticks_ms()
    while c.pending() and calls > 0 and time.ticks_diff(time.ticks_ms(), t) < secs * 1000:
        c.check_msg()
        calls -= 1
    c.disconnect()


def publish(c, k, size=None):
    # k numbered messages of random sizes (or of size), until the session refuses one
    # (full: by the store's bytes or by the queue's count); returns whether it did
    global n
    for i in range(k):
        m = b"%06d" % n + bytes(random.choice(SIZES) if size is None else size)
        try:
            c.publish(d.topic("c"), m, qos=1)
        except OSError as e:
            d.check(e.errno in (28, 105), "full: %r" % (e,))  # refused whole
            return True
        n += 1
    return False


def reload(c):
    # the session read again from flash counts what the running one counts
    st = SessionStore(STORE, max_bytes=MB, ram=16)
    s2 = d.peek(st, d.cfg("HOST"), "count")
    d.check(not st.errors, "reload reports no damage: %r" % st.errors)
    d.check(s2.bytes == c._s.bytes and s2.pending() == c.pending(),
            "reload counts %d bytes, %d pending" % (s2.bytes, s2.pending()))


c = node("error")
c.connect(clean_session=True)
c.disconnect()
n = full = dropped = 0
if d.cfg("OOM"):
    # no heap for the message's record: the heap filled with 1 KB pieces, every other one
    # freed (small allocations still succeed, a 2 KB record finds no room): MemoryError,
    # and the session is as it was (before 0.2.12 the message stayed in the RAM queue,
    # not in flash)
    import gc

    publish(c, 4, 50)  # fewer than the RAM ring holds: the next takes a ring slot
    t = d.topic("c").encode()  # a bytes topic published once is not checked again
    c.publish(t, b"%06d" % n + bytes(50), qos=1)
    n += 1
    p, b = c.pending(), c._s.bytes
    m = b"%06d" % n + bytes(2000)
    import heapfill

    hold, i = heapfill.pieces(1024)
    try:
        c.publish(t, m, qos=1)
        e = None
    except MemoryError as x:
        e = x
    hold = m = None
    gc.collect()
    d.check(i < 4000 and isinstance(e, MemoryError), "MemoryError: %r" % e)
    d.check(c.pending() == p and c._s.bytes == b, "as it was: %d pending, %d bytes"
            % (c.pending(), c._s.bytes))
    d.check(not publish(c, 1, 50), "the next message taken")
    reload(c)
    drain(c, 100000, 120)
    print("PUBLISHED", n, "DROPPED", 0, "FULL", 0)
    d.check(c.pending() == 0, "drained")
    print("PASS")
    raise SystemExit
if d.cfg("BIG"):
    # connected, a QoS 1 message larger than max_bytes: refused whole (ENOSPC) at window 1
    # and 16, by either client and either policy, however fast the broker acknowledges;
    # nothing of it goes out and nothing is given up, and the next message is taken
    # (before 0.2.13 it went out from RAM: taken when its acknowledgement came before
    # publish returned, else refused while in flight)
    import asyncio
    from mqttsession.aio import MQTTClient as AClient

    async def go(r):
        # a blocking client's call has run already; an asyncio client's is awaited
        return (await r) if aio else r

    async def case(w, full):
        global n
        c = (AClient if aio else MQTTClient)(
            "count", d.cfg("HOST"), d.cfg("PORT"), keepalive=30, window=w,
            version=d.VERSION, full=full, store=SessionStore(STORE, max_bytes=MB))
        what = "aio %d window %d %s" % (aio, w, full)
        await go(c.connect(clean_session=False))
        e = None
        try:
            await go(c.publish(d.topic("c"), b"%06d" % n + bytes(MB), qos=1))
        except OSError as x:
            e = x
        d.check(e is not None and e.errno == 28, "%s: ENOSPC: %r" % (what, e))
        d.check(c.pending() == 0 and c._s.bytes == 0 and not c.dropped,
                "%s: nothing taken or given up" % what)
        await go(c.publish(d.topic("c"), b"%06d" % n + bytes(50), qos=1))  # taken
        n += 1
        t = time.ticks_ms()
        while c.pending() and time.ticks_diff(time.ticks_ms(), t) < 60000:
            await (asyncio.sleep_ms(20) if aio else go(c.check_msg()))
        d.check(c.pending() == 0, "%s: the next one acknowledged" % what)
        await go(c.disconnect())

    for aio in (0, 1):
        for w in (1, 16):
            for full in ("error", "drop_oldest"):
                asyncio.run(case(w, full))
    print("PUBLISHED", n, "DROPPED", 0, "FULL", 8)
    print("PASS")
    raise SystemExit
if d.cfg("AIO"):
    # the asyncio client on the same store: filled offline until refused, then
    # "drop_oldest" makes room for a message larger than a block; a reload counts the
    # same; connected, everything not given up goes out
    import asyncio
    from mqttsession.aio import MQTTClient as AClient

    def anode(full):
        return AClient("count", d.cfg("HOST"), d.cfg("PORT"), keepalive=30, window=16,
                       version=d.VERSION, queue=5000, full=full,
                       store=SessionStore(STORE, max_bytes=MB, ram=16))

    async def main():
        global n
        c = anode("error")
        e = None
        while e is None and n < 5000:
            try:
                await c.publish(d.topic("c"), b"%06d" % n + bytes(700), qos=1)
                n += 1
            except OSError as x:
                e = x
        d.check(e is not None and e.errno == 28, "full: %r" % (e,))
        c = anode("drop_oldest")
        await c.publish(d.topic("c"), b"%06d" % n + bytes(6000), qos=1)
        n += 1
        d.check(c.dropped > 1 and c._s.bytes <= MB + bs, "drop_oldest: %d dropped, %d bytes"
                % (c.dropped, c._s.bytes))
        reload(c)
        await c.connect(clean_session=False)
        t = time.ticks_ms()
        while c.pending() and time.ticks_diff(time.ticks_ms(), t) < 120000:
            await asyncio.sleep_ms(20)
        await c.disconnect()
        print("PUBLISHED", n, "DROPPED", c.dropped, "FULL", 1)
        d.check(c.pending() == 0, "drained")

    asyncio.run(main())
    print("PASS")
    raise SystemExit
for rnd in range(d.cfg("ROUNDS", 10)):
    c = node(("error", "drop_oldest")[rnd % 2])  # a restart: the session read again
    full += publish(c, random.randint(1, 300))
    if random.random() < 0.6:
        drain(c, random.randint(0, 400), 5)
    dropped += c.dropped
    # the hot state written now (a clean stop): else a reload may count up to _LAZY
    # acknowledged QoS 1 messages as pending again (they go out again, as QoS 1 allows)
    c._s._save(1)
    b = c._s.bytes
    print("ROUND", rnd, "published", n, "pending", c.pending(), "bytes", b)
    reload(c)
    d.check(b <= MB + bs, "count %d within a block of %d" % (b, MB))
# whatever the rounds met: filled until refused (the queue's count bounds it), then
# "drop_oldest" takes one message larger than a block and 19 more, giving up as many of
# the oldest as each needs room for (before 0.2.12 it gave up one, then refused the
# larger message: ENOSPC)
c = node("error")
full += publish(c, 5000)
c = node("drop_oldest")
d.check(not publish(c, 1, 6000), "drop_oldest: a 6,000-byte message taken")
d.check(not publish(c, 19, 700), "drop_oldest: 19 more taken")
d.check(c.dropped > 0 and c._s.bytes <= MB + bs, "drop_oldest: %d dropped, %d bytes"
        % (c.dropped, c._s.bytes))
# connected, the backlog still there: a QoS 1 message joins it in flash, a QoS 2 one goes
# to flash first; either makes room the same way (before 0.2.12 the connected path
# checked neither against the bound: ENOSPC for a message larger than a block)
c.connect(clean_session=False)
for q in (1, 2):
    try:
        c.publish(d.topic("c"), b"%06d" % n + bytes(6000), qos=q)
    except OSError as e:
        d.check(False, "connected, QoS %d behind a backlog: %r" % (q, e))
    n += 1
d.check(c._s.bytes <= MB + bs, "within the bound: %d bytes" % c._s.bytes)
c.disconnect()
drain(c, 100000, 120)
dropped += c.dropped
print("PUBLISHED", n, "DROPPED", dropped, "FULL", full)
d.check(c.pending() == 0 and c._s.bytes == 0, "drained: %d pending, %d bytes counted"
        % (c.pending(), c._s.bytes))
print("PASS")
