# Runs a list of hostile-broker cases against one front end (devcfg.FRONT: "sync" for
# mqttsession.MQTTClient, "aio" for mqttsession.aio.MQTTClient) and prints one JSON line per
# case ("CASE {...}"): what each call raised and how long it blocked, the longest stall of a
# 10 ms ticker task (aio), heap growth, delivered messages, the stored messages afterwards
# and any change outside the store root. The host (tests/host/test_hostile_cases.py) judges.
# The cases come from cases.json in the working directory; case i is connection i at the
# scripted broker on devcfg.HOST:PORT.
import gc
import json
import os
import time

import devcfg
from mqttsession import MQTTClient, MQTTException, SessionStore

FRONT = getattr(devcfg, "FRONT", "sync")
HOST = devcfg.HOST
PORT = devcfg.PORT
TIMEOUT = getattr(devcfg, "TIMEOUT", 1.0)
MAX_PACKET = getattr(devcfg, "MAX_PACKET", 1024)
OTHER = "other.host"
QUIET_MS = 300  # a short passive run (check_ms <= 400) ends this long after the last packet
# the sessions every case's store holds before the case: (host, client ID, messages)
SEEDED = ((HOST, "keep", 2), (OTHER, "keep", 1))

if FRONT == "aio":
    import asyncio
    from mqttsession import aio


def exc_info(e):
    if isinstance(e, MQTTException):
        return {"t": "MQTTException", "code": e.args[0] if e.args else None, "msg": str(e)}
    if isinstance(e, OSError):
        return {"t": "OSError", "code": e.errno, "msg": str(e)}
    return {"t": type(e).__name__, "code": None, "msg": str(e)}


def tree(p, skip, out):
    # every entry under p except the subtree skip: path -> size (-1 for a directory)
    try:
        names = sorted(e[0] for e in os.ilistdir(p))
    except OSError:
        return out
    for n in names:
        q = p + "/" + n
        if q == skip:
            continue
        try:
            st = os.stat(q)
        except OSError:
            continue
        if st[0] & 0x4000:
            out[q] = -1
            tree(q, skip, out)
        else:
            out[q] = st[6]
    return out


def diff(a, b):
    return sorted([k for k in b if a.get(k) != b[k]] + [k for k in a if k not in b])


class Inbox:
    def __init__(self):
        self.n = 0
        self.first = []
        self.seen = None  # the reader's error a check already returned (asyncio)

    def __call__(self, t, m):
        self.n += 1
        if len(self.first) < 3:
            self.first.append([repr(t), len(m)])  # repr: the topic may not be UTF-8


def seed(root, v, own):
    # a store with messages queued offline: two sessions beside the case's own
    st = SessionStore(root)
    for host, cid, n in SEEDED:
        c = MQTTClient(cid, host, PORT, version=v, store=st)
        for i in range(n):
            c.publish("keep/%d" % i, b"stored %s %d" % (cid, i), qos=1)
    if own:
        c = MQTTClient(own, HOST, PORT, version=v, store=st)
        for i in range(2):
            c.publish("own/%d" % i, b"own %d" % i, qos=1)
    return st


def stored(root, sessions):
    # the messages each session holds after the case, read back from a fresh store
    try:
        st = SessionStore(root)
    except Exception as e:  # a store that cannot open is a finding, not a crash
        return {"error": exc_info(e)}
    out = {}
    for host, cid in sessions:
        try:
            if not st.has_any(host):
                out[host + "|" + cid] = -1
                continue
            s = st.get(host, cid)
            out[host + "|" + cid] = s.pending()
        except Exception as e:
            out[host + "|" + cid] = exc_info(e)
    return out


def new_client(cs, st):
    cid = "" if cs["client"] == "null" else "hc"
    kw = dict(version=cs["v"], store=st, timeout=cs.get("timeout", TIMEOUT),
              max_packet=MAX_PACKET, user="case%d" % cs["i"], keepalive=0)
    if FRONT == "aio":
        return aio.MQTTClient(cid, HOST, PORT, **kw)
    return MQTTClient(cid, HOST, PORT, **kw)


def rmtree(p):
    try:
        names = [e[0] for e in os.ilistdir(p)]
    except OSError:
        return
    for n in names:
        q = p + "/" + n
        try:
            os.remove(q)
        except OSError:
            rmtree(q)
    os.rmdir(p)


def top():
    # the names next to the case directories: a write that escapes one shows here
    return {"./" + n: 0 for n in os.listdir(".")} | {"cases/" + n: 0 for n in os.listdir("cases")}


def prepare(cs):
    d = "cases/%s" % (cs["i"] if cs["i"] >= 0 else "warm%d" % -cs["i"])
    rmtree(d)  # left by a run that ended in this case
    os.mkdir(d)
    with open(d + "/outside.txt", "w") as f:
        f.write("must stay")
    os.mkdir(d + "/sibling")
    return d


