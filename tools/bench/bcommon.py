# Shared helpers of the benchmark scripts (MicroPython, unix port).
# Arguments come as key=value words on the command line; results go to stdout as
# "R key value" lines (a number) or "NA key reason" lines, read by tools/bench.py.
import gc
import socket
import sys
import time

import micropython


def _args():
    d = {}
    for a in sys.argv[1:]:
        k, _, v = a.partition("=")
        d[k] = v
    return d


ARGS = _args()
HOST = ARGS.get("host", "127.0.0.1")
PORT = int(ARGS.get("port", "1883"))
LIB = ARGS.get("lib", "ms")
TOPIC = b"bench/t"
MSG = b"0123456789abcdef"  # 16-byte payload for every library and reference


def arg(name, default=None):
    return ARGS.get(name, default)


def num(name, default):
    v = ARGS.get(name)
    return default if v is None or v == "" else int(v)


def nums(name, default):
    # "name=1,2,4" -> [1, 2, 4]; "name=" -> [] (none); absent -> default
    v = ARGS.get(name)
    if v is None:
        return default
    return [int(x) for x in v.split(",") if x]


def out(key, value):
    if isinstance(value, float):
        value = f"{value:.3f}"
    print("R", key, value)


def na(key, why):
    print("NA", key, why)


def heap():
    gc.collect()
    return gc.mem_alloc()


def total():
    return micropython.mem_total()


def ticks():
    return time.ticks_us()


def since(t0):
    return time.ticks_diff(time.ticks_us(), t0)


# --- the filesystem and store, when the board layer and the store exist -------------


def mount(img, prog, blocks=256, read=32, mtime=True):
    # a fresh littlefs image at /flash on the counting block device (read, mtime: the
    # mount's readsize and modification times); (bdev, None) or (None, reason)
    try:
        import blockdev
    except ImportError as e:
        return None, f"no boards/unix/blockdev.py ({e})"
    try:
        bd = blockdev.mount(img, "/flash", block_count=blocks, prog_size=prog, format=True,
                            read_size=read, mtime=mtime)
        # no fsync of the image per block write: flash costs are counted (erases,
        # programs), and a disk's fsync time would hide the store's own work
        bd.sync = False
        return bd, None
    except Exception as e:
        return None, f"blockdev.mount failed: {e!r}"


def store_class():
    # (SessionStore, None) or (None, reason)
    try:
        from mqttsession import SessionStore

        return SessionStore, None
    except (ImportError, AttributeError):  # the package loads it lazily
        pass
    try:
        from mqttsession.store import SessionStore

        return SessionStore, None
    except ImportError as e:
        return None, f"no SessionStore in lib/mqttsession ({e})"
    except Exception as e:
        return None, f"store import failed: {e!r}"


def make_store(root="/flash/.mqtt"):
    cls, why = store_class()
    if cls is None:
        return None, why
    try:
        return cls(root=root), None
    except Exception as e:
        return None, f"SessionStore(root={root!r}) failed: {e!r}"


# --- clients: this library and the competitors behind one small adapter ------------


def client(cid, window=1, store=None, lib=None, **kw):
    lib = lib or LIB
    if lib == "ms":
        from mqttsession import MQTTClient

        return MQTTClient(cid, HOST, PORT, keepalive=0, window=window, store=store, **kw)
    if lib == "umqtt":
        from umqtt.simple import MQTTClient

        return MQTTClient(cid, HOST, PORT)
    raise ValueError("lib must be ms or umqtt")


def settle(c, lib=None):
    # waits until everything published so far is acknowledged (windowed QoS 1/2) and
    # the broker has read it all (a PINGREQ/PINGRESP round trip behind it)
    lib = lib or LIB
    if lib == "ms":
        s = c._s
        t0 = time.ticks_ms()
        while s.pending():
            if time.ticks_diff(time.ticks_ms(), t0) > 10000:
                raise OSError(110)
            c.wait_msg()
        c.ping()
        while c.wait_msg() != 0xD0:
            pass
    else:
        c.ping()
        for _ in range(1000):
            if c.wait_msg() is None:  # umqtt.simple returns None for PINGRESP
                break


# --- a raw MQTT 3.1.1 connection: the floor, and the feeder of receive benchmarks ----


def packet(first, body):
    n = len(body)
    hdr = bytearray((first,))
    while True:
        b = n & 0x7F
        n >>= 7
        hdr.append(b | 0x80 if n else b)
        if not n:
            break
    return bytes(hdr) + body


def publish_packet(topic, msg, qos, pid):
    body = bytes((len(topic) >> 8, len(topic) & 255)) + topic
    if qos:
        body += bytes((pid >> 8, pid & 255))
    return packet(0x30 | qos << 1, body + msg)


class Raw:
    def __init__(self, cid, host=None, port=None):
        addr = socket.getaddrinfo(host or HOST, port or PORT)[0][-1]
        s = socket.socket()
        s.connect(addr)
        s.setsockopt(6, 1, 1)  # TCP_NODELAY
        s.settimeout(10)
        cid = cid.encode() if isinstance(cid, str) else cid
        body = b"\x00\x04MQTT\x04\x02\x00\x00" + bytes((0, len(cid))) + cid
        s.write(packet(0x10, body))
        r = s.read(4)
        if not r or r[0] != 0x20 or r[3] != 0:
            raise OSError(111)
        self.s = s
        self.ab = bytearray(64)
        self.mv = memoryview(self.ab)
        import select

        self.p = select.poll()
        self.p.register(s, select.POLLIN)

    def readn(self, n):
        # reads exactly n bytes into a scratch buffer (acks are not inspected)
        left = n
        while left:
            k = self.s.readinto(self.mv, min(left, 64))
            if not k:
                raise OSError(104)
            left -= k

    def drain(self):
        # reads the acknowledgements that have arrived (4 bytes each), without waiting
        while self.p.poll(0):
            if not self.s.readinto(self.mv, 4):
                raise OSError(104)

    def release(self, n):
        # answers n PUBRECs with PUBRELs as they arrive, skipping PUBCOMPs of earlier
        # batches: waiting for all n first would stall on the broker's Nagle delay
        rel = bytearray(b"\x62\x02\x00\x00")
        ab = bytearray(4)
        mv = memoryview(ab)
        while n:
            k = 0
            while k < 4:
                r = self.s.readinto(mv[k:], 4 - k)
                if not r:
                    raise OSError(104)
                k += r
            if ab[0] == 0x50:
                rel[2] = ab[2]
                rel[3] = ab[3]
                self.s.write(rel)
                n -= 1

    def close(self):
        try:
            self.s.write(b"\xe0\x00")
        except OSError:
            pass
        self.s.close()
