# Arguments the application passes (tests/host/test_app_args.py): devcfg.TEST names the
# case. Each checks what the README and the API promise: a clear error, raised before
# anything changes, and the client (and its store) working on after it.
import os
import time

import devlib as d
from mqttsession import MQTTClient, SessionStore, Link

V = d.VERSION
ROOT = d.cfg("ROOT")


def _store():
    return SessionStore(ROOT)


def cid_store_last():
    # a client_id over 65535 bytes must be refused before the store changes
    st = _store()
    c = d.client("good-%d" % V, store=st)
    c.connect(False)
    c.disconnect()
    c.publish(d.topic("q"), b"kept", qos=1)  # offline with a store: queued in flash
    d.check(c.pending() == 1, "one message queued in good's session")
    host = ROOT + "/" + d.cfg("HOST")
    names = sorted(os.listdir(host))
    last = open(host + "/last", "rb").read()
    e = d.raises(ValueError, MQTTClient, "x" * 65536, d.cfg("HOST"), d.cfg("PORT"), store=st,
                 version=V)
    print("raised", repr(e))
    d.check(sorted(os.listdir(host)) == names, "no session directory made for the bad ID: %r"
            % sorted(os.listdir(host)))
    d.check(open(host + "/last", "rb").read() == last, "the last-used pointer unchanged")
    c = d.client(None, store=_store())  # the last used session
    d.check(c.client_id == "good-%d" % V and c.pending() == 1,
            "client_id=None still finds good's session and its message")


def long_credentials():
    # user (README: at most 65535), password and the will's payload (MQTT binary data,
    # a 2-byte length) over 65535 bytes: ValueError when given, not a malformed CONNECT
    for kw in ({"user": "u" * 65536}, {"user": "u", "password": b"p" * 65536}):
        try:
            c = d.client("lc-%d" % V, **kw)
        except ValueError as e:
            d.check(list(kw)[-1] in e.args[0], "ValueError names %s: %s" % (list(kw)[-1], e))
            continue
        e = d.raises(Exception, c.connect)
        d.check(False, "%s of 65536 bytes accepted; connect then raised %r" % (list(kw)[-1], e))
    c = d.client("lw-%d" % V)
    try:
        c.set_last_will(d.topic("w"), b"x" * 65536)
    except ValueError as e:
        d.check("msg" in e.args[0], "set_last_will names msg: %s" % e)
    else:
        e = d.raises(Exception, c.connect)
        d.check(False, "will msg of 65536 bytes accepted; connect then raised %r" % (e,))
    c.connect()  # the will was refused: the client connects as before
    c.disconnect()


def sub_qos_none():
    # subscribe(filter, qos=None) is a bad qos: ValueError, the subscription stays
    st = _store()
    box = d.Inbox()
    c = d.client("sq-%d" % V, store=st)
    c.set_callback(box)
    c.connect()
    t = d.topic("sq")
    c.subscribe(t, 1)
    try:
        c.subscribe(t, None)
        r = "returned"
    except ValueError as e:
        r = "ValueError %s" % e
    c.publish(t, b"still", qos=1)
    got = d.pump(c, lambda: len(box) >= 1, 3000)
    print("subscribe(t, None):", r, "subs", c._s.subs)
    d.check(r.startswith("ValueError") and got, "subscribe(t, None) refused, subscription kept")


def aio_sub_qos_none():
    import asyncio
    from mqttsession.aio import MQTTClient as A

    async def main():
        got = []
        c = A("asq-%d" % V, d.cfg("HOST"), d.cfg("PORT"), version=V, store=_store())
        c.set_callback(lambda t, m: got.append(m))
        await c.connect()
        t = d.topic("asq")
        await c.subscribe(t, 1)
        try:
            await c.subscribe(t, None)
            r = "returned"
        except ValueError as e:
            r = "ValueError %s" % e
        await c.publish(t, b"still", qos=1)
        for _ in range(100):
            if got:
                break
            await asyncio.sleep_ms(20)
        print("aio subscribe(t, None):", r, "subs", c._s.subs)
        await c.disconnect()
        d.check(r.startswith("ValueError") and got, "aio subscribe(t, None) refused, kept")

    asyncio.run(main())


def version_float():
    for v in (4.0, 5.0):
        try:
            c = d.client("vf", version=v)
        except (ValueError, TypeError) as e:
            d.check("version" in e.args[0], "version=%r refused naming it" % v)
            continue
        e = d.raises(Exception, c.connect)
        d.check(False, "version=%r accepted; connect raised %r" % (v, e))


