# A simple node for the smallest-heap search: connect, subscribe, then publish at each
# QoS in a loop to its own topic and receive every message back. Self-contained (no
# bcommon) so that only the library and this loop occupy the heap.
# Arguments: host port lib=ms|umqtt [store=1 img=path] [n=20]
import sys

a = dict(x.split("=", 1) for x in sys.argv[1:])
HOST = a.get("host", "127.0.0.1")
PORT = int(a.get("port", "1883"))
LIB = a.get("lib", "ms")
N = int(a.get("n", "20"))
got = [0]


def cb(topic, msg):
    got[0] += 1


store = None
if LIB == "ms":
    from mqttsession import MQTTClient

    if a.get("store") == "1":
        import blockdev

        blockdev.mount(a["img"], "/flash", block_count=64, format=True)
        from mqttsession import SessionStore

        store = SessionStore(root="/flash/.mqtt")
    c = MQTTClient("bench-node", HOST, PORT, keepalive=30, store=store)
    qos = (0, 1, 2)
else:
    from umqtt.simple import MQTTClient

    c = MQTTClient("bench-node", HOST, PORT, keepalive=30)
    qos = (0, 1)
c.set_callback(cb)
c.connect()
c.subscribe(b"bench/node", 2 if LIB == "ms" else 1)
for i in range(N):
    for q in qos:
        c.publish(b"bench/node", b"reading %d" % i, False, q)
    while got[0] < (i + 1) * len(qos):
        c.wait_msg()
c.disconnect()
print("NODE OK", got[0])
