# A segment of the backlog the flash cannot read for a while: 150 messages queued offline
# (QoS 1 and 2: four segments and a tail), then a boot during which every read of the
# oldest segment's data block raises OSError(EIO) (the driver's error; the mount and the
# directories read fine), the node connected and draining, then a power cut, and a boot
# with the flash sound that drains the rest. devcfg: HOST, PORT, IMAGE, PREFIX, and LIVE=1:
# the flash recovers during the failing boot instead (no power cut, no second boot);
# FULL=1: the failing boot is offline and publishes into a full store (drop_oldest);
# API=aio (with LIVE=1): the asyncio client, nothing published during that boot; SEG=n:
# the nth segment (32 messages each) is the unreadable one, not the oldest; WAIT=1 (with
# LIVE=1, KA=0): once the flash reads again, one wait_msg(), "WAITED <ms it took>".
# Prints "GOT <distinct payloads the subscriber got> of <messages accepted>", "DUPS <QoS 2 ones it got twice>",
# "REPORTED <store reports during the failing boot>", "STALLED <messages still pending
# when the failing part ended>", "FULL <errno> <dropped>" when a publish found no room.
import os
import time

import devlib as d
from eiodev import Dev
import vfs
from mqttsession import Link, MQTTClient, SessionStore

IMG = d.cfg("IMAGE")
N = 150
topic = d.topic("q")
Q = "/flash/.mqtt/%s/drain-eio/q" % d.cfg("HOST")


def mount():
    bd = d.nosync(Dev(IMG, 4096, 64, 32))
    vfs.mount(vfs.VfsLfs2(bd, progsize=32, readsize=32), "/flash")
    return bd


def umount(bd):
    vfs.umount("/flash")
    bd.close()


def node(st):
    return MQTTClient("drain-eio", d.cfg("HOST"), d.cfg("PORT"), store=st, window=8,
                      queue=1000, keepalive=d.cfg("KA", 60), link=Link(min_ms=20, max_ms=50))


def blocks(fn):
    # the blocks a fresh mount reads for fn()
    bd = mount()
    bd.seen = set()
    fn()
    seen = bd.seen
    umount(bd)
    return seen


try:
    os.remove(IMG)
except OSError:
    pass
bd = d.nosync(Dev(IMG, 4096, 64, 32))
vfs.VfsLfs2.mkfs(bd, progsize=32, readsize=32)
bd.close()
bd = mount()
c = node(SessionStore("/flash/.mqtt", ram=16))
c.connect(clean_session=False)
c.disconnect()
for i in range(N):
    c.publish(topic, b"m%d" % i, qos=1 + i % 2)
seg = Q + "/" + sorted(e[0] for e in os.ilistdir(Q))[d.cfg("SEG", 0)]
umount(bd)


def whole():
    with open(seg, "rb") as f:
        f.read()


data = blocks(whole) - blocks(lambda: os.stat(seg))
d.check(len(data) == 1, "the oldest segment's data block found: %r" % data)

got = []
o = d.client("drain-eio-o")
o.set_callback(lambda t, m: got.append(m))
o.connect()
o.subscribe(topic, 2)

bd = mount()
bd.bad = data
errs = []
M = N  # messages accepted
if d.cfg("FULL"):
    # offline, and the store made full: full="drop_oldest" cannot give up what it cannot
    # read, so the publish that finds no room raises ENOSPC and nothing is given up
    st = SessionStore("/flash/.mqtt", ram=16, max_bytes=24000)
    c = MQTTClient("drain-eio", d.cfg("HOST"), d.cfg("PORT"), store=st, window=8,
                   queue=1000, full="drop_oldest")
    for i in range(N, N + 300):
        try:
            c.publish(topic, b"m%d" % i, qos=1)
        except OSError as e:
            print("FULL", e.errno, c.dropped)
            break
        M += 1
elif d.cfg("API") == "aio":
    # the asyncio client, the flash recovering during the boot (LIVE): its reader and
    # clock alone must read the segment again (nothing is published meanwhile)
    import asyncio

    from mqttsession.aio import MQTTClient as AioClient

    async def aio():
        st = SessionStore("/flash/.mqtt", ram=16)
        c = AioClient("drain-eio", d.cfg("HOST"), d.cfg("PORT"), store=st, window=8,
                      queue=1000, keepalive=60, link=Link(min_ms=20, max_ms=50))
        await c.connect(clean_session=False)
        t0 = time.ticks_ms()  # the segments before the unreadable one go first
        while c.pending() > N - 32 * d.cfg("SEG", 0) and time.ticks_diff(
                time.ticks_ms(), t0) < 30000:
            await asyncio.sleep_ms(20)
        await asyncio.sleep_ms(1500)  # read again meanwhile: still waiting
        print("REPORTED", len(st.errors))
        print("STALLED", c.pending())
        bd.bad = ()
        t0 = time.ticks_ms()
        while c.pending() and time.ticks_diff(time.ticks_ms(), t0) < 30000:
            await asyncio.sleep_ms(20)
        print("LEFT", c.pending())
        await c.disconnect()

    asyncio.run(aio())
    c = None  # drained and disconnected: only the subscriber's part below
else:
    st = SessionStore("/flash/.mqtt", ram=16)
    c = node(st)
    try:
        c.connect(clean_session=False)
    except OSError as e:
        errs.append(e)
    # the segments before the unreadable one go first (a generous bound), then seconds
    # of reading it again
    d.pump_noting(c, lambda: c.pending() <= N - 32 * d.cfg("SEG", 0), 30000, errs)
    d.pump_noting(c, lambda: not c.pending(), 5000, errs)
    d.pump(o, lambda: False, 300)
if c is not None:  # (the asyncio client did its part above)
    print("REPORTED", len(st.errors))
    print("STALLED", c.pending())
    if d.cfg("WAIT"):
        time.sleep_ms(1100)
        c.check_msg()  # a read that fails now: the next one is a second away
    bd.bad = ()
    if not d.cfg("LIVE"):
        if c.sock is not None:
            c.sock.close()  # a power cut: no DISCONNECT
        umount(bd)
        bd = mount()
        c = node(SessionStore("/flash/.mqtt", ram=16))
        c.connect(clean_session=False)
    elif d.cfg("WAIT"):
        # wait_msg() alone, no keepalive: its wait is bounded by the read to make again
        t0 = time.ticks_ms()
        c.wait_msg()
        print("WAITED", time.ticks_diff(time.ticks_ms(), t0))
    d.pump_noting(c, lambda: not c.pending(), 30000, errs)
d.pump(o, lambda: len(set(got)) >= M, 30000)
d.pump(o, lambda: False, 500)  # a second delivery would come meanwhile
s = set(got)
print("GOT", len(s), "of", M)
print("DUPS", len([m for m in s if got.count(m) > 1 and int(m[1:]) < N and int(m[1:]) % 2]))
if c is not None:
    c.disconnect()
o.disconnect()
umount(bd)
print("PASS")
