# Poison messages and broker errors on the asyncio client (tests/host/test_aio_guard.py):
# the same core as the blocking client (tests/device/dev_guard.py), driven by the reader
# task. devcfg.TEST names the scenario; the host judges what the broker saw.
import asyncio
import time

import devlib as d
from mqttsession import MQTTException, SessionStore
from mqttsession.aio import MQTTClient
from mqttsession.link import Link


def client(**kw):
    return MQTTClient("guard", d.cfg("HOST"), d.cfg("PORT"), version=d.VERSION,
                      keepalive=0, timeout=2, store=SessionStore("store"), **kw)


async def until(cond, ms=20000):
    t0 = time.ticks_ms()
    while not cond() and time.ticks_diff(time.ticks_ms(), t0) < ms:
        await asyncio.sleep_ms(5)
    return cond()


async def poison():
    # the broker closes whenever the first message arrives; later messages must go on
    got = []
    lk = Link(min_ms=20, max_ms=400, jitter=0)
    c = client(link=lk, strikes=3)
    c.on_aside = lambda t, m, why: got.append((t, m, why))
    most = [0]

    def busy():
        most[0] = max(most[0], lk.tries)
        return not c.pending()

    d.check(await c.connect(wait=True) is not None, "connected")
    await c.publish("t/poison", b"bad", qos=d.cfg("QOS", 1))
    await c.publish("t/good", b"ok", qos=1)
    d.check(await until(busy), "the later message went on")
    d.check(len(got) == 1 and got[0][0] == b"t/poison" and got[0][1] == b"bad",
            "on_aside told once: %r" % got)
    print("WHY", got[0][2])
    d.check(most[0] >= 2, "backoff grew while the broker dropped each connection (%d)" % most[0])
    d.check(lk.tries == 0, "an acknowledgement reset the backoff")
    d.check([r[0] for r in c.aside()] == [b"t/poison"], "visible in aside()")
    await c.disconnect()
    from mqttsession.aside import records

    s = d.peek(SessionStore("store"), d.cfg("HOST"), "guard")
    d.check([r[0] for r in records(s)] == [b"t/poison"] and s.pending() == 0,
            "kept in flash, out of the queue")


async def gone():
    # MQTT 5: the broker sends DISCONNECT while t/kept is in flight (strikes=1); then a
    # broker that takes everything. Prints what was set aside and the link's last error
    lk = Link(min_ms=20, max_ms=200, jitter=0)
    c = client(link=lk, strikes=1)
    d.check(await c.connect(wait=True) is not None, "connected")
    await c.publish("t/kept", b"m", qos=1)
    d.check(await until(lambda: lk.last_error is not None), "the DISCONNECT ended the link")
    e = lk.last_error
    await c.publish("t/next", b"m", qos=1)
    d.check(await until(lambda: not c.pending()), "delivered after the keeper reconnected")
    print("ASIDE", ",".join(r[0].decode() for r in c.aside()) or "-")
    print("LAST", e.args[0] if isinstance(e, MQTTException) else repr(e))
    await c.disconnect()


async def refused():
    # MQTT 5: a PUBACK with reason 0x87 sets the message aside; the next one goes on
    got = []
    c = client()
    c.on_aside = lambda t, m, why: got.append((t, why))
    await c.connect()
    await c.publish("t/refused", b"no", qos=1)
    await c.publish("t/next", b"yes", qos=1)
    d.check(got == [(b"t/refused", 0x87)], "set aside with the reason code: %r" % got)
    d.check(c.pending() == 0 and c.isconnected(), "next delivered, link up")
    await c.disconnect()


