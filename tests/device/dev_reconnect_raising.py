# Application code that raises while the client connects, resumes a session or makes
# subscriptions again, against a scripted broker (tests/host/test_reconnect_raising.py says
# what it sends). Each case prints "RESULT ok" or "RESULT FAIL" with what it saw.
# devcfg: HOST, PORT, CID, CASE, ROOT (a directory for the store cases), EXC.
# blk_connect: the blocking callback raises while connect() waits for the SUBACKs of the
#   subscriptions made again after the broker lost the session (no keeper, RAM session,
#   two subscriptions): the connection stays up and both are made.
# blk_keeper: the same in the keeper's reconnect (check_msg, a store, a reading in
#   flight): link.up, on_change(True), the reading sent again.
# blk_publish: the same in the reconnect publish() makes: the reading is accepted all
#   the same (pending) and sent.
# aio_aside: the asyncio client's on_aside raises as the broker's close sets a message
#   aside (strikes=1): the keeper comes back, publish works.
# blk_sub_online: the blocking callback raises while subscribe() waits for its SUBACK
#   (online, a store): the subscription is recorded all the same (made again by the next
#   call, its SUBACK checked), in the store too, and made again after a session loss.
# blk_sub_offline: subscribe() offline with a keeper starts the reconnect, and the
#   callback raises in the subscriptions made again there: the requested change is owed
#   all the same (recorded, made by the next call).
# blk_aside: the blocking client's on_aside raises as the broker's close sets a message
#   aside (strikes=1, a keeper): the exception comes out of the call and the loss is a
#   link failure like any other (link.last_error, the backoff, the outage counted).
# blk_aside_rejoin: the same in the keeper's reconnect, while it makes a subscription
#   owed from offline (strikes=2, the reading resent in flight): the link stays down
#   with its backoff (not taken as connected), the subscription stays owed.
import os
import time

import devlib as d
import devcfg

CASE = d.cfg("CASE")
ROOT = d.cfg("ROOT", "")
CID = d.cfg("CID", "hr")
EXC = {"value": ValueError, "kbi": KeyboardInterrupt}[d.cfg("EXC", "value")]
got = []


def cb(t, m):
    got.append(m)
    if m == b"boom":
        raise EXC("bad command")


loop = d.pump_noting


def store():
    from mqttsession import SessionStore

    try:
        os.mkdir(ROOT)
    except OSError:
        pass
    return SessionStore(ROOT)


def closed_keeper(on_change=None):
    # a keeper's node with a store, subscribed to cmd; the broker closes the connection
    # (its script), and the keeper's backoff passes: the next call reconnects
    from mqttsession import Link, MQTTClient

    lk = Link(min_ms=100, max_ms=200, jitter=0, on_change=on_change)
    c = MQTTClient(CID, devcfg.HOST, devcfg.PORT, keepalive=30, link=lk, store=store(),
                   budget_ms=5000)
    c.set_callback(cb)
    c.connect(clean_session=False)
    c.subscribe("cmd", 1)
    errs = []
    loop(c, lambda: not c.isconnected(), 30000, errs)  # the broker closes
    t0 = time.ticks_ms()
    while lk.due() > 0 and time.ticks_diff(time.ticks_ms(), t0) < 5000:
        time.sleep_ms(10)
    return c, lk, errs


if CASE == "blk_connect":
    from mqttsession import MQTTClient

    c = MQTTClient(CID, devcfg.HOST, devcfg.PORT, keepalive=30)
    c.set_callback(cb)
    c.connect(clean_session=False)
    c.subscribe("cmd", 1)
    c.subscribe("cmd2", 1)
    c.disconnect()
    raised = None
    try:
        c.connect(clean_session=False)  # Session Present 0: both made again
    except BaseException as e:
        raised = e
    up = c.isconnected()
    errs = []
    loop(c, lambda: b"after" in got, 30000, errs)
    print("RAISED", repr(raised), "UP", up, "ERRS", errs, "GOT", got, "SUBS", sorted(c._s.subs))
    ok = isinstance(raised, EXC) and up and b"after" in got and not errs
    print("RESULT", "ok" if ok else "FAIL")
    try:
        c.disconnect()
    except Exception:
        pass

