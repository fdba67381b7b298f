# No heap where the link fails with messages in flight (tests/host/test_memerr_strike.py).
# devcfg.FAULT "code": the import of mqttsession.aside raises MemoryError (core's
# __import__, injected once connected), so the strike against the oldest message
# (wire._close, aside.struck) and the handling of a broker's protocol violation
# (aside.broke) cannot load; "record": aside.py loads, and with strikes=1 the set-aside
# record of the message in flight finds no heap (aside.set_aside raises MemoryError).
# QoS 1 messages are published at window 1 with a keeper until the link is down (the
# host's broker acknowledges none, then closes the connection or breaks the protocol).
# Prints "P <accepted> <pending>" for each publish() that returned, "E <name> <pending
# before> <pending after>" for one that raised, "DOWN <link.last_error>", "INJECTED
# <MemoryErrors raised>".
import devlib as d
from mqttsession import Link, core

c = d.client("strike", window=1, budget_ms=d.cfg("BUDGET"), timeout=30,
             strikes=1 if d.cfg("FAULT") == "record" else 3,
             link=Link(min_ms=60000, max_ms=60000, jitter=0))
c.connect()
refused = [0]


def imp(name, *a):
    if name == "mqttsession.aside":
        refused[0] += 1
        raise MemoryError("injected")
    return __import__(name, *a)


def no_record(*a):
    refused[0] += 1
    raise MemoryError("injected")


if d.cfg("FAULT") == "code":
    core.__import__ = imp  # found in core's globals before the builtin (Core._mod)
else:
    from mqttsession import aside

    core._mods["aside"] = aside
    aside.set_aside = no_record
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
        print("DOWN", repr(c.link.last_error))
        break
print("INJECTED", refused[0])
print("PASS")
