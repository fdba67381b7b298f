# No heap for aside.py's code when a link with messages in flight fails
# (tests/host/test_memerr_strike.py): the strike against the oldest one (wire._close,
# aside.struck) cannot load. The import of mqttsession.aside raises MemoryError (core's
# __import__, injected once connected). devcfg.TEST "close": QoS 1 messages published at
# window 1 with a keeper until the link is down (the host's broker acknowledges none and
# closes the connection); "broke": the same until a call raises (the broker sends a
# packet that breaks the protocol, whose handling, aside.broke, cannot load either).
# Prints "P <accepted> <pending>" for each publish() that returned, "E <name> <pending
# before> <pending after>" for one that raised, and "INJECTED <imports refused>".
import devlib as d
from mqttsession import Link, core

c = d.client("strike", window=1, budget_ms=d.cfg("BUDGET"), timeout=30,
             link=Link(min_ms=60000, max_ms=60000, jitter=0))
c.connect()
refused = [0]


def imp(name, *a):
    if name == "mqttsession.aside":
        refused[0] += 1
        raise MemoryError("injected")
    return __import__(name, *a)


core.__import__ = imp  # found in core's globals before the builtin (Core._mod)
n = 0
for i in range(d.cfg("COUNT", 40)):
    before = c.pending()
    try:
        c.publish(b"strike/t", b"m%d" % i, qos=1)
    except Exception as e:  # (what the host judges: nothing should come out)
        print("E", type(e).__name__, before, c.pending())
        break
    n += 1
    print("P", n, c.pending())
    if not c.link.up:
        break
print("INJECTED", refused[0])
print("PASS")
