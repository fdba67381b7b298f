# A message with the longest topic a stored message can have (65518 bytes: its record is
# at most 65535) set aside with the reason the client gives a QoS 2 message after its
# strikes (tests/host/test_aside_long_topic.py). The set-aside list (the aside file) is
# kept below what the store reads of any file (README: at most 64 KB): the next boot
# reads it back, the newest record in it, with no damage reported, the count kept.

import devlib as d
from mqttsession import SessionStore
from mqttsession.aside import records, set_aside

BLOCKS = 128
H = "h"
WHY = "in flight at 3 closes in a row; the broker may not support QoS 2"
TOPIC = b"t/" + b"x" * 65516

d.remount(True, BLOCKS)
st = SessionStore("/flash/.mqtt", max_bytes=400000)
s = st.get(H, "a", 16)
k = s.add(b"small", b"p", 1, False)
s._keep(k)
set_aside(s, k, "first")
k = s.add(TOPIC, b"", 2, False)
s._keep(k)
set_aside(s, k, WHY)
d.unmount()

d.remount(False, BLOCKS)
st = SessionStore("/flash/.mqtt", max_bytes=400000)
s = st.get(H, "a", 16)
a = records(s)
print("ERRORS", len(st.errors), st.errors)
print("ASIDE", s.naside, len(a))
d.check(not st.errors, "no damage reported")
d.check(s.naside == 2, "both counted")
d.check(len(a) == 1 and a[0][0] == TOPIC and a[0][1] == b"" and a[0][2] == 2,
        "the newest kept, its topic whole")
d.check(isinstance(a[0][4], str) and WHY.startswith(a[0][4]) and len(a[0][4]) > 40,
        "its reason kept, cut to fit")
d.unmount()
print("PASS")
