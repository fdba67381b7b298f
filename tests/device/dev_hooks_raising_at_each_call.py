# Application hooks raising at every N-th call, on the unix port with a store on littlefs
# and a keeper (tests/host/test_hooks_raising_at_each_call.py). HOOK names the hook that
# raises ("cb", "raw", "on_change", "log"), EXC what it raises ("value", "mem", "kbi",
# "exit", "os"), N every how many calls. The node subscribes to its own topics (QoS 2 and
# QoS 1) and publishes to them, so traffic goes both ways; the broker drops the node now
# and then (another connection takes its client ID over), and the keeper reconnects.
# Every call is made as a node's main loop makes it: an exception caught, noted, and the
# loop goes on. At the end: every message whose publish was made (raised or not) came
# back, each QoS 2 one exactly once at the callback, pending() is 0.
# PHASE "run": the above, printing "DONE"; "boot": a new process on the same image:
# connect, wait a while, report what arrived (no QoS 2 message again) and pending().
import time

import devlib as d
from mqttsession import Link, MQTTClient, SessionStore
from mqttsession.packet import MQTTException

ROOT, BD = d.flash()
PHASE = d.cfg("PHASE", "run")
HOOK = d.cfg("HOOK", "cb")
N = d.cfg("N", 1)
M = d.cfg("M", 12)  # messages published
CID = d.cfg("CID", "hr-each")
EXC = {"value": ValueError, "mem": MemoryError, "kbi": KeyboardInterrupt,
       "exit": SystemExit, "os": OSError, "mqtt": MQTTException}[d.cfg("EXC", "value")]
T2 = d.topic("in2").encode()
T1 = d.topic("in1").encode()
calls = [0]
raised = []
got2 = {}
got1 = {}


def hit(where):
    if PHASE != "run":
        return
    calls[0] += 1
    if calls[0] % N == 0:
        raised.append(where)
        raise EXC(where)


def note(t, m):
    t = bytes(t)
    m = bytes(m)
    box = got2 if t == T2 else got1
    box[m] = box.get(m, 0) + 1


def cb(t, m):
    note(t, m)
    if HOOK == "cb":
        hit("cb")


def raw(t, buf, a, b):
    note(t, buf[a:b])
    if HOOK == "raw":
        hit("raw")


def changed(up):
    if HOOK == "on_change":
        hit("on_change")


def log(line):
    if d.cfg("VERBOSE"):
        print("LOG", line)
    if HOOK == "log":
        hit("log")


errs = []


def call(f, *a, **kw):
    try:
        return f(*a, **kw)
    except BaseException as e:  # a node's main loop: catch, note, go on
        if len(errs) < 50:
            errs.append(repr(e))
        return e


lk = Link(min_ms=50, max_ms=200, jitter=0, on_change=changed)
c = MQTTClient(CID, d.cfg("HOST"), d.cfg("PORT"), keepalive=30, link=lk, timeout=10,
               store=SessionStore(ROOT + "/.mqtt"), log=log, window=d.cfg("WINDOW", 2))
if HOOK == "raw":
    c.set_callback(raw, raw=True)
else:
    c.set_callback(cb)


def loop(cond, ms=30000):
    t0 = time.ticks_ms()
    while not cond() and time.ticks_diff(time.ticks_ms(), t0) < ms:
        call(c.check_msg)
        time.sleep_ms(2)
    return cond()


def drop():
    # the broker drops the node: another connection takes its client ID over
    t = MQTTClient(CID, d.cfg("HOST"), d.cfg("PORT"), keepalive=30)
    t.connect(clean_session=False)
    t.sock.close()
    loop(lambda: not c.isconnected(), 20000)
    time.sleep_ms(max(0, lk.due()) + 10)


if PHASE == "run":
    call(c.connect, clean_session=False)
    loop(lambda: c.isconnected(), 20000)
    # the subscriptions: made until the session has them
    for _ in range(20):
        if T2.decode() in c._s.subs and T1.decode() in c._s.subs and not c._s._owed:
            break
        call(c.subscribe, T2.decode(), 2)
        call(c.subscribe, T1.decode(), 1)
        loop(lambda: False, 50)
    sent = []
    how = {}
    for i in range(M):
        q = 2 if i % 2 == 0 else 1
        m = b"m%d" % i
        p0 = c.pending()
        r = call(c.publish, T2 if q == 2 else T1, m, qos=q)
        how[m] = (repr(r), p0, c.pending())
        sent.append((q, m))
        loop(lambda: False, 20)
        if i % 4 == 3:
            drop()
    # accepted: publish returned, or raised the callback's exception (README: accepted
    # all the same); a KeyboardInterrupt or SystemExit from another hook may leave the
    # message to the application, as a Ctrl-C in the call itself
    acc = [m for q, m in sent if how[m][0] == "None" or HOOK in ("cb", "raw")]
    want2 = [m for q, m in sent if q == 2 and m in acc]
    want1 = [m for q, m in sent if q == 1 and m in acc]
    loop(lambda: c.pending() == 0 and all(m in got2 for m in want2) and
         all(m in got1 for m in want1), 60000)
    loop(lambda: False, 500)  # the broker's resends, if any
    dup2 = sorted(m for m, k in got2.items() if k != 1)
    miss2 = sorted(m for m in want2 if m not in got2)
    miss1 = sorted(m for m in want1 if m not in got1)
    print("RAISED", len(raised), sorted(set(raised)), "ERRS", len(errs), sorted(set(errs))[:6])
    print("PENDING", c.pending(), "UP", c.isconnected(), lk.up, "OUTAGES", lk.outages)
    print("MISS2", miss2, "MISS1", miss1, "DUP2", dup2)
    if d.cfg("VERBOSE"):
        print("GOT1", sorted(got1.items()), "GOT2", sorted(got2.items()))
    for m in miss2 + miss1:
        print("MISSED", m, how[m])
    ok = not miss2 and not miss1 and not dup2 and c.pending() == 0
    print("RESULT", "ok" if ok else "FAIL")
    call(c.disconnect)
else:
    call(c.connect, clean_session=False)
    loop(lambda: False, 3000)
    print("BOOT PENDING", c.pending(), "GOT2", sorted(got2), "ERRS", errs)
    ok = c.pending() == 0 and not got2 and not errs
    print("RESULT", "ok" if ok else "FAIL")
print("DONE")
