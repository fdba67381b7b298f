# The asyncio client's subscribe()/unsubscribe() cancelled (asyncio.wait_for) after its
# request went out, while it waits for the SUBACK/UNSUBACK: the broker makes the change
# all the same, so the session must hold it too (as the blocking client's subscribe
# interrupted in the same wait: owed, made again): after a broker that lost the session
# the node subscribes again to what it holds. A scripted broker never answers the
# request, then closes; the keeper reconnects to a broker without the session.
# devcfg: HOST, PORT, ROOT, OP ("sub": subscribe t/cmd; "unsub": subscribe t/cmd
# offline first (made on connect), then unsubscribe it)
import os
import asyncio

import devlib as d
from mqttsession import Link, SessionStore
from mqttsession.aio import MQTTClient

ROOT = d.cfg("ROOT")
try:
    os.mkdir(ROOT)
except OSError:
    pass


async def main():
    c = MQTTClient("aiocsub", d.cfg("HOST"), d.cfg("PORT"), store=SessionStore(ROOT),
                   keepalive=30, timeout=20, link=Link(min_ms=100))
    if d.cfg("OP") == "unsub":
        await c.subscribe("t/cmd", 1)  # offline: recorded, made on connect
    await c.connect(clean_session=False, wait=True)
    try:
        if d.cfg("OP") == "sub":
            await asyncio.wait_for(c.subscribe("t/cmd", 1), 1)
        else:
            await asyncio.wait_for(c.unsubscribe("t/cmd"), 1)
        print("SUB returned")
    except BaseException as e:
        print("SUB raised", repr(e))
    print("SUBS", sorted(c._s.subs))
    # the broker closes; the keeper reconnects (Session Present 0)
    for _ in range(600):
        if c.link.outages and c.isconnected():
            break
        await asyncio.sleep_ms(50)
    await asyncio.sleep_ms(500)  # what the reconnect sends goes out
    print("RECONNECTED", c.isconnected())
    print("SUBS AFTER", sorted(c._s.subs))


asyncio.run(main())
print("PASS")
