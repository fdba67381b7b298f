# The node profile of the memory benchmark (tools/bench/b_mem.py runs it): a blocking
# client with a SessionStore on littlefs and a Link; connect, subscribe, then QoS 0/1/2
# publishing to its own topic, every message received back. The same script for every
# form of the code (.mpy copied to the filesystem, or a ROMFS image) and for TLS.
#
# Arguments (key=value): host port [rom=IMAGE] [ca=DER file: TLS] img=littlefs image
#   n=messages per QoS  alloc=1: also the steady-state allocation phase (needs bcommon)
#   keep=1: mount the image as it is (a later boot), not a fresh one
#   v=5: MQTT 5 (default 4, MQTT 3.1.1)
# Prints "R mem.<key> <bytes>", the qstr pools' summary, "MOD <module>" for each
# mqttsession module loaded, and
# "NODE OK" at the end of the node's run (the smallest-heap search looks for it).
import gc
import sys

import micropython

a = dict(x.split("=", 1) for x in sys.argv[1:])
N = int(a.get("n", "20"))
TOPIC = b"bench/mem"


def heap():
    gc.collect()
    return gc.mem_alloc()


def out(key, v):
    print("R mem." + key, v)


if "rom" in a:
    # on a board the image sits in flash; here its bytes are in the heap, so the baseline
    # is taken after reading it: what is counted is the heap beyond the image
    import vfs

    with open(a["rom"], "rb") as f:
        _img = f.read()
    vfs.mount(vfs.VfsRom(memoryview(_img)), "/rom")
    sys.path.insert(0, "/rom")

import blockdev  # noqa: E402  (the board's filesystem: mounted before the baseline)

blockdev.mount(a["img"], "/flash", block_count=64, prog_size=32, format=a.get("keep") != "1")
base = heap()

from mqttsession import Link, MQTTClient, SessionStore  # noqa: E402

out("import", heap() - base)
ctx = None
if "ca" in a:
    import ssl

    with open(a["ca"], "rb") as f:
        ca = f.read()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=ca)
    ca = None
got = [0]


def cb(topic, msg):
    got[0] += 1


store = SessionStore(root="/flash/.mqtt")
c = MQTTClient("bench-mem", a.get("host", "127.0.0.1"), int(a["port"]), keepalive=30,
               ssl=ctx, store=store, link=Link(), version=int(a.get("v", "4")))
c.set_callback(cb)
out("client", heap() - base)
c.connect(clean_session=False)
c.subscribe(TOPIC, 2)
out("connected", heap() - base)
for i in range(N):
    for q in (0, 1, 2):
        c.publish(TOPIC, b"reading %d" % i, False, q)
    while got[0] < (i + 1) * 3:
        c.wait_msg()
out("loop", heap() - base)
# the names the interpreter interned by now ("qstr pool: ... n_qstr=N ..."): each pool is
# one heap block, the sixth about 7 KB (an ESP32-sized heap may not have it)
micropython.qstr_info()
for m in sorted(sys.modules):
    if m.startswith("mqttsession"):
        print("MOD", m)
print("NODE OK", got[0])


def publishing(q, n):
    msg = b"0123456789abcdef"
    for _ in range(20):
        c.publish(TOPIC, msg, False, q)
    while got[0] < want[0] + 20:
        c.wait_msg()
    want[0] += 20
    gc.collect()
    gc.disable()
    h = gc.mem_alloc()
    t = micropython.mem_total()
    for _ in range(n):
        c.publish(TOPIC, msg, False, q)
    t = micropython.mem_total() - t
    h = gc.mem_alloc() - h
    gc.enable()
    while got[0] < want[0] + n:
        c.wait_msg()
    want[0] += n
    out(f"pub.q{q}.total", t / n)
    out(f"pub.q{q}.garbage", h / n)


def raw(topic, buf, start, end):
    got[0] += 1


def receiving(q, n):
    # a second connection feeds QoS q messages in batches; only wait_msg is measured
    import bcommon

    f = bcommon.Raw("bench-mem-feed", a.get("host", "127.0.0.1"), int(a["plain"]))
    batch = b"".join(bcommon.publish_packet(TOPIC, b"0123456789abcdef", q, i + 1)
                     for i in range(8))
    used = kept = cnt = 0
    for r in range(n // 8 + 3):
        f.drain()
        f.s.write(batch)
        w = got[0] + 8
        gc.collect()
        gc.disable()
        h = gc.mem_alloc()
        t = micropython.mem_total()
        while got[0] < w:
            c.wait_msg()
        t = micropython.mem_total() - t
        h = gc.mem_alloc() - h
        gc.enable()
        if r >= 3:  # the first batches are the warm-up
            used += t
            kept += h
            cnt += 8
    out(f"recv.q{q}.raw.total", used / cnt)
    out(f"recv.q{q}.raw.garbage", kept / cnt)
    f.close()


if a.get("alloc") == "1":
    want = [got[0]]
    # the raw form: umqtt's f(topic, msg) makes two bytes objects per message by design
    c.set_callback(raw, raw=True)
    for q in (0, 1):
        publishing(q, 4 * N)
    for q in (0, 1):
        receiving(q, 4 * N)
    print("ALLOC OK")
c.disconnect()
_trace = sys.modules.get("mqs_trace")  # b_mem_funcs.py --used: the functions that ran
if _trace:
    for h in sorted(_trace.HITS):
        print("HIT", h)
