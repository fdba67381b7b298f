# A backlog in flash drained while the heap runs out (tests/host/test_store_order.py): a
# MemoryError as the next tail message is read into the ring (qseg.nxt, after an
# acknowledgement) must leave it to be read again. It moved the read position past it
# first: the message was never sent, the count of messages in flash came out one short of
# what was there, and the hot state's watermark passed it (lost at the next boot too).
import devlib as d
from mqttsession import SessionStore, qseg

ROOT = d.flash()[0]


def get():
    return SessionStore(ROOT + "/.mqtt", max_bytes=100000, ram=2).get("h", b"mem", 64)


s = get()
for i in range(6):  # offline: two in the ring, four in the tail files
    s._keep(s.add(b"t", b"m%d" % i, 1, False))
read = qseg._read
left = [1]


def short_of_heap(path, t, v):
    # the first read of a tail file finds no heap
    if left[0] and "/t" in path[-6:]:
        left[0] = 0
        raise MemoryError("memory allocation failed")
    return read(path, t, v)


qseg._read = short_of_heap
done = []
for _ in range(20):  # send and acknowledge what is in the ring, as a drain does
    ks = s.live()
    if not ks:
        break
    for k in ks:
        if not s.fl[k] & 64:
            s.assign(k)
        m = s.msg[k]
        try:
            s.acked(s.ids[k], False)
        except MemoryError:
            print("MEMORYERROR after", m.decode())
        done.append(m)
        if s.more and s.nin + s.nq < s.cap:
            s._fill()  # as the next send does (Core._pump)
qseg._read = read
d.check(not left[0], "the MemoryError was raised")
print("DONE", b",".join(done).decode(), "PENDING", s.pending())
d.check(sorted(done) == [b"m%d" % i for i in range(6)], "every message sent once")
s = get()  # the reboot
d.check(s.pending() == 0, "nothing left (or lost) in flash: %d" % s.pending())
print("PASS")
