# Application code the client calls that calls into the client (a node answering
# commands; hooks that report the link), each case printing "RESULT ok" or "RESULT FAIL"
# on its last lines (with what it saw). devcfg: HOST, PORT, PREFIX, CASE, ROOT (a
# directory for the store cases), and each case's own settings (MODE, Q, HOOK).
# clobber: the callback publishes a reply while the loop's publish(reading) waits for
#   room in the window (window 1); MODE=node with a store and a keeper.
# raises: the callback raises out of that wait: the reading is accepted all the same.
# hook: Link(on_change=) (HOOK=on_change) or the log hook (HOOK=log) publishes during
#   the reconnect a publish(reading) makes; HOOK=both: on_change also publishes as the
#   link goes (one outage per drop, no reconnect started from inside the hook).
# connect: connect() from the callback (a "reconnect" command): RuntimeError.
# iter_connect (asyncio): connect() in a messages() loop on a "reconnect" command.
# handler_connect, handler_end (asyncio): connect() and disconnect(end_session=True) in
#   a handler coroutine: RuntimeError, not a reader waiting for itself.
# strikes: Link(on_change=) publishing while a scripted broker closes on every message
#   (HOOK=publish, or print): the message is set aside after `strikes` closes.
# aside_raises: on_aside raises as a scripted broker's close sets a message aside: the
#   client goes on (connect, check_msg).
# bye_raises: the callback raises while disconnect() reads the answers in flight: the
#   disconnect is made, and a later connection publishes as before.
# sub_raises: the callback subscribes twice, then raises while check_msg makes those
#   subscriptions: both are made all the same.
# kbi: the callback raises KeyboardInterrupt (EXC=kbi) or SystemExit (EXC=exit) once,
#   the application catches it: the message is answered, the next one delivered, the
#   client usable (up to 0.2.21 every later check_msg() said it ran inside the callback).
# aio_log, blk_log: the log hook raises once (on "link lost", or on "connected" at the
#   keeper's reconnect: WHEN): printed, the client goes on (up to 0.2.21 the asyncio
#   reader ended for good; the blocking keeper's reconnect stopped half made).
# aio_slow: an asyncio callback that blocks past 3/4 keepalive with a ping out: no outage.
import os
import time

import devlib as d
import devcfg

CASE = d.cfg("CASE")
ROOT = d.cfg("ROOT", "")


def node(cid, **kw):
    # the sensor node: a store in ROOT and a keeper (budget 200 ms)
    from mqttsession import Link, SessionStore

    try:
        os.mkdir(ROOT)
    except OSError:
        pass
    kw.setdefault("link", Link())
    return d.client(cid, store=SessionStore(ROOT), **kw)


def commands(cid, msgs, q):
    # msgs published to the command topic at QoS q by another client
    s = d.client(cid + "-s")
    s.connect()
    for m in msgs:
        s.publish(d.topic("cmd"), m, qos=q)
    s.disconnect()


if CASE in ("clobber", "raises"):
    # a command A arrives, the callback's reply goes out (not awaited); then B arrives with
    # the reply's PUBACK while the loop publishes a reading: its publish waits for room
    # in the window and reads B, and the callback publishes (clobber) or raises (raises)
    CID = "%s-%d" % (CASE, time.ticks_ms())
    cmd = d.topic("cmd")
    data = d.topic("data")
    reply = d.topic("reply")
    ROUNDS = 5 if CASE == "clobber" else 3

    w = d.client(CID + "-w")
    heard = []
    w.set_callback(lambda t, m: heard.append((t, m)))
    w.connect()
    w.subscribe(data, 1)
    w.subscribe(reply, 1)

    s = d.client(CID + "-s")
    s.connect()

    c = node(CID) if d.cfg("MODE") == "node" else d.client(CID)

    def cb(t, m):
        if CASE == "raises" and m.startswith(b"B"):
            raise ValueError("bad command %r" % m)
        c.publish(reply, b"re-" + m, qos=1)

    c.set_callback(cb)
    c.connect(clean_session=d.cfg("MODE") != "node")
    c.subscribe(cmd, 1)
    raised = 0
    for i in range(ROUNDS):
        s.publish(cmd, b"A%d" % i, qos=1)
        d.pump(c, lambda: c.pending() == 1, 20000)  # A delivered, its reply in flight
        s.publish(cmd, b"B%d" % i, qos=1)
        time.sleep_ms(200)  # (so that it has arrived: the case needs it, not the check)
        try:
            c.publish(data, b"reading%d" % i, qos=1)
        except ValueError as e:
            raised += 1  # the callback's, out of the wait: the reading is accepted
            print("publish raised", repr(e))
        d.pump(c, lambda: c.pending() == 0, 20000)
    n = 3 * ROUNDS if CASE == "clobber" else 2 * ROUNDS
    d.pump(w, lambda: len(heard) >= n, 20000)
    d.pump(w, lambda: False, 500)  # anything more would come meanwhile
    c.disconnect(); s.disconnect(); w.disconnect()
    rd = [m for t, m in heard if t == data.encode()]
    rp = [m for t, m in heard if t == reply.encode()]
    print("RAISED", raised, "DATA", len(rd), sorted(rd))
    print("REPLY", len(rp), sorted(rp))
    ok = len(rd) == ROUNDS and len(rp) == n - ROUNDS and len(set(rp)) == len(rp)
    print("RESULT", "ok" if ok else "FAIL")


