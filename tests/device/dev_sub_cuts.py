# Power cuts at every block write of subscription changes made offline (subs.later: the
# session's "subs" file and the "owed" file). The broker kept the session, with "old"
# subscribed; offline with a keeper the node subscribes "new", unsubscribes "old",
# subscribes and unsubscribes "x", and is cut after N block writes, for every N. After
# each cut: remount and load the client (as a boot that only connects). The broker's
# session present, that connect makes what is owed and nothing else: the broker ends with
# its subscriptions and the owed changes, the session with its stored ones and the same
# changes. Both must agree, and be the state before or after the call that was cut.
import devlib as d
from mqttsession import Link, MQTTClient, SessionStore
from mqttsession.aio import MQTTClient as AioClient

API = d.cfg("API", "blocking")
BLOCKS = d.cfg("BLOCKS", 64)
OLD = {b"old": 1}  # what the broker holds (a session it kept, this node's last connect)
CALLS = ((b"new", 2), (b"old", None), (b"x", 0), (b"x", None))


def make():
    kw = dict(port=1, keepalive=10, timeout=5, store=SessionStore("/flash/.mqtt"),
              link=Link(min_ms=60000, max_ms=60000))
    if API == "aio":
        return AioClient("subcut", "127.0.0.1", **kw)
    return MQTTClient("subcut", "127.0.0.1", **kw)


def apply(base, changes):
    r = dict(base)
    for t, q in changes.items():
        if q is None:
            r.pop(t, None)
        else:
            r[t] = q
    return r


def call(c, t, q):
    if API == "aio":
        import asyncio

        return asyncio.run(c.subscribe(t, q) if q is not None else c.unsubscribe(t))
    return c.subscribe(t, q) if q is not None else c.unsubscribe(t)


def scenario(c, states):
    # states: the subscriptions the broker is to end with after each call returned
    for t, q in CALLS:
        call(c, t, q)
        states.append(apply(states[-1], {t: q}))


def setup():
    bd = d.remount(True, BLOCKS)
    s = SessionStore("/flash/.mqtt").get("127.0.0.1", "subcut")
    s.sub(b"old", 1)
    s.connected()  # the broker has its session (with "old")
    c = make()
    d.check(c._s.subs == OLD and not c._todo, "the session holds 'old', nothing owed")
    return bd, c


def run():
    bd, c = setup()
    base = bd.progs + bd.erases
    scenario(c, [OLD])
    total = bd.progs + bd.erases - base
    print("WRITES", total)
    cuts = bad = 0
    for n in range(total + 1):
        bd, c = setup()
        states = [OLD]
        bd.fail_after = n
        try:
            scenario(c, states)
        except OSError:
            cuts += 1
        bd.fail_after = 0
        del c
        d.remount(False, BLOCKS)
        c = make()
        owed = dict(c._todo)
        broker = apply(OLD, owed)  # what the next connect leaves at the broker
        session = apply(c._s.subs, owed)  # and in the session (each change acknowledged)
        i = len(states) - 1  # the calls that returned
        before = states[-1]
        after = apply(before, {CALLS[i][0]: CALLS[i][1]}) if i < len(CALLS) else before
        ok = broker == session and broker in (before, after)
        if not ok:
            bad += 1
            print("BAD cut at %d after %d calls: stored %r owed %r" %
                  (n, i, sorted(c._s.subs.items()), sorted(owed.items())))
    print("CUTS", cuts, "RUNS", total + 1, "BAD", bad)
    d.check(cuts > 0, "the sweep cut power %d times" % cuts)
    d.check(not bad, "after every cut the broker and the session agree")


run()
print("PASS")