if CASE == "blk_keeper":
    from mqttsession import MQTTClient, Link

    ups = []
    lk = Link(min_ms=100, max_ms=200, jitter=0, on_change=ups.append)
    c = MQTTClient(CID, devcfg.HOST, devcfg.PORT, keepalive=30, link=lk, store=store())
    c.set_callback(cb)
    c.connect(clean_session=False)
    c.subscribe("cmd", 1)
    c.publish("data", b"r1", qos=1)  # in flight: the broker closes without its PUBACK
    errs = []
    loop(c, lambda: b"after" in got, 30000, errs)
    print("ERRS", errs, "UP", c.isconnected(), "LINK.UP", lk.up, "ON_CHANGE", ups,
          "GOT", got, "OUTAGES", lk.outages)
    ok = b"after" in got and c.isconnected() and lk.up and ups == [True, False, True] and \
        len(errs) == 1 and "bad command" in errs[0]
    print("RESULT", "ok" if ok else "FAIL")

if CASE == "blk_publish":
    from mqttsession import MQTTClient, Link

    ups = []
    c, lk, errs = closed_keeper(ups.append)
    raised = None
    try:
        c.publish("data", b"r2", qos=1)  # the reconnect: the callback raises in it
    except BaseException as e:
        raised = e
    pend = c.pending()
    loop(c, lambda: b"after" in got, 30000, errs)
    print("RAISED", repr(raised), "PENDING", pend, "ERRS", errs, "LINK.UP", lk.up,
          "ON_CHANGE", ups, "GOT", got)
    ok = b"after" in got and lk.up and (raised is None or pend == 1) and \
        ups == [True, False, True]
    print("RESULT", "ok" if ok else "FAIL")

if CASE == "aio_aside":
    import asyncio
    from mqttsession import Link
    from mqttsession.aio import MQTTClient

    def oa(t, m, why):
        raise ValueError("on_aside failed")

    async def main():
        errs = []
        c = MQTTClient(CID, devcfg.HOST, devcfg.PORT, keepalive=30, strikes=1,
                       link=Link(min_ms=100, max_ms=200, jitter=0),
                       on_error=lambda e: errs.append(repr(e)))
        c.on_aside = oa
        await c.connect(wait=True)
        try:
            await c.publish("data", b"x", qos=1)  # the broker closes on it: set aside
        except Exception as e:
            errs.append("publish: " + repr(e))
        t0 = time.ticks_ms()
        while c.isconnected() and time.ticks_diff(time.ticks_ms(), t0) < 5000:
            await asyncio.sleep_ms(20)
        t0 = time.ticks_ms()
        while not c.isconnected() and time.ticks_diff(time.ticks_ms(), t0) < 30000:
            await asyncio.sleep_ms(20)
        up = c.isconnected()
        err = None
        try:
            await c.publish("data", b"y", qos=0)
        except Exception as e:
            err = e
        print("UP", up, "PUB_ERR", repr(err), "ERRS", errs, "ASIDE", len(c.aside()),
              "OUTAGES", c.link.outages)
        ok = up and err is None and len(c.aside()) == 1
        try:
            await c.disconnect()
        except Exception:
            pass
        print("RESULT", "ok" if ok else "FAIL")

    asyncio.run(main())

if CASE == "blk_sub_online":
    from mqttsession import MQTTClient

    c = MQTTClient(CID, devcfg.HOST, devcfg.PORT, keepalive=30, store=store())
    c.set_callback(cb)
    c.connect(clean_session=False)
    raised = None
    try:
        c.subscribe("cmd", 1)  # the callback raises while the SUBACK is awaited
    except BaseException as e:
        raised = e
    errs = []
    loop(c, lambda: b"after" in got and not c._todo, 30000, errs)
    subs = sorted(c._s.subs)
    c.disconnect()
    kept = sorted(d.peek(store(), devcfg.HOST, CID).subs)  # what a reboot loads
    # the broker lost the session: the subscription is made again
    present = c.connect(clean_session=False)
    loop(c, lambda: b"after2" in got, 30000, errs)
    print("RAISED", repr(raised), "ERRS", errs, "GOT", got, "SUBS", subs, "KEPT", kept,
          "PRESENT", present)
    ok = isinstance(raised, EXC) and not errs and subs == [b"cmd"] and kept == [b"cmd"] and \
        b"after2" in got
    print("RESULT", "ok" if ok else "FAIL")
    c.disconnect()

if CASE == "blk_sub_offline":
    from mqttsession import MQTTClient, Link

    c, lk, errs = closed_keeper()
    raised = None
    try:
        c.subscribe("new", 1)  # the reconnect: the callback raises in it
    except BaseException as e:
        raised = e
    loop(c, lambda: b"after" in got and not c._todo, 30000, errs)
    subs = sorted(c._s.subs)
    print("RAISED", repr(raised), "ERRS", errs, "GOT", got, "SUBS", subs, "TODO", c._todo,
          "LINK.UP", lk.up)
    ok = isinstance(raised, EXC) and not errs and subs == [b"cmd", b"new"] and lk.up and \
        not c._todo
    print("RESULT", "ok" if ok else "FAIL")
    c.disconnect()

