# What goes out again after a reset with QoS 1/2 messages in flight, on both clients
# (tests/host/test_reboot_resend_flags.py). devcfg.BOOT 1: connect (clean_session=False, a
# store), publish "a" QoS 1, "b" QoS 2, "c" QoS 2 (window 4: all in flight), wait until
# the broker's PUBREC for "c" is recorded, then print "CUT" and wait for the host's kill.
# BOOT 2: connect again (the broker says Session Present 1), stay connected RUN_MS, print
# "PENDING". devcfg.API "aio": the asyncio client, else the blocking one.
import time

import devlib as d
from mqttsession import SessionStore

ROOT, BD = d.flash()
BOOT1 = d.cfg("BOOT") == 1
KW = {"window": 4, "store": SessionStore(ROOT + "/.mqtt"), "keepalive": 0, "timeout": 10,
      "version": d.VERSION}
OFF = d.cfg("OFF")  # BOOT 1's first connect fails: the messages are queued offline, then sent
MSGS = ((b"a", 1), (b"b", 2), (b"c", 2))


def released(c):
    # the PUBREC for "c" taken (its slot holds _REL, 16)
    return any(f & 16 for f in c._s.fl)


if d.cfg("API") == "aio":
    import asyncio

    from mqttsession.aio import MQTTClient

    async def main():
        if BOOT1 and OFF:
            # a keeper (without one, awaits after a failed connect raise its error)
            from mqttsession import Link

            c = MQTTClient("dup", d.cfg("HOST"), d.cfg("PORT"), link=Link(min_ms=500), **KW)
            print("OFFLINE", await c.connect(clean_session=False))
            for m, q in MSGS:
                await c.publish("t/" + m.decode(), m, qos=q)
            print("PRESENT", await c.connect(clean_session=False, wait=True))
        else:
            c = MQTTClient("dup", d.cfg("HOST"), d.cfg("PORT"), **KW)
            print("PRESENT", await c.connect(clean_session=False))
        if BOOT1:
            if not OFF:
                for m, q in MSGS:
                    await c.publish("t/" + m.decode(), m, qos=q)
            t0 = time.ticks_ms()
            while not released(c) and time.ticks_diff(time.ticks_ms(), t0) < 30000:
                await asyncio.sleep_ms(10)
            d.check(released(c), "PUBREC taken")
            d.freeze("CUT")
        await asyncio.sleep_ms(d.cfg("RUN_MS", 1500))
        print("PENDING", c.pending())
        # (no disconnect(): it would wait its timeout for answers the script never sends;
        # the broker has recorded what came)

    asyncio.run(main())
else:
    from mqttsession import MQTTClient

    c = MQTTClient("dup", d.cfg("HOST"), d.cfg("PORT"), **KW)
    if BOOT1 and OFF:
        try:
            c.connect(clean_session=False)
        except OSError as e:
            print("OFFLINE", repr(e))
        for m, q in MSGS:
            c.publish("t/" + m.decode(), m, qos=q)
    print("PRESENT", c.connect(clean_session=False))
    if BOOT1:
        if not OFF:
            for m, q in MSGS:
                c.publish("t/" + m.decode(), m, qos=q)
        d.check(d.pump(c, lambda: released(c), 30000), "PUBREC taken")
        d.freeze("CUT")
    t0 = time.ticks_ms()
    d.pump(c, lambda: False, d.cfg("RUN_MS", 1500))
    print("PENDING", c.pending())  # (no disconnect(): as above)
print("PASS")
