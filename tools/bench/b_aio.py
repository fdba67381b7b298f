# The asyncio client beside other tasks (issue: never stall the loop, sleep when idle).
# Driven by tools/bench_aio.py through stdin lines; results as "R key value" lines.
#   mode=faults: a 10 ms ticker and a QoS 1 publisher (200 ms) run while the host breaks
#     the link; "mark NAME" prints R aio.gap.NAME, the largest ticker gap since the last
#     mark (ms). "silent PORT" starts a second client against a listener that never
#     answers; "stop" ends it. Commands on bench/t/cmd are taken and dropped.
#   mode=idle: connected, keepalive 60, nothing to do for secs=60: R aio.idle.wakeups_min
#     (times the event loop went to sleep, per minute). The host reads CPU time.
#   mode=restart: a stored QoS 1 subscription; the host restarts the broker without its
#     sessions and publishes commands until one arrives: GOT and UP lines with ticks.
# Both versions of the client run this: the current one and, for comparison, an older
# one (lib path set by the host).
import asyncio
import sys
import time

import bcommon as B
from mqttsession import Link
from mqttsession.aio import MQTTClient

MODE = B.arg("mode", "faults")
SECS = B.num("secs", 60)
gap = [0]
sleeps = [0]


def count_sleeps():
    # wraps the event loop's wait for I/O: a call with a timeout other than 0 is a sleep
    q = asyncio.core._io_queue
    w = q.wait_io_event

    def wait(dt):
        if dt:
            sleeps[0] += 1
        return w(dt)

    q.wait_io_event = wait


def make(cid, port=None, store=None, keepalive=2):
    lk = Link(min_ms=100, max_ms=1000)
    return MQTTClient(cid, B.HOST, port or B.PORT, keepalive=keepalive, timeout=2, link=lk,
                      store=store, queue=256)


async def ticker():
    t = time.ticks_ms()
    while True:
        await asyncio.sleep_ms(10)
        n = time.ticks_ms()
        gap[0] = max(gap[0], time.ticks_diff(n, t))
        t = n


async def publisher(c):
    i = 0
    while True:
        await c.publish(B.TOPIC, b"%d" % i, qos=1)
        i += 1
        await asyncio.sleep_ms(200)


async def faults():
    c = make("bench-aio")
    await c.connect(clean_session=False)
    await c.subscribe(B.TOPIC + b"/cmd", 0)  # commands trickle in during "trickle"
    asyncio.create_task(ticker())
    asyncio.create_task(publisher(c))
    inp = asyncio.StreamReader(sys.stdin.buffer)
    other = None
    print("READY")
    while True:
        w = (await inp.readline()).decode().split()
        if not w:
            break
        if w[0] == "mark":
            B.out("aio.gap." + w[1], gap[0])
            print("MARKED", w[1], "up" if c.isconnected() else "down", c.link.outages)
            gap[0] = 0
        elif w[0] == "silent":
            other = make("bench-aio-2", int(w[1]))
            try:
                r = await other.connect()
            except OSError as e:  # the older client raised; its keeper went on
                r = e
            print("SILENT", r)
        elif w[0] == "stop" and other:
            await other.disconnect()
            other = None
            print("STOPPED")
        elif w[0] == "quit":
            break
    await c.disconnect()


async def idle():
    c = make("bench-aio-idle", keepalive=60)
    await c.connect()
    count_sleeps()
    print("READY")
    t0 = time.ticks_ms()
    await asyncio.sleep(SECS)
    ms = time.ticks_diff(time.ticks_ms(), t0)
    B.out("aio.idle.wakeups_min", sleeps[0] * 60000 / ms)
    print("END", c.isconnected())
    await c.disconnect()


async def restart():
    bdev, why = B.mount(B.arg("img", "bench-aio.img"), 32)
    store, why = B.make_store() if bdev else (None, why)
    if store is None:
        B.na("aio.restart", why)
        return
    c = make("bench-aio-r", store=store)

    def got(t, m):
        print("GOT", m.decode(), time.ticks_ms())

    c.set_callback(got)

    async def ups():
        while True:
            await c.up.wait()
            c.up.clear()
            print("UP", time.ticks_ms())

    if hasattr(c, "up"):  # the older client had no link events
        asyncio.create_task(ups())
    await c.connect(clean_session=False)
    await c.subscribe(B.TOPIC + b"/cmd", 1)
    print("READY")
    inp = asyncio.StreamReader(sys.stdin.buffer)
    await inp.readline()  # the host saw the command arrive
    await c.disconnect()


asyncio.run(globals()[MODE]())
print("DONE")