if CASE == "hook":
    from mqttsession import Link

    HOOK = d.cfg("HOOK", "on_change")
    CID = "r3-%s-%d" % (HOOK, time.ticks_ms())
    data = d.topic("data")
    status = d.topic("status")
    logt = d.topic("log")
    ROUNDS = 3

    w = d.client(CID + "-w")
    heard = []
    w.set_callback(lambda t, m: heard.append((t, m)))
    w.connect()
    w.subscribe(d.topic("#"), 1)

    c = None

    def changed(up):
        # HOOK=both: also "offline" as the link goes (queued: no reconnect from inside)
        if up or HOOK == "both":
            c.publish(status, b"online" if up else b"offline", qos=1)

    def log(line):
        c.publish(logt, line)

    if HOOK != "log":
        c = node(CID, link=Link(on_change=changed))
    else:
        c = node(CID, log=log)
    c.connect(clean_session=False)
    for i in range(ROUNDS):
        # the broker drops the node: another connection with its client ID takes over
        t = d.client(CID)
        t.connect(clean_session=False)
        t.sock.close()
        d.pump(c, lambda: not c.isconnected(), 20000)
        time.sleep_ms(c.link.due() + 10)    # the keeper's backoff has passed
        c.publish(data, b"reading%d" % i, qos=1)   # reconnects, then publishes
        print("round", i, "connected", c.isconnected(), "pending", c.pending())
        d.pump(c, lambda: c.pending() == 0, 20000)
    # one outage per drop, and the link reported up while connected
    link = (c.link.outages, c.link.up, c.isconnected())
    print("LINK", link)
    d.pump(w, lambda: sum(1 for t, m in heard if t == data.encode()) >= ROUNDS, 20000)
    d.pump(w, lambda: False, 500)
    c.disconnect(); w.disconnect()
    rd = [m for t, m in heard if t == data.encode()]
    st = [m for t, m in heard if t == status.encode()]
    lg = [m for t, m in heard if t == logt.encode()]
    print("DATA", len(rd), sorted(rd))
    print("STATUS", len(st), "LOG", len(lg), sorted(set(lg)))
    print("RESULT", "ok" if len(rd) == ROUNDS and link == (ROUNDS, True, True) else "FAIL")


if CASE == "connect":

    MODE = d.cfg("MODE", "node")
    Q = d.cfg("Q", 1)
    CID = "r4-%s-%d" % (MODE, time.ticks_ms())
    cmd = d.topic("cmd")
    got = []
    raised = []

    c = node(CID) if MODE == "node" else d.client(CID)

    def cb(t, m):
        got.append(m)
        if m == b"reconnect":
            try:
                print("connect() ->", c.connect(clean_session=False))
            except Exception as e:
                raised.append(repr(e))
                print("connect() raised", repr(e))

    c.set_callback(cb)
    c.connect(clean_session=False)
    c.subscribe(cmd, Q)
    commands(CID, (b"a", b"reconnect", b"b", b"c"), Q)
    t0 = time.ticks_ms()
    end = 20000
    while time.ticks_diff(time.ticks_ms(), t0) < end:
        if len(got) >= 4 and end == 20000:
            end = time.ticks_diff(time.ticks_ms(), t0) + 500  # a command again meanwhile
        try:
            c.check_msg()
        except Exception as e:
            raised.append(repr(e))
            print("check_msg raised", repr(e))
            time.sleep_ms(100)
        time.sleep_ms(2)
    print("GOT", got)
    print("connected", c.isconnected(), "raised", raised)
    c.disconnect()
    # ok: each command once, and connect() either worked or refused with a clear RuntimeError
    print("RESULT", "ok" if sorted(got) == [b"a", b"b", b"c", b"reconnect"] and
          all(r.startswith("RuntimeError") for r in raised) else "FAIL")


