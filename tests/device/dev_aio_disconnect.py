# The asyncio client's disconnect() and its last wait, with calls from other tasks
# (tests/host/test_aio_disconnect.py); the host judges what the broker saw.
import asyncio
import time

import devlib as d
from mqttsession.aio import MQTTClient
from mqttsession.link import Link


async def until(cond, ms=20000):
    t0 = time.ticks_ms()
    while not cond() and time.ticks_diff(time.ticks_ms(), t0) < ms:
        await asyncio.sleep_ms(5)
    return cond()


def mk(cid="bye", **kw):
    kw.setdefault("version", d.VERSION)
    kw.setdefault("keepalive", 0)
    kw.setdefault("timeout", 2)
    return MQTTClient(cid, d.cfg("HOST"), d.cfg("PORT"), **kw)


async def strike():
    # a QoS 1 message in flight; disconnect() lingers (the broker keeps the connection
    # open after DISCONNECT, having sent a byte that ends the reader); connect() from this
    # task meanwhile: its first attempt fails (the keeper backs off 2 s). The linger's
    # close must not count an outage with the message in flight (strikes=1: set aside)
    got = []
    lk = Link(min_ms=2000, max_ms=2000, jitter=0)
    c = mk(link=lk, window=4, strikes=1)
    c.on_aside = lambda t, m, why: got.append((t, why))
    await c.connect(clean_session=False, wait=True)
    await c.publish("t/keep", b"x", qos=1)
    t = asyncio.create_task(c.disconnect())
    d.check(await until(lambda: not c._want and c._task is None, 5000), "reader ended")
    print("LINGERING", not t.done())  # (either way: the old reader may end first or last)
    await c.connect(clean_session=False)
    await t
    d.check(await until(lambda: c.isconnected() and not c.pending(), 8000), "reconnected, sent")
    print("ASIDE", got, "DROPPED", c.dropped)
    d.check(not got, "the message was not set aside")
    await c.disconnect()


async def cancel_linger():
    # the task running disconnect() is cancelled during the linger: the client ends closed
    c = mk(link=Link())
    await c.connect(wait=True)
    t = asyncio.create_task(c.disconnect())
    d.check(await until(lambda: not c._want and c.sock is None, 5000), "lingering")
    await asyncio.sleep_ms(100)
    t.cancel()
    try:
        await t
    except asyncio.CancelledError:
        pass
    print("AFTER", c.sock, c._up, c.down.is_set(), c._task)
    d.check(c.sock is None and not c._up and c.down.is_set(), "closed")
    d.check(await until(lambda: c._task is None, 3000), "reader ended")
    d.check(c.link.tries == 0, "no failure")
    d.check(await c.connect(wait=True) is not None and c.isconnected(), "connect again")
    await c.disconnect()


async def twice():
    # two disconnect() calls at once (the second while the first lingers)
    c = mk(link=Link())
    await c.connect(wait=True)
    t1 = asyncio.create_task(c.disconnect())
    d.check(await until(lambda: not c._want and c.sock is None, 5000), "lingering")
    t0 = time.ticks_ms()
    await c.disconnect()
    print("SECOND_MS", time.ticks_diff(time.ticks_ms(), t0), "T1DONE", t1.done())
    await t1
    d.check(c.sock is None and not c._up, "closed")
    d.check(await until(lambda: c._task is None, 3000), "reader ended")
    d.check(c.link.tries == 0 and c.link.last_error is None, "no failure")
    d.check(await c.connect(wait=True) is not None and c.isconnected(), "connect again")
    await c.disconnect()


