# What a reconnect that changes nothing in the session does with the store: the node
# resumes its session (the takeover of its client ID by a second connection ends its
# link; the broker keeps the session) opening no file when it has no subscriptions, and
# only the owed file (ctl.pre_owe) when it has. Each open takes a file object of about
# 300 bytes in one piece, and a heap in small pieces has none: that open failing for
# want of heap no longer keeps the node offline. Then a second session of the same host
# connects (the "last" file names it), the first reconnects and names itself again, and
# a boot that names no client ID resumes that one.
# devcfg: HOST, PORT, CID, PREFIX, IMAGE, VERSION (the takeover is MQTT 3.1.1 either way)
import builtins
import socket

import devlib as d
from mqttsession import Link, MQTTClient, SessionStore

ROOT, BD = d.flash()
CID = d.cfg("CID")
T = d.topic("r")
opens = []
_open = builtins.open
fail = [None]  # a path ending: its open raises MemoryError


def counting(p, *a):
    opens.append(p)
    if fail[0] and p.endswith(fail[0]):
        raise MemoryError
    return _open(p, *a)


# the takeover's CONNECT (devlib.raw), made once
ADDR = socket.getaddrinfo(d.cfg("HOST"), d.cfg("PORT"))[0][-1]
TAKEOVER = d.connect_packet(CID.encode())
ups = [0]
got = []


def on_change(up):
    if up:
        ups[0] += 1


def node(cid):
    c = MQTTClient(cid, d.cfg("HOST"), d.cfg("PORT"), keepalive=30, version=d.VERSION,
                   store=SessionStore(ROOT + "/.mqtt"),
                   link=Link(min_ms=100, max_ms=500, on_change=on_change))
    c.set_callback(lambda t, m: got.append(m))
    return c


def sent(c, m, back=True):
    c.publish(T, m, qos=1)
    ok = d.pump(c, lambda: (m in got or not back) and not c.pending())
    d.check(ok, "%s acknowledged%s" % (m.decode(), " and received back" if back else ""))


def reconnect(c, what):
    # a second connection with the node's client ID ends the node's link (no clean
    # session, a normal DISCONNECT: the broker keeps the session); the node's reconnect,
    # with every file open counted
    u = ups[0]
    d.raw(ADDR, TAKEOVER)
    opens[:] = []
    BD.reset_counts()
    builtins.open = counting
    try:
        up = d.pump(c, lambda: ups[0] > u, 60000)
    finally:
        builtins.open = _open
    if what:
        said(what, up)
    return up


def said(what, up):
    # (apart from reconnect: with the heap in small pieces, said once it has room again)
    print("%s: files opened %r, blocks read %d, programmed %d, erased %d" % (
        what, opens, BD.reads, BD.progs, BD.erases))
    d.check(up, "the node reconnected (%s)" % what)


a = node(CID)
a.connect(clean_session=False)
sent(a, b"m1", False)
reconnect(a, "no subscriptions")
d.check(not opens, "a reconnect without subscriptions opened no file")
d.check(BD.progs == 0 and BD.erases == 0, "a reconnect without subscriptions wrote no flash")
sent(a, b"m2", False)

a.subscribe(T, 1)
sent(a, b"m3")
reconnect(a, "a subscription")
d.check(opens and all(p.endswith("/owed.t") for p in opens),
        "a reconnect with a subscription opened the owed file only")
sent(a, b"m4")

fail[0] = "/owed.t"
a.link.last_error = None
reconnect(a, "no heap for the owed file")
fail[0] = None
e = a.link.last_error
d.check(not isinstance(e, MemoryError), "no attempt failed for the owed file (%r)" % e)
sent(a, b"m5")

# the heap in pieces of about 128 bytes: the application's data taking it all, every
# other piece given back. No file can be opened (300 bytes in one piece); the node
# reconnects all the same, and the link carries a QoS 0 message (a QoS 1 one is in flash
# before publish returns: refused until the heap has room)
import gc

import heapfill


def in_pieces():
    # (a function: its names are in its frame, made before the heap is in pieces; new
    # globals would grow the module's table then)
    e = up = None
    held, n = heapfill.pieces(96)
    try:
        up = reconnect(a, None)
        a.publish(T, b"q0", qos=0)
        d.pump(a, lambda: b"q0" in got, 30000)
    except MemoryError as x:
        e = x
    held = None
    gc.collect()
    print("heap in pieces: %d pieces" % ((n + 1) // 2))
    said("a heap in small pieces", up)
    return e


e = in_pieces()
if e:
    import sys

    sys.print_exception(e)
d.check(e is None and b"q0" in got,
        "the link carries, reconnected with the heap in small pieces (%r)" % e)
sent(a, b"m6")

# a second session of the same host: "last" names it once it connects
b = node(CID + "b")
b.connect(clean_session=False)
b.disconnect()
reconnect(a, "after another session")
d.check(any(p.endswith("/last.t") for p in opens),
        "the reconnect after another session named this one last again")
sent(a, b"m7")
a.disconnect()

# a boot that names no client ID resumes the session used last
s = SessionStore(ROOT + "/.mqtt").get(d.cfg("HOST"))
d.check(s.client_id == CID.encode(), "the next boot resumes %s (%r)" % (CID, s.client_id))
print("PASS")