async def keeper_malformed():
    # with a keeper, a malformed packet while publish() waits is a link failure counted
    # once: the call returns, the message stays queued, link.last_error holds the broker's
    # error (not the OSError the core turned it into); no strike against the message
    lk = Link(min_ms=200, max_ms=400, jitter=0)
    c = client(link=lk, strikes=1)
    d.check(await c.connect(wait=True) is not None, "connected")
    await c.publish("t/kept", b"x", qos=1)
    e = lk.last_error
    d.check(isinstance(e, MQTTException) and e.args[0] == 0x81, "last_error %r" % (e,))
    d.check(lk.tries == 1, "one failure counted (%d)" % lk.tries)
    d.check(c.pending() == 1, "the message is kept")
    d.check(await until(lambda: not c.pending(), 10000), "delivered after the reconnect")
    d.check(not c.aside(), "no strike for the broker's own error")
    await c.disconnect()


async def suback_silent():
    # with a keeper, a SUBSCRIBE the broker never acknowledges: the wait ends within
    # timeout and closes the link; the subscription stays recorded, made on the next connect
    lk = Link(min_ms=100, max_ms=400, jitter=0)
    c = client(link=lk)
    d.check(await c.connect(wait=True) is not None, "connected")
    await c.subscribe("cmd/#", 1)  # returns: with a keeper it is recorded, not lost
    d.check(not c.isconnected(), "no SUBACK within timeout: the link closed")
    e = lk.last_error
    d.check(isinstance(e, OSError) and e.args[0] == 110, "last_error %r" % (e,))
    d.check(await until(c.isconnected, 10000), "reconnected")
    await asyncio.sleep_ms(500)  # the reader takes the SUBACK
    d.check(b"cmd/#" in c._s.subs, "still recorded")
    await c.disconnect()


async def raising_hook():
    # a Link(on_change=f) that raises: printed, and the reader, the messages and the
    # disconnect go on as if it had not
    ups = []

    def hook(up):
        ups.append(up)
        raise RuntimeError("hook %s" % up)

    errs = []
    c = client(link=Link(min_ms=20, max_ms=400, jitter=0, on_change=hook), on_error=errs.append)
    await c.connect(wait=True)
    d.check(c.isconnected(), "connected although the hook raised")
    await c.publish("t/a", b"one", qos=1)
    d.check(await until(lambda: c.pending() == 0), "and the message went through")
    d.check(c._task is not None and not errs, "the reader goes on, nothing to report")
    await c.disconnect()
    print("UPS", ups)
    d.check(ups[:1] == [True], "the hook was called: %r" % ups)


async def suback_refused():
    # two subscriptions made offline go out on connect without waiting for their SUBACKs;
    # the broker refuses cmd/bad (0x80): on_error gets MQTTException(0x80), errors counts
    # it, the log hook says so, and the filter leaves the session and the store, so the
    # next connection to a broker without the session sends cmd/ok only
    errs = []
    logs = []
    lk = Link(min_ms=100, max_ms=400, jitter=0)
    c = client(link=lk, on_error=errs.append, log=logs.append)
    await c.subscribe("cmd/bad", 1)
    await c.subscribe("cmd/ok", 1)
    d.check(await c.connect(clean_session=False, wait=True) is False, "connected")
    d.check(await until(lambda: c.errors, 10000), "the refusal reported")
    e = errs[0]
    print("REFUSED", repr(e), [m for m in logs if "refused" in m])
    d.check(c.errors == 1 and isinstance(e, MQTTException) and e.args[0] == 0x80,
            "on_error got MQTTException(0x80)")
    d.check(any("subscription refused" in m and "cmd/bad" in m for m in logs), "logged")
    d.check(list(c._s.subs) == [b"cmd/ok"], "dropped from the session: %r" % c._s.subs)
    s = d.peek(SessionStore("store"), d.cfg("HOST"), "guard")
    d.check(list(s.subs) == [b"cmd/ok"], "and from the store: %r" % s.subs)
    d.check(c.isconnected(), "the link stays")
    await c.disconnect()
    d.check(await c.connect(clean_session=False, wait=True) is False, "connected again")
    await asyncio.sleep_ms(300)  # the broker takes the SUBSCRIBE
    d.check(c.errors == 1, "nothing refused again")
    await c.disconnect()


