# The asyncio client beside other tasks, driven by tests/host/test_aio.py. devcfg.TEST:
# handler, handler_calls, ended, restart, offline, faults, congested, tls, trickle,
# silent, idle, again, backlog, late_coro. A 10 ms ticker task runs throughout and
# reports the largest gap between its ticks (GAP ms): the loop kept running.
import asyncio
import time

import devlib as d
from mqttsession import Link
from mqttsession.aio import MQTTClient

ROOT, BD = d.flash()
gap = [0]


async def ticker():
    t = time.ticks_ms()
    while True:
        await asyncio.sleep_ms(10)
        n = time.ticks_ms()
        gap[0] = max(gap[0], time.ticks_diff(n, t))
        t = n


def make(link=True, store=True, **kw):
    lk = None
    if link:
        lk = Link(min_ms=100, max_ms=d.cfg("MAX_BACKOFF", 1000))
    st = None
    if store:
        from mqttsession import SessionStore

        st = SessionStore((ROOT or "") + "/.mqtt-aio", max_bytes=65536)
    kw.setdefault("keepalive", d.cfg("KEEPALIVE", 2))
    kw.setdefault("timeout", 2)
    kw.setdefault("window", d.cfg("WINDOW", 1))
    kw.setdefault("queue", 256)
    return MQTTClient(d.cfg("CID"), d.cfg("HOST"), d.cfg("PORT"), version=d.VERSION,
                      store=st, link=lk, **kw)


async def until(cond, ms=10000):
    t0 = time.ticks_ms()
    while not cond() and time.ticks_diff(time.ticks_ms(), t0) < ms:
        await asyncio.sleep_ms(20)
    return cond()


async def events(c):
    # prints every link change the application sees through the up/down events
    async def watch(ev, word):
        while True:
            await ev.wait()
            ev.clear()
            print("LINK", word, time.ticks_ms())

    asyncio.create_task(watch(c.up, "up"))
    asyncio.create_task(watch(c.down, "down"))


async def handler():
    # a handler that raises (plain and coroutine) ends nothing; retained flag and the
    # iterator see the same messages
    c = make(link=False)
    seen = []
    errs = []

    async def slow_fail():
        await asyncio.sleep_ms(5)
        raise KeyError("from a coroutine handler")

    def cb(t, m, r):
        print("GOT", t.decode(), m.decode(), r)
        seen.append((t, m, r))
        if m == b"boom":
            raise ValueError("from the handler")
        if m == b"aboom":
            return slow_fail()
        if m == b"echo":  # a coroutine handler that publishes QoS 1 (window 1)
            return c.publish(d.topic("alive"), b"echo", qos=1)

    c.set_callback(cb, retained=True)
    c.on_error = errs.append
    it = c.messages(4)
    await c.connect()
    await c.subscribe(d.topic("cmd/#"), 1)
    print("READY")
    got = []
    async for t, m, r in it:
        got.append((t, m, r))
        if m == b"last":
            break
    await until(lambda: c.errors >= 2, 5000)  # the coroutine handler runs after delivery
    print("ERRORS", c.errors, [type(e).__name__ for e in errs])
    d.check(c.errors == 2 and isinstance(errs[0], ValueError) and isinstance(errs[1], KeyError),
            "both handler errors reported through on_error")
    d.check(got == seen, "the iterator saw what the callback saw")
    d.check((d.topic("cmd/r").encode(), b"kept", True) in got, "retained flag delivered")
    d.check(c.isconnected(), "still connected")
    await c.publish(d.topic("alive"), b"yes", qos=1)
    await c.disconnect()


