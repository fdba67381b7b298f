# mqtt_as as the memory benchmark's node (tools/bench/b_mem.py --mqtt-as DIR runs it):
# connect, subscribe, then QoS 0/1 publishing to its own topic (mqtt_as has no QoS 2 and
# no store), every message received back, as b_mem_node.py does with this library. The
# unix port has no Wi-Fi and no machine.unique_id: stand-ins for both are made before the
# baseline (a station that is always up). asyncio is frozen into the unix port, as on a
# board. mqtt_as's code comes from the directory on MICROPYPATH (compiled by b_mem.py).
#
# Arguments (key=value): host port [n=messages per QoS]
#   alloc=1: also the steady-state allocation of QoS 0/1 publishing, as b_mem_node.py
#   measures it (to a topic it is not subscribed to: no message comes back meanwhile)
# Prints "R mem.<key> <bytes>", "MOD <module>" for each mqtt_as module loaded, and
# "NODE OK" at the end (the smallest-heap search looks for it).
import asyncio
import gc
import sys

import micropython

a = dict(x.split("=", 1) for x in sys.argv[1:])
N = int(a.get("n", "20"))
TOPIC = "bench/mqttas"


class _Station:
    def __init__(self, *_):
        pass

    def active(self, *_):
        return True

    def connect(self, *_, **__):
        pass

    def isconnected(self):
        return True

    def status(self, *_):
        return 3

    def config(self, *_, **__):
        return None

    def disconnect(self):
        pass


class _Network:
    WLAN = _Station
    STA_IF = 0
    STAT_IDLE = 0
    STAT_CONNECTING = 1
    STAT_GOT_IP = 3


class _Machine:
    @staticmethod
    def unique_id():
        return b"bench1"


sys.modules["network"] = _Network
sys.modules["machine"] = _Machine


def heap():
    gc.collect()
    return gc.mem_alloc()


def out(key, v):
    print("R mem." + key, v)


base = heap()
from mqtt_as import MQTTClient, config  # noqa: E402

out("import", heap() - base)
got = [0]


def cb(topic, msg, retained):
    got[0] += 1


async def main():
    config["server"] = a.get("host", "127.0.0.1")
    config["port"] = int(a["port"])
    config["client_id"] = "bench-mqttas"
    config["subs_cb"] = cb
    config["keepalive"] = 30
    config["clean"] = True
    config["queue_len"] = 0
    c = MQTTClient(config)
    out("client", heap() - base)
    await c.connect(quick=True)
    await c.subscribe(TOPIC, 1)
    out("connected", heap() - base)
    for i in range(N):
        for q in (0, 1):
            await c.publish(TOPIC, f"reading {i}", False, q)
        for _ in range(1000):
            if got[0] >= (i + 1) * 2:
                break
            await asyncio.sleep_ms(5)
        else:
            raise OSError(f"messages not received back: {got[0]} of {(i + 1) * 2}")
    out("loop", heap() - base)
    if a.get("alloc") == "1":
        for q in (0, 1):
            await publishing(c, q, 4 * N)
        print("ALLOC OK")
    await c.disconnect()


async def publishing(c, q, n):
    # bytes allocated per publish (mem_total) and left behind (mem_alloc growth with the
    # collector off), over n publishes after 20 of warm-up; the background tasks that run
    # meanwhile (its keepalive, its reader) are part of what publishing costs
    for _ in range(20):
        await c.publish(TOPIC + "/g", "0123456789abcdef", False, q)
    gc.collect()
    gc.disable()
    h = gc.mem_alloc()
    t = micropython.mem_total()
    for _ in range(n):
        await c.publish(TOPIC + "/g", "0123456789abcdef", False, q)
    t = micropython.mem_total() - t
    h = gc.mem_alloc() - h
    gc.enable()
    out(f"pub.q{q}.total", t / n)
    out(f"pub.q{q}.garbage", h / n)


asyncio.run(main())
for m in sorted(sys.modules):
    if m.startswith("mqtt_as"):
        print("MOD", m)
print("NODE OK", got[0])