async def suback_lost():
    # two subscriptions made offline go out on connect; the link goes before their
    # SUBACKs: the next connection (the broker kept the session) makes both again
    lk = Link(min_ms=100, max_ms=400, jitter=0)
    c = client(link=lk)
    await c.subscribe("cmd/a", 1)
    await c.subscribe("cmd/b", 2)
    await c.connect(clean_session=False)
    d.check(await until(lambda: lk.outages and c.isconnected() and c._rs is None
                        and not c._todo, 20000), "made on the next connection")
    print("LOST", repr(lk.last_error))
    d.check(sorted(c._s.subs.items()) == [(b"cmd/a", 1), (b"cmd/b", 2)], "in the session")
    await c.disconnect()


async def resent_after_loss():
    # messages(): the broker closes the link while the application handles a QoS 2
    # message, resends it on the next connection and then sends two new messages with the
    # same packet ID (each once the one before is complete): all three reach the
    # application once each, and no record is left. The first one's handling ends only
    # after the reconnect
    got = []
    c = MQTTClient("guard", d.cfg("HOST"), d.cfg("PORT"), keepalive=0, timeout=2,
                   link=Link(min_ms=20, max_ms=200, jitter=0))
    await c.connect(wait=True)

    async def read():
        async for t, m, r in c.messages():
            got.append(m)
            print("GOT", m.decode())
            if m == b"b":
                await until(lambda: c.link.outages and c.isconnected())
                await asyncio.sleep_ms(300)

    task = asyncio.create_task(read())
    await until(lambda: len(got) >= 3 and not c._s.rx2, 30000)
    d.check(got == [b"b", b"c", b"d"], "each once: %r" % got)
    d.check(not c._s.rx2, "no record left over: %r" % c._s.rx2)
    await c.disconnect()
    await task


async def coro_dup():
    # a coroutine callback: a QoS 2 message and its resend in one write: delivered once
    got = []

    async def cb(t, m):
        got.append(m)
        print("GOT", m.decode())
        await asyncio.sleep_ms(5)

    c = MQTTClient("guard", d.cfg("HOST"), d.cfg("PORT"), keepalive=0, timeout=2)
    c.set_callback(cb)
    await c.connect()
    await until(lambda: len(got) >= 2 and not c._s.rx2 and c._s.pid, 5000)
    await asyncio.sleep_ms(500)  # a second delivery would come by now
    d.check(got == [b"m0", b"x"], "each once: %r" % got)
    await c.disconnect()


async def bye_mid_connect():
    # disconnect() while the keeper's first attempt waits for a CONNACK that never comes:
    # that connect() returns None (the attempt ended on purpose, no failure), and the
    # client is offline as after any disconnect: publish queues, subscribe records
    c = client(link=Link(min_ms=100, max_ms=400, jitter=0))
    t = asyncio.create_task(c.connect(clean_session=False))
    await asyncio.sleep_ms(300)
    await c.disconnect()
    d.check(await t is None, "connect() returned None")
    await asyncio.sleep_ms(100)
    await c.publish("t/x", b"1", qos=1)
    await c.subscribe("t/y", 1)
    d.check(c.pending() == 1 and b"t/y" in c._s.subs, "queued and recorded offline")