def timeout_bad():
    bad = []
    # (0.0001: a deadline of 0 ms, every wait over at once; taken up to 0.2.23)
    for t in (float("inf"), float("nan"), 1e30, 0.0001, 0.0):
        try:
            c = d.client("tb", timeout=t)
        except ValueError as e:
            if "timeout" not in e.args[0]:
                bad.append("timeout=%r: ValueError %r" % (t, e.args[0]))
            continue
        except Exception as e:
            bad.append("timeout=%r: %s %r" % (t, type(e).__name__, e.args))
            continue
        try:
            c.connect()
            c.disconnect()
        except Exception as e:
            bad.append("timeout=%r accepted, connect: %s %r" % (t, type(e).__name__, e.args))
    c = d.client("tb")
    for t in ("5", -1, 0.0009):
        try:
            c.connect(timeout=t)
            c.disconnect()
        except (ValueError, TypeError) as e:
            if "timeout" not in str(e):
                bad.append("connect(timeout=%r): %r" % (t, e))
        except Exception as e:
            bad.append("connect(timeout=%r): %s %r" % (t, type(e).__name__, e.args))
    for b in bad:
        print("BAD", b)
    c.connect()
    c.disconnect()
    d.check(not bad, "bad timeouts refused with ValueError/TypeError naming timeout")


def aio_clean_one():
    # connect(clean_session=1): the blocking client starts clean (truthy, as umqtt);
    # the asyncio client must do the same
    import asyncio
    from mqttsession.aio import MQTTClient as A

    cid = "ac1-%d" % V
    b = d.client(cid)
    b.connect(False)
    b.disconnect()
    b = d.client(cid)
    pb = b.connect(1)
    b.disconnect()
    b = d.client(cid)
    b.connect(False)
    b.disconnect()

    async def main():
        c = A(cid, d.cfg("HOST"), d.cfg("PORT"), version=V)
        p = await c.connect(1)
        await c.disconnect()
        return p

    pa = asyncio.run(main())
    print("Session Present after connect(1): blocking", pb, "asyncio", pa)
    d.check(pa == pb == False, "connect(clean_session=1) starts clean in both clients")


def callback_noncallable():
    # set_callback(5) must be refused at the call; accepted, the next message is
    # acknowledged and lost
    box = d.Inbox()
    c = d.client("cn-%d" % V)
    c.connect()
    t = d.topic("cn")
    c.subscribe(t, 1)
    try:
        c.set_callback(5)
        r = None
    except TypeError as e:
        r = e
    print("set_callback(5):", repr(r))
    lost = None
    if r is None:
        try:
            c.publish(t, b"m1", qos=1)
            d.pump(c, lambda: False, 500)
        except TypeError as e:
            lost = e
        print("a message arrived then:", repr(lost))
    c.set_callback(box)
    c.publish(t, b"m2", qos=1)
    d.pump(c, lambda: len(box) >= 2, 1500)
    print("delivered after:", [m for _, m in box.got])
    d.check(isinstance(r, TypeError), "set_callback(5) raises TypeError")


def link_nan():
    for kw in ({"factor": float("nan")}, {"wifi_timeout_ms": float("nan")}):
        try:
            lk = Link(**kw)
        except ValueError as e:
            d.check(list(kw)[0] in e.args[0], "Link(%r) refused" % kw)
            continue
        try:
            for _ in range(3):
                lk.failed(OSError(111))
            r = "no error"
        except Exception as e:
            r = "%s %s" % (type(e).__name__, e)
        d.check(False, "Link(%r) accepted; later failed(): %s" % (kw, r))


def big_store_msg():
    # with a store, a QoS 1/2 message whose record (topic, payload, 17 bytes) the store
    # cannot hold must be refused before anything of it is sent (README)
    box = d.Inbox()
    s = d.client("bs-sub-%d" % V, max_packet=80000)
    s.set_callback(box)
    s.connect()
    t = d.topic("bs")
    s.subscribe(t, 1)
    c = d.client("bs-%d" % V, store=_store(), window=4)
    c.connect()
    bad = []
    for qos in (1, 2):
        for _ in range(3):
            box.got.clear()
            try:
                c.publish(t, b"y" * 70000, qos=qos)
                r = None
            except OSError as e:
                r = e
            d.pump(s, lambda: len(box) >= 1, 1500)
            c.check_msg()
            print("qos", qos, "publish:", repr(r), "subscriber got", len(box))
            if r is not None and len(box):
                bad.append("qos %d: publish raised %r, the message was delivered" % (qos, r))
    c.publish(t, b"after", qos=1)
    d.check(d.pump(s, lambda: any(m == b"after" for _, m in box.got), 3000), "later publish works")
    d.check(not bad, "refused messages were never sent: %r" % bad)