async def handler_calls():
    # calls inside a coroutine message handler: subscribe and unsubscribe raise
    # RuntimeError (the reader would wait for its own SUBACK), publish returns, a task
    # started there subscribes. Then a probe on each topic (and "end" last) shows which
    # subscriptions the broker holds
    c = make(link=False, store=False)
    tasks = []

    async def later():
        await c.subscribe(d.topic("later"), 1)
        tasks.append("subscribed")

    async def cb(t, m):
        print("GOT", t.decode(), m.decode())
        if m != b"go":
            return
        for name, call in (("subscribe", lambda: c.subscribe(d.topic("refused"), 1)),
                           ("unsubscribe", lambda: c.unsubscribe(d.topic("cmd")))):
            try:
                await call()
                print("CALL", name, "returned")
            except RuntimeError as e:
                print("CALL", name, "RuntimeError", e)
        await c.publish(d.topic("out"), b"from-handler", qos=1)
        print("CALL publish returned")
        asyncio.create_task(later())

    c.set_callback(cb)
    await c.connect()
    await c.subscribe(d.topic("cmd"), 1)
    await c.subscribe(d.topic("out"), 1)
    await c.publish(d.topic("cmd"), b"go", qos=1)
    d.check(await until(lambda: tasks), "the task started in the handler subscribed")
    ends = []

    def probed(t, m):
        print("GOT", t.decode(), m.decode())
        ends.append(m)

    c.set_callback(probed)
    for t in ("refused", "cmd", "later"):
        await c.publish(d.topic(t), b"probe", qos=1)
    await c.publish(d.topic("later"), b"end", qos=1)
    d.check(await until(lambda: b"end" in ends), "the probes went round")
    print("SUBS", " ".join(sorted(t.decode() for t in c._s.subs)))
    print("ERRORS", c.errors)
    d.check(c.isconnected(), "still connected")
    await c.disconnect()


async def ended():
    # no keeper, with a store: the broker goes away; every await then raises the error
    # that ended the reader (publish would otherwise have queued in flash silently)
    c = make(link=False)
    await c.connect(clean_session=False)
    print("READY")
    d.check(await until(lambda: c.down.is_set(), 20000), "down event")
    for name, call in (("publish", lambda: c.publish(d.topic("x"), b"1", qos=1)),
                       ("subscribe", lambda: c.subscribe(d.topic("y"), 1))):
        try:
            await call()
            d.check(False, name + " raises")
        except OSError as e:
            print("RAISED", name, e.errno)
            d.check(e.errno != 107, name + " raises the reader's error")
    try:
        async for _ in c.messages():
            pass
        d.check(False, "messages() raises")
    except OSError:
        print("RAISED messages")
    d.check(c.pending() == 0, "nothing queued after the raise")


async def restart():
    # stored subscription; the broker restarts and forgets every session; the keeper
    # reconnects and re-subscribes without waiting on itself; a command arrives
    c = make()
    c.set_callback(lambda t, m: print("GOT", t.decode(), m.decode(), time.ticks_ms()))
    await events(c)
    await c.connect(clean_session=False)
    await c.subscribe(d.topic("cmd"), 2)
    print("READY", time.ticks_ms())
    d.check(await until(lambda: c.link.outages >= 1, 20000), "outage seen")
    d.check(await until(c.isconnected, 20000), "link back")
    print("BACK", time.ticks_ms(), "tries", c.link.tries)
    await until(lambda: False, d.cfg("RUN_MS", 5000))  # the host sends the command
    print("GAP", gap[0])
    await c.disconnect()


async def offline():
    # boots with the broker unreachable: connect returns at once, the node goes on;
    # subscribe and publish made offline take effect once the link is up
    c = make()
    c.set_callback(lambda t, m: print("GOT", t.decode(), m.decode()))
    await events(c)
    t0 = time.ticks_ms()
    r = await c.connect(clean_session=False)
    print("CONNECT", r, time.ticks_diff(time.ticks_ms(), t0))
    d.check(r is None and not c.isconnected(), "connect returned offline")
    waited = []

    async def waiter():  # connect(wait=True) returns once the keeper has connected
        waited.append(await c.connect(clean_session=False, wait=True))

    asyncio.create_task(waiter())
    await c.subscribe(d.topic("cmd"), 2)
    await c.subscribe(d.topic("gone"), 1)
    await c.unsubscribe(d.topic("gone"))
    await c.publish(d.topic("queued"), b"zero", qos=0)  # fire and forget: counted only
    await c.publish(d.topic("queued"), b"offline", qos=1)
    print("OFFLINE", c.pending(), list(c._s.subs.items()))
    d.check(c.lost0 == 1 and c.pending() == 1, "QoS 0 counted in lost0, not queued")
    d.check(list(c._s.subs) == [d.topic("cmd").encode()], "offline (un)subscriptions recorded")
    d.check(await until(c.isconnected, 30000), "the keeper connected")
    d.check(await until(lambda: waited == [False], 2000), "connect(wait=True) returned")
    print("UP")
    await until(lambda: False, d.cfg("RUN_MS", 4000))  # the host sends the command
    d.check(c.pending() == 0, "queued message delivered")
    print("GAP", gap[0])
    await c.disconnect()


