# Store shapes a power cut leaves, for the store inspector to read as the library loads
# them (tests/host/test_inspect_store_cuts.py). A cut after every block write of one
# step, each on a fresh image; the image after the cut is copied to "<IMAGE>.<n>" before
# the library loads it, then the library loads it and prints what it sends, in order
# ("LOADED <n> <client ID> [seq...]") and what it reported ("REPORTED <n> <path>").
# MODE "big": a session whose tail holds small messages takes a large one (the tail is
# sealed first, the large one gets a segment of its own: a multi-block file), then small
# ones and a 9 KB one sealed together (another multi-block segment). MODE "null":
# the same on an MQTT 5 null session (~null). MODE "mend": a load that rewrites
# segments whose seq ranges overlap (as 0.2.23 wrote them, qmend.py). MODE "adopt": a
# null session holding a backlog (a segment, a large one, a tail) is assigned the client
# ID of a session the store holds (moved aside to "X~old", README). MODE "first": the
# first get() of a session (its directory made, then its identity written) and a message.
# MODE "drain": the store of MODE "big" drained (acknowledged, complete segments removed).

import cutrig
import devlib as d
from mqttsession import SessionStore
from mqttsession.stored import StoredSession
from keep0223 import keep_0223

BLOCKS = d.cfg("BLOCKS", 128)
MODE = d.cfg("MODE")
H = "h"
CID = b"" if MODE in ("null", "adopt") else b"c"
LOADS = (b"X", b"X~old", b"") if MODE == "adopt" else (CID,)
MB = 400000


def prepare():
    bd = d.remount(True, BLOCKS)
    st = SessionStore("/flash/.mqtt", max_bytes=MB, ram=8)
    if MODE == "first":
        return bd, None
    s = st.get(H, CID, 128)
    if MODE == "mend":
        keep = StoredSession._keep
        StoredSession._keep = keep_0223
        kx = s.add(b"t", b"m0", 1, False)
        s.assign(kx)
        for i in range(1, 40):
            s._keep(s.add(b"t", b"m%d" % i, 1, False))
        s.hold(kx, s.seq[kx])
        for i in range(40, 70):
            s._keep(s.add(b"t", b"m%d" % i, 1, False))
        StoredSession._keep = keep
    else:
        for i in range(40):  # a segment, and 8 in the tail
            s._keep(s.add(b"t", b"s%d" % i, 1, False))
    if MODE == "drain":
        big(s)
    if MODE == "adopt":
        s._keep(s.add(b"big", b"B" * 65500, 1, False))
        s._keep(s.add(b"t", b"after", 1, False))
        x = st.get(H, b"X", 128)
        for i in range(35):
            x._keep(x.add(b"x", b"x%d" % i, 1, False))
    return bd, s


def big(s):
    # a record too large to join the tail's: the tail sealed first, then its own
    # segment; then a few small ones sealed with a multi-block one
    s._keep(s.add(b"big", b"B" * 65500, 1, False))
    for i in range(3):
        s._keep(s.add(b"t", b"a%d" % i, 1, False))
    s._keep(s.add(b"mid", b"M" * 9000, 1, False))
    s._keep(s.add(b"t", b"after", 1, False))


def drain(s, n):
    # acknowledges the n oldest messages
    for _ in range(n):
        k = s.live()[0]
        s.assign(k)
        s.acked(s.ids[k], False)


def step(s):
    if MODE == "drain":
        drain(s, 46)
    elif MODE == "mend":
        SessionStore("/flash/.mqtt", max_bytes=MB, ram=8).get(H, CID, 128)
    elif MODE == "first":
        s = SessionStore("/flash/.mqtt", max_bytes=MB, ram=8).get(H, CID, 128)
        s._keep(s.add(b"t", b"first", 1, False))
    elif MODE == "adopt":
        s.client_id = b"X"  # the CONNACK's Assigned Client Identifier (v5.py)
        s._save(4)  # _IDENT
    else:
        big(s)


def copy(n):
    src = d.cfg("IMAGE")
    with open(src, "rb") as f, open("%s.%d" % (src, n), "wb") as g:
        while True:
            b = f.read(4096)
            if not b:
                break
            g.write(b)


def load(n):
    d.remount(False, BLOCKS)
    st = SessionStore("/flash/.mqtt", max_bytes=MB, ram=8)
    for c in LOADS:
        s = st.get(H, c, 128)
        got = []
        while s.live():
            k = s.live()[0]
            got.append(s.seq[k])
            s.assign(k)
            s.acked(s.ids[k], False)
        print("LOADED", n, (c or b"~null").decode(), repr(got))
    for e in st.errors:
        print("REPORTED", n, e.split(": ", 1)[0][len("/flash"):])


bd, s = prepare()
base = bd.progs + bd.erases
step(s)
total = bd.progs + bd.erases - base
print("WRITES", total)
for n in range(total + 1):
    bd, s = prepare()
    cutrig.cut_after(bd, n)
    try:
        step(s)
    except OSError:
        pass  # littlefs found what it wrote is not there
    d.unmount()
    copy(n)
    load(n)
print("PASS")
