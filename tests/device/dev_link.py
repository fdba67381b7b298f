# Riding through link faults: a node publishing or receiving through the host's fault
# rig, with a link keeper and a store. devcfg.TEST: publisher, receiver, halfopen,
# offline (and the others below).
import time

import devlib as d
from mqttsession import Link, MQTTClient, SessionStore

ROOT, BD = d.flash()
API = d.cfg("API", "blocking")


def on_change(up):
    print("LINK", "up" if up else "down", time.ticks_ms())


def make(**kw):
    board = None
    if d.cfg("WIFI"):
        import board  # the virtual board: its Wi-Fi follows the host's control file
    lk = Link(board=board, min_ms=100, max_ms=d.cfg("MAX_BACKOFF", 1000),
              wifi_timeout_ms=300, on_change=on_change)
    kw.setdefault("window", d.cfg("WINDOW", 1))
    kw.setdefault("queue", d.cfg("QUEUE", 256))
    kw.setdefault("full", d.cfg("FULL", "error"))
    kw.setdefault("keepalive", d.cfg("KEEPALIVE", 2))
    kw.setdefault("timeout", 2)
    store = SessionStore((ROOT or "") + "/.mqtt-link", max_bytes=65536) if d.cfg("STORE", 1) \
        else None
    mod = MQTTClient
    if API == "aio":
        from mqttsession.aio import MQTTClient as mod
    return mod(d.cfg("CID"), d.cfg("HOST"), d.cfg("PORT"), version=d.VERSION, store=store,
               link=lk, **kw)


def publisher():
    c = make()
    c.connect(clean_session=False)
    print("READY")
    n = d.cfg("COUNT", 100)
    full = 0
    for i in range(n):
        try:
            c.publish(d.topic("p%d" % (1 + (i & 1))), b"%d" % i, qos=1 + (i & 1))
            print("ACCEPTED", i)
        except OSError as e:
            if e.errno != 105:
                raise
            full += 1
            print("FULL", i)
        c.check_msg()
        time.sleep_ms(d.cfg("GAP", 20))
    t0 = time.ticks_ms()
    while c.pending() and time.ticks_diff(time.ticks_ms(), t0) < 30000:
        c.check_msg()
        time.sleep_ms(5)
    print("DRAINED", c.pending(), "outages", c.link.outages, "longest", c.link.longest,
          "full", full, "dropped", c.dropped)
    d.check(c.pending() == 0, "backlog delivered")
    c.disconnect()


def chaos():
    # numbered readings from START on, until the host pulls the plug; DRAIN: finish the
    # backlog instead
    c = make()
    try:
        c.connect(clean_session=False)
    except OSError:
        pass  # the keeper tries again
    print("BOOT pending", c.pending())
    start = d.cfg("START", 0)
    for i in range(start, start + d.cfg("COUNT", 0)):
        c.publish(d.topic("p%d" % (1 + (i & 1))), b"%d" % i, qos=1 + (i & 1))
        print("ACCEPTED", i)
        c.check_msg()
        time.sleep_ms(10)
    t0 = time.ticks_ms()
    while c.pending() and time.ticks_diff(time.ticks_ms(), t0) < 30000:
        c.check_msg()
        time.sleep_ms(5)
    print("DRAINED", c.pending())
    d.check(c.pending() == 0, "backlog delivered")


def inhand():
    # A and B queue while the link is down (the first connect fails: the keeper takes
    # over); C is published when it is back: the reconnect inside publish resends A and B
    # first and C must still be C
    c = make()
    try:
        c.connect(clean_session=False)
    except OSError:
        print("FIRST CONNECT FAILED")
    c.publish(d.topic("p1"), b"A", qos=1)
    c.publish(d.topic("p1"), b"B", qos=1)
    print("QUEUED", c.pending())
    while not d.cfg("GO_FILE") or not d.exists(d.cfg("GO_FILE")):
        time.sleep_ms(50)
    time.sleep_ms(300)  # past the keeper's backoff
    c.publish(d.topic("p1"), b"C", qos=1)
    t0 = time.ticks_ms()
    while c.pending() and time.ticks_diff(time.ticks_ms(), t0) < 10000:
        c.check_msg()
        time.sleep_ms(5)
    d.check(c.pending() == 0 and c.isconnected(), "keeper connected and delivered")


def offline():
    # the README's first example on a node that boots with the broker unreachable:
    # connect(wait=False) returns None at once and the keeper goes on; subscribe,
    # unsubscribe and publish made offline take effect once it has connected, with the
    # broker's session kept (PHASE 1 made it, subscribed to "old") or new
    c = make()
    c.set_callback(lambda t, m: print("GOT", t.decode(), m.decode()))
    if d.cfg("PHASE") == 1:
        d.check(c.connect(clean_session=False) is False, "a new session")
        c.subscribe(d.topic("old"), 1)
        c.disconnect()
        return
    t0 = time.ticks_ms()
    r = c.connect(clean_session=False, wait=False)
    print("CONNECT", r, time.ticks_diff(time.ticks_ms(), t0))
    d.check(r is None and not c.isconnected(), "connect(wait=False) returned offline")
    d.check(c.link.tries == 1 and isinstance(c.link.last_error, OSError), "the keeper has it")
    c.subscribe(d.topic("cmd"), 2)
    c.subscribe(d.topic("gone"), 1)
    c.unsubscribe(d.topic("gone"))
    c.unsubscribe(d.topic("old"))
    c.publish(d.topic("queued"), b"offline", qos=1)
    print("OFFLINE", c.pending(), list(c._s.subs.items()))
    d.check(list(c._s.subs) == [d.topic("cmd").encode()], "offline (un)subscriptions recorded")
    t0 = time.ticks_ms()
    while not c.isconnected() and time.ticks_diff(time.ticks_ms(), t0) < 30000:
        c.check_msg()
        time.sleep_ms(5)
    d.check(c.isconnected(), "the keeper connected")
    print("UP", c._cn[6])  # Session Present of that connect
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < d.cfg("RUN_MS", 4000):
        c.check_msg()  # the host sends the commands meanwhile
        time.sleep_ms(5)
    d.check(c.pending() == 0, "queued message delivered")
    c.disconnect()