async def faults():
    # publishes QoS 1 every 100 ms while the host breaks the link in turn; prints GAP
    c = make()
    await events(c)
    await c.connect(clean_session=False)
    print("READY")
    i = 0
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < d.cfg("RUN_MS", 12000):
        await c.publish(d.topic("f"), b"%d" % i, qos=1)
        i += 1
        await asyncio.sleep_ms(100)
    d.check(await until(lambda: c.pending() == 0, 20000), "backlog delivered")
    print("SENT", i, "outages", c.link.outages)
    print("GAP", gap[0])
    await c.disconnect()


async def congested():
    # a 1 MB message into a stalled link: the socket takes part, the rest goes as it
    # drains while the loop runs on; the message arrives whole
    c = make(store=False, timeout=5)
    await c.connect()
    c.sock.setsockopt(1, 7, 8192)  # SO_SNDBUF: small, so the socket fills up
    print("READY")
    while not d.exists(d.cfg("GO_FILE")):
        await asyncio.sleep_ms(20)
    msg = bytes(range(256)) * 4096
    t0 = time.ticks_ms()
    await c.publish(d.topic("big"), msg, qos=1)
    print("PUBLISHED", time.ticks_diff(time.ticks_ms(), t0), "outages", c.link.outages,
          repr(c.link.last_error))
    print("GAP", gap[0])
    await c.disconnect()


async def trickle():
    # the link trickles (the host throttles it): packets arrive in pieces, the loop runs
    c = make(store=False)
    c.set_callback(lambda t, m: print("GOT", t.decode(), len(m)))
    await c.connect()
    await c.subscribe(d.topic("cmd"), 1)
    print("READY")
    await until(lambda: False, d.cfg("RUN_MS", 5000))
    print("GAP", gap[0])
    await c.disconnect()


async def silent():
    # the broker's address stops answering (SYNs dropped): the keeper's connects wait in
    # the poller, each ended by the clock at its deadline
    c = make(store=False)
    r = await c.connect()
    await until(lambda: False, d.cfg("RUN_MS", 5000))
    print("SILENT", r, "tries", c.link.tries, repr(c.link.last_error))
    d.check(r is None and c.link.tries >= 2, "connect returned offline, the keeper retried")
    print("GAP", gap[0])
    await c.disconnect()


async def idle():
    # connected and idle (keepalive 60): the event loop sleeps until something is due,
    # it does not poll. Counts the loop's sleeps (waits for I/O with a timeout).
    c = make(link=False, store=False, keepalive=60)
    await c.connect()
    q = asyncio.core._io_queue
    w = q.wait_io_event
    n = [0]

    def wait(dt):
        if dt:
            n[0] += 1
        return w(dt)

    q.wait_io_event = wait
    await asyncio.sleep(3)
    q.wait_io_event = w
    print("SLEEPS", n[0])
    d.check(n[0] <= 3 and c.isconnected(), "no polling while idle")
    await c.disconnect()


async def tls():
    # TLS: the handshake runs in steps on the non-blocking socket, the loop runs on
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=d.cfg("CA_DER"))
    c = make(link=False, store=False, ssl=ctx)
    got = []
    c.set_callback(lambda t, m: got.append(m))
    t0 = time.ticks_ms()
    await c.connect()
    print("CONNECTED", time.ticks_diff(time.ticks_ms(), t0), "gap", gap[0])
    await c.subscribe(d.topic("t"), 1)
    await c.publish(d.topic("t"), b"over tls", qos=1)
    d.check(await until(lambda: got == [b"over tls"], 10000), "own message back over TLS")
    print("GAP", gap[0])
    await c.disconnect()


