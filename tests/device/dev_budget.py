# A sensor node sampling every RATE ms through the host's faults: each reading is published
# when it is due (QoS 1 and 2 alternately), check_msg() runs between readings. Every call
# into the client is timed; the longest is reported per phase, the phase being what the
# host wrote into PHASE_FILE (the fault under way). The host ends the run with STOP_FILE;
# the node then delivers its backlog.
# Output: READY; ACCEPTED <n> <qos> <ms> <phase>; LONGEST <phase> <ms> <calls>;
# SKIPPED <readings not taken while a call held the loop>; DRAINED <pending>
import time

import devlib as d
from mqttsession import Link, MQTTClient, SessionStore

ROOT, BD = d.flash()
RATE = d.cfg("RATE", 100)
BUDGET = d.cfg("BUDGET", -1)  # -1: the library's default (a library without budget_ms)
SLOW = d.cfg("SLOW", 1000000)  # calls longer than this (ms) are listed


def exists(p):
    try:
        with open(p) as f:
            return f.read().strip() or "-"
    except OSError:
        return ""


def on_change(up):
    print("LINK", "up" if up else "down", time.ticks_ms())


def make():
    board = None
    if d.cfg("WIFI"):
        import board  # the virtual board: its Wi-Fi follows the host's control file
    lk = Link(board=board, min_ms=100, max_ms=1000, wifi_timeout_ms=d.cfg("WIFI_MS", 300),
              on_change=on_change)
    kw = {}
    if BUDGET != -1:
        kw["budget_ms"] = BUDGET
    store = SessionStore(ROOT + "/.mqtt-budget", max_bytes=65536)
    return MQTTClient(d.cfg("CID"), d.cfg("HOST"), d.cfg("PORT"), version=d.VERSION,
                      store=store, link=lk, window=d.cfg("WINDOW", 1), queue=d.cfg("QUEUE", 200),
                      keepalive=d.cfg("KEEPALIVE", 1), timeout=d.cfg("TIMEOUT", 3), **kw)


def main():
    c = make()
    c.connect(clean_session=False)
    print("READY")
    phase_file = d.cfg("PHASE_FILE")
    stop_file = d.cfg("STOP_FILE")
    longest = {}
    topics = (None, d.topic("p1"), d.topic("p2"))

    def note(ph, ms):
        v = longest.get(ph)
        longest[ph] = (ms, 1) if v is None else (max(v[0], ms), v[1] + 1)

    n = 0
    skipped = 0
    due = time.ticks_ms()
    while not exists(stop_file):
        ph = exists(phase_file) or "-"
        t = time.ticks_ms()
        c.check_msg()
        ms = time.ticks_diff(time.ticks_ms(), t)
        note(ph, ms)
        if ms > SLOW:
            print("SLOW check_msg", ms, ph)
        wait = time.ticks_diff(due, time.ticks_ms())
        if wait > 0:
            time.sleep_ms(min(wait, 10))
            continue
        due = time.ticks_add(due, RATE)
        late = time.ticks_diff(time.ticks_ms(), due)
        if late > RATE:
            skipped += late // RATE  # the loop was held: these readings were not taken
            due = time.ticks_add(time.ticks_ms(), RATE)
        q = 1 + (n & 1)
        t = time.ticks_ms()
        c.publish(topics[q], b"%d" % n, qos=q)  # raising would end the test: it must not
        ms = time.ticks_diff(time.ticks_ms(), t)
        note(ph, ms)
        if ms > SLOW:
            print("SLOW publish", ms, ph)
        print("ACCEPTED", n, q, ms, ph)
        n += 1
    for ph, v in longest.items():
        print("LONGEST", ph, v[0], v[1])
    print("SKIPPED", skipped)
    t0 = time.ticks_ms()
    while c.pending() and time.ticks_diff(time.ticks_ms(), t0) < 30000:
        c.check_msg()
        time.sleep_ms(5)
    print("DRAINED", c.pending(), "outages", c.link.outages)
    d.check(c.pending() == 0, "backlog delivered")
    c.disconnect()


main()
print("PASS")