async def qos0_flood():
    # QoS 0 messages of 8 KB while the broker reads nothing: once the socket takes no more,
    # publish waits for what waits to go out (never more than a packet of them in the
    # heap), and after timeout the link goes as dead (ETIMEDOUT); the publish under way
    # is counted lost, never cut. Bounded: 2,000 messages
    c = MQTTClient("flood", d.cfg("HOST"), d.cfg("PORT"), version=d.VERSION, keepalive=0,
                   timeout=3, link=Link(min_ms=60000, max_ms=60000))
    d.check(await c.connect(wait=True) is not None, "connected")
    d.small_sndbuf(c.sock)
    m = bytes(8192)
    errs = []
    most = 0
    for i in range(2000):
        try:
            await c.publish("t/f", m)
        except Exception as e:  # (what the application sees)
            errs.append(e)
            break
        most = max(most, len(c._ob or b""))
        if not c.isconnected():
            break
    print("SENT", i, "ERRS", errs, "UP", c.isconnected(), "LOST0", c.lost0, "MOST", most,
          "WHY", c.link.last_error)
    d.check(not errs, "no publish raised")
    d.check(not c.isconnected(), "the link went once the broker read nothing for timeout")
    d.check(isinstance(c.link.last_error, OSError) and c.link.last_error.errno == 110,
            "the link went as timed out")
    d.check(c.lost0 >= 1, "the publish that found the link gone was counted lost")
    d.check(most <= 8192 + 16, "at most one packet waited in the heap")


async def qos0_slow_reader():
    # the broker reads nothing for 2 s, then everything: QoS 0 messages of 8 KB published
    # meanwhile wait their turn (one packet at most in the heap, where a copy of each
    # would not fit) and every one arrives, in order
    c = MQTTClient("slow", d.cfg("HOST"), d.cfg("PORT"), version=d.VERSION, keepalive=0,
                   timeout=20)
    await c.connect()
    d.small_sndbuf(c.sock)
    m = bytearray(8192)
    most = 0
    for i in range(100):
        m[:4] = b"%04d" % i
        await c.publish("t/s", m)
        most = max(most, len(c._ob or b""))
    d.check(await until(lambda: c._ob is None), "all out")
    print("MOST", most, "UP", c.isconnected())
    d.check(c.isconnected(), "connected throughout")
    d.check(most <= 8192 + 16, "at most one packet waited in the heap")
    await c.disconnect()


async def end_inflight():
    # as dev_guard.py's: disconnect(end_session=True) connected with MQTT 5 counts what
    # the session held in dropped
    c = client(link=Link(), window=4)
    await c.connect(False)
    for i in range(3):
        await c.publish("t/end", "m%d" % i, qos=1)  # the broker never acknowledges
    print("PENDING", c.pending())
    await c.disconnect(end_session=True)
    print("DROPPED", c.dropped, "PENDING_AFTER", c.pending())
    d.check(c.dropped == 3 and not c.pending(), "the three given up, counted")


async def bye_waits():
    # as dev_guard.py's: disconnect() sends what waits for the socket first
    c = MQTTClient("bye", d.cfg("HOST"), d.cfg("PORT"), version=d.VERSION, keepalive=0,
                   timeout=10, link=Link())
    await c.connect(wait=True)
    d.small_sndbuf(c.sock)
    await c.publish("t/bye", bytes(30000))
    d.check(c._ob is not None, "the socket did not take it all at once")
    await c.disconnect()


async def bye_linger():
    # disconnect() waits up to a second for the broker to close after the DISCONNECT, and
    # this broker does not: meanwhile the event loop runs other tasks (this one, which
    # finds the client no longer connected while disconnect() is still under way); then
    # the client closes. The reader ends without a link failure
    c = MQTTClient("linger", d.cfg("HOST"), d.cfg("PORT"), version=d.VERSION, keepalive=0,
                   timeout=5, link=Link())
    await c.connect(wait=True)
    t = asyncio.create_task(c.disconnect())
    ran = 0
    t0 = time.ticks_ms()
    while not t.done() and time.ticks_diff(time.ticks_ms(), t0) < 20000:
        if not c.isconnected():
            ran += 1
        await asyncio.sleep_ms(0)
    await t
    print("RAN", ran, "TRIES", c.link.tries, "ERR", c.link.last_error)
    d.check(ran > 0, "other tasks ran while disconnect() waited for the broker's close")
    d.check(c.sock is None and not c.isconnected(), "closed")
    d.check(c.link.tries == 0 and c.link.last_error is None, "no link failure")


asyncio.run(globals()[d.cfg("TEST")]())
print("PASS")
