# What the client refuses and sets aside (tests/host/test_guard.py): application input that
# is not MQTT UTF-8, Link and SessionStore settings out of range, poison messages (and the log hook's lines),
# TLS without verification. devcfg.TEST names the scenario; the host judges what the broker
# saw and the lines printed here.
import sys
import time

import devlib as d
from mqttsession import MQTTClient, MQTTException, SessionStore
from mqttsession.link import Link


def client(cid="guard", **kw):
    kw.setdefault("version", d.VERSION)
    kw.setdefault("keepalive", 0)
    kw.setdefault("timeout", 2)
    return MQTTClient(cid, d.cfg("HOST"), d.cfg("PORT"), **kw)


def names(e, arg):
    return isinstance(e, ValueError) and arg in str(e)


def bad_input():
    # each refused at the call, naming the argument; nothing goes on the wire
    for arg, kw in (("client_id", {"cid": b"id\xff"}), ("client_id", {"cid": "a\x00b"}),
                    ("user", {"user": b"\xed\xa0\x80"})):
        e = d.raises(ValueError, client, **kw)
        d.check(names(e, arg), "%s refused: %s" % (arg, e))
    c = client()
    c.connect()
    for t in (b"t/\xff", b"t/\xc0\xaf", b"t/\xed\xa0\x80", b"t/\x00"):
        e = d.raises(ValueError, c.publish, t, b"x", qos=1)
        d.check(names(e, "topic"), "topic %r refused: %s" % (t, e))
    e = d.raises(ValueError, c.subscribe, b"a/\xff/#")
    d.check(names(e, "filter"), "filter refused: %s" % e)
    e = d.raises(ValueError, c.set_last_will, b"w/\xfe", b"bye")
    d.check(names(e, "topic"), "will topic refused: %s" % e)
    d.check(c.pending() == 0, "nothing queued")
    c.publish("t/ok", b"fine", qos=1)  # the only PUBLISH the broker sees
    c.disconnect()


def poison():
    # the broker closes whenever the first message arrives; later messages must go on
    st = SessionStore("store")
    got = []
    lk = Link(min_ms=20, max_ms=400, jitter=0)
    c = client(store=st, link=lk, strikes=3)
    c.on_aside = lambda t, m, why: got.append((t, m, why))
    lines = []
    c.log = lines.append
    c.connect()
    if d.cfg("SUB", 0):
        # a stored subscription: each new session at the broker is subscribed again (its
        # SUBACK says nothing about the message) before the message goes out
        c.subscribe("t/cmd", 1)
    c.publish("t/poison", b"bad", qos=d.cfg("QOS", 1))
    c.publish("t/good", b"ok", qos=1)
    t0 = time.ticks_ms()
    most = 0
    while c.pending() and time.ticks_diff(time.ticks_ms(), t0) < 20000:
        most = max(most, lk.tries)
        c.check_msg()
        time.sleep_ms(5)
    d.check(c.pending() == 0, "the later message went on")
    d.check(len(got) == 1 and got[0][0] == b"t/poison" and got[0][1] == b"bad",
            "on_aside told once: %r" % got)
    print("WHY", got[0][2])
    d.check(most >= 2, "backoff grew while the broker dropped each connection (%d)" % most)
    d.check(lk.tries == 0, "an acknowledgement reset the backoff")
    d.check([r[0] for r in c.aside()] == [b"t/poison"], "visible in aside()")
    # the log hook: a line on each connect, each link loss, the message set aside and
    # the disconnect
    d.check(lines[0].startswith("connected"), "logged: the connect: %r" % lines)
    d.check(sum(x.startswith("link lost") for x in lines) >= 3,
            "logged: each of the 3 closes: %r" % lines)
    aside = [x for x in lines if x.startswith("set aside")]
    d.check(len(aside) == 1 and "t/poison" in aside[0] and got[0][2] in aside[0],
            "logged: the message set aside, and why: %r" % lines)
    c.disconnect()
    d.check(lines[-1].startswith("disconnect"), "logged: the disconnect: %r" % lines[-1:])
    from mqttsession.aside import records

    s = d.peek(SessionStore("store"), d.cfg("HOST"), "guard")
    d.check([r[0] for r in records(s)] == [b"t/poison"] and s.pending() == 0,
            "kept in flash, out of the queue")