if CASE == "iter_connect":
    import asyncio

    from mqttsession.aio import MQTTClient

    Q = d.cfg("Q", 1)
    CID = "a2-%d-%d" % (Q, time.ticks_ms())
    cmd = d.topic("cmd")

    async def main():
        c = MQTTClient(CID, d.cfg("HOST"), d.cfg("PORT"), keepalive=30)
        await c.connect(clean_session=False)
        await c.subscribe(cmd, Q)
        commands(CID, (b"a", b"reconnect", b"b"), Q)
        got = []
        raised = []

        async def loop():
            async for t, m, r in c.messages():
                got.append(m)
                if m == b"reconnect":
                    try:
                        await c.connect(clean_session=False)
                    except Exception as e:
                        raised.append(repr(e))
                if len(got) > 20:
                    break

        try:
            await asyncio.wait_for(loop(), 10)
        except asyncio.TimeoutError:
            pass
        print("GOT", len(got), got[:8], "raised", raised[:2])
        await c.disconnect()
        print("RESULT", "ok" if sorted(got) == [b"a", b"b", b"reconnect"] or
              raised and all(r.startswith("RuntimeError") for r in raised) else "FAIL")

    asyncio.run(main())


if CASE in ("handler_connect", "handler_end"):
    # a handler coroutine calls connect() on "reconnect", or disconnect(end_session=True)
    # on "forget": it works, or refuses at once with RuntimeError and the client goes on
    import asyncio

    from mqttsession.aio import MQTTClient

    Q = d.cfg("Q", 1)
    CID = "%s-%d" % (CASE[8:], time.ticks_ms())
    cmd = d.topic("cmd")
    word = b"reconnect" if CASE == "handler_connect" else b"forget"
    got = []
    res = []

    async def main():
        c = MQTTClient(CID, d.cfg("HOST"), d.cfg("PORT"), keepalive=30)

        async def cb(t, m):
            got.append(m)
            if m == word:
                try:
                    if CASE == "handler_connect":
                        res.append(await c.connect(clean_session=False))
                    else:
                        await c.disconnect(end_session=True)
                        res.append("returned")
                except Exception as e:
                    res.append(repr(e))

        c.set_callback(cb)
        await c.connect(clean_session=False)
        await c.subscribe(cmd, Q)
        commands(CID, (b"a", word, b"b"), Q)
        await asyncio.sleep(8)
        print("GOT", got, "gave", res, "connected", c.isconnected())
        refused = res and str(res[0]).startswith("RuntimeError")
        if CASE == "handler_connect":
            try:
                await asyncio.wait_for(c.publish(d.topic("x"), b"1", qos=1), 3)
                pub = "ok"
            except Exception as e:
                pub = repr(e)
            print("publish afterwards:", pub)
            ok = res and sorted(got) == [b"a", b"b", word] and pub == "ok" or refused
        else:
            ok = res == ["returned"] and not c.isconnected() or refused and c.isconnected()
        print("RESULT", "ok" if ok else "FAIL")

    asyncio.run(main())


if CASE == "strikes":
    from mqttsession import MQTTClient, Link

    HOOK = devcfg.HOOK
    c = None
    aside = []

    def changed(up):
        if HOOK == "publish":
            c.publish("status", b"up" if up else b"down", qos=1)

    lk = Link(min_ms=50, max_ms=100, jitter=0, on_change=changed)
    c = MQTTClient(d.cfg("CID", "b5"), devcfg.HOST, devcfg.PORT, link=lk, strikes=3, keepalive=30)
    c.on_aside = lambda t, m, why: aside.append((t, m, lk.outages, why))
    c.connect(wait=False)
    t0 = time.ticks_ms()
    while not c.isconnected() and not aside and time.ticks_diff(time.ticks_ms(), t0) < 20000:
        c.check_msg()
    if not aside:
        c.publish("data", b"reading", qos=1)
    t0 = time.ticks_ms()
    while not aside and time.ticks_diff(time.ticks_ms(), t0) < 30000:
        c.check_msg()
        time.sleep_ms(5)
    print("ASIDE", aside)
    print("OUTAGES", lk.outages, "TRIES", lk.tries, "PENDING", c.pending())


