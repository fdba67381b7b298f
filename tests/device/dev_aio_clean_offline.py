# The asyncio client booting offline with the default connect() (clean_session=True) and a
# keeper (tests/host/test_aio_clean_offline.py): connect() returns None, then the node
# subscribes (recorded, made on connect) and publishes QoS 1 (queued). Once the keeper has
# made the clean start the application asked for, the subscription takes commands and the
# message queued after connect() goes out: they belong to the session the application
# started, not the one it asked to give up.
import asyncio
import time

import devlib as d
from mqttsession import Link, SessionStore
from mqttsession.aio import MQTTClient

ROOT, BD = d.flash()


async def main():
    st = SessionStore(ROOT + "/.mqtt") if d.cfg("STORE") else None
    c = MQTTClient(d.cfg("CID"), d.cfg("HOST"), d.cfg("PORT"), keepalive=30, timeout=5,
                   version=d.VERSION, store=st, link=Link(min_ms=50, max_ms=300))
    d.check(await c.connect() is None, "offline: connect() returns None")
    await c.subscribe(d.topic("cmd"), 1)
    await c.publish(d.topic("r"), b"offline", qos=1)
    print("OFFLINE", c.pending())
    t0 = time.ticks_ms()
    while not c.isconnected() and time.ticks_diff(time.ticks_ms(), t0) < 30000:
        await asyncio.sleep_ms(20)
    d.check(c.isconnected(), "the keeper connected")
    print("UP")
    got = []
    async for t, m, r in c.messages():
        print("GOT", m.decode())
        got.append(m)
        break
    t0 = time.ticks_ms()
    while c.pending() and time.ticks_diff(time.ticks_ms(), t0) < 30000:
        await asyncio.sleep_ms(20)
    print("DROPPED", c.dropped, "SUBS", list(c._s.subs))
    d.check(c.dropped == 0, "nothing published after connect() given up")
    await c.disconnect()


asyncio.run(main())
print("PASS")
