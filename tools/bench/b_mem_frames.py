# Which functions take a VM frame from the heap on the steady-state publish path (run by
# tools/bench/b_mem_funcs.py --frames on a copy of the library whose functions each call
# mqs_trace.hit(name) first). With no garbage on this path, every heap allocation is a
# frame too large for the C stack, taken on entry to a function: mem_total() growth since
# the previous hit belongs to the function being entered.
# Arguments: port img n   Prints "F q<qos> <module:function> <bytes per publish>".
import sys

import micropython

a = dict(x.split("=", 1) for x in sys.argv[1:])
N = int(a.get("n", "20"))
import blockdev  # noqa: E402

blockdev.mount(a["img"], "/flash", block_count=64, prog_size=32, format=True)
import mqs_trace  # noqa: E402
from mqttsession import Link, MQTTClient, SessionStore  # noqa: E402

got = [0]


def raw(t, b, s, e):
    got[0] += 1


c = MQTTClient("bench-frames", "127.0.0.1", int(a["port"]), keepalive=30,
               store=SessionStore(root="/flash/.mqtt"), link=Link())
c.set_callback(raw, raw=True)
c.connect(clean_session=False)
c.subscribe(b"bench/frames", 1)  # each message comes back: receiving is on the path too
for q in (0, 1):
    for _ in range(10):
        c.publish(b"bench/frames", b"0123456789abcdef", False, q)
    mqs_trace.FRAMES.clear()
    t = micropython.mem_total()
    mqs_trace.LAST[0] = t
    for _ in range(N):
        c.publish(b"bench/frames", b"0123456789abcdef", False, q)
    print(f"T q{q} {(micropython.mem_total() - t) // N}")
    for k, v in mqs_trace.FRAMES.items():
        print(f"F q{q} {k} {v // N}")
c.disconnect()
print("DONE")
