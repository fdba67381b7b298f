# One damaged byte anywhere in a stored session (tests/host/test_store_flips.py): a session
# of 80 QoS 1 messages (two sealed segments, a full tail), a subscription and an incoming
# QoS 2 packet ID on a littlefs image; then, for every STRIDE-th byte of every file of the
# store, the image as it was with that byte changed (XOR 0xFF, and XOR 0x01). Each load
# must give a session or refuse the file as written by a newer library (the format byte),
# never raise anything else; a second load finds as many messages; what drains is the
# stored messages in order, none twice, none invented, at most one file's worth (a
# segment's 32) missing; and the session stores a new one that a third load finds.
# BUSY: the session as a connection leaves it (QoS 2 among them, messages in flight, some
# complete, one released, one set aside): a damaged hot state may bring the complete
# ones back (README: sent again), never one out of order or twice.
import os

import devlib as d
from mqttsession import SessionStore

STRIDE = d.cfg("STRIDE", 1)
BLOCKS = 64
N = 80
STORE = "/flash/.mqtt"
H = "flips"


def files(p):
    # every file below p, depth first
    out = []
    for n in sorted(os.listdir(p)):
        q = p + "/" + n
        if os.stat(q)[0] & 0x4000:
            out += files(q)
        else:
            out.append(q)
    return out


def load():
    st = SessionStore(STORE)
    return st, st.get(H, "cid")


def check(cond, what):
    # devlib.check without its line per check passed: thousands here
    if not cond:
        d.check(cond, what)


def restore(pristine):
    # the image as the session made it
    d.unmount()
    with open(d.cfg("IMAGE"), "wb") as g:
        g.write(pristine)
    d.remount(False, BLOCKS)


def case(f, pos, x, pristine):
    # the image as made, byte pos of file f changed by XOR x; returns the reports
    restore(pristine)
    with open(f, "rb") as g:
        b = bytearray(g.read())
    b[pos] ^= x
    with open(f, "wb") as g:
        g.write(b)
    try:
        st, s = load()
    except ValueError as e:
        # the format byte made "newer than this library's": refused (newer="refuse"),
        # and the file left as it is for the newer library
        check("newer than this library" in str(e), "%s[%d]^%d: %r" % (f, pos, x, e))
        with open(f, "rb") as g:
            check(g.read() == b, "%s kept for the newer library" % f)
        return 0
    n = s.pending()
    st2, s2 = load()  # a boot again before anything is sent
    where = "%s[%d]^%d" % (f, pos, x)
    check(s2.pending() == n, "the second load: %d, %d %s" % (n, s2.pending(), where))
    # reported once, not at every boot: the damaged file was removed or rewritten. A
    # damaged record in a segment stays until the drain passes it (the records before
    # it go first), and each load that reads it reports it
    check(not st2.errors or "/q/" in f, "reported again %s: %r" % (where, st2.errors))
    got = d.drain(s2, N + 10)
    idx = [int(m[1:]) for m in got]
    where += " %r" % got
    check(all(m == b"p%03d" % i for m, i in zip(got, idx)), "nothing invented " + where)
    check(idx == sorted(set(idx)), "in order, none twice " + where)
    # (pending() counts a segment's messages by its name until the drain reads them)
    most = N - 3 * d.cfg("BUSY", 0)  # (complete or set aside: not pending)
    check(most - 32 <= len(got) <= n, "at most a segment missing (%d) %s" % (n, where))
    check(s2.pending() == 0, "none left counted (%d) %s" % (s2.pending(), where))
    s2._keep(s2.add(b"c/t", b"after", 1, False))
    st3, s3 = load()
    check(d.drain(s3, N + 10)[-1:] == [b"after"], "the new message kept " + where)
    return len(st.errors)


