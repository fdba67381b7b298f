# README "Riding through outages": what link.outages and link.longest count (the blocking
# client). A disconnect() is the link going down (on_change(False), outages), and the
# time until the next connect() is taken into link.longest as an outage would be: the
# README says so (it said "longest outage ridden through" only, which a node that
# disconnects between bursts of work read as the longest broker or Wi-Fi fault).
import time

import devlib as d
from mqttsession import Link, MQTTClient

seen = []
lk = Link(min_ms=50, max_ms=100, on_change=seen.append)
c = MQTTClient("lc-%s" % d.PREFIX[-12:], d.cfg("HOST"), d.cfg("PORT"), link=lk)
c.connect(clean_session=False)
c.disconnect()
time.sleep_ms(600)
c.connect(clean_session=False)
print("SEEN", seen, "OUTAGES", lk.outages, "LONGEST", lk.longest)
d.check(seen == [True, False, True], "on_change tells the disconnect")
d.check(lk.outages == 1, "a disconnect counts in outages")
d.check(lk.longest >= 600, "the time until connect() is in longest")
d.check(lk.tries == 0 and lk.last_error is None, "no failed attempt counted")
c.disconnect()
print("PASS")