if CASE == "blk_aside":
    from mqttsession import MQTTClient, Link

    def oa(t, m, why):
        raise ValueError("on_aside failed")

    ups = []
    lk = Link(min_ms=1000, max_ms=2000, jitter=0, on_change=ups.append)
    c = MQTTClient(CID, devcfg.HOST, devcfg.PORT, keepalive=30, link=lk, strikes=1)
    c.on_aside = oa
    c.connect(clean_session=False)
    errs = []
    try:
        c.publish("data", b"x", qos=1)  # the broker closes on it: set aside
    except BaseException as e:
        errs.append(repr(e))
    loop(c, lambda: not c.isconnected(), 30000, errs)
    down = (repr(lk.last_error), lk.tries, lk.delay, lk.outages, lk.up)
    loop(c, lambda: c.isconnected(), 30000, errs)
    print("ERRS", errs, "DOWN", down, "ASIDE", len(c.aside()), "ON_CHANGE", ups,
          "UP", c.isconnected())
    ok = len(errs) == 1 and "on_aside failed" in errs[0] and len(c.aside()) == 1 and \
        isinstance(lk.last_error, OSError) and down[1:] == (1, 1000, 1, False) and \
        c.isconnected() and ups == [True, False, True]
    print("RESULT", "ok" if ok else "FAIL")
    c.disconnect()

if CASE == "blk_aside_rejoin":
    from mqttsession import MQTTClient, Link

    def oa(t, m, why):
        raise ValueError("on_aside failed")

    lk = Link(min_ms=1000, max_ms=4000, jitter=0)
    c = MQTTClient(CID, devcfg.HOST, devcfg.PORT, keepalive=30, link=lk, strikes=2,
                   budget_ms=5000)
    c.on_aside = oa
    c.connect(clean_session=False)
    errs = []
    try:
        c.publish("data", b"x", qos=1)  # the broker closes on it: a first strike
    except BaseException as e:
        errs.append(repr(e))
    loop(c, lambda: not c.isconnected(), 30000, errs)
    c.subscribe("new", 1)  # offline (the backoff): owed
    # the reconnect resends the reading and makes "new": the broker closes meanwhile
    loop(c, lambda: errs, 30000, errs)
    down = (lk.tries, lk.delay, lk.up, c.isconnected(), repr(lk.last_error))
    loop(c, lambda: c.isconnected() and not c._todo, 30000, errs)
    subs = sorted(c._s.subs)
    print("ERRS", errs, "DOWN", down, "ASIDE", len(c.aside()), "SUBS", subs, "UP", lk.up)
    ok = len(errs) == 1 and "on_aside failed" in errs[0] and len(c.aside()) == 1 and \
        down[:4] == (2, 2000, False, False) and subs == [b"new"] and lk.up
    print("RESULT", "ok" if ok else "FAIL")
    c.disconnect()

if CASE == "blk_wifi_kbi":
    # a KeyboardInterrupt out of the keeper's Wi-Fi step in the reconnect publish() makes
    # (not the callback's: no connect was made): it comes out of publish, which accepted
    # nothing (QoS 0 not sent on the closed link, QoS 1 not queued), and it is no link
    # failure (no backoff, last_error untouched)
    from mqttsession import Link, MQTTClient

    lk = Link(min_ms=10, max_ms=20, jitter=0)
    c = MQTTClient(CID, devcfg.HOST, devcfg.PORT, keepalive=30, link=lk, budget_ms=200)
    c.connect()
    c._close()  # the link lost
    time.sleep_ms(100)  # past the keeper's backoff: the next publish reconnects

    def kbi():
        raise KeyboardInterrupt

    lk.wifi_step = kbi
    kinds = []
    for q in (0, 1):
        try:
            c.publish("data", b"r", qos=q)
            kinds.append("none")
        except KeyboardInterrupt:
            kinds.append("kbi")
    print("RAISED", kinds, "PENDING", c.pending(), "LOST0", c.lost0, "TRIES", lk.tries,
          "LAST", repr(lk.last_error))
    ok = kinds == ["kbi", "kbi"] and c.pending() == 0 and lk.tries == 0
    print("RESULT", "ok" if ok else "FAIL")

print("PASS")
