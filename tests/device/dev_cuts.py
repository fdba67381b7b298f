# The blocking client with a store, power-cut (SIGKILL, by the host) at random moments while
# it publishes QoS 1 and 2 in turn at window 8, or (devcfg.RECV) takes commands through its
# callback in a check_msg() loop. Prints "BOOT <pending>" once connected and "A <n>" once
# publish(n) returned: from then on the message is the store's to deliver. Each boot
# numbers its messages from devcfg.START (odd numbers QoS 2). With devcfg.COUNT it stops
# after that many, waits until every one is acknowledged and prints "DRAINED <pending>";
# without, it runs until the host cuts it. A command is printed "R <n>" as the callback
# takes it; "END" ends the run. devcfg.KEEP: with a keeper (Link), a queue of devcfg.QUEUE
# and SessionStore(ram=devcfg.RAM), so that while the link is down the queue grows past
# the RAM ring into flash; a publish that finds it full pumps and tries again.
import errno
import time

import devlib as d
from mqttsession import Link, SessionStore

ROOT, BD = d.flash()
keep = d.cfg("KEEP")
c = d.client(d.cfg("CID"), window=8, queue=d.cfg("QUEUE", 64),
             store=SessionStore(ROOT + "/.mqtt", ram=d.cfg("RAM")),
             link=Link(min_ms=50, max_ms=500) if keep else None)
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
        try:
            c.publish(d.topic("m"), b"%07d" % n, qos=1 + n % 2)
        except OSError as e:
            if not keep or e.args[0] != errno.ENOBUFS:
                raise
            c.check_msg()  # the queue is full while the link is down
            time.sleep_ms(2)
            continue
        print("A", n)
        n += 1
    d.pump(c, lambda: not c.pending(), 60000)
    print("DRAINED", c.pending())
c.disconnect()
print("PASS")