async def again():
    # disconnect() then connect() at once, with and without a keeper: the second connect
    # is made and returns the Session Present of its own attempt; an iteration of
    # messages() ends at each disconnect(). Then the same while the keeper sleeps in a
    # 20 s backoff (DEAD: a closed port): disconnect() ends the reader and the iterator now
    ends = []

    async def iterate(c):
        async for _ in c.messages():
            pass
        ends.append(time.ticks_ms())

    for link in (True, False):
        c = make(link=link, store=False)
        got = []
        c.set_callback(lambda t, m: got.append(m))
        await c.connect(clean_session=False, wait=True)
        await c.subscribe(d.topic("again"), 1)
        for clean, want in ((False, True), (True, False), (False, False)):
            n = len(ends)
            asyncio.create_task(iterate(c))
            await asyncio.sleep_ms(0)
            await c.disconnect()
            r = await c.connect(clean_session=clean)
            print("AGAIN", link, clean, r)
            d.check(r is want, "link %s: connect(clean_session=%s) gave %r" % (link, clean, r))
            d.check(await until(c.isconnected, 10000), "connected again")
            d.check(await until(lambda: len(ends) > n, 5000), "the iteration ended")
        await c.subscribe(d.topic("again"), 1)
        await c.publish(d.topic("again"), b"x", qos=1)
        d.check(await until(lambda: got, 10000) and c.pending() == 0, "a message went round")
        await c.disconnect()
    c = MQTTClient(d.cfg("CID"), d.cfg("HOST"), d.cfg("DEAD"), version=d.VERSION, keepalive=2,
                   timeout=2, link=Link(min_ms=20000, max_ms=20000, jitter=0))
    d.check(await c.connect() is None, "offline")
    d.check(await until(lambda: c.link.tries, 5000), "the keeper backs off")
    await asyncio.sleep_ms(100)
    n = len(ends)
    asyncio.create_task(iterate(c))
    await asyncio.sleep_ms(0)
    t0 = time.ticks_ms()
    await c.disconnect()
    d.check(await until(lambda: len(ends) > n and c._task is None, 5000),
            "the iterator and the reader ended")
    print("ENDED", time.ticks_diff(ends[-1], t0))
    c.port = d.cfg("PORT")
    d.check(await c.connect(wait=True) is False and c.isconnected(), "connect() after that")
    await c.disconnect()


async def backlog():
    # messages(2), keepalive 2, and an application that reads nothing for 4.5 s: the
    # reader waits for it (input stays in the socket) while the clock still pings (the
    # broker may close after 3 s without a packet: SILENT is the longest gap); then every
    # message arrives once, and the PINGRESPs read late do not count the link dead
    c = make(store=False)
    p = MQTTClient("p" + d.cfg("CID")[1:], d.cfg("HOST"), d.cfg("PORT"), version=d.VERSION)
    it = c.messages(2)
    await c.connect(clean_session=False, wait=True)
    await c.subscribe(d.topic("bl"), 1)
    await p.connect()
    for i in range(6):
        await p.publish(d.topic("bl"), b"%d" % i, qos=1)
    d.check(await until(lambda: len(c._q) >= 2), "the reader waits for the application")
    t0 = time.ticks_ms()
    most = 0  # the longest the client went without sending (its last write: _ltx)
    while time.ticks_diff(time.ticks_ms(), t0) < 4500:
        await asyncio.sleep_ms(50)
        most = max(most, time.ticks_diff(time.ticks_ms(), c._ltx))
    print("SILENT", most)
    got = []

    async def take():
        async for _, m, _ in it:
            got.append(int(m))

    asyncio.create_task(take())
    d.check(await until(lambda: len(got) >= 6), "all taken")
    await asyncio.sleep_ms(2500)  # past the ping's answer window (1.5 s), reading again
    print("BACKLOG", got, "outages", c.link.outages)
    d.check(got == list(range(6)), "each message once, in order")
    d.check(c.link.outages == 0 and c.isconnected(), "the link was kept")
    await p.disconnect()
    await c.disconnect()


async def raw_coro():
    # set_callback(f, raw=True) takes a plain function (the payload's buffer is valid only
    # during the call): a coroutine function's coroutine would never run, each message
    # gone without a word. It is reported instead (on_error, errors) and the link stays;
    # a plain raw callback then gets the next message
    c = make(link=False, store=False)
    errs = []
    got = []

    async def coro(t, buf, a, b):
        got.append(("coro", bytes(buf[a:b])))

    def plain(t, buf, a, b):
        got.append(("plain", bytes(buf[a:b])))

    c.on_error = errs.append
    c.set_callback(coro, raw=True)
    await c.connect()
    await c.subscribe(d.topic("raw"), 1)
    await c.publish(d.topic("raw"), b"one", qos=1)
    await until(lambda: errs, 5000)
    print("RAWERR", [repr(e) for e in errs])
    d.check(len(errs) == 1 and isinstance(errs[0], TypeError) and "raw=True" in str(errs[0]),
            "a coroutine raw callback is reported as a TypeError naming raw=True")
    d.check(c.errors == 1 and c.isconnected(), "counted, and the link stays")
    c.set_callback(plain, raw=True)
    await c.publish(d.topic("raw"), b"two", qos=1)
    await until(lambda: got, 5000)
    d.check(got == [("plain", b"two")], "a plain raw callback gets the next one: %r" % got)
    d.check(c.errors == 1, "and nothing more is reported")
    await c.disconnect()


