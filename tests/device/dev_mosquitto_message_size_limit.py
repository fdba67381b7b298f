# Messages of 10, 300 and 10 bytes against mosquitto's message_size_limit 100
# (tests/host/test_mosquitto_message_size_limit.py).
import devlib as d
from mqttsession import SessionStore


def main():
    c = d.client("msl", timeout=10, store=SessionStore(d.flash()[0] + "/.mqtt"))
    c.connect(clean_session=False)
    for i, n in enumerate((10, 300, 10)):
        c.publish(d.topic("s%d" % i), b"x" * n, qos=d.cfg("QOS", 1))
    d.check(d.pump(c, lambda: c.pending() == 0, 30000), "all answered")
    print("ASIDE", [(a[0].decode(), a[4]) for a in c.aside()])
    print("DROPPED", c.dropped)
    c.disconnect()


main()
print("PASS")