if CASE == "aside_raises":
    from mqttsession import MQTTClient

    def oa(t, m, why):
        raise ValueError("on_aside failed")

    c = MQTTClient(d.cfg("CID"), devcfg.HOST, devcfg.PORT, strikes=1, window=16)
    c.on_aside = oa
    c.connect()
    c.publish("t/x", b"hello", qos=1)
    try:
        d.pump(c, lambda: c.sock is None, 20000)  # the broker closes: set aside
    except ValueError as e:
        print("check_msg raised", repr(e))  # on_aside's, as a callback's
    c.connect()
    c.check_msg()  # (RuntimeError when the client thought it was still in a hook)
    print("RESULT", "ok" if c.isconnected() else "FAIL")


if CASE == "bye_raises":
    CID = "bye-%d" % time.ticks_ms()
    c = d.client(CID, window=16, timeout=30)

    def cb(t, m):
        raise ValueError("bad command %r" % m)

    c.set_callback(cb)
    c.connect()
    c.subscribe(d.topic("cmd"), 1)
    c.publish(d.topic("data"), b"reading", qos=1)  # in flight, its PUBACK unread
    commands(CID, (b"stop",), 1)  # arrives meanwhile
    time.sleep_ms(200)
    try:
        c.disconnect()
    except ValueError as e:
        print("disconnect raised", repr(e))
    gone = c.sock is None
    c.connect(clean_session=False)
    c.publish(d.topic("data"), b"next", qos=1)
    d.pump(c, lambda: not c.pending(), 20000)
    print("gone", gone, "pending", c.pending())
    print("RESULT", "ok" if gone and not c.pending() else "FAIL")
    c.disconnect()


if CASE == "sub_raises":
    CID = "sub-%d" % time.ticks_ms()
    cmd = d.topic("cmd")
    got = []
    c = d.client(CID)

    def cb(t, m):
        got.append(m)
        if m == b"sub":
            c.subscribe(d.topic("a"), 1)
            c.subscribe(d.topic("b"), 1)
            commands(CID, (b"boom",), 0)  # arrives while check_msg makes them
        elif m == b"boom":
            raise ValueError("bad command")

    c.set_callback(cb)
    c.connect()
    c.subscribe(cmd, 0)
    commands(CID, (b"sub",), 0)
    try:
        d.pump(c, lambda: b"boom" in got, 20000)
    except ValueError as e:
        print("check_msg raised", repr(e))
    d.pump(c, lambda: not c._todo, 20000)  # (made by the next calls)
    s = d.client(CID + "-t")
    s.connect()
    s.publish(d.topic("a"), b"to-a", qos=1)
    s.publish(d.topic("b"), b"to-b", qos=1)
    s.disconnect()
    d.pump(c, lambda: b"to-a" in got and b"to-b" in got, 20000)
    print("GOT", got)
    print("RESULT", "ok" if b"to-a" in got and b"to-b" in got else "FAIL")
    c.disconnect()

if CASE == "kbi":
    # the blocking callback raises KeyboardInterrupt (Ctrl-C) / SystemExit once; the
    # application catches it and goes on: the client must stay usable
    CID = "%s-%d" % (CASE, time.ticks_ms())
    cmd = d.topic("cmd")
    EXC = {"kbi": KeyboardInterrupt, "exit": SystemExit}[d.cfg("EXC", "kbi")]
    Q = d.cfg("Q", 1)
    got = []
    n = [0]

    def cb(t, m):
        n[0] += 1
        if n[0] == 1:
            raise EXC()
        got.append(m)

    c = d.client(CID)
    c.set_callback(cb)
    c.connect(clean_session=False)
    c.subscribe(cmd, Q)
    s = d.client(CID + "-s")
    s.connect()
    s.publish(cmd, b"m1", qos=Q)
    s.publish(cmd, b"m2", qos=Q)
    caught = None
    t0 = time.ticks_ms()
    errs = []
    while len(got) < 1 and time.ticks_diff(time.ticks_ms(), t0) < 30000:
        try:
            c.check_msg()
        except BaseException as e:
            if isinstance(e, EXC):
                caught = e
            else:
                errs.append(repr(e))
                if len(errs) > 3:
                    break
        time.sleep_ms(5)
    print("CAUGHT", repr(caught), "ERRS", errs[:3], "GOT", got)
    ok = caught is not None and not errs and got == [b"m2"]
    # publish from the app after it
    try:
        c.publish(d.topic("x"), b"y", qos=1)
        c.disconnect()
    except BaseException as e:
        print("after:", repr(e))
        ok = False
    s.disconnect()
    print("RESULT", "ok" if ok else "FAIL")

