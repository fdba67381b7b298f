# A long life in a few hundred cycles (tests/host/test_heap_soak.py): each cycle
# subscribes to a new filter, publishes QoS 0/1/2 to a topic the node subscribes to and
# receives them, unsubscribes, drops the link (the socket closed under the client) and
# reconnects, now and then disconnect()/connect() and a clean start. After each cycle
# the free heap and the sizes of the client's and the session's containers are noted:
# past a warm-up neither may grow. devcfg.API: blocking or aio.
import gc
import time

import devlib as d
from mqttsession import Link, SessionStore

ROOT, BD = d.flash()
API = d.cfg("API", "blocking")
CYCLES = d.cfg("CYCLES", 200)
WARM = d.cfg("WARM", 30)  # lazily loaded modules, the first clean start, offline changes
SUB, PUB, DROP, RECON, OFF = (d.cfg(k, 1) for k in ("SUB", "PUB", "DROP", "RECON", "OFF"))


def sizes(c):
    # len() of every list, dict, tuple, array and bytearray on the client, its session,
    # the store and the link
    from array import array

    r = {}
    for who, o in (("c", c), ("s", c._s), ("st", c._s._st), ("lk", c.link)):
        for k, v in o.__dict__.items():
            if isinstance(v, (list, dict, tuple, array, bytearray)) and k not in ("_cn",):
                r[who + "." + k] = len(v)
    return r


class Rec:
    def __init__(self):
        self.free = [0] * CYCLES  # made once: a growing list would be a leak of its own
        self.first = None
        self.last = None

    def note(self, c, i):
        # the containers' sizes first: the record kept of them is the test's own heap
        z = sizes(c)
        if i == WARM:
            self.first = z
        self.last = z
        z = None
        gc.collect()
        f = gc.mem_free()
        self.free[i] = f
        if i % 20 == 0:
            print("CYCLE", i, "free", f, "pending", c.pending())
            if d.cfg("DIAG"):
                import micropython
                micropython.qstr_info()

    def verdict(self):
        # (from the cycle after WARM on, the test holds both records, first and last)
        warm = self.free[WARM + 1]
        tail = self.free[-20:]
        print("FREE warm", warm, "end", min(tail), "max", max(tail))
        grew = ["%s %d->%d" % (k, self.first.get(k, 0), v) for k, v in self.last.items()
                if v > self.first.get(k, 0)]
        print("GREW", grew)
        if d.cfg("DIAG"):
            import sys
            print("MODS", sorted(sys.modules.keys()))
            print("STEPS", [(i, self.free[i]) for i in range(1, len(self.free))
                            if self.free[i] != self.free[i - 1]])
        d.check(not grew, "no container grew past the warm-up")
        # a leak of even 16 bytes per cycle is >2 KB over the run; noise from
        # fragmentation stays well below that
        d.check(max(tail) >= warm - 1024, "the free heap did not trend down")


def make(mod):
    lk = Link(min_ms=50, max_ms=200)
    st = SessionStore((ROOT or "") + "/.mqtt-soak", max_bytes=65536)
    return mod(d.cfg("CID"), d.cfg("HOST"), d.cfg("PORT"), version=d.VERSION, store=st,
               link=lk, keepalive=30, timeout=5, queue=16)


def blocking():
    from mqttsession import MQTTClient

    c = make(MQTTClient)
    got = []
    c.set_callback(lambda t, m: got.append(m))
    c.connect(clean_session=False)
    c.subscribe(d.topic("in"), 2)
    rec = Rec()
    for i in range(CYCLES):
        f = d.topic("f%d" % i)
        if SUB:
            c.subscribe(f, i % 3)
        del got[:]
        if PUB:
            for q in (0, 1, 2):
                c.publish(d.topic("in"), b"%d" % q, qos=q)
            d.pump(c, lambda: len(got) >= 3 and not c.pending(), 30000)
            if len(got) < 3:
                print("MISSING", i, got)
        if SUB:
            c.unsubscribe(f)
        if DROP:
            # the link drops under the client: the next call finds it and reconnects
            c.sock.close()
            d.pump(c, lambda: c.isconnected(), 30000)
            c.publish(d.topic("x"), b"after", qos=1)
            d.pump(c, lambda: not c.pending() and c.isconnected(), 30000)
        if RECON and i % 10 == 9:
            c.disconnect()
            if OFF:
                # offline: changes recorded and made on connect, a message queued
                c.subscribe(d.topic("o%d" % i), 1)
                c.unsubscribe(d.topic("o%d" % (i - 10)))
                c.unsubscribe(d.topic("never%d" % i))
                c.publish(d.topic("x"), b"offline", qos=2)
            c.connect(clean_session=(i % 20 == 19))
            c.subscribe(d.topic("in"), 2)
        rec.note(c, i)
    rec.verdict()
    c.disconnect()


def aio():
    import asyncio
    from mqttsession.aio import MQTTClient

    async def until(cond, ms=30000):
        t0 = time.ticks_ms()
        while not cond() and time.ticks_diff(time.ticks_ms(), t0) < ms:
            await asyncio.sleep_ms(5)
        return cond()

    async def main():
        c = make(MQTTClient)
        got = []
        c.set_callback(lambda t, m: got.append(m))
        await c.connect(clean_session=False)
        await until(c.isconnected)
        await c.subscribe(d.topic("in"), 2)
        rec = Rec()
        for i in range(CYCLES):
            f = d.topic("f%d" % i)
            await c.subscribe(f, i % 3)
            del got[:]
            for q in (0, 1, 2):
                await c.publish(d.topic("in"), b"%d" % q, qos=q)
            await until(lambda: len(got) >= 3 and not c.pending())
            if len(got) < 3:
                print("MISSING", i, got)
            await c.unsubscribe(f)
            c.sock.close()
            await until(lambda: not c.isconnected(), 5000)
            await until(c.isconnected)
            await c.publish(d.topic("x"), b"after", qos=1)
            await until(lambda: not c.pending() and c.isconnected())
            if i % 10 == 9:
                await c.disconnect()
                if OFF:
                    await c.subscribe(d.topic("o%d" % i), 1)
                    await c.unsubscribe(d.topic("o%d" % (i - 10)))
                    await c.unsubscribe(d.topic("never%d" % i))
                    await c.publish(d.topic("x"), b"offline", qos=2)
                await c.connect(clean_session=(i % 20 == 19))
                await until(c.isconnected)
                await c.subscribe(d.topic("in"), 2)
            rec.note(c, i)
        rec.verdict()
        await c.disconnect()

    asyncio.run(main())


if API == "aio":
    aio()
else:
    blocking()
print("PASS")
