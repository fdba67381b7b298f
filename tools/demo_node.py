# The demo's sensor node: MicroPython on the virtual board (the unix port with a littlefs
# image and an ESP32-sized heap), started by tools/demo.py. It publishes numbered readings
# at a fixed rate, QoS 1 and QoS 2 alternately, through the fault rig to mosquitto, and
# rides through link faults and power cuts on its persistent session.
#
# Settings: the module democfg (written next to the node by the orchestrator) or defaults.
# Board: MQTTS_IMAGE (the flash image), MQTTS_WIFI (the Wi-Fi control file), see
# boards/unix/board.py.
#
# Each reading is identified by (boot, seq): boot counts power-ups and is written to flash
# before the first publish of a boot; seq counts readings within the boot, in RAM. A power
# cut therefore never makes two different readings share an identity, so the host's
# "lost" and "duplicate" counts are exact. The reading number n continues across boots:
# it is written to flash after each publish returned; a power cut between the two leaves
# it one behind, and the next boot reuses that n under a new boot number (the host reports
# how often that happened).
#
# Output, one line each, for the orchestrator:
#   BOOT <boot> <n> <pending>              after mounting the flash
#   LINK up|down <ticks_ms>                the keeper's link state changed
#   ACCEPTED <boot>/<seq> <qos> <n>        publish() returned: the reading is durable
#   REFUSED <boot>/<seq> <qos> <errno>     publish() raised (queue or store full)
#   HEAP <bytes>                           free heap once set up
#   STATUS link=up|down queued=N sent=N acked=N outages=N longest=MS lost0=N free=B
#          skipped=N block=MS
#       after every reading: queued = accepted, not yet acknowledged (this and earlier
#       boots); sent = accepted this boot; acked = completed this boot; free = free heap
#       (measured every 10 readings after a collection); skipped = readings not taken
#       while the loop was held past the next reading; block = the longest single
#       publish() or check_msg() call since the previous STATUS line (ms)
#   DRAINED <pending> <ms>                 the end: backlog delivered, disconnected
import gc
import os
import time

import board
from mqttsession import Link, MQTTClient, MQTTException, SessionStore

try:
    import democfg as _cfg
except ImportError:
    _cfg = None


def cfg(name, default):
    return getattr(_cfg, name, default)


