# A flash that refuses writes (its driver returns -EIO: littlefs raises OSError(5)) under
# the store's writes that follow the broker's answers, each case then a reboot with the
# flash working again. devcfg: HOST, PORT, IMAGE, CID, PREFIX, TEST:
# release: a QoS 2 message queued offline goes out; its PUBREC cannot be recorded, the
#   keeper reconnects while the flash still fails, then a reboot. "BEFORE n" and "AFTER n":
#   deliveries to a subscriber before the reboot and in all.
# assign: the same message's packet ID cannot be written at the connect that sends it
#   first; the next connect sends it, a reboot, the next connect. "IDS p1 p2".
# subs: subscribe (SUB=1) or unsubscribe (SUB=0) fails, the application retries with the
#   flash back, a reboot: "SUBS <the stored filters>".
# counts: a QoS 1 message queued offline, the flash fails at the connect: its PUBACK's
#   record fails at every reconnect. "BYTES <before> <after>" (the session's count).
# publish: connected (a broker that never acknowledges), publish(qos=1) while the flash
#   fails: "PUBLISH <errno raised> <pending after>".
import os
import time

import blockdev
import devlib as d
import vfs
from mqttsession import Link, MQTTClient, SessionStore

TEST = d.cfg("TEST")
IMG = d.cfg("IMAGE")
CID = d.cfg("CID")
topic = d.topic("t")


class RefusingDev(blockdev.FileBlockDev):
    refuse = False  # True: every program and erase returns -EIO, as a failing driver

    def writeblocks(self, block, buf, off=None):
        if self.refuse:
            return -5
        return blockdev.FileBlockDev.writeblocks(self, block, buf, off)

    def ioctl(self, op, arg):
        if op == 6 and self.refuse:  # erase
            return -5
        return blockdev.FileBlockDev.ioctl(self, op, arg)


def mount(new=False):
    try:
        vfs.umount("/flash")
    except OSError:
        pass
    if new:
        try:
            os.remove(IMG)
        except OSError:
            pass
    bd = d.nosync(RefusingDev(IMG, 4096, 64, 32))
    if new:
        vfs.VfsLfs2.mkfs(bd, progsize=32, readsize=32)
    vfs.mount(vfs.VfsLfs2(bd, progsize=32, readsize=32), "/flash")
    return bd


def node(**kw):
    return MQTTClient(CID, d.cfg("HOST"), d.cfg("PORT"), store=SessionStore("/flash/.mqtt"),
                      window=8, keepalive=60, **kw)


def reboot(c):
    if c.sock:
        c.sock.close()  # a power cut: no DISCONNECT
    vfs.umount("/flash")
    return mount()


def stay(c, ms):
    d.pump(c, lambda: False, ms)


bd = mount(True)
if TEST == "release":
    got = []
    o = d.client(CID + "-o")
    o.set_callback(lambda t, m: got.append(m))
    o.connect()
    o.subscribe(topic, 2)
    c = node(link=Link(min_ms=50, max_ms=100))
    c.connect(clean_session=False)
    c.disconnect()
    c.publish(topic, b"once", qos=2)  # offline: in flash
    c.connect(clean_session=False)  # sends it (its packet ID written first)
    bd.refuse = True  # the PUBREC's record fails: the link goes, the keeper comes back
    d.pump(c, lambda: c.link.outages >= 3, 20000)
    d.pump(o, lambda: False, 500)
    print("BEFORE", len(got))
    bd = reboot(c)
    c = node()
    c.connect(clean_session=False)
    d.pump(c, lambda: not c.pending(), 20000)
    d.pump(o, lambda: len(got) >= 1, 20000)
    d.pump(o, lambda: False, 1000)  # a second delivery would come meanwhile
    print("AFTER", len(got))
    c.disconnect()
    o.disconnect()
elif TEST == "assign":
    c = node()
    c.connect(clean_session=False)
    c.subscribe(d.topic("cmd"), 1)  # a packet ID used, not written: RAM is ahead
    c.disconnect()
    c.publish(topic, b"q2", qos=2)  # offline: in flash, no packet ID yet
    bd.refuse = True
    d.raises(OSError, c.connect, clean_session=False)  # its ID cannot be written
    bd.refuse = False
    c.connect(clean_session=False)
    p1 = c._s.ids[c._s.live()[0]]
    bd = reboot(c)  # before the PUBREC is read
    c = node()
    c.connect(clean_session=False)
    print("IDS", p1, c._s.ids[c._s.live()[0]] if c._s.live() else -1)
    c.disconnect()
elif TEST == "subs":
    c = node()
    c.connect(clean_session=False)
    c.subscribe(d.topic("a"), 1)
    sub = d.cfg("SUB")
    f = c.subscribe if sub else c.unsubscribe
    a = (d.topic("b"), 1) if sub else (d.topic("b"),)
    if not sub:
        c.subscribe(d.topic("b"), 1)
    bd.refuse = True
    d.raises(OSError, f, *a)
    bd.refuse = False
    f(*a)  # the application retries
    c.disconnect()
    bd = reboot(c)
    c = node()
    print("SUBS", " ".join(sorted(t.decode() for t in c._s.subs)))
elif TEST == "counts":
    c = node(link=Link(min_ms=50, max_ms=100))
    c.connect(clean_session=False)
    c.disconnect()
    c.publish(topic, b"m0", qos=1)  # offline: in flash
    n = c._s.bytes
    bd.refuse = True
    c.connect(clean_session=False)
    d.pump(c, lambda: c.link.outages >= 5, 20000)
    print("BYTES", n, c._s.bytes)
elif TEST == "publish":
    c = node()
    c.connect(clean_session=False)
    bd.refuse = True
    e = d.raises(OSError, c.publish, topic, b"x", qos=1)  # sent, not acknowledged
    print("PUBLISH", e.args[0], c.pending())
    time.sleep_ms(100)
print("PASS")
