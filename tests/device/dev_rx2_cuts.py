# Incoming QoS 2 messages from a scripted broker (tests/host/test_rx2_cuts.py) with a
# power cut after the CUT-th block write (AT "before": as the next write begins, after
# whatever ran since the last one; "after": as the CUT-th write returns). The process
# freezes there ("CUT", the host's SIGKILL) and the next run resumes on the same image.
# TAKE: the blocking client's callback ("blocking", "raw"), the asyncio client's plain
# callback ("plain"), coroutine callback ("coro") or messages() ("messages"). Prints
# "GOT <payload>" as each is delivered, "WRITES" with the block writes made, and stops
# once the payload STOP was delivered (or RUN_MS passed).
import time

import devlib as d
from mqttsession import Link, SessionStore

ROOT, BD = d.flash()
HOW = d.cfg("TAKE", "blocking")
CUT = d.cfg("CUT", -1)
AT = d.cfg("AT", "before")
STOP = d.cfg("STOP", "m3").encode()
done = [False]
n = [0]

if CUT >= 0:
    _may = BD._may_write

    def may():
        if AT == "before" and n[0] == CUT:
            d.freeze("CUT")
        _may()
        n[0] += 1

    BD._may_write = may
    if AT == "after":
        _wb, _io = BD.writeblocks, BD.ioctl

        def wb(*a):
            _wb(*a)
            if n[0] == CUT:
                d.freeze("CUT")

        def io(op, arg):
            r = _io(op, arg)
            if n[0] == CUT and op == 6:
                d.freeze("CUT")
            return r

        BD.writeblocks, BD.ioctl = wb, io
else:
    _may = BD._may_write

    def may():
        _may()
        n[0] += 1

    BD._may_write = may


def got(m):
    print("GOT", bytes(m).decode())
    if bytes(m) == STOP:
        done[0] = True


def make(aio):
    if aio:
        from mqttsession.aio import MQTTClient
    else:
        from mqttsession import MQTTClient
    return MQTTClient("rx2cut", d.cfg("HOST"), d.cfg("PORT"), keepalive=30, timeout=5,
                      version=d.VERSION, store=SessionStore(ROOT + "/.mqtt"),
                      link=Link(min_ms=50, max_ms=200))


def blocking():
    c = make(False)
    if HOW == "raw":
        c.set_callback(lambda t, b, i, j: got(b[i:j]), raw=True)
    else:
        c.set_callback(lambda t, m: got(m))
    c.connect(clean_session=False)
    t0 = time.ticks_ms()
    while not done[0] and time.ticks_diff(time.ticks_ms(), t0) < d.cfg("RUN_MS", 20000):
        c.check_msg()
        time.sleep_ms(1)
    c.check_msg()
    c.disconnect()


def aio():
    import asyncio

    async def coro(t, m):
        got(m)
        await asyncio.sleep_ms(0)

    async def reading(c):
        async for t, m, r in c.messages():
            got(m)

    async def main():
        c = make(True)
        if HOW == "coro":
            c.set_callback(coro)
        elif HOW == "plain":
            c.set_callback(lambda t, m: got(m))
        else:
            asyncio.create_task(reading(c))
        await c.connect(clean_session=False)
        t0 = time.ticks_ms()
        while not done[0] and time.ticks_diff(time.ticks_ms(), t0) < d.cfg("RUN_MS", 20000):
            await asyncio.sleep_ms(20)
        await asyncio.sleep_ms(100)
        await c.disconnect()

    asyncio.run(main())


blocking() if HOW in ("blocking", "raw") else aio()
print("WRITES", n[0])
print("PASS")