def cleanstart():
    # connect(clean_session=True) on a node that boots with the broker out of reach: the
    # keeper's connect makes the clean start asked for (PHASE 1 left a session at the
    # broker, subscribed to "old"); "UP" with that connect's Session Present
    c = make()
    c.set_callback(lambda t, m: print("GOT", t.decode(), m.decode()))
    if d.cfg("PHASE") == 1:
        c.connect(clean_session=False)
        c.subscribe(d.topic("old"), 1)
        c.disconnect()
        return
    d.check(c.connect(clean_session=True, wait=False) is None, "offline")
    print("OFFLINE")
    t0 = time.ticks_ms()
    while not c.isconnected() and time.ticks_diff(time.ticks_ms(), t0) < 30000:
        c.check_msg()
        time.sleep_ms(5)
    print("UP", c._cn[6])
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < d.cfg("RUN_MS", 3000):
        c.check_msg()  # the host publishes to "old" meanwhile
        time.sleep_ms(5)
    c.disconnect()


async def aio_cleanstart():
    import asyncio

    c = make()
    c.set_callback(lambda t, m: print("GOT", t.decode(), m.decode()))
    if d.cfg("PHASE") == 1:
        await c.connect(clean_session=False)
        await c.subscribe(d.topic("old"), 1)
        await c.disconnect()
        return
    d.check(await c.connect(clean_session=True) is None, "offline")
    print("OFFLINE")
    t0 = time.ticks_ms()
    while not c.isconnected() and time.ticks_diff(time.ticks_ms(), t0) < 30000:
        await asyncio.sleep_ms(10)
    print("UP", int(bool(c._present)))
    await asyncio.sleep_ms(d.cfg("RUN_MS", 3000))
    await c.disconnect()




def receiver():
    c = make()
    end = []  # the host's last message: everything before it has been delivered

    def got(t, m):
        print("GOT", t.decode(), m.decode())
        if t.endswith(b"/end"):
            end.append(1)

    c.set_callback(got)
    c.connect(clean_session=False)
    c.subscribe(d.topic("r/#"), 2)
    print("READY")
    t0 = time.ticks_ms()
    while not end and time.ticks_diff(time.ticks_ms(), t0) < d.cfg("RUN_MS", 15000):
        c.check_msg()
        time.sleep_ms(5)
    print("OUTAGES", c.link.outages)


def halfopen():
    # idle node; the host blackholes the link and times how long until it notices
    c = make()
    c.connect(clean_session=False)
    print("READY", time.ticks_ms())
    t0 = time.ticks_ms()
    while c.link.up and time.ticks_diff(time.ticks_ms(), t0) < 20000:
        c.check_msg()
        time.sleep_ms(10)
    d.check(not c.link.up, "half-open link detected")


async def aio_inhand():
    import asyncio

    c = make()
    if await c.connect(clean_session=False) is None:  # offline: the keeper goes on
        print("FIRST CONNECT FAILED")
    await c.publish(d.topic("p1"), b"A", qos=1)
    await c.publish(d.topic("p1"), b"B", qos=1)
    print("QUEUED", c.pending())
    while not d.exists(d.cfg("GO_FILE")):
        await asyncio.sleep_ms(50)
    t0 = time.ticks_ms()
    while not c.isconnected() and time.ticks_diff(time.ticks_ms(), t0) < 10000:
        await asyncio.sleep_ms(20)  # the keeper's reader task reconnects on its own
    await c.publish(d.topic("p1"), b"C", qos=1)
    while c.pending() and time.ticks_diff(time.ticks_ms(), t0) < 10000:
        await asyncio.sleep_ms(20)
    d.check(c.pending() == 0 and c.isconnected(), "keeper connected and delivered")
    await c.disconnect()


async def aio_publisher():
    import asyncio

    c = make()
    await c.connect(clean_session=False)
    print("READY")
    n = d.cfg("COUNT", 100)
    for i in range(n):
        await c.publish(d.topic("p%d" % (1 + (i & 1))), b"%d" % i, qos=1 + (i & 1))
        print("ACCEPTED", i)
        await asyncio.sleep_ms(d.cfg("GAP", 20))
    t0 = time.ticks_ms()
    while c.pending() and time.ticks_diff(time.ticks_ms(), t0) < 30000:
        await asyncio.sleep_ms(20)
    print("DRAINED", c.pending(), "outages", c.link.outages, "longest", c.link.longest)
    d.check(c.pending() == 0, "backlog delivered")
    await c.disconnect()


if API == "aio":
    import asyncio

    asyncio.run(globals()["aio_" + d.cfg("TEST")]())
else:
    globals()[d.cfg("TEST")]()
print("PASS")
