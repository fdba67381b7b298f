# One session, two clients (tests/host/test_store_shared.py): the later takes it over and
# every write of the earlier one raises OSError(EBUSY), the "owed" file's too (ctl.owe).
# The later client subscribes offline (owed: made on the next connect); then the earlier
# one subscribes offline. Up to this test the earlier one wrote the owed file with its
# own changes before its session's write raised EBUSY: after a reboot the later client's
# change was owed no more (never made at a broker that kept the session) and the earlier
# one's, refused, was. The set-aside file likewise (aside.add: a message the broker
# refused). Prints "OWED <filters owed after a reboot>" and "ASIDE <records kept>".
import devlib as d
from mqttsession import Link, MQTTClient, SessionStore

ROOT, BD = d.flash()
STORE = ROOT + "/.mqtt"
H = d.cfg("HOST")
P = d.cfg("PORT")


def make():
    return MQTTClient("shared", H, P, store=SessionStore(STORE), keepalive=30,
                      link=Link(min_ms=100))


c1 = make()
c2 = make()  # takes the session over
c2.subscribe(d.topic("b"), 1)  # offline: owed
e = d.raises(OSError, c1.subscribe, d.topic("a"), 1)
print("ERR", e.args[0])
from mqttsession import aside  # noqa: E402

e = d.raises(OSError, aside.add, c1._s, (d.topic("a"), b"m", 1, False, "refused"))
print("ERRX", e.args[0])
c3 = make()  # a reboot: what flash holds
print("OWED", " ".join(sorted(t.decode() for t in c3._todo)))
print("ASIDE", len(aside.records(c3._s)))
print("PASS")
