# The asyncio client reconnects with its heap in small pieces (the blocking client's
# case: dev_reconnect_files.py): a second connection with the node's client ID ends its
# link, the application's data leaves the heap in pieces of about 128 bytes, and the
# keeper must reconnect and the link carry a QoS 0 message to the node. A reconnect
# opens no file but the owed file (the session has a subscription).
# devcfg: HOST, PORT, CID, PREFIX, IMAGE
import asyncio
import builtins
import gc
import socket
import time

import devlib as d
import heapfill
from mqttsession import Link, SessionStore
from mqttsession.aio import MQTTClient

ROOT, BD = d.flash()
CID = d.cfg("CID")
T = d.topic("r")
ADDR = socket.getaddrinfo(d.cfg("HOST"), d.cfg("PORT"))[0][-1]

# the packets of the raw connections (devlib.raw), made once: TAKEOVER with the node's
# client ID; FEED with another's, and a QoS 0 PUBLISH of q0 to the node's topic
TAKEOVER = d.connect_packet(CID.encode())
_t = T.encode()
FEED = d.connect_packet(CID.encode() + b"f") + bytes((0x30, 4 + len(_t), 0, len(_t))) + _t + b"q0"
opens = []
_open = builtins.open
ups = [0]
got = []


def counting(p, *a):
    opens.append(p)
    return _open(p, *a)


def on_change(up):
    if up:
        ups[0] += 1


async def until(cond, ms):
    t0 = time.ticks_ms()
    while not cond() and time.ticks_diff(time.ticks_ms(), t0) < ms:
        await asyncio.sleep_ms(10)
    return cond()


async def main():
    c = MQTTClient(CID, d.cfg("HOST"), d.cfg("PORT"), keepalive=30,
                   store=SessionStore(ROOT + "/.mqtt"),
                   link=Link(min_ms=100, max_ms=500, on_change=on_change))
    c.set_callback(lambda t, m: got.append(m))
    await c.connect(clean_session=False)
    await c.subscribe(T, 1)
    await c.publish(T, b"m1", qos=1)
    d.check(await until(lambda: b"m1" in got, 30000), "m1 received back")

    u = ups[0]
    d.raw(ADDR, TAKEOVER)
    builtins.open = counting
    up = await until(lambda: ups[0] > u, 60000)
    builtins.open = _open
    print("reconnect: files opened %r" % opens)
    d.check(up, "the node reconnected")
    d.check(opens and all(p.endswith("/owed.t") for p in opens),
            "the reconnect opened the owed file only")

    u = ups[0]
    d.raw(ADDR, TAKEOVER)
    e = None
    up = q0 = False
    held, n = heapfill.pieces(96)
    # (no coroutine or closure of this script's own made while the heap is in pieces:
    # the waits are loops here)
    try:
        t0 = time.ticks_ms()
        while ups[0] <= u and time.ticks_diff(time.ticks_ms(), t0) < 60000:
            await asyncio.sleep_ms(10)
        up = ups[0] > u
        # (not the node's own publish: its coroutine takes about 300 bytes in one piece,
        # MemoryError to the application here, nothing accepted)
        d.raw(ADDR, FEED)
        t0 = time.ticks_ms()
        while b"q0" not in got and time.ticks_diff(time.ticks_ms(), t0) < 30000:
            await asyncio.sleep_ms(10)
        q0 = b"q0" in got
    except MemoryError as x:
        e = x
    held = None
    gc.collect()
    print("heap in pieces: %d pieces; reconnected %s, q0 back %s, %r" % ((n + 1) // 2, up, q0, e))
    d.check(up and q0 and e is None,
            "the node reconnected with the heap in small pieces, and the link carries")
    await c.publish(T, b"m2", qos=1)
    d.check(await until(lambda: b"m2" in got, 30000), "m2 received back")
    await c.disconnect()


asyncio.run(main())
print("PASS")