class Meter:
    # the longest single call, and the longest gap of the ticker task (aio): t is its last
    # tick, set again with gap = 0 when a case starts, so that the case's synchronous
    # set-up before (a store seeded, a client made) is not counted as the client's stall
    def __init__(self):
        self.gap = 0
        self.t = time.ticks_ms()
        self.on = True

    def reset(self):
        self.gap = 0
        self.t = time.ticks_ms()


def finish(cs, d, r, c, st, m0, before, top0):
    r["up"] = bool(c.isconnected())
    try:
        r["client_id"] = c.client_id
    except Exception as e:
        r["client_id"] = exc_info(e)
    try:
        r["pending"] = c.pending()
    except Exception as e:
        r["pending"] = exc_info(e)
    r["reported"] = getattr(c, "errors", None)  # the asyncio client's on_error count
    return r


def str_cost(n):
    # heap taken by a str of n bytes: its object (4 words) and its data, in 16-byte blocks
    return 4 * 8 + (n + 16) // 16 * 16


def clobber(n):
    # overwrites the C stack below the caller: the collector scans it conservatively, and
    # a stale word there can keep a dead client alive for one measurement
    a = b = c = d = e = f = g = h = None
    if n:
        clobber(n - 1)
    return a or b or c or d or e or f or g or h


def growth(m0, js):
    # heap growth: everything the case made is gone but its record, held as one string.
    # (SessionStore._own keeps one claim per session path the process opened, by design:
    # each case opens a new one, so it is emptied, not counted as the case's)
    SessionStore._own.clear()
    clobber(30)
    gc.collect()
    return gc.mem_alloc() - m0 - str_cost(len(js))


def after(cs, d, js, grown, first, before, top0):
    r = json.loads(js)
    r["heap"] = grown
    if first != grown:
        r["heap_first"] = first  # what a stale reference held at the first measurement
    sess = [(h, c) for h, c, _ in SEEDED]
    if cs["client"] == "own":
        sess.append((HOST, "hc"))
    r["stored"] = stored(d + "/store", sess)
    r["outside"] = diff(before, tree(d, d + "/store", {}))
    r["escaped"] = [k for k in diff(top0, top()) if k != d]
    print("CASE " + json.dumps(r))


# --- blocking front end ---------------------------------------------------------------


def timed(r, op, fn, *a):
    t0 = time.ticks_ms()
    err = None
    try:
        fn(*a)
    except Exception as e:
        err = exc_info(e)
    ms = time.ticks_diff(time.ticks_ms(), t0)
    r["ms"][op] = max(r["ms"].get(op, 0), ms)
    return err


def check_sync(c, cs, box, r):
    # a passive run: check_msg until an error, check_ms pass or enough messages arrived
    t0 = last = time.ticks_ms()
    seen = False
    while time.ticks_diff(time.ticks_ms(), t0) < cs["check_ms"]:
        if seen and cs["check_ms"] <= 400 and time.ticks_diff(time.ticks_ms(), last) > QUIET_MS:
            break  # the broker's burst is over
        t1 = time.ticks_ms()
        try:
            got = c.check_msg()
        except Exception as e:
            r["ms"]["check"] = max(r["ms"].get("check", 0), time.ticks_diff(time.ticks_ms(), t1))
            return exc_info(e)
        r["ms"]["check"] = max(r["ms"].get("check", 0), time.ticks_diff(time.ticks_ms(), t1))
        if got is not None:
            seen = True
            last = time.ticks_ms()
        if cs["until"] and box.n >= cs["until"]:
            time.sleep_ms(50)  # the last acknowledgements on their way
            c.check_msg()
            break
        if got is None:
            time.sleep_ms(2)
    return None


def run_sync(cs):
    d = prepare(cs)
    before = tree(d, d + "/store", {})
    top0 = top()
    gc.collect()
    m0 = gc.mem_alloc()
    r = {"i": cs["i"], "name": cs["name"], "v": cs["v"], "ms": {}, "exc": {}, "gap": 0,
         "t0": time.ticks_ms()}
    st = seed(d + "/store", cs["v"], "hc" if cs["client"] == "own" else None)
    c = new_client(cs, st)
    box = Inbox()
    c.set_callback(box)
    for op in cs["ops"]:
        if op == "connect":
            e = timed(r, op, c.connect, False)
        elif op == "sub":
            e = timed(r, op, c.subscribe, "s/t", 1)
        elif op == "pub":
            e = timed(r, op, c.publish, "own/new", b"new", False, 1)
        else:
            e = check_sync(c, cs, box, r)
        r["exc"][op] = e
        if e and op == "connect":
            break
    finish(cs, d, r, c, st, m0, before, top0)
    r["delivered"] = box.n
    r["first"] = box.first
    try:
        c.disconnect()
    except Exception as e:
        r["exc"]["disconnect"] = exc_info(e)
    c = st = box = None
    r["wall"] = time.ticks_diff(time.ticks_ms(), r.pop("t0"))
    js = json.dumps(r)
    r = None
    first = grown = growth(m0, js)
    for _ in range(3):  # a growth that goes away again was no leak
        if grown < 1024:
            break
        time.sleep_ms(20)
        grown = min(grown, growth(m0, js))
    after(cs, d, js, grown, first, before, top0)


