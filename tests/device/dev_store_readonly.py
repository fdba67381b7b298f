# A store on a filesystem mounted read-only (vfs.mount(..., readonly=True), as a board's
# may be while its flash is shared over USB or after a fault): littlefs raises OSError(30)
# (EROFS) at every write. devcfg: HOST, PORT, IMAGE, CID, PREFIX, AIO. Three QoS 1
# messages queued offline with the filesystem read-write; a boot with it read-only (AIO:
# the asyncio client): the node loads them and connects, the last one's completion cannot
# be recorded (the link goes, and the keeper's backoff grows as for a broker that drops
# it), publish(qos=1) raises EROFS; a boot with it read-write again, and the drain.
# Prints "LINK <tries> <the errnos the keeper was given>", "REFUSED <errno>", "ERRS <what
# the read-only boot's calls raised>", "PENDING <after the read-only boot>", "LEFT <at
# the end>", "GOT <payload>" per delivery to a subscriber.
import os

import blockdev
import devlib as d
import vfs
from mqttsession import Link, MQTTClient, SessionStore

IMG = d.cfg("IMAGE")
CID = d.cfg("CID")
topic = d.topic("t")


def mount(ro, new=False):
    try:
        vfs.umount("/flash")
    except OSError:
        pass
    bd = d.nosync(blockdev.FileBlockDev(IMG, 4096, 64, 32, create=new))
    if new:
        vfs.VfsLfs2.mkfs(bd, progsize=32)
    vfs.mount(vfs.VfsLfs2(bd, progsize=32), "/flash", readonly=ro)


def node(aio=False):
    if aio:
        from mqttsession.aio import MQTTClient as C
    else:
        C = MQTTClient
    return C(CID, d.cfg("HOST"), d.cfg("PORT"), store=SessionStore("/flash/.mqtt"),
             window=8, keepalive=60, link=Link(min_ms=100, max_ms=60000))


got = []
o = d.client(CID + "-o")
o.set_callback(lambda t, m: got.append(m))
o.connect()
o.subscribe(topic, 1)

mount(False, True)
c = node()
c.connect(clean_session=False)
c.disconnect()
for i in range(3):
    c.publish(topic, b"q%d" % i, qos=1)  # offline: in flash
del c

mount(True)  # a reboot, the filesystem read-only
try:
    os.mkdir("/flash/probe")
    raise AssertionError("FAIL the mount is not read-only")
except OSError as e:
    d.check(e.errno == 30, "the mount refuses writes (EROFS)")
c = node(d.cfg("AIO"))
d.check(c.pending() == 3, "the read-only boot loads the 3 queued")
errs = []
why = []  # the errors the keeper was given (Link.failed), the last in link.last_error
_failed = c.link.failed
c.link.failed = lambda e: (why.append(getattr(e, "errno", e)), _failed(e))


def blocking():
    try:
        c.connect(clean_session=False)
    except OSError as e:
        errs.append(repr(e))
    d.pump_noting(c, lambda: c.link.tries >= 3, 30000, errs)
    print("LINK", c.link.tries, *why)
    print("REFUSED", d.raises(OSError, c.publish, topic, b"refused", qos=1).errno)
    print("ERRS", len(errs), " ".join(errs))
    print("PENDING", c.pending())
    c.disconnect()


async def aio():
    try:
        await c.connect(clean_session=False)
    except OSError as e:
        errs.append(repr(e))
    for _ in range(300):  # the client's own tasks run meanwhile
        if c.link.tries >= 3:
            break
        await asyncio.sleep_ms(100)
    print("LINK", c.link.tries, *why)
    try:
        await c.publish(topic, b"refused", qos=1)
        raise AssertionError("FAIL publish(qos=1) took a message it cannot keep")
    except OSError as e:
        print("REFUSED", e.errno)
    print("ERRS", len(errs), " ".join(errs))
    print("PENDING", c.pending())
    await c.disconnect()


if d.cfg("AIO"):
    import asyncio

    asyncio.run(aio())
else:
    blocking()
d.pump(o, lambda: len(got) >= 3, 20000)  # the 3 went out
del c

mount(False)  # a reboot, read-write again
c = node()
c.connect(clean_session=False)
d.pump(c, lambda: not c.pending(), 20000)
d.pump(o, lambda: False, 1000)  # what else comes
print("LEFT", c.pending())
c.disconnect()
o.disconnect()
for m in got:
    print("GOT", m.decode())
print("PASS")
