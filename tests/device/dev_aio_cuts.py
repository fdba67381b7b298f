# The asyncio client with a store, power-cut (SIGKILL, by the host) at random moments while
# it publishes QoS 1 and 2 in turn at window 8, or (devcfg.RECV) takes commands. Prints "BOOT <pending>" once connected
# and "A <n>" once publish(n) returned: from then on the message is the store's to
# deliver. Each boot numbers its messages from devcfg.START (odd numbers QoS 2). With
# devcfg.COUNT it stops after that many, waits until every one is acknowledged and
# prints "DRAINED <pending>"; without, it runs until the host cuts it. devcfg.KEEP: as in
# dev_cuts.py (a keeper, a queue of devcfg.QUEUE, SessionStore(ram=devcfg.RAM)).
import asyncio
import errno
import time

import devlib as d
from mqttsession import Link, SessionStore
from mqttsession.aio import MQTTClient

ROOT, BD = d.flash()


async def take(c):
    # the application takes each command (its number printed as it is taken, then a
    # little work) through messages(), or devcfg.TAKE: "coro" a coroutine callback set
    # before connect(), "late" a plain callback set a while after it; "END" (after the
    # last command) ends the run
    end = asyncio.Event()

    def got(m):
        if m == b"END":
            print("END")
            end.set()
        else:
            print("R", int(m))

    async def coro(t, m):
        got(m)
        await asyncio.sleep_ms(3)

    how = d.cfg("TAKE", "messages")
    if how == "coro":
        c.set_callback(coro)
    await c.connect(clean_session=False)
    print("BOOT", c.pending())
    if how == "late":
        await asyncio.sleep_ms(200)  # what arrives meanwhile waits for a consumer
        c.set_callback(lambda t, m: got(m))
    if how != "messages":
        await end.wait()
        return
    async for t, m, r in c.messages():
        got(m)
        if end.is_set():
            return
        await asyncio.sleep_ms(3)


async def main():
    keep = d.cfg("KEEP")
    c = MQTTClient(d.cfg("CID"), d.cfg("HOST"), d.cfg("PORT"), keepalive=30, window=8,
                   queue=d.cfg("QUEUE", 64), version=d.VERSION,
                   store=SessionStore(ROOT + "/.mqtt", ram=d.cfg("RAM")),
                   link=Link(min_ms=50, max_ms=500) if keep else None)
    if d.cfg("RECV") is not None:
        # commands at QoS RECV (take); publishing none
        if d.cfg("SUB"):
            await c.connect(clean_session=False)
            await c.subscribe(d.topic("cmd"), d.cfg("RECV"))
        else:
            await take(c)
        await c.disconnect()
        return
    await c.connect(clean_session=False)
    print("BOOT", c.pending())
    n = d.cfg("START", 0)
    end = n + d.cfg("COUNT", 1 << 30)
    while n < end:
        try:
            await c.publish(d.topic("m"), b"%07d" % n, qos=1 + n % 2)
        except OSError as e:
            if not keep or e.args[0] != errno.ENOBUFS:
                raise
            await asyncio.sleep_ms(2)  # the queue is full while the link is down
            continue
        print("A", n)
        n += 1
    t = time.ticks_ms()
    while c.pending() and time.ticks_diff(time.ticks_ms(), t) < 60000:
        await asyncio.sleep_ms(20)
    print("DRAINED", c.pending())
    await c.disconnect()


asyncio.run(main())
print("PASS")
