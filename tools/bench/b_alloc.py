# Bytes allocated per message in steady state: micropython.mem_total() deltas over N
# messages after a warm-up, around the client's calls only. Publishing at QoS 0/1/2
# (window=1, so QoS 1 and 2 wait for their acknowledgement), and receiving at QoS 0/1/2
# with the umqtt-form callback f(topic, msg) and the raw callback f(topic, buf, a, b).
# "<key>.garbage" is what of it stays behind for the collector: gc.mem_alloc() growth
# with the collector off. The rest is freed at once: VM frames too large for the C
# stack (more than 11 words of locals, stack and exception handlers) come from the heap
# and go back to it when the function returns.
import gc

import bcommon as B

LIB = B.LIB
N = B.num("n", 200)
STORE = B.num("store", 0)
BATCH = 8
RTOPIC = b"bench/r"


def publishing(prefix, store=None):
    for q in (0, 1, 2):
        key = f"{prefix}.q{q}"
        if q == 2 and LIB == "umqtt":
            B.na(key, "umqtt.simple has no QoS 2 publish")
            continue
        if q == 0 and store is not None:
            continue  # QoS 0 never touches the store
        c = B.client(f"bench-alloc-{q}", store=store)
        c.connect()
        for _ in range(20):
            c.publish(B.TOPIC, B.MSG, False, q)
        B.settle(c)
        gc.collect()
        gc.disable()
        h = gc.mem_alloc()
        t = B.total()
        for _ in range(N):
            c.publish(B.TOPIC, B.MSG, False, q)
        t = B.total() - t
        h = gc.mem_alloc() - h
        gc.enable()
        B.out(key, t / N)
        B.out(key + ".garbage", h / N)
        B.settle(c)
        c.disconnect()


class Count:
    def __init__(self):
        self.n = 0

    def cb(self, topic, msg):
        self.n += 1

    def raw(self, topic, buf, start, end):
        self.n += 1


def receiving():
    for form in ("cb", "raw") if LIB == "ms" else ("cb",):
        for q in (0, 1, 2):
            key = f"alloc.{LIB}.recv.q{q}.{form}"
            if q == 2 and LIB == "umqtt":
                B.na(key, "umqtt.simple cannot receive QoS 2")
                continue
            k = Count()
            c = B.client("bench-alloc-rx")
            if form == "raw":
                c.set_callback(k.raw, raw=True)
            else:
                c.set_callback(k.cb)
            c.connect()
            c.subscribe(RTOPIC, q)
            f = B.Raw("bench-alloc-feed")
            batch = b"".join(B.publish_packet(RTOPIC, B.MSG, q, i + 1) for i in range(BATCH))
            used = kept = 0
            for r in range(N // BATCH + 3):
                f.drain()
                f.s.write(batch)
                if q == 2:
                    f.release(BATCH)
                want = k.n + BATCH
                gc.collect()
                gc.disable()
                h = gc.mem_alloc()
                t = B.total()
                while k.n < want:
                    c.wait_msg()
                t = B.total() - t
                h = gc.mem_alloc() - h
                gc.enable()
                if r >= 3:  # the first batches are the warm-up
                    used += t
                    kept += h
            B.out(key, used / (k.n - 3 * BATCH))
            B.out(key + ".garbage", kept / (k.n - 3 * BATCH))
            c.ping()  # PUBRELs still on their way: let them arrive before leaving
            while c.wait_msg() != (0xD0 if LIB == "ms" else None):
                pass
            f.close()
            c.disconnect()


publishing(f"alloc.{LIB}.pub")
if STORE:
    bdev, why = B.mount(B.arg("img", "bench-alloc.img"), B.num("prog", 32))
    store = None
    if bdev is not None:
        store, why = B.make_store()
    if store is None:
        for q in (1, 2):
            B.na(f"alloc.{LIB}.store.q{q}", why)
    else:
        publishing(f"alloc.{LIB}.store", store)
receiving()
print("DONE")
