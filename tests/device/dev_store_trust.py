# What loading a stored session does not take on trust (devcfg.TEST names the case):
# completions recorded above the watermark whose messages are then lost to damage (the
# queue directory replaced by a file, a tail file with a flipped byte), a hot state whose
# watermark is past every message, and subscriptions whose filter or QoS the client
# refuses. Each is reported, and every message the damage did not touch drains.
import os
import struct

import devlib as d
from mqttsession import SessionStore
from mqttsession.store import _write, pack

ROOT, BD = d.flash()
STORE = ROOT + "/.mqtt-test"
H = d.cfg("HOST")
_HOT = 1  # stored._HOT


def keep(s, payload):
    s._keep(s.add(b"c/t", payload, 1, False))


def reload(**kw):
    st = SessionStore(STORE, **kw)
    s = st.get(H, "trust", 80)
    print("ERRORS", st.errors)
    return st, s


def done_segment():
    # the ring's m01 and m02 complete, m00 not: both recorded above the watermark; then
    # the queue directory (the segment m00-m31) is replaced by a file
    s = SessionStore(STORE, ram=4).get(H, "trust", 80)
    for i in range(40):
        keep(s, b"m%02d" % i)
    ks = s.live()
    s.drop(ks[1])
    s.drop(ks[2])
    s._save(_HOT)  # (QoS 1 completions are written lazily: as a later write would)
    d.check(len(os.listdir(s._p + "/q")) == 1, "one segment")
    q = s._p + "/q"
    for n in os.listdir(q):
        os.remove(q + "/" + n)
    os.rmdir(q)
    with open(q, "wb") as f:
        f.write(b"not a directory")
    st, s = reload(ram=4)
    # reported: the file in the way, and the segment it took (its messages still in the
    # tail, slots 8-31, are older than slot 7's: that round's first eight were lost)
    d.check(len(st.errors) == 2 and "a segment lost: tail slot 8" in st.errors[1],
            "the damage reported")
    print("PENDING", s.pending())
    got = d.drain(s)
    # lost: the segment's m00-m07 (m01, m02 complete); the tail's slots 8-31 still hold
    # m08-m31 from before the seal (intact records of pending messages): they drain too
    d.check(got == [b"m%02d" % i for i in range(8, 40)], "all the rest: %r" % got)
    d.check(s.pending() == 0, "nothing left counted")


def done_tail():
    # the whole queue in RAM: m35 (in the tail) complete, then its tail file damaged
    s = SessionStore(STORE).get(H, "trust", 80)
    for i in range(40):
        keep(s, b"m%02d" % i)
    s.drop(s.live()[35])
    s._save(_HOT)
    t = s._p + "/t3/0"  # tail slot 3 (seq 35: the segment holds 0-31)
    with open(t, "rb") as f:
        b = bytearray(f.read())
    b[-10] ^= 1
    with open(t, "wb") as f:
        f.write(b)
    st, s = reload()
    d.check(len(st.errors) == 1, "the damaged file reported")
    print("PENDING", s.pending())
    got = d.drain(s)
    d.check(got == [b"m%02d" % i for i in range(40) if i != 35], "every other one: %r" % got)


def hot_past():
    # a hot state (its checksum right) whose watermark is past the next sequence number:
    # damage, reported; the queue is kept whole
    s = SessionStore(STORE, ram=4).get(H, "trust", 80)
    for i in range(40):
        keep(s, b"m%02d" % i)
    _write(s._p + "/hot", pack(b"s", struct.pack("<HHIIB", 0, 0, 40, 43, 0) + b"\0\0", 2), True)
    st, s = reload(ram=4)
    d.check(len(st.errors) == 1 and "hot" in st.errors[0], "reported: %r" % st.errors)
    got = d.drain(s)
    d.check(got == [b"m%02d" % i for i in range(40)], "the queue kept whole: %r" % got)


def subs_refused():
    # a subscriptions file (its checksum right) holding filters or a QoS the client
    # refuses: those are reported once and left out, the others kept
    s = SessionStore(STORE).get(H, "trust", 80)
    s.sub(b"ok/#", 1)
    b = b""
    for q, f in ((1, b"ok/#"), (3, b"q3"), (1, b"a/#/b"), (0, b""), (2, b"x/+/y")):
        b += bytes((q, len(f) & 255, len(f) >> 8)) + f
    _write(s._p + "/subs", pack(b"u", b, 2), True)
    st, s = reload()
    d.check(len(st.errors) == 1 and "subs" in st.errors[0], "reported: %r" % st.errors)
    d.check(s.subs == {b"ok/#": 1, b"x/+/y": 2}, "the others kept: %r" % s.subs)
    st, s = reload()
    d.check(not st.errors and len(s.subs) == 2, "reported once")


globals()[d.cfg("TEST")]()
print("PASS")
