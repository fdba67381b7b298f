# Heap: gc.mem_alloc() after gc.collect() above the script's own baseline, after import,
# after constructing the client, after connect, and after a publish/receive loop; and
# micropython.mem_peak() above mem_current() across that loop.
import bcommon as B
import micropython

LIB = B.LIB
STORE = B.num("store", 0)
N = B.num("n", 100)
tag = f"heap.{LIB}.{B.arg('form', 'py')}{'.store' if STORE else ''}"


def main():
    store = None
    if STORE:
        # the filesystem is the firmware's on a board: mounted before the baseline
        bdev, why = B.mount(B.arg("img", "bench-heap.img"), B.num("prog", 32))
        if bdev is None:
            return B.na(tag, why)
    base = B.heap()
    if LIB == "ms":
        import mqttsession  # noqa: F401
    else:
        import umqtt.simple  # noqa: F401
    if STORE:
        store, why = B.make_store()
        if store is None:
            return B.na(tag, why)
    B.out(tag + ".import", B.heap() - base)
    c = B.client("bench-heap", store=store)
    B.out(tag + ".client", B.heap() - base)
    c.connect()
    B.out(tag + ".connected", B.heap() - base)

    class K:
        n = 0

        def cb(self, t, m):
            self.n += 1

    k = K()
    c.set_callback(k.cb)
    c.subscribe(B.TOPIC, 1)
    qos = (0, 1) if LIB == "umqtt" else (0, 1, 2)
    B.heap()
    cur = micropython.mem_current()
    for _ in range(N):
        for q in qos:
            c.publish(B.TOPIC, B.MSG, False, q)
    peak = micropython.mem_peak() - cur
    B.settle(c)
    for _ in range(1000):
        if k.n >= N * len(qos):
            break
        c.wait_msg()
    B.out(tag + ".loop", B.heap() - base)
    B.out(tag + ".peak", peak)
    c.disconnect()


main()
print("DONE")
