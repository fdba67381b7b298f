# A connected client whose session a later client takes over (tests/host/test_store_shared.py):
# the later one connects with the same client ID, and the broker ends the earlier one's
# link. The earlier client never connects again (its CONNECT would end the later one's
# link in turn, and the two would take the session from each other at the broker): its
# connect raises OSError(EBUSY), the asyncio client's reader ends with it, and its
# publish raises it; with a keeper, the blocking client's next call raises it (a link
# failure would not: a node that only reads would retry for ever). The later client
# keeps its link and its messages go out.
# devcfg: FIRST "client", "keeper" (a blocking client with a Link) or "aio". Prints
# "EARLIER <errno>" and "LATER <messages received>".
import asyncio
import time

import devlib as d
from mqttsession import Link, MQTTClient, SessionStore

ROOT, BD = d.flash()
STORE = ROOT + "/.mqtt"
H = d.cfg("HOST")
P = d.cfg("PORT")
got = []


async def main():
    if d.cfg("FIRST") == "aio":
        from mqttsession import aio

        errs = []
        c1 = aio.MQTTClient("shared", H, P, store=SessionStore(STORE), keepalive=30,
                            link=Link(min_ms=50, max_ms=200), on_error=errs.append)
        d.check(await c1.connect(clean_session=False, wait=True) is not None, "connected")
    else:
        c1 = MQTTClient("shared", H, P, store=SessionStore(STORE), keepalive=30,
                        link=Link(min_ms=50, max_ms=200) if d.cfg("FIRST") == "keeper"
                        else None)
        c1.connect(clean_session=False)
    c2 = MQTTClient("shared", H, P, store=SessionStore(STORE), keepalive=30)
    c2.set_callback(lambda t, m: got.append(m))
    c2.connect(clean_session=False)  # the broker ends c1's link
    c2.subscribe(d.topic("x"), 1)
    if d.cfg("FIRST") == "aio":
        t0 = time.ticks_ms()
        while c1._task is not None and time.ticks_diff(time.ticks_ms(), t0) < 30000:
            await asyncio.sleep_ms(20)  # the keeper's reconnect meets the takeover
        d.check(c1._task is None, "the reader ended")
        d.check(errs and errs[0].args[0] == 16, "on_error got it: %r" % errs)
        try:
            await c1.publish(d.topic("x"), b"A", qos=1)
            e = None
        except OSError as x:
            e = x
    elif d.cfg("FIRST") == "keeper":
        e = None
        t0 = time.ticks_ms()
        while e is None and time.ticks_diff(time.ticks_ms(), t0) < 30000:
            try:
                c1.check_msg()  # the link lost, then the keeper's reconnect
                time.sleep_ms(10)
            except OSError as x:
                e = x
        d.raises(OSError, c1.publish, d.topic("x"), b"A", qos=1)
    else:
        e = d.raises(OSError, c1.connect, False)
        d.raises(OSError, c1.publish, d.topic("x"), b"A", qos=1)
    print("EARLIER", e and e.args[0])
    for i in range(3):
        c2.publish(d.topic("x"), b"B%d" % i, qos=1)
    d.pump(c2, lambda: len(got) >= 3)
    d.check(c2.isconnected(), "the later client's link stays")
    print("LATER", b" ".join(got).decode())
    c2.disconnect()


asyncio.run(main())
print("PASS")