def innocent_window():
    # 16 messages in flight each time the broker drops the connection: only the oldest is
    # blamed, so three drops set aside one message, not the window
    lk = Link(min_ms=20, max_ms=200, jitter=0)
    c = client(store=SessionStore("store"), link=lk, window=16, queue=16)
    got = []
    c.on_aside = lambda t, m, why: got.append(t)
    c.connect()
    for i in range(16):
        c.publish("t/w%d" % i, b"m", qos=1)
    t0 = time.ticks_ms()
    while c.pending() and time.ticks_diff(time.ticks_ms(), t0) < 20000:
        c.check_msg()
        time.sleep_ms(5)
    d.check(got == [b"t/w0"], "only the oldest set aside: %r" % got)
    d.check(c.pending() == 0, "the other 15 delivered")
    c.disconnect()


def gone():
    # MQTT 5: the broker sends DISCONNECT while t/kept is in flight (strikes=1); then a
    # broker that takes everything. Prints what was set aside and the link's last error
    lk = Link(min_ms=20, max_ms=200, jitter=0)
    c = client(store=SessionStore("store"), link=lk, strikes=1)
    c.connect()
    c.publish("t/kept", b"m", qos=1)
    e = lk.last_error
    c.publish("t/next", b"m", qos=1)
    t0 = time.ticks_ms()
    while c.pending() and time.ticks_diff(time.ticks_ms(), t0) < 20000:
        c.check_msg()
        time.sleep_ms(5)
    d.check(c.pending() == 0, "delivered after the keeper reconnected")
    print("ASIDE", ",".join(r[0].decode() for r in c.aside()) or "-")
    print("LAST", e.args[0] if isinstance(e, MQTTException) else repr(e))
    c.disconnect()


def refused():
    # MQTT 5: a PUBACK with reason 0x87 sets the message aside; the next one goes on
    got = []
    c = client(store=SessionStore("store"))
    c.on_aside = lambda t, m, why: got.append((t, why))
    c.connect()
    c.publish("t/refused", b"no", qos=1)
    c.publish("t/next", b"yes", qos=1)
    d.check(got == [(b"t/refused", 0x87)], "set aside with the reason code: %r" % got)
    d.check(c.pending() == 0 and c.isconnected(), "next delivered, link up")
    c.disconnect()


def logged_error(lines):
    # the log hook's line for the broker's protocol error, naming it (0x81: malformed)
    err = [x for x in lines if x.startswith("protocol error")]
    d.check(len(err) == 1 and "129" in err[0], "logged: the protocol error: %r" % lines)


def keeper_malformed():
    # with a keeper, a malformed packet while publish() waits is a link failure: the call
    # returns, the message stays queued, link.last_error says what the broker did wrong.
    # The broker's own error is no strike against the message (strikes=1 would show it)
    lk = Link(min_ms=20, max_ms=100, jitter=0)
    lines = []
    c = client(store=SessionStore("store"), link=lk, strikes=1, log=lines.append)
    c.connect()
    c.publish("t/kept", b"x", qos=1)
    e = lk.last_error
    d.check(isinstance(e, MQTTException) and e.args[0] == 0x81, "last_error %r" % (e,))
    logged_error(lines)
    d.check(lines[-1].startswith("link lost") and "129" in lines[-1],
            "logged: the link loss it caused: %r" % lines)
    d.check(c.pending() == 1, "the message is kept")
    t0 = time.ticks_ms()
    while c.pending() and time.ticks_diff(time.ticks_ms(), t0) < 10000:
        c.check_msg()
        time.sleep_ms(5)
    d.check(c.pending() == 0 and not c.aside(), "delivered after the keeper reconnected")
    c.disconnect()


def no_keeper_malformed():
    # without a keeper the same is an MQTTException naming the broker's error
    lines = []
    c = client(log=lines.append)
    c.connect()
    e = d.raises(MQTTException, c.publish, "t/x", b"x", qos=1)
    d.check(e.args[0] == 0x81 and c.sock is None, "MQTTException 0x81, link closed")
    logged_error(lines)


def raising_hook():
    # a Link(on_change=f) that raises: printed, and the connect, the messages and the
    # disconnect go on as if it had not
    ups = []

    def hook(up):
        ups.append(up)
        raise RuntimeError("hook %s" % up)

    c = client(link=Link(min_ms=20, max_ms=400, jitter=0, on_change=hook))
    c.connect()
    d.check(c.isconnected(), "connected although the hook raised")
    c.publish("t/a", b"one", qos=1)
    d.check(c.pending() == 0, "and the message went through")
    c.disconnect()
    c.connect()  # a second connection: the hook is told again
    c.disconnect()
    print("UPS", ups)
    d.check(ups[:1] == [True] and ups.count(True) == 2, "the hook was called: %r" % ups)


