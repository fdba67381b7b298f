# More of the session in flash (devcfg.TEST names the scenario): hosts and client IDs
# shaped like paths, misshapen stores, set-aside messages, queued payloads the caller
# changes, and stores written by earlier library versions. Kept apart from dev_store.py
# so each script compiles within a small board's heap.
import os
import struct

import devlib as d
from mqttsession import MQTTClient, SessionStore

V = d.VERSION
ROOT, BD = d.flash()
STORE = (ROOT or "") + "/.mqtt-test"
H = d.cfg("HOST")


def node(cid=None, **kw):
    kw.setdefault("window", d.cfg("WINDOW", 1))
    kw.setdefault("timeout", d.cfg("TIMEOUT", 3))
    kw.setdefault("version", V)
    kw.setdefault("keepalive", 30)
    return MQTTClient(cid if cid is not None else d.cfg("CID"), H, d.cfg("PORT"),
                      store=SessionStore(STORE), **kw)


def walk(p, out=None):
    # {path: size, or -1 for a directory} of everything under p
    out = {} if out is None else out
    for e in os.ilistdir(p):
        q = p + "/" + e[0]
        if e[1] == 0x4000:
            out[q] = -1
            walk(q, out)
        else:
            out[q] = os.stat(q)[6]
    return out


def rmtree(p):
    for e in os.ilistdir(p):
        if e[1] == 0x4000:
            rmtree(p + "/" + e[0])
        else:
            os.remove(p + "/" + e[0])
    os.rmdir(p)


def keep(s, payload, topic=b"c/t"):
    k = s.add(topic, payload, 1, False)
    s._keep(k)


def payloads(s):
    return sorted(s.load(k)[1] for k in s.live())


HOSTS = (H, "..", "/a/b\x00" + "h" * 300)


def paths():
    # hosts and client IDs shaped like paths: nothing outside the root changes, nothing
    # stored under other names is lost, each session round-trips under its own name
    with open(ROOT + "/canary", "wb") as f:
        f.write(b"outside the store")
    os.mkdir(ROOT + "/sibling")
    st = SessionStore(STORE)
    keep(st.get(H, "plain-id"), b"plain")
    keep(st.get("..", "plain-id"), b"dotdot-host")
    outside = {k: v for k, v in walk(ROOT).items() if not k.startswith(STORE)}
    odd = ["..", ".", "/", "a/b", "../x", "\x00", "a\x00b", "x" * 300, b"\xff\xfe/..",
           b"\xff" * 200, "last", "~null", "i", "m00000001", "x.t", "~2e2e", "\u00e9"]
    for i, cid in enumerate(odd):
        for host in HOSTS:
            s = st.get(host, cid)
            d.check(s.client_id == (cid if isinstance(cid, bytes) else cid.encode()),
                    "id %r kept" % cid)
            keep(s, b"p%d" % i)
    st = SessionStore(STORE)
    for i, cid in enumerate(odd):
        for host in HOSTS:
            s = st.get(host, cid)
            d.check(payloads(s) == [b"p%d" % i], "%r/%r reloads its own message" % (host, cid))
    names = [n for n in walk(STORE) if n.rsplit("/", 1)[1] not in ("i", "last")]
    d.check(all(len(n.rsplit("/", 1)[1]) <= 80 for n in names), "names stay short")
    for cid in odd:
        for host in HOSTS:
            st.delete(host, cid)
    st.delete(H, "..")
    st.delete("..", "..")
    st.delete(H, "/")
    st = SessionStore(STORE)
    d.check(payloads(st.get(H, "plain-id")) == [b"plain"], "the plain session kept")
    d.check(payloads(st.get("..", "plain-id")) == [b"dotdot-host"], "host '..' is a name")
    after = {k: v for k, v in walk(ROOT).items() if not k.startswith(STORE)}
    d.check(after == outside, "nothing outside the root changed")
    for cid in odd:
        d.check(st.get(H, cid).pending() == 0, "deleted %r" % cid)
    print("STORE_LISTING", sorted(walk(STORE))[:6])


