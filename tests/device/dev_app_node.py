# A sensor node's own arguments and hooks (tests/host/test_app_node.py): devcfg.TEST
# names the case. Each checks a promise of README "What the application passes" or
# "Calls from the callback": a clear error naming the argument at the call, or what the
# node published reaching the broker whole and in order.
import time
from array import array

import devlib as d
from mqttsession import MQTTClient, SessionStore, Link


def budget_huge():
    # budget_ms is checked when the client is made (README: constructor keywords): a
    # budget past the ports' ticks range (2**29 ms on a 32-bit board, 2**61 on the unix
    # port) raised OverflowError out of every later call instead, connect included
    try:
        c = d.client("bh", link=True, budget_ms=2**61)
    except ValueError as e:
        d.check("budget_ms" in e.args[0], "ValueError names budget_ms: %s" % e)
    else:
        e = None
        try:
            c.connect(False)
            c.publish(d.topic("bh"), b"x", qos=1)
        except Exception as x:  # noqa: the failure is the test's report
            e = x
        d.check(False, "budget_ms=2**61 accepted; then %r" % (e,))
    # the largest budget a 32-bit port's ticks can hold still works
    c = d.client("bh", link=True, budget_ms=536870000)
    c.connect()
    c.publish(d.topic("bh"), b"x", qos=1)
    d.check(c.pending() == 0, "budget_ms=536870000 publishes")
    c.disconnect()


def memoryview_items():
    # a memoryview payload is "binary data": what reaches the broker must be its bytes,
    # whatever its item size (sample buffers are array('h')). At QoS 0 a memoryview of 2-byte items was sent cut
    # to its item count (300 items: 300 of its 600 bytes), or a short one raised
    # ValueError('lhs and rhs should be compatible')
    got = []
    c = d.client("mvi")
    c.set_callback(lambda t, m: got.append(m))
    c.connect()
    c.subscribe(d.topic("mv/#"), 1)
    sent = []
    for n in (3, 300):
        for q in (0, 1, 2):
            mv = memoryview(array("h", range(n)))
            c.publish(d.topic("mv/%d" % q), mv, qos=q)
            sent.append(bytes(mv))
    d.pump(c, lambda: len(got) >= len(sent), 30000)
    for m in got:
        print("GOT", len(m))
    d.check(sorted(got) == sorted(sent), "each payload arrived whole (%d of %d)"
            % (len(got), len(sent)))
    c.publish(d.topic("mv/0"), b"after", qos=1)  # the client works on
    d.check(d.pump(c, lambda: b"after" in got, 30000), "the client works on")
    c.disconnect()


def hook_order():
    # a node boots with the broker out of reach (connect(wait=False) with a keeper) and
    # queues A and B in flash; the log hook publishes C on "connected" (README: the
    # hooks may publish). The next connect sends what was queued "before anything new":
    # C went out first, with a new packet ID, ahead of A and B
    st = SessionStore(d.cfg("ROOT"))
    c = MQTTClient(d.cfg("CID"), d.cfg("HOST"), d.cfg("PORT"), keepalive=30, store=st,
                   link=Link(min_ms=50, max_ms=200), version=d.VERSION)

    def hook(line):
        print("LOG", line)
        if line.startswith("connected"):
            c.publish(d.topic("p"), b"C", qos=1)

    c.log = hook
    d.check(c.connect(clean_session=False, wait=False) is None, "boots offline")
    c.publish(d.topic("p"), b"A", qos=1)
    c.publish(d.topic("p"), b"B", qos=1)
    print("QUEUED", c.pending())
    while not d.exists(d.cfg("GO_FILE")):
        time.sleep_ms(50)
    t0 = time.ticks_ms()
    while (c.pending() or not c.isconnected()) and time.ticks_diff(time.ticks_ms(), t0) < 30000:
        c.check_msg()
        time.sleep_ms(5)
    d.check(c.pending() == 0 and c.isconnected(), "connected, all delivered")
    c.disconnect()




globals()[d.cfg("TEST")]()
print("PASS")