if CASE == "aio_log":
    # the asyncio client's log hook raises once (on the "link lost" line); the keeper
    # must come back all the same (on_change and on_error raising go no further)
    CID = "%s-%d" % (CASE, time.ticks_ms())
    import asyncio
    from mqttsession import Link
    from mqttsession.aio import MQTTClient

    WHEN = d.cfg("WHEN", "link lost")
    n = [0]

    def log(line):
        if line.startswith(WHEN):
            n[0] += 1
            if n[0] == (2 if WHEN == "connected" else 1):
                raise ValueError("log hook: " + line)

    async def main():
        c = MQTTClient(CID, d.cfg("HOST"), d.cfg("PORT"), keepalive=30,
                       link=Link(min_ms=200, max_ms=500), log=log)
        await c.connect(wait=True)
        # the same client ID elsewhere: the broker drops this connection
        from mqttsession import MQTTClient as B
        b = B(CID, d.cfg("HOST"), d.cfg("PORT"))
        b.connect()
        b.disconnect()
        t0 = time.ticks_ms()
        while c.isconnected() and time.ticks_diff(time.ticks_ms(), t0) < 30000:
            await asyncio.sleep_ms(20)
        t0 = time.ticks_ms()
        while not c.isconnected() and time.ticks_diff(time.ticks_ms(), t0) < 30000:
            await asyncio.sleep_ms(50)
        up = c.isconnected()
        err = None
        try:
            await c.publish(d.topic("x"), b"y", qos=1)
        except Exception as e:
            err = e
        print("UP", up, "PUB_ERR", repr(err), "LOGRAISED", n[0], "outages", c.link.outages)
        try:
            await c.disconnect()
        except Exception:
            pass
        print("RESULT", "ok" if up and err is None else "FAIL")

    asyncio.run(main())

if CASE == "blk_log":
    # the blocking client's log hook raises once on "connected" during the keeper's
    # reconnect: the link must end up as after any reconnect (link.up, on_change(True))
    CID = "%s-%d" % (CASE, time.ticks_ms())
    from mqttsession import Link

    n = [0]
    ups = []

    def log(line):
        if line.startswith("connected"):
            n[0] += 1
            if n[0] == 2:
                raise ValueError("log hook: " + line)

    c = d.client(CID, link=Link(min_ms=200, max_ms=500, on_change=ups.append), log=log)
    c.connect(clean_session=False)
    b = d.client(CID)
    b.connect(clean_session=False)
    b.disconnect()
    errs = []
    # the takeover's close (on_change(False)) and the keeper's reconnect (True again)
    d.pump_noting(c, lambda: len(ups) >= 3 and c.link.up, 30000, errs, 50)
    print("ERRS", errs, "CONNECTED", c.isconnected(), "LINK.UP", c.link.up, "ON_CHANGE", ups)
    ok = c.isconnected() and c.link.up and ups == [True, False, True]
    c.disconnect()
    print("RESULT", "ok" if ok else "FAIL")

if CASE == "aio_slow":
    # a plain asyncio callback that blocks longer than 3/4 keepalive while a ping is out
    CID = "%s-%d" % (CASE, time.ticks_ms())
    cmd = d.topic("cmd")
    import asyncio
    from mqttsession import Link
    from mqttsession.aio import MQTTClient

    KA = 4
    got = []

    def cb(t, m):
        got.append(m)
        time.sleep_ms(KA * 750 + 500)

    async def main():
        c = MQTTClient(CID, d.cfg("HOST"), d.cfg("PORT"), keepalive=KA, link=Link())
        c.set_callback(cb)
        await c.connect(wait=True)
        await c.subscribe(cmd, 0)
        s = d.client(CID + "-s")
        s.connect()
        # wait until a ping is out, then send the message
        t0 = time.ticks_ms()
        while not c._ping and time.ticks_diff(time.ticks_ms(), t0) < 5000:
            await asyncio.sleep_ms(5)
        s.publish(cmd, b"slow", qos=0)
        await asyncio.sleep_ms(6000)
        o = c.link.outages
        print("GOT", got, "OUTAGES", o, c.link.last_error)
        s.disconnect()
        await c.disconnect()
        print("RESULT", "ok" if o == 0 else "FAIL")

    asyncio.run(main())

print("PASS")