async def calls_in_linger():
    # publish (QoS 0/1/2) and subscribe from another task while disconnect() lingers: the
    # QoS 1/2 ones queued, the subscription recorded; a connect() after it sends them
    c = mk(link=Link(), window=4)
    await c.connect(clean_session=False, wait=True)
    t = asyncio.create_task(c.disconnect())
    d.check(await until(lambda: not c._want and c.sock is None, 5000), "lingering")
    await c.publish("t/q0", b"0", qos=0)
    await c.publish("t/q1", b"1", qos=1)
    await c.publish("t/q2", b"2", qos=2)
    await c.subscribe("cmd/#", 1)
    print("LOST0", c.lost0, "PENDING", c.pending(), "LINGER", not t.done())
    await t
    d.check(c.pending() == 2, "two queued")
    d.check(await c.connect(clean_session=False, wait=True) is not None, "connect")
    ok = await until(lambda: c.pending() == 0, 8000)
    print("STATE", c._s.nin, c.pending(), c.isconnected(), c.link.tries, c.link.last_error)
    d.check(ok, "sent: %d" % c.pending())
    await asyncio.sleep_ms(300)
    await c.disconnect()


async def connect_in_linger():
    # connect() from another task while disconnect() lingers and the old reader still
    # waits (the broker sends nothing, keeps the connection): it waits for the old reader,
    # then makes its own connection; the queued message goes out on it; events right
    c = mk(link=Link(), window=4)
    await c.connect(clean_session=False, wait=True)
    c.up.clear()
    t = asyncio.create_task(c.disconnect())
    d.check(await until(lambda: not c._want and c.sock is None, 5000), "lingering")
    await c.publish("t/q1", b"1", qos=1)
    t0 = time.ticks_ms()
    r = await c.connect(clean_session=False, wait=True)
    print("CONNECT", r, time.ticks_diff(time.ticks_ms(), t0), "T", t.done())
    await t
    d.check(c.isconnected(), "connected after the linger")
    d.check(c.down.is_set() and c.up.is_set(), "down and up")
    d.check(await until(lambda: c.pending() == 0, 8000), "sent")
    print("LINK", c.link.tries, c.link.last_error, c.link.outages)
    d.check(c.link.tries == 0 and c.link.last_error is None, "no failure")
    await c.disconnect()


async def end_will():
    # MQTT 3.1.1, connected: disconnect(end_session=True) makes a clean connect first; the
    # old connection must not end abruptly (the broker would send the will)
    c = mk(cid=d.cfg("CID"), link=Link() if d.cfg("LINK") else None, keepalive=30)
    c.set_last_will(d.cfg("WILL"), b"gone", qos=1)
    await c.connect(clean_session=False, wait=True)
    await asyncio.sleep_ms(300)
    await c.disconnect(end_session=True)
    print("DISCONNECTED")


async def blocking_end_will():
    from mqttsession import MQTTClient as B
    c = B(d.cfg("CID"), d.cfg("HOST"), d.cfg("PORT"), version=d.VERSION, keepalive=30)
    c.set_last_will(d.cfg("WILL"), b"gone", qos=1)
    c.connect(clean_session=False)
    time.sleep_ms(300)
    c.disconnect(end_session=True)
    print("DISCONNECTED")


async def qos2_once():
    # a QoS 2 message taken from messages(), then disconnect() (its PUBREC goes); the
    # broker sends it again after the DISCONNECT (dropped in the linger) and again on the
    # next connection (Session Present): delivered once
    got = []
    c = mk(link=Link())

    async def consume():
        async for m in c.messages():
            got.append(m)

    await c.connect(clean_session=False, wait=True)
    task = asyncio.create_task(consume())
    d.check(await until(lambda: got, 5000), "got it")
    await c.disconnect()
    print("TASKDONE", task.done())
    await c.connect(clean_session=False, wait=True)
    task = asyncio.create_task(consume())
    await asyncio.sleep_ms(1500)
    print("GOT", got, "RX2", c._s.rx2)
    d.check(len(got) == 1, "once")
    await c.disconnect()


async def cancel_flight():
    # the task running disconnect() is cancelled while it waits for the answers to the
    # messages in flight: what state is the client left in?
    c = mk(link=Link(), window=4, timeout=3)
    await c.connect(clean_session=False, wait=True)
    await c.publish("t/a", b"1", qos=1)
    t = asyncio.create_task(c.disconnect())
    await asyncio.sleep_ms(300)
    d.check(c._quota == 0, "waiting for the flight")
    t.cancel()
    try:
        await t
    except asyncio.CancelledError:
        pass
    print("STATE", c.isconnected(), c._want, c._quota, c._task is not None, c._bye)
    d.check(c._quota != 0, "quota restored")
    await c.publish("t/b", b"2", qos=1)
    await asyncio.sleep_ms(300)
    await c.disconnect()
    print("END", c.isconnected(), c.pending())