# --- asyncio front end ----------------------------------------------------------------


async def ticker(meter):
    while meter.on:
        await asyncio.sleep_ms(10)
        now = time.ticks_ms()
        meter.gap = max(meter.gap, time.ticks_diff(now, meter.t) - 10)
        meter.t = now


async def atimed(r, op, coro):
    t0 = time.ticks_ms()
    err = None
    try:
        await coro
    except Exception as e:
        err = exc_info(e)
    r["ms"][op] = max(r["ms"].get(op, 0), time.ticks_diff(time.ticks_ms(), t0))
    return err


def reader_error(c):
    # what the reader task reports to the application when it ends or drops the link
    for name in ("last_error", "_err"):
        e = getattr(c, name, None)
        if e is not None:
            return e
    return None


async def check_aio(c, cs, box, r):
    t0 = time.ticks_ms()
    ms = cs["check_ms"]  # the reader cannot say when a burst is over: the whole window
    e0 = box.seen  # kept by the reader after an earlier check returned it: not news
    while time.ticks_diff(time.ticks_ms(), t0) < ms:
        e = reader_error(c)
        if e is not None and e is not e0:
            box.seen = e
            return exc_info(e)
        if not c.isconnected():
            await asyncio.sleep_ms(20)  # the reader records why just after closing
            e = reader_error(c)
            return exc_info(e) if e is not None else {"t": "closed", "code": None, "msg": ""}
        if cs["until"] and box.n >= cs["until"]:
            await asyncio.sleep_ms(50)
            break
        await asyncio.sleep_ms(10)
    return None


async def run_aio(cs, meter):
    d = prepare(cs)
    before = tree(d, d + "/store", {})
    top0 = top()
    gc.collect()
    m0 = gc.mem_alloc()
    r = {"i": cs["i"], "name": cs["name"], "v": cs["v"], "ms": {}, "exc": {},
         "t0": time.ticks_ms()}
    st = seed(d + "/store", cs["v"], "hc" if cs["client"] == "own" else None)
    c = new_client(cs, st)
    box = Inbox()
    c.set_callback(box)
    meter.reset()
    for op in cs["ops"]:
        if op == "connect":
            e = await atimed(r, op, c.connect(False))
        elif op == "sub":
            e = await atimed(r, op, c.subscribe("s/t", 1))
        elif op == "pub":
            e = await atimed(r, op, c.publish("own/new", b"new", False, 1))
        else:
            e = await check_aio(c, cs, box, r)
        r["exc"][op] = e
        if e and op == "connect":
            break
    finish(cs, d, r, c, st, m0, before, top0)
    r["delivered"] = box.n
    r["first"] = box.first
    try:
        await c.disconnect()
    except Exception as e:
        r["exc"]["disconnect"] = exc_info(e)
    t0 = time.ticks_ms()  # the reader task sees the disconnect and ends
    while getattr(c, "_task", None) is not None and time.ticks_diff(time.ticks_ms(), t0) < 1000:
        await asyncio.sleep_ms(10)
    await asyncio.sleep_ms(10)
    r["gap"] = meter.gap
    c = st = box = None
    r["wall"] = time.ticks_diff(time.ticks_ms(), r.pop("t0"))
    js = json.dumps(r)
    r = None
    first = grown = growth(m0, js)
    for _ in range(3):  # a growth that goes away again was no leak
        if grown < 1024:
            break
        await asyncio.sleep_ms(20)
        grown = min(grown, growth(m0, js))
    after(cs, d, js, grown, first, before, top0)


async def main_aio(cases):
    meter = Meter()
    t = asyncio.create_task(ticker(meter))
    for cs in cases:
        print("START", cs["i"])
        await run_aio(cs, meter)
    meter.on = False
    await t


def main():
    with open("cases.json") as f:
        spec = json.load(f)
    cases = spec["cases"]
    try:
        os.mkdir("cases")
    except OSError:
        pass
    # warm-up runs (negative i, not reported): first-use allocations of each code path
    # (asyncio's I/O queue, interned names, a first exception) are not growth
    warm = spec["warm"]
    if FRONT == "aio":
        asyncio.run(main_aio(warm + cases))
    else:
        for cs in warm + cases:
            print("START", cs["i"])
            run_sync(cs)
    print("DONE")
    print("PASS")


main()
