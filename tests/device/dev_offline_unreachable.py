# A node whose broker cannot be reached at boot (tests/host/test_offline_boots.py): a host
# name that does not resolve, or a listener that accepts and never answers (HOST, PORT).
# With a keeper, connect(wait=False) (the asyncio client's connect()) returns None, publish
# queues and subscribe records, and no call hangs; without one connect() raises OSError.
import asyncio
import time

import devlib as d
from mqttsession import Link, SessionStore

ROOT, BD = d.flash()
AIO = d.cfg("AIO", 0)
LINK = d.cfg("LINK", 1)


def kw():
    k = dict(keepalive=30, timeout=2, version=d.VERSION,
             store=SessionStore(ROOT + "/.mqtt"))
    if LINK:
        k["link"] = Link(min_ms=50, max_ms=300)
    return k


def blocking():
    from mqttsession import MQTTClient

    c = MQTTClient(None, d.cfg("HOST"), d.cfg("PORT"), **kw())
    t0 = time.ticks_ms()
    if not LINK:
        e = d.raises(OSError, c.connect, clean_session=False)
        print("RAISED", repr(e))
        return
    r = c.connect(clean_session=False, wait=False)
    print("CONNECT", r, time.ticks_diff(time.ticks_ms(), t0))
    c.subscribe(d.topic("cmd"), 1)
    c.publish(d.topic("r"), b"m1", qos=1)
    c.publish(d.topic("r"), b"m2", qos=2)
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < 6000:  # past timeout: attempts fail
        c.check_msg()
        time.sleep_ms(10)
    print("LAST_ERROR", repr(c.link.last_error), "TRIES", c.link.tries)
    d.check(isinstance(c.link.last_error, OSError), "the keeper's error is an OSError")
    d.check(c.pending() == 2, "both queued")


async def aio():
    from mqttsession.aio import MQTTClient

    c = MQTTClient(None, d.cfg("HOST"), d.cfg("PORT"), **kw())
    t0 = time.ticks_ms()
    if not LINK:
        try:
            await c.connect(clean_session=False)
        except OSError as e:
            print("RAISED", repr(e))
            return
        raise AssertionError("FAIL connect did not raise")
    r = await c.connect(clean_session=False)
    print("CONNECT", r, time.ticks_diff(time.ticks_ms(), t0))
    await c.subscribe(d.topic("cmd"), 1)
    await c.publish(d.topic("r"), b"m1", qos=1)
    await c.publish(d.topic("r"), b"m2", qos=2)
    await asyncio.sleep_ms(6000)
    print("LAST_ERROR", repr(c.link.last_error), "TRIES", c.link.tries)
    d.check(isinstance(c.link.last_error, OSError), "the keeper's error is an OSError")
    d.check(c.pending() == 2, "both queued")
    await c.disconnect()


if AIO:
    asyncio.run(aio())
else:
    blocking()
print("PASS")