def link_args():
    # the keeper's settings are checked when the Link is made: min_ms <= 0, min_ms >
    # max_ms, a factor below 1 (0: no wait at all, a reconnect storm), a jitter outside 0
    # to <1, a wifi_timeout_ms <= 0 (ValueError), anything not a number (TypeError); the
    # bounds themselves are taken
    for arg, kw in (("min_ms", {"min_ms": 0}), ("min_ms", {"min_ms": -500}),
                    ("min_ms", {"min_ms": 2000, "max_ms": 1000}),
                    ("min_ms", {"min_ms": 40000}),  # over the default max_ms
                    ("jitter", {"jitter": 1}), ("jitter", {"jitter": 1.5}),
                    ("jitter", {"jitter": -0.1}), ("factor", {"factor": 0}),
                    ("factor", {"factor": 0.5}), ("wifi_timeout_ms", {"wifi_timeout_ms": 0}),
                    ("wifi_timeout_ms", {"wifi_timeout_ms": -1})):
        e = d.raises(ValueError, Link, **kw)
        d.check(arg in str(e), "%r refused: %s" % (kw, e))
    for arg in ("min_ms", "max_ms", "factor", "jitter", "wifi_timeout_ms"):
        e = d.raises(TypeError, Link, **{arg: "a"})
        d.check(arg in str(e), "%s='a' refused: %s" % (arg, e))
    for kw in ({"min_ms": 1}, {"min_ms": 1000, "max_ms": 1000}, {"jitter": 0},
               {"jitter": 0.99}, {"factor": 1}, {"factor": 1.5}, {"wifi_timeout_ms": 1}):
        lk = Link(**kw)
        d.check(all(getattr(lk, k) == v for k, v in kw.items()), "%r taken" % kw)


def store_args():
    # the store's settings are checked when the SessionStore is made, before it touches
    # the filesystem: a root not a str (TypeError), max_bytes or ram not None or an int
    # >= 1, newer not "refuse" or "aside" (ValueError); the bounds themselves are taken
    import os

    for exc, arg, kw in ((TypeError, "root", {"root": 123}), (TypeError, "root", {"root": None}),
                         (ValueError, "max_bytes", {"max_bytes": "x"}),
                         (ValueError, "max_bytes", {"max_bytes": -5}),
                         (ValueError, "max_bytes", {"max_bytes": 0}),
                         (ValueError, "max_bytes", {"max_bytes": 1.5}),
                         (ValueError, "ram", {"ram": "x"}), (ValueError, "ram", {"ram": 0}),
                         (ValueError, "newer", {"newer": "bogus"}),
                         (ValueError, "newer", {"newer": None})):
        kw.setdefault("root", "st-args")
        e = d.raises(exc, SessionStore, **kw)
        d.check(arg in str(e), "%r refused: %s" % (kw, e))
    d.check("st-args" not in os.listdir(), "nothing made on the filesystem")
    for kw in ({"max_bytes": 1}, {"ram": 1}, {"newer": "aside"}, {"newer": "refuse"}):
        st = SessionStore("st-args", **kw)
        d.check(all(getattr(st, k) == v for k, v in kw.items()), "%r taken" % kw)
    # a host that is not a str, a client ID that is not a str or bytes: TypeError naming
    # it, from every call that takes them, before anything is made (a bytes host failed
    # inside the load with AttributeError, an int with "has no len()")
    st.get("h", "c")
    before = sorted(os.listdir("st-args/h"))
    for f, a, arg in ((st.get, (None,), "host"), (st.get, (b"h", "c"), "host"),
                      (st.get, ("h", 123), "client_id"), (st.get, ("h", 0), "client_id"),
                      (st.has_any, (5,), "host"),
                      (st.delete, ("h", None), "client_id"), (st.delete, (b"h", "c"), "host"),
                      (st.null_session, (1.5,), "host")):
        e = d.raises(TypeError, f, *a)
        d.check(str(e).startswith(arg + " must be"), "%r refused: %s" % (a, e))
        # and the code that refused it is not left loaded (heap)
        d.check("mqttsession.dirs" not in sys.modules, "%r: dirs.py freed" % (a,))
    d.check(os.listdir("st-args") == ["h"] and sorted(os.listdir("st-args/h")) == before,
            "nothing made or removed by them")