async def late_output():
    # disconnect() waits for a QoS 1 answer; meanwhile another task publishes a large
    # QoS 0 message the socket does not take at once. disconnect() says what publish
    # accepted goes out before the DISCONNECT
    c = mk(link=Link(), window=4, timeout=30)  # (the drain within it, on a loaded machine too)
    await c.connect(clean_session=False, wait=True)
    d.small_sndbuf(c.sock)
    await c.publish("t/a", b"1", qos=1)
    t = asyncio.create_task(c.disconnect())
    await asyncio.sleep_ms(50)
    d.check(c._quota == 0 and c.isconnected(), "disconnect() waits for the answer")
    await c.publish("t/big", bytes(30000))
    print("OB", c._ob is not None)
    await t
    print("DONE")


async def hook_seq():
    # connect() while disconnect() lingers, the old reader ended already: the link hook
    # and outages see the disconnect as when connect() comes after the linger
    seen = []
    lk = Link(on_change=seen.append)
    c = mk(link=lk)
    c.down.clear()
    await c.connect(clean_session=False, wait=True)
    t = asyncio.create_task(c.disconnect())
    d.check(await until(lambda: not c._want and c._task is None, 5000), "reader ended")
    print("LINGERING", not t.done())  # (either way: the old reader may end first or last)
    d.check(await c.connect(clean_session=False, wait=True) is not None, "connected")
    await t
    print("SEEN", seen, "OUTAGES", lk.outages, "UP", lk.up, "DOWN", c.down.is_set())
    d.check(seen == [True, False, True] and lk.outages == 1, "the disconnect seen")
    await c.disconnect()
    print("SEEN", seen, "OUTAGES", lk.outages)


async def twice_flight():
    # two disconnect() calls at once, both waiting for the answer to a message in flight;
    # then connect() again: QoS 1 messages still go out
    c = mk(link=Link(), window=4, timeout=3)
    await c.connect(clean_session=False, wait=True)
    await c.publish("t/a", b"1", qos=1)
    a = asyncio.create_task(c.disconnect())
    await asyncio.sleep_ms(50)
    b = asyncio.create_task(c.disconnect())
    await asyncio.sleep_ms(50)
    d.check(c._quota == 0 and c.isconnected(), "both wait for the answer (precondition)")
    await a
    await b
    print("QUOTA", c._quota, "WINDOW", c.window)
    d.check(await c.connect(clean_session=False, wait=True) is not None, "connected again")
    await c.publish("t/b", b"2", qos=1)
    d.check(await until(lambda: c.pending() == 0, 5000), "t/b sent and answered")
    await c.disconnect()


async def sub_pending():
    # subscribe() waits for its SUBACK when disconnect() (another task) ends the link;
    # with a keeper it is recorded and made on the next connect; subscribe() works after
    c = mk(link=Link(), timeout=3)
    await c.connect(clean_session=False, wait=True)
    st = asyncio.create_task(c.subscribe("cmd/#", 1))
    await asyncio.sleep_ms(100)
    t0 = time.ticks_ms()
    await c.disconnect()
    r = await st
    print("SUB", r, time.ticks_diff(time.ticks_ms(), t0), "CN13", c._cn[13])
    d.check(await c.connect(clean_session=False, wait=True) is not None, "connected")
    r2 = await c.subscribe("b/#", 1)
    print("SUB2", r2, "subs", c._s.subs if hasattr(c._s, "subs") else None)
    await asyncio.sleep_ms(300)
    print("TRIES", c.link.tries, c.link.last_error, c.isconnected())
    d.check(c.isconnected() and c.link.tries == 0, "still connected")
    await c.disconnect()


asyncio.run(globals()[d.cfg("TEST")]())
print("PASS")
