# The client's default queue with a store (queue=None): bounded by the store's max_bytes
# (a quarter of the filesystem), 16 messages in RAM and the rest in flash. On a 1 MiB
# littlefs image (ESP32 geometry), a node offline publishes readings until the store is
# full, reboots, and drains them all to the broker; a node given queue=16 still stops at
# 16 (OSError ENOBUFS). devcfg: HOST, PORT, IMAGE, PREFIX, API ("blocking", "aio").
# Prints "FULL <messages taken> <errno of the refusal>", "RING <RAM ring>", "PENDING <after
# the reboot>", "DRAINED <pending after the drain>", "Q16 <taken> <errno>".
import os

import blockdev
import devlib as d
import vfs
from mqttsession import MQTTClient, SessionStore

IMG = d.cfg("IMAGE")
API = d.cfg("API", "blocking")
topic = d.topic("r")
MAX = 5000  # the loop's bound: the store's is about 2,000 here


def mount():
    bd = blockdev.mount(IMG, "/flash", block_count=256, prog_size=32)
    bd.sync = False
    return bd


def fill(c, n):
    # publishes offline (no connect yet: a store takes them) until refused
    for i in range(n):
        try:
            c.publish(topic, b"%06d-reading" % i, qos=1)
        except OSError as e:
            return i, e.errno
    return n, 0


def aio_fill(n):
    import asyncio
    from mqttsession.aio import MQTTClient as A

    c = A("qdef", d.cfg("HOST"), d.cfg("PORT"), store=SessionStore("/flash/.mqtt"))

    async def go():
        for i in range(n):
            try:
                await c.publish(topic, b"%06d-reading" % i, qos=1)
            except OSError as e:
                return i, e.errno
        return n, 0

    return c, asyncio.run(go())


try:
    os.remove(IMG)
except OSError:
    pass
bd = mount()
if API == "aio":
    c, (n, e) = aio_fill(MAX)
else:
    c = MQTTClient("qdef", d.cfg("HOST"), d.cfg("PORT"), store=SessionStore("/flash/.mqtt"))
    n, e = fill(c, MAX)
print("FULL", n, e)
print("RING", c._s.cap)
del c
vfs.umount("/flash")
bd.close()

# the reboot, then the drain (the blocking client for both: the same store); the host's
# observer counts what arrives
bd = mount()
c = MQTTClient("qdef", d.cfg("HOST"), d.cfg("PORT"), store=SessionStore("/flash/.mqtt"),
               window=16)
print("PENDING", c.pending())
c.connect(clean_session=False)
d.pump(c, lambda: not c.pending(), 180000)
print("DRAINED", c.pending())
c.disconnect()

# a given queue keeps its bound
c = MQTTClient("qdef16", d.cfg("HOST"), d.cfg("PORT"), store=SessionStore("/flash/.mqtt"),
               queue=16)
print("Q16", *fill(c, 40))
vfs.umount("/flash")
bd.close()
print("PASS")