def sweep():
    d.remount(True, BLOCKS)
    s = SessionStore(STORE).get(H, "cid")
    s.sub(b"x/#", 1)
    s.rx2_add(7)
    busy = d.cfg("BUSY", 0)
    for i in range(N):
        # BUSY: every 5th at QoS 2, and the ring's first 12 in flight: p002 and p005
        # complete, p000 released (PUBREC), p007 set aside
        s._keep(s.add(b"c/t", b"p%03d" % i, 2 if busy and i % 5 == 0 else 1, False))
    if busy:
        ks = s.live()
        for k in ks[:12]:
            s.assign(k)
        ids = [s.ids[k] for k in ks]
        s.acked(ids[0], True)
        s.acked(ids[5], True)
        s.acked(ids[5], False)
        s.acked(ids[2], False)
        from mqttsession.aside import set_aside

        set_aside(s, ks[7], 0x87)
        s._save(1)  # the hot state (stored._HOT): completions are written lazily
        check(s.pending() == N - 3 and s.naside == 1, "busy: %d pending" % s.pending())
    names = files(STORE)
    d.check(len([n for n in names if "/q/" in n]) == 2, "two sealed segments: %r" % names)
    d.unmount()
    with open(d.cfg("IMAGE"), "rb") as g:
        pristine = g.read()
    cases = reported = 0
    for f in names:
        restore(pristine)
        z = os.stat(f)[6]
        for pos in range(0, z, STRIDE):
            for x in (0xFF, 0x01):
                reported += case(f, pos, x, pristine) > 0
                cases += 1
    print("CASES", cases, "REPORTED", reported, "FILES", len(names))
    # a damaged byte that no load reports is one no load reads (a sealed segment behind
    # the first, read as the queue drains) or one the content's checks cannot tell
    d.check(reported > cases // 2, "damage reported: %d of %d" % (reported, cases))


def raw():
    # RAW: every STRIDE-th byte of every block the filesystem uses, littlefs's own
    # metadata included, XOR 0xFF. littlefs reads a metadata block up to its first commit
    # whose checksum fails and drops the rest without an error, so a directory can lose
    # its newer entries. Then: the mount fails (the application's to handle), or the load
    # gives a session whose messages drain in order, none twice or made up, and a message
    # lost is reported, unless the damage took the session's directory from a directory
    # above it (nothing is left to tell), or took only the newest message of the tail
    # (it looks like a slot never written): README, the store's damage paragraphs
    d.remount(True, BLOCKS)
    s = SessionStore(STORE).get(H, "cid")
    s.sub(b"x/#", 1)
    for i in range(N):
        s._keep(s.add(b"c/t", b"p%03d" % i, 1, False))
    sd = s._p
    d.unmount()
    with open(d.cfg("IMAGE"), "rb") as g:
        pristine = g.read()
    erased = b"\xff" * 4096
    used = [b for b in range(BLOCKS) if pristine[b * 4096 : b * 4096 + 4096] != erased]
    save = d.cfg("SAVE", 0)  # for the store inspector (test_inspect_store_cuts.py)
    if save:
        with open(d.cfg("IMAGE") + ".pristine", "wb") as g:
            g.write(pristine)
    cases = unmounted = silent = reported = 0
    for b in used:
        for o in range(b * 4096, b * 4096 + 4096, STRIDE):
            img = bytearray(pristine)
            img[o] ^= 0xFF
            d.unmount()
            with open(d.cfg("IMAGE"), "wb") as g:
                g.write(img)
            img = None
            cases += 1
            try:
                d.remount(False, BLOCKS)
            except OSError:
                unmounted += 1
                continue
            there = d.exists(sd)
            st, s = load()
            got = d.drain(s, N + 10)
            idx = [int(m[1:]) for m in got]
            if save:  # the byte changed, what drains (seq i is p<i>), what was reported
                print("LOADED", o, repr(idx))
                for e in st.errors:
                    print("REPORTED", o, e.split(": ", 1)[0][len("/flash") :])
            where = "block %d byte %d: %r %r" % (b, o % 4096, st.errors, got)
            check(all(m == b"p%03d" % i for m, i in zip(got, idx)), "nothing invented " + where)
            check(idx == sorted(set(idx)), "in order, none twice " + where)
            lost = [i for i in range(N) if i not in idx]
            reported += bool(st.errors)
            if lost and not st.errors:
                silent += 1
                check(not there or lost == [N - 1], "lost without a report " + where)
    print("CASES", cases, "UNMOUNTED", unmounted, "SILENT", silent, "REPORTED", reported,
          "BLOCKS", len(used))
    d.check(reported and silent < reported, "damage reported")


raw() if d.cfg("RAW", 0) else sweep()
print("PASS")