def damage():
    # a misshapen store (devcfg.SHAPE) is reported, worked around, and the node starts
    shape = d.cfg("SHAPE")
    st = SessionStore(STORE)
    s = st.get(H, "dmg")
    s.sub(b"x/#", 1)
    s.rx2_add(5)
    for i in range(3):
        keep(s, b"p%d" % i)
    p = s._p
    hd = p.rsplit("/", 1)[0]
    kept = [b"p0", b"p1", b"p2"]

    def mkdir_at(q):
        if q.rsplit("/", 1)[1] in os.listdir(q.rsplit("/", 1)[0]):
            os.remove(q)
        os.mkdir(q)
        with open(q + "/junk", "wb") as f:
            f.write(b"j")

    def big(q, n):
        with open(q, "wb") as f:
            for _ in range(n // 4096):
                f.write(bytes(4096))

    if shape in ("id", "hot", "subs", "aside"):
        mkdir_at(p + "/" + shape)
    elif shape in ("q", "t0"):
        # the segment or tail directory is a file: what it held is gone, the rest loads
        rmtree(p + "/" + shape)
        with open(p + "/" + shape, "wb") as f:
            f.write(b"not a directory")
        if shape == "t0":
            kept = [b"p1", b"p2"]  # p0 was in t0
    elif shape == "last":
        mkdir_at(hd + "/last")
    elif shape == "msgdir":
        mkdir_at(p + "/t1/0")
        kept = [b"p0", b"p2"]
    elif shape == "sessfile":
        rmtree(p)
        with open(p, "wb") as f:
            f.write(b"not a directory")
        kept = []
    elif shape == "hostfile":
        rmtree(hd)
        with open(hd, "wb") as f:
            f.write(b"not a directory")
        kept = []
    elif shape == "bigmsg":
        big(p + "/t3/1", 1 << 20)
    elif shape == "bigident":
        big(p + "/id", 1 << 20)
    elif shape == "deepdir":
        # a chain of 250 directories where a segment belongs: removing it recursed as
        # deep and ended out of get() and delete() in MemoryError (a directory listing
        # open per level: this 256 KB heap) or RuntimeError (maximum recursion depth)
        q = p + "/q/zz"
        os.mkdir(q)
        for _ in range(250):
            q += "/d"
            os.mkdir(q)
    import gc

    gc.collect()
    st2 = SessionStore(STORE)
    s2 = st2.get(H) if shape == "last" else st2.get(H, "dmg")
    print("ERRORS", len(st2.errors))
    d.check(len(st2.errors) >= 1, "the damage is reported")
    d.check(s2.client_id == b"dmg", "the session with its client ID")
    d.check(payloads(s2) == kept, "intact messages kept: %r" % payloads(s2))
    # usable: a new message is stored, and the next boot loads it with the rest
    keep(s2, b"after")
    s2.sub(b"y", 0)
    s2.rx2_add(6)
    s3 = SessionStore(STORE).get(H, "dmg")
    d.check(payloads(s3) == sorted(kept + [b"after"]), "usable after the damage")
    d.check(s3.subs.get(b"y") == 0, "subscriptions written again")
    if shape == "deepdir":
        SessionStore(STORE).delete(H, "dmg")  # the same removal: as far as it can go
        print("DELETED")



def rootfile():
    # the root given is a file (or below one): the application's file, not the store's
    # damage. Refused with ValueError naming it; the file and what is beside it kept
    with open(ROOT + "/app.py", "wb") as f:
        f.write(b"the application's")
    for r in (ROOT + "/app.py", ROOT + "/app.py/", ROOT + "/app.py/.mqtt"):
        try:
            SessionStore(r)
            d.check(False, "a store made on the file %s" % r)
        except ValueError as e:
            print("REFUSED", e)
            d.check("app.py" in str(e), "the error names it: %s" % e)
        d.check(not os.stat(ROOT + "/app.py")[0] & 0x4000, "still a file")
        d.check(open(ROOT + "/app.py").read() == "the application's", "its content kept")


def aside():
    # set-aside messages in flash: kept across reboots, never sent, bounded, newest kept
    from mqttsession.aside import records, set_aside

    st = SessionStore(STORE, max_bytes=16384)
    s = st.get(H, "as")
    keep(s, b"poison", b"t/bad")
    keep(s, b"fine")
    k = s.live()[0]
    s.assign(k)
    set_aside(s, k, "closed 3 times")
    d.check(s.pending() == 1 and s.naside == 1, "out of the queue")
    s2 = SessionStore(STORE, max_bytes=16384).get(H, "as")
    d.check(s2.pending() == 1 and payloads(s2) == [b"fine"], "not queued after a reboot")
    d.check(s2.naside == 1, "counted after a reboot")
    d.check(records(s2) == [(b"t/bad", b"poison", 1, False, "closed 3 times")], "record kept")
    k = s2.add(b"t/q2", b"two", 2, True)
    s2._keep(k)
    set_aside(s2, k, 0x97)
    for i in range(40):
        k = s2.add(b"t/big", b"%d" % i + bytes(200), 1, False)
        s2._keep(k)
        set_aside(s2, k, 0x99)
    s3 = SessionStore(STORE, max_bytes=16384).get(H, "as")
    a = records(s3)
    print("ASIDE", s3.naside, len(a))
    d.check(s3.naside == 42, "every one counted")
    d.check(0 < len(a) < 40 and a[-1][1] == b"39" + bytes(200), "bounded, newest kept")
    d.check(sum(len(x[0]) + len(x[1]) for x in a) <= 16384 // 4, "within a quarter")
    d.check(s3.pending() == 1, "the queue untouched")
    huge = s3.add(b"t/huge", bytes(5000), 1, False)
    s3._keep(huge)
    set_aside(s3, huge, "too big")
    a = records(SessionStore(STORE, max_bytes=16384).get(H, "as"))
    d.check(a[-1][0] == b"t/huge" and len(a[-1][1]) < 5000, "a huge one kept cut")


def aside_damage():
    # a damaged set-aside file is reported once, at the load, and removed (the store's own
    # name): reading the list again (client.aside()) reports nothing more, so store.errors
    # stays bounded however often it is read; the queue is untouched and the list works
    from mqttsession.aside import records, set_aside

    s = SessionStore(STORE).get(H, "axd")
    keep(s, b"poison", b"t/bad")
    keep(s, b"fine")
    set_aside(s, s.live()[0], "refused")
    p = s._p + "/aside"
    with open(p, "rb") as f:
        b = bytearray(f.read())
    b[-6] ^= 0x55  # a byte of the record: the checksum no longer matches
    with open(p, "wb") as f:
        f.write(b)
    st2 = SessionStore(STORE)
    s2 = st2.get(H, "axd")
    d.check(len(st2.errors) == 1 and "/aside" in st2.errors[0],
            "reported at the load: %r" % st2.errors)
    for _ in range(20):
        d.check(records(s2) == [], "nothing left of the damaged list")
    print("REPORTS", len(st2.errors))
    d.check(len(st2.errors) == 1, "reported once, not at every read: %d" % len(st2.errors))
    d.check(payloads(s2) == [b"fine"], "the queue untouched")
    keep(s2, b"next", b"t/next")
    set_aside(s2, s2.live()[-1], "refused")
    st3 = SessionStore(STORE)
    s3 = st3.get(H, "axd")
    d.check(records(s3) == [(b"t/next", b"next", 1, False, "refused")] and not st3.errors,
            "set aside again, whole, nothing reported")
    # damaged while the session runs: reported at the next read, once
    with open(p, "wb") as f:
        f.write(b"MQx\x02 cut")
    for _ in range(5):
        d.check(records(s3) == [], "nothing left of the damaged list")
    d.check(len(st3.errors) == 1, "reported once while running: %r" % st3.errors)
    # a list whose checksum holds but whose reason text is not UTF-8 (this library never
    # writes one): the record comes back with its reason as bytes, nothing raises
    from mqttsession.store import pack

    rec = struct.pack("<BiHHH", 1 | 8, 0, 2, 3, 1) + b"\xff\xfe" + b"t/x" + b"m"
    with open(p, "wb") as f:
        f.write(pack(b"x", struct.pack("<I", 1) + rec, 2))
    try:
        got = records(s3)
    except ValueError as e:
        got = e
    d.check(got == [(b"t/x", b"m", 1, False, b"\xff\xfe")], "a reason not UTF-8: %r" % got)


def alias():
    # the same bytearray published twice offline, changed in between: both contents go
    c = node("alias", window=4)
    c.connect(clean_session=False)
    c.disconnect()
    buf = bytearray(b"first")
    c.publish(d.topic("a"), buf, qos=1)
    buf[:] = b"secnd"
    c.publish(d.topic("a"), memoryview(buf), qos=2)
    buf[:] = b"third"
    c.connect(clean_session=False)
    d.pump(c, lambda: c._s.pending() == 0, 5000)
    d.check(c._s.pending() == 0, "delivered")
    c.disconnect()


def upgrade_state():
    # a format 1 store (tests/fixtures, written by 0.1.0) opened by this library: the
    # same sessions, messages, packet IDs, QoS 2 state and subscriptions; twice (the
    # second time from format 2)
    root = ROOT + "/.mqtt"
    for rnd in (1, 2):
        st = SessionStore(root)
        s = st.get("broker.local") if rnd == 1 else st.get("broker.local", "node-a")
        d.check(s.client_id == b"node-a", "the last used session, same client ID")
        d.check((s.version, s.expiry) == (5, 3600), "identity kept")
        d.check(s.subs == {b"a/#": 1, b"b/+/c": 2}, "subscriptions kept")
        d.check(sorted(s.rx2) == [9, 12], "incoming QoS 2 state kept")
        got = [(s.msg[k], s.ids[k], s.fl[k] & 3, bool(s.fl[k] & 16)) for k in s.live()]
        print("NODE_A", got)
        d.check(got == [(b"queued-0", 0, 1, False), (b"queued-1", 0, 1, False),
                        (b"queued-2", 0, 1, False), (b"two-sent", 1, 2, False),
                        (b"released", 2, 2, True), (b"sent-once", 3, 1, False)],
                "messages, packet IDs and the release kept, in order")
        d.check(s.pid == 3, "packet IDs go on from the last one")
        d.check(not [n for n in os.listdir(s._p) if n in ("i", "u", "s") or n[0] == "m"],
                "no format 1 file left")
        n = st.get("broker.local", "auto-0001")
        d.check(payloads(n) == [b"from-null"] and n.subs == {b"n/#": 0}, "the assigned ID")
        o = st.get("a host name that is not plain", b"\xffid")
        d.check(payloads(o) == [b"odd-one"], "a session under 0.1.0's hashed names")
        print("ROUND", rnd, "ERRORS", len(st.errors))
        d.check(not st.errors, "nothing reported")


def files(p, out=None):
    # {path: contents} of every file under p, and {path: "dir"} of every directory
    out = {} if out is None else out
    for e in os.ilistdir(p):
        q = p + "/" + e[0]
        if e[1] == 0x4000:
            out[q] = "dir"
            files(q, out)
        else:
            with open(q, "rb") as f:
                out[q] = f.read()
    return out


def fill(room):
    # fills the filesystem but for about `room` bytes: a file of that size, a second one
    # grown until a write fails (in smaller and smaller steps), then the first removed
    with open(ROOT + "/room", "wb") as f:
        f.write(bytes(room))
    with open(ROOT + "/junk", "wb") as f:
        for n in (4096, 512, 64, 8, 1):
            try:
                while True:
                    f.write(bytes(n))
                    f.flush()
            except OSError as e:
                d.check(e.errno == 28, "filled in steps of %d" % n)
    os.remove(ROOT + "/room")


def upgrade_full():
    # the migration needs room for both formats for a moment: where the filesystem has
    # none (devcfg.ROOM bytes free, short of a format 2 copy), get() raises ENOSPC and
    # format 1 is left as it was (the same files, the same bytes), at each boot; with
    # room again, the next get() migrates everything
    root = ROOT + "/.mqtt"
    before = files(root)
    fill(d.cfg("ROOM"))
    for _ in range(2):
        e = d.raises(OSError, SessionStore(root).get, "broker.local", "node-a")
        print("FULL", repr(e))
        d.check(e.errno == 28, "ENOSPC")
        after = files(root)
        d.check(after == before, "format 1 untouched, nothing left beside it: %r" % sorted(
            k for k in set(before) | set(after) if before.get(k) != after.get(k)))
    os.remove(ROOT + "/junk")
    upgrade_state()


def upgrade_eio():
    # the flash cannot read one of format 1's message files for a while (the driver's
    # EIO): get() raises it, taking no message for damage, and once the flash reads it
    # the migration is whole
    from mqttsession import migrate

    read = migrate._read
    bad = []

    def failing(p, *a):
        n = p[p.rfind("/") + 1 :]
        if n[0] == "m" and len(n) == 9 and (not bad or bad[0] == p):
            bad[:] = [p]
            raise OSError(5)  # the driver's EIO, on the first message file read
        return read(p, *a)

    migrate._read = failing
    try:
        e = d.raises(OSError, SessionStore(ROOT + "/.mqtt").get, "broker.local", "node-a")
    finally:
        migrate._read = read
    print("EIO", repr(e), bad)
    d.check(e.errno == 5 and bad, "the flash's EIO raised")
    upgrade_state()


def last_eio():
    # the host's "last" file (which session the host used last) unreadable when the
    # session loads at a boot (the flash's EIO; a reconnect reads it no more): only a
    # pointer, written again; the client is made and connects, and the next load
    # without a client ID finds the session by it
    from mqttsession import store

    c = node("last-eio")
    c.connect(clean_session=False)
    c.disconnect()
    c = None
    read = store._read
    hit = []

    def failing(p, *a):
        if p.endswith("/last"):
            hit.append(p)
            raise OSError(5)  # the driver's EIO
        return read(p, *a)

    store._read = failing
    try:
        c = node("last-eio")
        c.connect(clean_session=False)
    finally:
        store._read = read
    c.disconnect()
    s = SessionStore(STORE).get(H)
    print("LAST", len(hit), s.client_id)
    d.check(hit and s.client_id == b"last-eio", "the session found by its pointer")


def upgrade_resume():
    # the upgraded node-a resumes at a broker that never saw it: everything not yet
    # acknowledged by the old broker is published (the release counts as delivered)
    c = MQTTClient(None, "broker.local", d.cfg("PORT"), store=SessionStore(ROOT + "/.mqtt"),
                   window=4, version=5)
    c.server = H
    d.check(c.client_id == "node-a", "same client ID")
    d.check(c._s.pending() == 6, "six pending")
    c.connect(clean_session=False)
    d.pump(c, lambda: c._s.pending() == 0, 8000)
    d.check(c._s.pending() == 0, "all acknowledged")
    c.disconnect()


def newer():
    # a session written by a newer format: refused by default, never overwritten; with
    # newer="aside" it is renamed (kept) and a new session starts
    st = SessionStore(STORE)
    s = st.get(H, "nw")
    keep(s, b"from-the-future")
    p = s._p
    with open(p + "/id", "rb") as f:
        b = bytearray(f.read())
    b[3] = 3  # format 3 (its CRC is not even checked: the version is enough to refuse)
    with open(p + "/id", "wb") as f:
        f.write(b)
    before = walk(p)
    e = d.raises(ValueError, SessionStore(STORE).get, H, "nw")
    print("REFUSED", e)
    d.check("format 3" in str(e), "the error names the format")
    d.check(walk(p) == before, "nothing written")
    s2 = SessionStore(STORE, newer="aside").get(H, "nw")
    d.check(s2.pending() == 0, "a new session")
    d.check(walk(p + "~new") == {k.replace(p, p + "~new", 1): v for k, v in before.items()},
            "the newer one kept as it was")
    print("ASIDE")
    # a newer library ran here again, then this one: the second newer session is set
    # aside beside the first, which stays kept (it is never overwritten either)
    keep(s2, b"from-the-future-2")
    with open(p + "/id", "rb") as f:
        b = bytearray(f.read())
    b[3] = 3
    with open(p + "/id", "wb") as f:
        f.write(b)
    again = walk(p)
    s3 = SessionStore(STORE, newer="aside").get(H, "nw")
    d.check(s3.pending() == 0, "a new session again")
    d.check(walk(p + "~new") == {k.replace(p, p + "~new", 1): v for k, v in before.items()},
            "the first newer one still kept")
    d.check(walk(p + "~new1") == {k.replace(p, p + "~new1", 1): v for k, v in again.items()},
            "the second kept beside it")
    print("ASIDE TWICE")


def rollback():
    st = SessionStore(STORE)
    phase = d.cfg("PHASE")
    if phase == 1:  # this library: two messages queued in format 2
        s = st.get(H, "rb")
        s.sub(b"r/#", 1)
        keep(s, b"new-1")
        keep(s, b"new-2")
        return
    s = st.get(H, "rb")
    if phase == 2:  # 0.1.0: sees no session it can read, starts one beside, queues one
        print("OLD_PENDING", s.pending())
        keep(s, b"old-1")
        return
    d.check(s.client_id == b"rb", "same client ID")
    d.check(payloads(s) == [b"new-1", b"new-2", b"old-1"], "both kept: %r" % payloads(s))
    d.check(s.subs.get(b"r/#") == 1, "subscriptions kept")
    d.check(not [n for n in os.listdir(s._p) if n in ("i", "u", "s") or n[0] == "m"],
            "format 1 files merged and gone")


def small(n):
    # qseg's bytearray under devcfg.LIMIT: no piece of the heap larger than that
    # (MemoryError), as in a heap in pieces
    if n > d.cfg("LIMIT"):
        raise MemoryError("no piece of %d bytes" % n)
    return bytearray(n)


def limited():
    # a store whose segment reader finds the heap as small() says, from the load on
    # (devcfg.LIMIT; none without it): a segment larger than its buffer is read in
    # windows of it
    from mqttsession import qseg

    if d.cfg("LIMIT"):
        qseg.bytearray = small
    return SessionStore(STORE, ram=4)


def drain(s):
    # the payloads of session s's pending messages, each dropped as taken (as an
    # acknowledgement would), in order; prints "BUFFER <the largest the segments were
    # read into>", and gives qseg its bytearray back
    from mqttsession import qseg

    got = []
    most = 0
    while s.live():
        k = s.live()[0]
        got.append(s.load(k)[1])
        s.drop(k)
        most = max(most, len(s._cz or b""))
    qseg.bytearray = bytearray
    print("BUFFER", most)
    return got


def backlog(cid, cap, n):
    # a session of capacity cap queueing n messages (m00, m01, ...): its segments'
    # directory and their names, in order (one segment per 32)
    s = SessionStore(STORE, ram=4).get(H, cid, cap)
    for i in range(n):
        keep(s, b"m%02d" % i)
    q = s._p + "/q"
    names = sorted(os.listdir(q))
    d.check(len(names) == n // 32, "%d segments: %r" % (n // 32, names))
    return q, names


def segdamage():
    # damaged records in the backlog's segments (one cut short mid-header, one with a
    # flipped byte): each is reported once; the messages before it and those of every
    # other segment and of the tail drain in order, the rest of that segment is skipped
    q, names = backlog("seg", 80, 70)
    rs = 13 + 3 + 3 + 4  # one record: header, topic c/t, payload mNN, CRC
    with open(q + "/" + names[0], "rb") as f:
        b = f.read()
    with open(q + "/" + names[0], "wb") as f:
        f.write(b[: 4 + 20 * rs + 6])  # record 20 (m20) cut inside its header
    with open(q + "/" + names[1], "rb") as f:
        b = bytearray(f.read())
    b[4 + 10 * rs + 17] ^= 0x55  # the payload of record 10 (m42)
    with open(q + "/" + names[1], "wb") as f:
        f.write(b)
    st2 = limited()
    s2 = st2.get(H, "seg", 80)
    got = drain(s2)
    print("ERRORS", st2.errors)
    want = [b"m%02d" % i for i in list(range(20)) + list(range(32, 42)) + list(range(64, 70))]
    d.check(got == want, "drained in order up to each damaged record: %r" % got)
    d.check(len(st2.errors) == 2, "each damaged segment reported once")
    d.check(s2.pending() == 0, "nothing left counted")
    keep(s2, b"after")
    d.check(payloads(SessionStore(STORE, ram=4).get(H, "seg", 80)) == [b"after"],
            "usable after the damage")


def segbig():
    # records of 22 to 1,282 bytes (payloads of 2 + 180 x (i % 8) bytes): where the load
    # finds no room for a segment's buffer (devcfg.LIMIT) its windows of 128 bytes grow
    # to each record larger than them. Every message drains, in order, with no report
    s = SessionStore(STORE, ram=4).get(H, "segb", 80)
    want = [b"%02d" % i + b"." * (180 * (i % 8)) for i in range(48)]
    for m in want:
        keep(s, m)
    del s
    st2 = limited()
    s2 = st2.get(H, "segb", 80)
    got = drain(s2)
    d.check(got == want, "every message, in order: %r" % [len(m) for m in got])
    d.check(not st2.errors, "no damage: %r" % st2.errors)


def segname():
    # damage to the sizes in two segments' names (littlefs keeps names in its metadata):
    # one says 16 MB, one says 16 bytes. Each is reported once and read as the file is:
    # every message drains, in order (up to 0.2.24 the first asked for a buffer of 16 MB,
    # and every boot met MemoryError)
    q, names = backlog("segn", 120, 100)
    for n, z in ((names[0], 0xFFFFF0), (names[1], 16)):
        os.rename(q + "/" + n, q + "/" + n[:18] + "%06x" % z)
    st2 = SessionStore(STORE, ram=4)
    s2 = st2.get(H, "segn", 120)
    got = drain(s2)
    print("ERRORS", st2.errors)
    d.check(got == [b"m%02d" % i for i in range(100)], "every message, in order: %r" % got)
    d.check(len(st2.errors) == 2 and all("its name says" in e for e in st2.errors),
            "each damaged name reported once")
    d.check(not os.listdir(q), "every segment removed once drained: %r" % os.listdir(q))


def segmagic():
    # two segments whose first bytes are not a segment's (the oldest, read at the load,
    # and the third): each is reported once as "not a segment" and removed, its messages
    # are passed over; every message of the other segment and of the tail drains in order
    q, names = backlog("segm", 120, 100)
    for n in (names[0], names[2]):
        with open(q + "/" + n, "r+b") as f:
            f.write(b"JUNK")
    st2 = SessionStore(STORE, ram=4)
    s2 = st2.get(H, "segm", 120)
    got = drain(s2)
    print("ERRORS", st2.errors)
    want = [b"m%02d" % i for i in list(range(32, 64)) + list(range(96, 100))]
    d.check(got == want, "the other segment and the tail, in order: %r" % got)
    d.check(len(st2.errors) == 2 and all("not a segment" in e for e in st2.errors),
            "each reported once as not a segment")
    d.check(s2.pending() == 0, "nothing left counted")
    d.check(not os.listdir(q), "no segment left: %r" % os.listdir(q))


def wide_window():
    # a window larger than SessionStore(ram=N): at most N messages in flight, the rest
    # wait in flash and go out in order as acknowledgements come; no call raises
    c = MQTTClient("wide", H, d.cfg("PORT"), store=SessionStore(STORE, ram=2), window=4,
                   queue=40, version=V, keepalive=30, timeout=3)
    box = d.Inbox()
    c.set_callback(box)
    c.connect(clean_session=False)
    t = d.topic("wide")
    c.subscribe(t, 1)
    most = [0]

    def seen():
        most[0] = max(most[0], c._s.nin)
        return len(box) >= 12 and not c.pending()

    for i in range(12):
        c.publish(t, b"%d" % i, qos=1)
        seen()
    d.check(d.pump(c, seen), "all 12 delivered and acknowledged: %d" % len(box))
    print("MOST_IN_FLIGHT", most[0])
    d.check(0 < most[0] <= 2, "at most ram=2 in flight: %d" % most[0])
    d.check([m for _, m in box.got] == [b"%d" % i for i in range(12)], "in order")
    c.disconnect()


globals()[d.cfg("TEST")]()
print("PASS")
