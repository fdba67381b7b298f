# Publishers at QoS 0/1/2, a subscriber task and link resets at once on the asyncio client
# with a store (tests/host/test_aio_mixed_load.py). Some publishes run under wait_for with
# short timeouts, some are cancelled (seeded); a task subscribes and unsubscribes, another
# calls disconnect() and connect(); the host stalls and resets the link meanwhile (and may
# cut the power). STEP "run": print each call's outcome as it ends, end with no further
# call (a reset). STEP "boot": the same store again, connect, send what is left, report pending and the
# subscriptions the session holds (and whether the broker delivers on each).
import asyncio
import random
import time

import devlib as d
from mqttsession import Link, SessionStore
from mqttsession.aio import MQTTClient

NT = d.cfg("TASKS", 6)
NM = d.cfg("MSGS", 25)
NS = 3  # subscription topics


async def until(cond, ms=60000):
    t0 = time.ticks_ms()
    while not cond() and time.ticks_diff(time.ticks_ms(), t0) < ms:
        await asyncio.sleep_ms(20)
    return cond()


def make(root):
    return MQTTClient(d.cfg("CID"), d.cfg("HOST"), d.cfg("PORT"), version=d.VERSION,
                      keepalive=3, timeout=5, window=d.cfg("WINDOW", 4),
                      queue=d.cfg("QUEUE", 6), store=SessionStore(root + "/.mqtt-mix", ram=d.cfg("RAM")),
                      link=Link(min_ms=50, max_ms=500))


def qos_of(j, i):
    # task 0: QoS 0 only; 1: QoS 1; 2: QoS 2; the others mixed 1/2 (and a QoS 0 now and then)
    if j < 3:
        return j
    return (0, 1, 2, 2, 1)[(i + j) % 5]


async def run():
    root, _ = d.flash()
    c = make(root)
    d.check(await c.connect(clean_session=False, wait=True) is not None, "connected")
    got = []
    c.set_callback(lambda t, m: got.append((t, m)))
    random.seed(d.cfg("SEED", 1))
    print("READY")
    out = []

    async def pub(j):
        for i in range(NM):
            q = qos_of(j, i)
            m = b"%d-%d-%d" % (j, i, q)
            how = j % 3  # 0: plain; 1: wait_for; 2: a task cancelled now and then
            r = "ok"
            try:
                if how == 0:
                    await c.publish(d.topic("out"), m, qos=q)
                elif how == 1:
                    await asyncio.wait_for_ms(c.publish(d.topic("out"), m, qos=q),
                                              random.randint(5, 200))
                else:
                    t = asyncio.create_task(c.publish(d.topic("out"), m, qos=q))
                    if random.randint(0, 1) == 0:
                        await asyncio.sleep_ms(random.randint(0, 30))
                        if not t.done():
                            t.cancel()
                    await t
            except asyncio.TimeoutError:
                r = "timeout"
            except asyncio.CancelledError:
                r = "cancel"
            except OSError as e:
                r = "oserror%d" % e.errno
            out.append((m, r))
            print("RES", m.decode(), r)  # as it ends: a power cut may come any time
            await asyncio.sleep_ms(random.randint(0, 40))

    want = {}

    async def subber():
        # each call's start and end printed as they happen (a power cut may come)
        for k in range(d.cfg("SUBS", 30) + NS):
            n = random.randint(0, NS - 1) if k < d.cfg("SUBS", 30) else k % NS
            tp = d.topic("s/%d" % n)
            q = random.randint(-1, 2) if k < d.cfg("SUBS", 30) else (n, None, n)[n]
            print("SUBSTART", n)
            try:
                if k >= d.cfg("SUBS", 30):  # the last call for each topic completes
                    await (c.subscribe(tp, q) if q is not None else c.unsubscribe(tp))
                elif q is not None and q < 0:
                    q = None
                    await asyncio.wait_for_ms(c.unsubscribe(tp), random.randint(1, d.cfg("SUBMS", 3000)))
                else:
                    await asyncio.wait_for_ms(c.subscribe(tp, q), random.randint(1, d.cfg("SUBMS", 3000)))
                want[n] = q
            except asyncio.TimeoutError:
                want[n] = "?"
            except OSError as e:
                want[n] = "?"
                print("SUBERR", repr(e))
            print("SUBDONE", n, want[n])
            await asyncio.sleep_ms(random.randint(10, 150))

    async def cmd():
        # a command task: disconnect() and connect() again, now and then
        for k in range(d.cfg("BYES", 2)):
            await asyncio.sleep_ms(random.randint(300, 900))
            await c.disconnect()
            await asyncio.sleep_ms(random.randint(0, 50))
            await c.connect(clean_session=False)

    ts = [asyncio.create_task(pub(j)) for j in range(NT)]
    ts += [asyncio.create_task(subber()), asyncio.create_task(cmd())]
    for t in ts:
        await asyncio.wait_for(t, 120)
    print("DONE pending", c.pending(), "outages", c.link.outages, "lost0", c.lost0,
          "dropped", c.dropped)
    # a reset: no further call


async def boot():
    root, _ = d.flash()
    c = make(root)
    got = []
    c.set_callback(lambda t, m: got.append((t.decode(), m)))
    print("BOOT pending", c.pending())
    d.check(await c.connect(clean_session=False, wait=True) is not None, "connected")
    d.check(await until(lambda: c.pending() == 0), "every message out")
    print("SUBS", " ".join("%s:%d" % (t.decode() if isinstance(t, bytes) else t, q) for t, q in sorted(c._s.subs.items())))
    for n in range(NS):
        await c.publish(d.topic("s/%d" % n), b"probe", qos=1)
    await until(lambda: False, 2000)
    print("HEARD", " ".join(sorted(set(t for t, m in got))))
    print("PENDING", c.pending())
    await c.disconnect()


asyncio.run(globals()[d.cfg("STEP")]())
print("PASS")