def get_capacity_bad():
    # SessionStore.get(host, client_id, capacity) with a capacity that is not an int
    # ("16", 16.5, None, True) or out of range (0): a clear error naming it, before the
    # store reads or writes anything; the session and its queued message stay
    st = _store()
    c = d.client("gc-%d" % V, store=st)
    c.connect(False)
    c.disconnect()
    c.publish(d.topic("q"), b"kept", qos=1)  # offline: queued in flash
    del c
    host = ROOT + "/" + d.cfg("HOST")

    def tree():
        return sorted((p, os.stat(host + "/" + p)[6]) for p in os.listdir(host))

    before = tree()
    for cap in ("16", 16.5, None, True):
        e = d.raises(TypeError, st.get, d.cfg("HOST"), "gc-%d" % V, cap)
        d.check("capacity must be an int" in str(e), "get(capacity=%r): %r" % (cap, e))
    e = d.raises(ValueError, st.get, d.cfg("HOST"), "gc-%d" % V, 0)
    d.check("queue must be 1 to 65535" in str(e), "get(capacity=0): %r" % (e,))
    d.check(tree() == before, "the host's directory unchanged: %r -> %r" % (before, tree()))
    s = st.get(d.cfg("HOST"), "gc-%d" % V, 16)
    d.check(s.pending() == 1, "the queued message still there: %d" % s.pending())


def get_cid_long():
    # SessionStore.get with a client ID over 65535 bytes (MQTT's bound; the client refuses
    # it too): ValueError naming it, and nothing made. Before, the store made its
    # directory and wrote a "last" file larger than it reads back: every later
    # get(host) reported it as damage
    st = _store()
    s = st.get(d.cfg("HOST"), "short-%d" % V)
    host = ROOT + "/" + d.cfg("HOST")
    before = sorted(os.listdir(host))
    last = open(host + "/last", "rb").read() if "last" in before else None
    for cid in (b"x" * 65536, "\u00e9" * 32768):  # the str: 65536 bytes in UTF-8
        e = d.raises(ValueError, lambda: st.get(d.cfg("HOST"), cid))  # (no 64 KB message)
        d.check("client_id longer than 65535" in str(e), "get(<%d>): %r" % (len(cid), e))
    d.check(sorted(os.listdir(host)) == before, "nothing made: %r" % sorted(os.listdir(host)))
    d.check((open(host + "/last", "rb").read() if "last" in before else None) == last,
            "the last-used pointer unchanged")
    s = _store().get(d.cfg("HOST"), b"y" * 65535)  # the bound itself: a session
    d.check(len(s.client_id) == 65535, "a client ID of 65535 bytes is taken")
    d.check(_store().get(d.cfg("HOST"), b"y" * 65535).client_id == s.client_id,
            "and found again")


def root_nul():
    # SessionStore(root) with a NUL in it: the port's filesystem ends the path there, so
    # the store worked in another directory, and get() met RuntimeError (maximum recursion
    # depth) removing a name that resolved to that directory. Refused now, nothing made
    base = ROOT + "nul"
    os.mkdir(base)
    os.mkdir(base + "/a")
    with open(base + "/a/keep", "wb") as f:
        f.write(b"the application's")
    e = d.raises(ValueError, SessionStore, base + "/a\x00b")
    d.check("root" in str(e) and "NUL" in str(e), "the error names root and NUL: %r" % (e,))
    d.check(sorted(os.listdir(base + "/a")) == ["keep"], "nothing made or removed: %r"
            % os.listdir(base + "/a"))


def link_on_change():
    # Link(on_change=) and the client's log= of something not callable: refused when
    # made, as set_callback() (taken, they were reported as raising at every call)
    e = d.raises(TypeError, Link, on_change=5)
    d.check("on_change" in str(e), "the error names on_change: %r" % (e,))
    e = d.raises(TypeError, d.client, "lg-%d" % V, log="print")  # the client's log= too
    d.check("log" in str(e), "the error names log: %r" % (e,))
    seen = []
    lk = Link(on_change=seen.append)
    lk.failed(OSError(111))
    d.check(isinstance(lk, Link), "a callable on_change is taken")


def aio_hooks():
    # the asyncio client's on_connect= and on_error= not callable: refused when made (they
    # were taken; on_connect then failed after every connect, on_error hid every error
    # behind its own TypeError). A plain function as on_connect runs, and is no error
    import asyncio
    from mqttsession.aio import MQTTClient as A

    for kw in ({"on_connect": 5}, {"on_error": "print"}, {"on_connect": print, "on_error": 1}):
        e = d.raises(TypeError, A, "ah-%d" % V, d.cfg("HOST"), d.cfg("PORT"), version=V, **kw)
        n = [k for k in kw if not callable(kw[k])][0]
        d.check(n in str(e), "the error names %s: %r" % (n, e))

    async def main():
        ran = []
        c = A("ah-%d" % V, d.cfg("HOST"), d.cfg("PORT"), version=V,
              on_connect=lambda cl: ran.append(cl is c))
        await c.connect()
        for _ in range(100):
            if ran:
                break
            await asyncio.sleep_ms(20)
        await asyncio.sleep_ms(100)  # an error from it would be reported by now
        print("on_connect ran:", ran, "errors:", c.errors)
        await c.disconnect()
        d.check(ran == [True] and c.errors == 0, "a plain on_connect ran once, no error")

    asyncio.run(main())


globals()[d.cfg("TEST")]()
print("PASS")