def sub_link_lost():
    # the broker closes the connection while subscribe() waits for its SUBACK: OSError,
    # and the log hook gets a line for the link loss (devcfg.KEEPER: with a keeper)
    lines = []
    lk = Link(min_ms=20, max_ms=100, jitter=0) if d.cfg("KEEPER") else None
    c = client(link=lk, log=lines.append)
    c.connect()
    e = d.raises(OSError, c.subscribe, "t/s", 1)
    print("RAISED", repr(e))
    print("LINK_LOST_LINES", sum(x.startswith("link lost") for x in lines), lines)


def suback_refused():
    # two subscriptions made offline (a keeper, before connect) go out once connected;
    # the broker refuses cmd/bad (0x80): the connect goes on, the log hook says so, and
    # the filter leaves the session and the store, so the next connection to a broker
    # without the session sends cmd/ok only
    logs = []
    lk = Link(min_ms=100, max_ms=400, jitter=0)
    c = client(link=lk, store=SessionStore("store"), log=logs.append)
    c.subscribe("cmd/bad", 1)
    c.subscribe("cmd/ok", 1)
    d.check(c.connect(clean_session=False) is False, "connected")
    print("REFUSED", [m for m in logs if "refused" in m])
    d.check(any("subscription refused" in m and "cmd/bad" in m for m in logs), "logged")
    d.check(list(c._s.subs) == [b"cmd/ok"], "dropped from the session: %r" % c._s.subs)
    s = d.peek(SessionStore("store"), d.cfg("HOST"), "guard")
    d.check(list(s.subs) == [b"cmd/ok"], "and from the store: %r" % s.subs)
    d.check(c.isconnected(), "the link stays")
    c.disconnect()
    d.check(c.connect(clean_session=False) is False, "connected again")
    c.disconnect()


def suback_lost():
    # two subscriptions made offline; the link goes while the connect waits for the
    # first one's SUBACK: connect(wait=False) hands that to the keeper, whose next
    # connection (the broker kept the session) makes both
    lk = Link(min_ms=100, max_ms=400, jitter=0)
    c = client(link=lk, store=SessionStore("store"))
    c.subscribe("cmd/a", 1)
    c.subscribe("cmd/b", 2)
    d.check(c.connect(clean_session=False, wait=False) is None, "the first connection lost")
    print("LOST", repr(lk.last_error), sorted(c._todo))
    t0 = time.ticks_ms()
    while (c._todo or not c.isconnected()) and time.ticks_diff(time.ticks_ms(), t0) < 20000:
        c.check_msg()
        time.sleep_ms(5)
    d.check(c.isconnected() and not c._todo, "made on the next connection")
    d.check(sorted(c._s.subs.items()) == [(b"cmd/a", 1), (b"cmd/b", 2)], "in the session")
    c.disconnect()


def ssl_true():
    e = d.raises(ValueError, client, ssl=True)
    d.check("CA" in str(e) and "load_verify_locations" in str(e), "says how: %s" % e)


def ssl_not_a_context():
    # ssl= given something that is not an SSLContext (umqtt's old ssl=1, the ssl module, a
    # string): refused by the constructor with TypeError naming ssl, for both front ends,
    # not an AttributeError out of connect() or a keeper's check_msg() later
    import ssl

    from mqttsession import aio

    for v in (1, "yes", b"x", ssl):
        for cls in (MQTTClient, aio.MQTTClient):
            try:
                cls("bad", d.cfg("HOST"), d.cfg("PORT"), ssl=v, link=Link())
                e = None
            except Exception as x:  # which type it is, is the test
                e = x
            print("SSL_ARG", cls.__module__, type(v).__name__, repr(e))
            d.check(isinstance(e, TypeError) and "ssl" in str(e),
                    "%s ssl=%r refused naming ssl: %r" % (cls.__module__, v, e))
    for v in (None, False, 0):  # no TLS, as umqtt's ssl=False
        MQTTClient("plain", d.cfg("HOST"), d.cfg("PORT"), ssl=v)


def tls_default_context():
    # MicroPython's SSLContext starts with verification off: used, as chosen, with one warning
    import ssl

    for i in range(2):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        c = client("tlsdef%d" % i, ssl=ctx)
        c.connect()
        c.disconnect()
    print("CONNECTED_UNVERIFIED")


