# The blocking client with a store, power-cut (SIGKILL, by the host) at random moments while
# it publishes QoS 1 and 2 in turn at window 8, or (devcfg.RECV) takes commands through its
# callback in a check_msg() loop. Prints "BOOT <pending>" once connected and "A <n>" once
# publish(n) returned: from then on the message is the store's to deliver. Each boot
# numbers its messages from devcfg.START (odd numbers QoS 2). With devcfg.COUNT it stops
# after that many, waits until every one is acknowledged and prints "DRAINED <pending>";
# without, it runs until the host cuts it. A command is printed "R <n>" as the callback
# takes it; "END" ends the run.
import time

import devlib as d
from mqttsession import SessionStore

ROOT, BD = d.flash()
c = d.client(d.cfg("CID"), window=8, queue=64, store=SessionStore(ROOT + "/.mqtt"))
end = []


def got(t, m):
    if m == b"END":
        print("END")
        end.append(1)
    else:
        print("R", int(m))
        time.sleep_ms(3)  # a little work


c.set_callback(got)
c.connect(clean_session=False)
if d.cfg("SUB"):
    c.subscribe(d.topic("cmd"), d.cfg("RECV"))
elif d.cfg("RECV") is not None:
    print("BOOT", c.pending())
    d.pump(c, lambda: end, 120000)
else:
    print("BOOT", c.pending())
    n = d.cfg("START", 0)
    stop = n + d.cfg("COUNT", 1 << 30)
    while n < stop:
        c.publish(d.topic("m"), b"%07d" % n, qos=1 + n % 2)
        print("A", n)
        n += 1
    d.pump(c, lambda: not c.pending(), 60000)
    print("DRAINED", c.pending())
c.disconnect()
print("PASS")
