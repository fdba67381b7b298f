# full="drop_oldest" with the ring in flight (a broker that answers nothing) and a backlog
# in flash: a new message gives up the oldest waiting in flash (aside._drop_flash). Its
# completion's record (_done.append) finds no heap once (injected: the list grows its
# block as it goes). The refused publish must leave the queue as it was: the message
# that was to be dropped stays, or it is counted in c.dropped. The application publishes
# again, as a README user would; every message publish() accepted is then pending or
# counted as dropped, and the session's drain hands over every pending one.
import devlib as d
from mqttsession import MQTTClient, SessionStore

ROOT, BD = d.flash()
STORE = ROOT + "/.mqtt"
API = d.cfg("API", "blocking")


class Done:
    # the session's completed seqs (a list), whose next append raises MemoryError once
    left = 1

    def __init__(self, a):
        self.a = a

    def append(self, x):
        if Done.left:
            Done.left -= 1
            raise MemoryError("injected")
        self.a.append(x)

    def remove(self, x):
        self.a.remove(x)

    def __contains__(self, x):
        return x in self.a

    def __iter__(self):
        return iter(self.a)

    def __len__(self):
        return len(self.a)


def check_after(c, accepted):
    s = c._s
    print("PENDING", c.pending(), "DROPPED", c.dropped, "ACCEPTED", accepted)
    d.check(Done.left == 0, "the record failed once")
    d.check(c.pending() + c.dropped == accepted,
            "each accepted message pending or counted as dropped: %d + %d of %d" % (
                c.pending(), c.dropped, accepted))
    got = d.drain(s)
    print("DRAINED", got)
    d.check(len(got) == accepted - c.dropped and len(set(got)) == len(got),
            "the drain hands over every pending one: %r" % got)


def blocking():
    c = MQTTClient("memdrop", d.cfg("HOST"), d.cfg("PORT"), keepalive=0, timeout=2, window=4,
                   queue=8, full="drop_oldest", store=SessionStore(STORE, 1 << 20, ram=4))
    c.connect(clean_session=False)
    for i in range(8):  # 4 in flight, unanswered; the 5th waits, the link goes; 4 in flash
        c.publish(d.topic("m"), b"%d" % i, qos=1)
    s = c._s
    d.check(c.pending() == 8 and s.more == 4, "ring in flight, backlog in flash")
    s._done = Done(s._done)
    d.raises(MemoryError, c.publish, d.topic("m"), b"8", qos=1)
    c.publish(d.topic("m"), b"8", qos=1)  # published again: accepted
    check_after(c, 9)


def aio():
    import asyncio
    from mqttsession.aio import MQTTClient as C

    async def main():
        c = C("memdrop", d.cfg("HOST"), d.cfg("PORT"), keepalive=0, timeout=2, window=4,
              queue=8, full="drop_oldest", store=SessionStore(STORE, 1 << 20, ram=4))
        await c.connect(clean_session=False)
        for i in range(4):
            await c.publish(d.topic("m"), b"%d" % i, qos=1)
        await c.disconnect()  # the 4 stay in flight (their IDs kept for the resume)
        for i in range(4, 8):
            await c.publish(d.topic("m"), b"%d" % i, qos=1)
        s = c._s
        print("STATE", c.pending(), s.more, s.nin)
        d.check(c.pending() == 8 and s.more == 4, "ring in flight, backlog in flash")
        s._done = Done(s._done)
        try:
            await c.publish(d.topic("m"), b"8", qos=1)
            raise AssertionError("FAIL did not raise MemoryError")
        except MemoryError:
            pass
        await c.publish(d.topic("m"), b"8", qos=1)
        check_after(c, 9)

    asyncio.run(main())


def forget():
    # an acknowledgement whose completion's record (_done.append in _forget) finds no heap
    # once: the link goes and the PUBACK comes again. The session's count of bytes in
    # flash (max_bytes' bound) must not drift: before, it was lowered at each of them
    import time

    from mqttsession import Link

    c = MQTTClient("memforget", d.cfg("HOST"), d.cfg("PORT"), keepalive=30, window=4,
                   queue=64, link=Link(min_ms=50, max_ms=200),
                   store=SessionStore(STORE, 1 << 20, ram=4))
    for i in range(40):
        c.publish(d.topic("m"), b"%d" % i, qos=1)  # offline: in flash
    s = c._s
    c.connect(clean_session=False)
    s._done = Done(s._done)  # (the connect's writes of the hot state made a new list)
    t0 = time.ticks_ms()
    while c.pending() and time.ticks_diff(time.ticks_ms(), t0) < 30000:
        c.check_msg()
        time.sleep_ms(1)
    d.check(Done.left == 0, "the record failed once")
    d.check(c.pending() == 0, "all completed")
    b = s.bytes
    c.disconnect()
    r = SessionStore(STORE, 1 << 20, ram=4).get(d.cfg("HOST"), "memforget", 64).bytes
    print("BYTES", b, "reloaded", r)
    d.check(b == r, "the count of bytes in flash as a reload finds it: %d, %d" % (b, r))


globals()[API]()
print("PASS")
