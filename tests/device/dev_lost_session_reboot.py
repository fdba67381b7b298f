# A node whose broker lost its session, reset right after the CONNACK that said so
# (tests/host/test_lost_session_reboot.py), with a store on littlefs. PHASE "sub": connect
# and subscribe (SUBS: name:qos,...). "off": a boot with the broker out of reach:
# connect(wait=False), publish QoS 0/1/2, the subscription changes SUBS, print state.
# "killack": connect, frozen at the log line "connected" (the host kills the process).
# "killconn": connect, frozen as its CONNACK comes in, before the client takes it (a reset
# between CONNECT and CONNACK: the broker made its new session, the node never heard).
# "dropack": as "on", but the first CONNACK is lost with the link (OSError) and the
# connect is made again in the same process.
# "on": connect, drain until pending() == 0, print "UP", then what arrives until "end".
import time

import devlib as d
from mqttsession import Link, MQTTClient, SessionStore

ROOT, BD = d.flash()
API = d.cfg("API", "blocking")
PHASE = d.cfg("PHASE")
CID = d.cfg("CID")  # None: the last used session
BOOT = d.cfg("BOOT", 0)
end = []


def got(t, m):
    print("GOT", t.decode(), m.decode())
    if t.endswith(b"/end"):
        end.append(1)


def make():
    mod = MQTTClient
    if API == "aio":
        from mqttsession.aio import MQTTClient as mod
    c = mod(CID, d.cfg("HOST"), d.cfg("PORT"), version=d.VERSION, keepalive=10,
            timeout=3, store=SessionStore(ROOT + "/.mqtt", ram=d.cfg("RAM")), link=Link(min_ms=100, max_ms=500),
            window=d.cfg("WINDOW", 1), queue=d.cfg("QUEUE", 64))
    c.set_callback(got)
    if PHASE == "killack":
        c.log = cut_at_connack
    elif PHASE in ("killconn", "dropack"):
        step = c._conn_step
        cut = [0]

        def at_connack():
            r = step()
            if r is not None and not cut[0]:
                cut[0] = 1
                print("CONNACK", r)
                if PHASE == "killconn":
                    d.freeze("CUT")
                c._close()
                raise OSError(104)
            return r

        c._conn_step = at_connack
    return c


def cut_at_connack(line):
    # PHASE killack: a reset right after the CONNACK (in resume(), before subscriptions)
    if line.startswith("connected"):
        print("LOG", line)
        d.freeze("CUT")


def state(c):
    print("CID", c._s.client_id)
    print("PENDING", c.pending())
    print("LOST0", c.lost0)
    print("DROPPED", c.dropped)
    print("SUBS", sorted((t.decode() if isinstance(t, bytes) else t, q) for t, q in c._s.subs.items()))


def plan():
    for x in d.cfg("SUBS", "").split(","):
        if x:
            t, q = x.split(":")
            yield t, (None if q == "-" else int(q))


def pubs():
    for q in (0, 1, 2):
        for i in range(d.cfg("N", 2)):
            yield q, "b%d-q%d-%d" % (BOOT, q, i)


def blocking():
    c = make()
    if PHASE == "off":
        if not d.cfg("NOCONN"):
            d.check(c.connect(clean_session=False, wait=False) is None, "offline")
        for q, m in pubs():
            c.publish(d.topic("data"), m, qos=q)
            c.check_msg()
        for t, q in plan():
            if q is None:
                c.unsubscribe(d.topic(t))
            else:
                c.subscribe(d.topic(t), q)
            c.check_msg()
        state(c)
    elif PHASE == "sub":
        print("PRESENT", c.connect(clean_session=False))
        for t, q in plan():
            if q is None:
                c.unsubscribe(d.topic(t))
            else:
                c.subscribe(d.topic(t), q)
        state(c)
        c.disconnect()
    elif PHASE in ("killack", "killconn"):
        print("CONNECTING")
        try:
            c.connect(clean_session=False)
        except Exception as e:
            print("CONNFAIL", repr(e))
        d.freeze("CUT")
    else:
        if PHASE == "dropack":
            try:
                c.connect(clean_session=False)
            except OSError as e:
                print("CONNFAIL", repr(e))
        present = c.connect(clean_session=False)
        print("PRESENT", present)
        d.pump(c, lambda: c.pending() == 0, 30000)
        state(c)
        print("UP")
        t0 = time.ticks_ms()
        while not end and time.ticks_diff(time.ticks_ms(), t0) < d.cfg("RUN_MS", 20000):
            c.check_msg()
            time.sleep_ms(5)
        state(c)
        c.disconnect()


async def aio():
    import asyncio

    c = make()
    if PHASE == "off":
        if not d.cfg("NOCONN"):
            d.check(await c.connect(clean_session=False) is None, "offline")
        for q, m in pubs():
            await c.publish(d.topic("data"), m, qos=q)
        for t, q in plan():
            if q is None:
                await c.unsubscribe(d.topic(t))
            else:
                await c.subscribe(d.topic(t), q)
        await asyncio.sleep_ms(d.cfg("OFF_MS", 300))
        state(c)
    elif PHASE == "sub":
        print("PRESENT", await c.connect(clean_session=False, wait=True))
        for t, q in plan():
            if q is None:
                await c.unsubscribe(d.topic(t))
            else:
                await c.subscribe(d.topic(t), q)
        state(c)
        await c.disconnect()
    elif PHASE in ("killack", "killconn"):
        print("CONNECTING")
        await c.connect(clean_session=False)
        await asyncio.sleep_ms(100)
        print("CUT")
        while True:
            await asyncio.sleep_ms(1000)
    else:
        present = await c.connect(clean_session=False, wait=True)
        print("PRESENT", present)
        t0 = time.ticks_ms()
        while (c.pending() or c._todo or c._rs) and time.ticks_diff(time.ticks_ms(), t0) < 30000:
            await asyncio.sleep_ms(10)
        state(c)
        print("UP")
        while not end and time.ticks_diff(time.ticks_ms(), t0) < d.cfg("RUN_MS", 20000):
            await asyncio.sleep_ms(10)
        state(c)
        await c.disconnect()


if API == "aio":
    import asyncio

    asyncio.run(aio())
else:
    blocking()
print("PASS")
