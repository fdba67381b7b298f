# A seal of the tail that cannot read the tail's files (the flash's EIO): the tail stays
# whole and no message leaves it. 31 QoS 1 messages queued offline, then the flash fails
# reads of the tail files: the 32nd publish fills the tail (its seal fails after the
# message is in flash: it returns), the 33rd needs the seal first and raises the flash's
# error; the flash reads again, the 33rd is published again, a reboot. The drain meets the
# tail's file unreadable again (the 32 sealed ones go, the 33rd waits: not passed over),
# then the flash reads again and everything accepted has come to a subscriber in order.
# devcfg: HOST, PORT, IMAGE, PREFIX.
# Prints "RAISED <errno of the 33rd publish>", "PENDING <after the 32nd> <at the reboot>",
# "STALLED <pending while the tail could not be read>", "GOT <payloads in the order the
# subscriber got them, comma-separated>".
import blockdev
import devlib as d
import vfs
from mqttsession import Link, MQTTClient, SessionStore, qseg

IMG = d.cfg("IMAGE")
topic = d.topic("s")


def node():
    return MQTTClient("seal-eio", d.cfg("HOST"), d.cfg("PORT"), keepalive=60, queue=100,
                      store=SessionStore("/flash/.mqtt", ram=8), link=Link(min_ms=20))


read = qseg._read


def failing(p, *a):
    if "/q/" not in p:
        raise OSError(5)  # the driver's EIO, on a tail file
    return read(p, *a)


blockdev.mount(IMG, "/flash", block_count=64, format=True)
c = node()
c.connect(clean_session=False)
c.disconnect()
for i in range(31):
    c.publish(topic, b"m%d" % i, qos=1)
qseg._read = failing
c.publish(topic, b"m31", qos=1)
n = c.pending()
try:
    c.publish(topic, b"m32", qos=1)
    print("RAISED none")
except OSError as e:
    print("RAISED", e.errno)
qseg._read = read
if c.pending() == n:
    c.publish(topic, b"m32", qos=1)  # not accepted above: again
print("PENDING", n, c.pending())
vfs.umount("/flash")

got = []
o = d.client("seal-eio-o")
o.set_callback(lambda t, m: got.append(m))
o.connect()
o.subscribe(topic, 1)
blockdev.mount(IMG, "/flash", block_count=64)
c = node()
qseg._read = failing  # (the load reads with its own: the drain's reads fail)
c.connect(clean_session=False)
d.pump(c, lambda: c.pending() <= 1)
d.pump(c, lambda: False, 1500)  # the tail read again meanwhile: still waiting
print("STALLED", c.pending())
qseg._read = read
d.pump(c, lambda: not c.pending())
d.pump(o, lambda: len(got) >= 33)
d.pump(o, lambda: False, 300)  # a second delivery would come meanwhile
print("GOT", b",".join(got).decode())
c.disconnect()
o.disconnect()
vfs.umount("/flash")
print("PASS")
