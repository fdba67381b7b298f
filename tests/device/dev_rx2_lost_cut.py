# Incoming QoS 2 IDs of a session the broker lost, with a power cut right after the
# CONNACK that says so (tests/host/test_rx2_lost_cut.py, scripted broker). STAGE 1: takes
# the first message (its PUBREC goes, no PUBREL comes). STAGE 2: connects, the broker
# answers Session Present 0; frozen (devlib.freeze: the host's SIGKILL) as the session
# starts over, before it writes anything. STAGE 3: connects again (the broker has the
# session STAGE 2 made: Session Present 1) and takes what the new session sends. TAKE:
# the blocking client ("blocking") or the asyncio client's messages() ("messages").
# Prints "GOT" with every payload delivered.
import time

import devlib as d
from mqttsession import Link, SessionStore
from mqttsession.session import Session

ROOT, BD = d.flash()
STAGE = d.cfg("STAGE", 1)
HOW = d.cfg("TAKE", "blocking")
WANT = d.cfg("WANT", 1)
got = []

if STAGE == 2:
    _restart = Session.restart

    def restart(s, present):
        if not present:
            d.freeze("CUT")  # the power goes as the broker's new session is taken up
        _restart(s, present)

    Session.restart = restart


def make(aio):
    if aio:
        from mqttsession.aio import MQTTClient
    else:
        from mqttsession import MQTTClient
    return MQTTClient("lostcut", d.cfg("HOST"), d.cfg("PORT"), keepalive=30, timeout=5,
                      version=d.VERSION, store=SessionStore(ROOT + "/.mqtt"),
                      link=Link(min_ms=50, max_ms=200))


def blocking():
    c = make(False)
    c.set_callback(lambda t, m: got.append(m))
    c.connect(clean_session=False)
    t0 = time.ticks_ms()
    while len(got) < WANT and time.ticks_diff(time.ticks_ms(), t0) < d.cfg("RUN_MS", 5000):
        c.check_msg()
        time.sleep_ms(1)
    c.check_msg()


def aio():
    import asyncio

    async def reading(c):
        async for t, m, r in c.messages():
            got.append(m)

    async def main():
        c = make(True)
        asyncio.create_task(reading(c))
        await c.connect(clean_session=False)
        t0 = time.ticks_ms()
        while len(got) < WANT and time.ticks_diff(time.ticks_ms(), t0) < d.cfg("RUN_MS", 5000):
            await asyncio.sleep_ms(20)
        await asyncio.sleep_ms(300)  # the answer to the last one taken goes out

    asyncio.run(main())


blocking() if HOW == "blocking" else aio()
print("GOT", " ".join(m.decode() for m in got))
print("PASS")
