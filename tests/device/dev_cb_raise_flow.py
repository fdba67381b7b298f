# The blocking callback raising at every message it is handed (EXC: "os" OSError, "mem"
# MemoryError), with a keeper: each raise closes the link as a link failure would
# (README "Exceptions: one rule"), the message answered first. N QoS QOS messages wait
# at the broker for the node's session; the node resumes it and keeps calling
# check_msg. Prints "GOT n distinct" (messages the callback was handed), "DELAYS ..."
# (the keeper's backoff, in ms, after each outage) and "RAISED n" (the
# exceptions check_msg passed on).
import time

import devlib as d
from mqttsession import Link

EXC = d.cfg("EXC", "os")
QOS = d.cfg("QOS", 1)
CID = d.cfg("CID")
N = 8
MIN = 200
topic = d.topic("flow").encode()
got = []
delays = []
raised = []


def cb(t, m):
    got.append(bytes(m))
    if EXC == "os":
        raise OSError(5)
    raise MemoryError


# the node's session, subscribed, then offline while the messages are published
c = d.client(CID)
c.connect(clean_session=False)
c.subscribe(topic, QOS)
c.disconnect()
p = d.client(CID + "-s", window=16)
p.connect()
for i in range(N):
    p.publish(topic, b"%d" % i, qos=QOS)
p.disconnect()
# no jitter and a cap far above: a backoff that grew at each outage shows in DELAYS
lk = Link(min_ms=MIN, max_ms=60000, jitter=0)
c = d.client(CID, link=lk, timeout=10)
c.set_callback(cb)
c.connect(clean_session=False)
t0 = time.ticks_ms()
while len(set(got)) < N and time.ticks_diff(time.ticks_ms(), t0) < 90000:
    try:
        c.check_msg()
    except (OSError, MemoryError) as e:
        raised.append(repr(e))
    if lk.outages > len(delays) and not c.isconnected():
        delays.append(lk.delay)  # the wait before the next attempt, set at the outage
    time.sleep_ms(5)
print("GOT", len(got), len(set(got)))
print("DELAYS", " ".join(str(x) for x in delays))
print("RAISED", len(raised))