def tls_keeper_cert_failure():
    # a rogue certificate at a reconnect is a link failure: backoff, last_error, no raise
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=d.cfg("CA_DER"))
    lk = Link(min_ms=20, max_ms=100, jitter=0)
    c = client("tlskeep", ssl=ctx, link=lk)
    e = d.raises(OSError, c.connect)
    print("FIRST", repr(e))
    t0 = time.ticks_ms()
    while lk.tries < 3 and time.ticks_diff(time.ticks_ms(), t0) < 10000:
        c.check_msg()  # never raises: the keeper backs off and tries again
        time.sleep_ms(10)
    d.check(lk.tries >= 3, "reconnects failed and were counted")
    d.check(isinstance(lk.last_error, OSError), "last_error %r" % lk.last_error)
    c.publish("t/q", b"queued", qos=1)  # offline: queued, no exception
    d.check(c.pending() == 1, "queued while the certificate is refused")


def qos0_stall():
    # QoS 0 messages of 8 KB while the broker reads nothing for 2 s (the keeper's budget:
    # 200 ms a call): output the socket has not taken goes first; a message that finds it
    # still waiting when the budget is spent is dropped and counted in lost0, never piled
    # up in the heap. The host checks that every message not counted arrived, in order
    c = client("stall", link=Link(), timeout=20)
    c.connect()
    d.small_sndbuf(c.sock)
    m = bytearray(8192)
    most = 0
    for i in range(100):
        m[:4] = b"%04d" % i
        c.publish("t/s", m)
        most = max(most, len(c._ob or b""))
    t0 = time.ticks_ms()
    while c._ob is not None and time.ticks_diff(time.ticks_ms(), t0) < 20000:
        c.check_msg()
    print("LOST0", c.lost0)
    print("MOST", most, "UP", c.isconnected(), "OUT", c._ob is None)
    d.check(c.isconnected() and c._ob is None, "connected, all out")
    d.check(c.lost0 >= 1, "messages published while the socket took nothing were dropped")
    d.check(most <= 8192 + 16, "at most one packet waited in the heap")
    c.disconnect()


def late():
    # a broker that answers CONNECT and then neither reads nor sends: with a keeper, the
    # link's end is recorded as what it was, a deadline passed (ETIMEDOUT), not a reset:
    # first the PINGRESP overdue (keepalive 2 s), then output not taken within timeout
    lk = Link(min_ms=10, max_ms=10, jitter=0)
    c = client("late", link=lk, keepalive=2)
    c.connect()
    t0 = time.ticks_ms()
    while c.isconnected() and time.ticks_diff(time.ticks_ms(), t0) < 20000:
        c.check_msg()
        time.sleep_ms(20)
    print("KEEPALIVE", repr(lk.last_error))
    d.check(isinstance(lk.last_error, OSError) and lk.last_error.errno == 110,
            "no PINGRESP: ETIMEDOUT")
    c.ka = 0  # no more pings: the next link ends on output
    t0 = time.ticks_ms()
    while not c.isconnected() and time.ticks_diff(time.ticks_ms(), t0) < 20000:
        c.check_msg()
    d.check(c.isconnected(), "reconnected")
    d.small_sndbuf(c.sock)
    m = bytes(8192)
    t0 = time.ticks_ms()
    while c.isconnected() and time.ticks_diff(time.ticks_ms(), t0) < 20000:
        c.publish("t/late", m)
    print("OUTPUT", repr(lk.last_error))
    d.check(isinstance(lk.last_error, OSError) and lk.last_error.errno == 110,
            "output not taken: ETIMEDOUT")
    c.disconnect()


def end_inflight():
    # disconnect(end_session=True) while connected with MQTT 5 (no clean connect first):
    # the messages the session held are given up on purpose and counted in dropped
    c = client("endv5", link=Link(), store=SessionStore("store"), window=4)
    c.connect(False)
    for i in range(3):
        c.publish("t/end", "m%d" % i, qos=1)  # the broker never acknowledges
    print("PENDING", c.pending())
    c.disconnect(end_session=True)
    print("DROPPED", c.dropped, "PENDING_AFTER", c.pending())
    d.check(c.dropped == 3 and not c.pending(), "the three given up, counted")


def bye_waits():
    # disconnect() right after a QoS 0 publish of 30 KB the socket has not taken (the
    # broker reads nothing for 2 s): the message goes out whole, then DISCONNECT
    c = client("bye", link=Link(), timeout=10)
    c.connect()
    d.small_sndbuf(c.sock)
    c.publish("t/bye", bytes(30000))
    d.check(c._ob is not None, "the socket did not take it all at once")
    c.disconnect()


globals()[d.cfg("TEST")]()
print("PASS")
