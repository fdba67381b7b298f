# Throughput: messages per second published at QoS 0/1/2 for each window size, with
# and without a store, and received (umqtt-form and raw callbacks). A raw connection
# in the same process feeds the received messages in batches through the broker.
import bcommon as B

LIB = B.LIB
N = B.num("n", 5000)
BUDGET = B.num("budget_ms", 1000) * 1000
WINDOWS = B.nums("windows", [1])
QOS = B.nums("qos", [0, 1, 2])
RECV = B.nums("recv", [0, 1, 2])
STORE = B.num("store", 0)
PLAIN = B.num("plain", 1)  # plain=0: only the store rows
BATCH = 16  # mosquitto takes at most 20 incoming QoS 2 in flight
RTOPIC = b"bench/r"


def rate(c, qos):
    warm = 4 if LIB == "umqtt" and qos else 32
    for _ in range(warm):
        c.publish(B.TOPIC, B.MSG, False, qos)
    B.settle(c)
    done = 0
    t0 = B.ticks()
    while done < N:
        for _ in range(8):
            c.publish(B.TOPIC, B.MSG, False, qos)
        done += 8
        if B.since(t0) > BUDGET:
            break
    B.settle(c)
    return done * 1e6 / B.since(t0)


def publishing(prefix, store=None):
    for w in WINDOWS:
        kw = {"queue": max(w, 16)} if LIB == "ms" else {}
        c = B.client(f"bench-pub-{w}", window=w, store=store, **kw)
        c.connect()
        for q in QOS:
            if q == 0 and w > 1:
                continue  # the window only matters for QoS 1 and 2
            if q == 2 and LIB == "umqtt":
                B.na(f"{prefix}.q2.w{w}", "umqtt.simple has no QoS 2 publish")
                continue
            B.out(f"{prefix}.q{q}.w{w}", rate(c, q))
        c.disconnect()


class Count:
    def __init__(self):
        self.n = 0

    def cb(self, topic, msg):
        self.n += 1

    def raw(self, topic, buf, start, end):
        self.n += 1


def feed(f, batch, qos):
    # the acknowledgements the broker sends back are read later (drain), never waited
    # for in a batch: a feeder blocked on them meets the broker's Nagle delay
    f.drain()
    f.s.write(batch)
    if qos == 2:
        f.release(BATCH)


def receiving():
    for form in ("cb", "raw") if LIB == "ms" else ("cb",):
        for q in RECV:
            key = f"tput.{LIB}.recv.q{q}.{form}"
            if q == 2 and LIB == "umqtt":
                B.na(key, "umqtt.simple cannot receive QoS 2")
                continue
            k = Count()
            c = B.client("bench-rx")
            if form == "raw":
                c.set_callback(k.raw, raw=True)
            else:
                c.set_callback(k.cb)
            c.connect()
            c.subscribe(RTOPIC, q)
            f = B.Raw("bench-feed")
            pk = [B.publish_packet(RTOPIC, B.MSG, q, i + 1) for i in range(BATCH)]
            batch = b"".join(pk)
            # one batch stays queued at the broker while the node reads the other, so
            # neither side waits on the other's turn
            feed(f, batch, q)
            fed = BATCH
            for _ in range(2):  # warm-up
                feed(f, batch, q)
                fed += BATCH
                while k.n < fed - BATCH:
                    c.wait_msg()
            base = k.n
            done = 0
            t0 = B.ticks()
            while done < N:
                feed(f, batch, q)
                fed += BATCH
                while k.n < fed - BATCH:
                    c.wait_msg()
                done = k.n - base
                if B.since(t0) > BUDGET:
                    break
            B.out(key, done * 1e6 / B.since(t0))
            while k.n < fed:
                c.wait_msg()
            f.close()
            c.disconnect()


if PLAIN:
    publishing(f"tput.{LIB}.pub")
if STORE:
    bdev, why = B.mount(B.arg("img", "bench-flash.img"), B.num("prog", 32))
    store = None
    if bdev is not None:
        store, why = B.make_store()
    if store is None:
        for w in WINDOWS:
            for q in QOS:
                if q:
                    B.na(f"tput.{LIB}.store.q{q}.w{w}", why)
    else:
        QOS = [q for q in QOS if q]
        publishing(f"tput.{LIB}.store", store)
receiving()
print("DONE")