HOST = cfg("HOST", "127.0.0.1")
PORT = cfg("PORT", 1883)
RATE_MS = cfg("RATE_MS", 100)  # one reading every RATE_MS
KEEPALIVE = cfg("KEEPALIVE", 4)
WINDOW = cfg("WINDOW", 8)
QUEUE = cfg("QUEUE", 300)  # messages the session holds while the link is down
STORE_BYTES = cfg("STORE_BYTES", 65536)
RAM = cfg("RAM", 16)  # messages held in RAM; a longer backlog waits in flash, read in order
TIMEOUT = cfg("TIMEOUT", 3)  # seconds for connect and each blocking step
WIFI_MS = cfg("WIFI_MS", 1000)  # how long one Wi-Fi (re)connect attempt may take
# no call into the client holds the loop much longer than this (ms): below the period,
# so a slow link never makes the node miss a reading
BUDGET_MS = cfg("BUDGET_MS", RATE_MS // 2)
PREFIX = cfg("PREFIX", "demo")
STOP_FILE = cfg("STOP_FILE", None)  # a host file: once it exists, drain and end
DRAIN_MS = cfg("DRAIN_MS", 30000)

ROOT = board.mount()
DATA = ROOT + "/demo"


def read_int(name):
    try:
        with open(DATA + "/" + name) as f:
            return int(f.read())
    except (OSError, ValueError):
        return 0


def write_int(name, v):
    # atomic on littlefs: a power cut leaves the old value or the new one
    p = DATA + "/" + name
    with open(p + ".t", "w") as f:
        f.write(str(v))
    os.rename(p + ".t", p)


def stopping():
    if not STOP_FILE:
        return False
    try:
        os.stat(STOP_FILE)
        return True
    except OSError:
        return False


def on_change(up):
    print("LINK", "up" if up else "down", time.ticks_ms())


def main():
    try:
        os.mkdir(DATA)
    except OSError:
        pass
    boot = read_int("boot") + 1
    write_int("boot", boot)  # before the first publish of this boot
    n = read_int("n")

    link = Link(board=board, min_ms=200, max_ms=2000, wifi_timeout_ms=WIFI_MS,
                on_change=on_change)
    store = SessionStore(ROOT + "/.mqtt", max_bytes=STORE_BYTES, ram=RAM)
    c = MQTTClient(None, HOST, PORT, keepalive=KEEPALIVE, window=WINDOW, queue=QUEUE,
                   timeout=TIMEOUT, store=store,
                   link=link, full="error", budget_ms=BUDGET_MS)
    base = c.pending()  # readings of earlier boots still unacknowledged
    print("BOOT", boot, n, base)
    cid = c.client_id
    topics = (None, (PREFIX + "/" + cid + "/q1").encode(), (PREFIX + "/" + cid + "/q2").encode())

    board.wifi_start()  # the link keeper follows the attempt (Link.wifi_step)
    # The first connect only starts: the keeper goes on with it (and with every later
    # reconnect) in steps inside publish() and check_msg(), each call within the budget;
    # publish() meanwhile queues in flash.
    try:
        c.connect(clean_session=False, wait=False)
    except (OSError, MQTTException) as e:
        link.failed(e)  # the keeper tries again after its backoff
    gc.collect()
    # -, accepted this boot, pending at boot, free heap (after a collection), readings
    # skipped while the loop was held, longest call since the last STATUS (ms)
    st = [0, 0, base, gc.mem_free(), 0, 0]

    def call(f, *a):
        t = time.ticks_ms()
        r = f(*a)
        st[5] = max(st[5], time.ticks_diff(time.ticks_ms(), t))
        return r

    def service(until):
        # everything waiting, not one packet per pass, but never past the next reading
        for _ in range(32):
            if call(c.check_msg) is None or time.ticks_diff(until, time.ticks_ms()) <= 0:
                break

    def status():
        q = c.pending()
        print("STATUS link={} queued={} sent={} acked={} outages={} longest={} lost0={} "
              "free={} skipped={} block={}".format(
                  "up" if c.isconnected() else "down", q, st[1], st[1] + st[2] - q,
                  link.outages, link.longest, c.lost0, st[3], st[4], st[5]))
        st[5] = 0

    print("HEAP", st[3])
    seq = 0
    temp = 215
    period = RATE_MS
    due = time.ticks_ms()
    while not stopping():
        service(due)
        wait = time.ticks_diff(due, time.ticks_ms())
        if wait > 0:
            time.sleep_ms(min(wait, 10))
            continue
        due = time.ticks_add(due, period)
        late = time.ticks_diff(time.ticks_ms(), due)
        if late > period:
            # the loop was held (a call that waited): the readings of that time are not
            # taken, as a sensor loop that was busy would miss them
            st[4] += late // period
            due = time.ticks_add(time.ticks_ms(), period)
        seq += 1
        qos = 1 if seq & 1 else 2
        temp += os.urandom(1)[0] % 5 - 2
        ident = str(boot) + "/" + str(seq)
        msg = f"{boot} {seq} {n} {qos} {temp // 10}.{temp % 10}"
        try:
            call(c.publish, topics[qos], msg, False, qos)
        except OSError as e:
            if e.errno not in (105, 28):  # ENOBUFS: queue full; ENOSPC: store full
                raise
            print("REFUSED", ident, qos, e.errno)
        else:
            print("ACCEPTED", ident, qos, n)
            st[1] += 1
            n += 1
            write_int("n", n)
        if not seq % 10:
            gc.collect()
            st[3] = gc.mem_free()
        status()

    # the orchestrator asked for the end: no more readings, deliver the backlog
    t0 = time.ticks_ms()
    last = t0
    while c.pending() and time.ticks_diff(time.ticks_ms(), t0) < DRAIN_MS:
        service(time.ticks_add(time.ticks_ms(), 100))
        time.sleep_ms(2)
        if time.ticks_diff(time.ticks_ms(), last) >= 200:
            last = time.ticks_ms()
            status()
    status()
    print("DRAINED", c.pending(), time.ticks_diff(time.ticks_ms(), t0))
    c.disconnect()


main()