async def raw_iter():
    # messages() beside a raw=True callback (README: beside or instead of the callback):
    # both get the message, the callback its buffer during the call, the iterator a copy
    c = make(link=False, store=False)
    got = []
    seen = []
    c.set_callback(lambda t, buf, a, b: got.append(bytes(buf[a:b])), raw=True)
    it = c.messages(4)

    async def read():
        async for t, m, r in it:
            seen.append((t, m, r))

    await c.connect()
    asyncio.create_task(read())
    await c.subscribe(d.topic("ri"), 1)
    await c.publish(d.topic("ri"), b"one", qos=1)
    await until(lambda: got and seen, 5000)
    print("RAWITER", got, seen)
    d.check(got == [b"one"], "the raw callback got it")
    d.check(seen == [(d.topic("ri").encode(), b"one", False)], "and so did the iterator")
    d.check(c.errors == 0, "nothing reported")
    await c.disconnect()


async def late_coro():
    # QoS 1/2 messages that arrived before any consumer, then a coroutine callback set on
    # a quiet link (keepalive 0: no packet comes after them): each handled once and
    # answered, not held until some later packet wakes the reader
    got = []

    async def cb(t, m):
        got.append(m)
        await asyncio.sleep_ms(5)

    c = make(link=False, keepalive=0)
    await c.connect(clean_session=False)
    await c.subscribe(d.topic("cmd"), 2)
    feed = d.client(d.cfg("CID") + "f")
    feed.connect()
    for i in range(4):
        feed.publish(d.topic("cmd"), b"m%d" % i, qos=1 + i % 2)
    feed.disconnect()
    d.check(await until(lambda: len(c._q) == 4), "held for a consumer")
    c.set_callback(cb)
    d.check(await until(lambda: len(got) == 4 and not c._aws, 10000), "handled: %r" % got)
    await asyncio.sleep_ms(300)  # the last answers go out
    await c.disconnect()
    print("GOT", b" ".join(got).decode())
    c.set_callback(lambda t, m: got.append(m))
    await c.connect(clean_session=False)  # the broker holds nothing unanswered for it
    await asyncio.sleep_ms(500)
    print("AGAIN", len(got) - 4)
    await c.disconnect()


async def offline_checks():
    # without a keeper and never connected: a bad filter or QoS is named (ValueError), as
    # by the blocking client and as with a keeper, before the call fails for the link
    c = make(link=False, store=False)
    for name, call, want in (
            ("qos", lambda: c.subscribe(d.topic("t"), 3), ValueError),
            ("filter", lambda: c.subscribe("a/#/b", 1), ValueError),
            ("unsub-filter", lambda: c.unsubscribe("a/#/b"), ValueError),
            ("good", lambda: c.subscribe(d.topic("t"), 1), OSError)):
        try:
            await call()
            got = None
        except Exception as e:  # which one is the point
            got = e
        print("OFFLINE", name, repr(got))
        d.check(type(got) is want, "%s: %s, not %r" % (name, want.__name__, got))
    d.check(not c._s.subs, "nothing recorded")
    # messages(n): a bad n is named at once (it was taken as 1, or failed with a
    # comparison's TypeError for None)
    for n in (None, 0, -1, "8", 2.5):
        try:
            c.messages(n)
            got = None
        except Exception as e:  # which one is the point
            got = e
        print("MESSAGES", repr(n), repr(got))
        d.check(type(got) is ValueError and "messages(n)" in str(got), "messages(%r): %r" % (n, got))
    d.check(not c._qn, "no queue size set by a refused call")




async def main():
    if d.cfg("TEST") != "idle":
        asyncio.create_task(ticker())
    await globals()[d.cfg("TEST")]()


asyncio.run(main())
print("PASS")
