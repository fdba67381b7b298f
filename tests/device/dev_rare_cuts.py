# Power-cut sweep over the store's rare paths (tests/host/test_store_rare_cuts.py). MODE
# "adopt": a session X holds two pending messages; a null session (MQTT 5, client ID "")
# is assigned X (as v5.py does: client_id set, then the identity written, which moves X
# aside to X~old). Cut after every block write; after each, the old session's messages
# are still reachable: under X (the move not made) or under X~old (made). MODE "delete":
# delete() of a session with completed and pending QoS 2 messages, cut after every block
# write; after each, the session is whole or gone, never its completed messages again.

import cutrig
import devlib as d
from mqttsession import SessionStore

BLOCKS = d.cfg("BLOCKS", 32)
H = "rare.host"
_IDENT = 4  # stored.py's: what a _save writes


def payloads(s):
    return sorted(bytes(s.load(k)[1]) for k in s.live())


def prepare():
    # the old session X with two pending messages, "last" naming it
    bd = d.remount(True, BLOCKS)
    s = SessionStore("/flash/.mqtt").get(H, "X")
    for p in (b"old-1", b"old-2"):
        s._keep(s.add(b"t", p, 1, False))
    return bd


def adopt():
    s = SessionStore("/flash/.mqtt").null_session(H)
    s.client_id = b"X"  # the CONNACK's Assigned Client Identifier (v5.py)
    s._save(_IDENT)


def adopt_sweep():
    bd = prepare()
    base = bd.progs + bd.erases
    adopt()
    total = bd.progs + bd.erases - base
    print("WRITES", total)
    cuts = 0
    for n in range(total + 1):
        bd = prepare()
        bd.fail_after = n
        try:
            adopt()
        except OSError:
            cuts += 1
        bd.fail_after = None
        d.remount(False, BLOCKS)
        st = SessionStore("/flash/.mqtt")
        got = {}
        for cid in ("X", "X~old"):
            got[cid] = payloads(st.get(H, cid))
        if [b"old-1", b"old-2"] not in got.values():
            raise AssertionError("FAIL cut at %d: the old session's messages are in "
                                 "neither X nor X~old: %r %r" % (n, got, st.errors))
    print("CUTS", cuts, "RUNS", total + 1)
    d.check(cuts > 0, "cut at every write of the adopt, the old session reachable")


def prepare_delete():
    # session X: four QoS 2 messages, the first two complete (PUBREC, PUBCOMP), the
    # other two pending
    bd = d.remount(True, BLOCKS)
    s = SessionStore("/flash/.mqtt").get(H, "X")
    for p in (b"done-1", b"done-2", b"pend-1", b"pend-2"):
        k = s.add(b"t", p, 2, False)
        s.assign(k)
        s._keep(k)
    for k in list(s.live())[:2]:
        pid = s.ids[k]
        s.acked(pid, True)
        s.acked(pid, False)
    return bd


def delete_sweep():
    # delete() cut after every block write: the reload holds the session as it was (its
    # two pending messages) or nothing; never a completed QoS 2 message, which would go
    # out again as a new one and be delivered twice
    bd = prepare_delete()
    base = bd.progs + bd.erases
    SessionStore("/flash/.mqtt").delete(H, "X")
    total = bd.progs + bd.erases - base
    print("WRITES", total)
    cuts = 0
    for n in range(total + 1):
        bd = prepare_delete()
        cutrig.cut_after(bd, n)
        try:
            SessionStore("/flash/.mqtt").delete(H, "X")
        except OSError:
            pass  # littlefs found what it wrote is not there
        cuts += 1
        bd.fail_after = None
        d.remount(False, BLOCKS)
        got = payloads(SessionStore("/flash/.mqtt").get(H, "X"))
        if got not in ([], [b"pend-1", b"pend-2"]):
            raise AssertionError("FAIL cut at %d: after delete() %r" % (n, got))
    print("CUTS", cuts, "RUNS", total + 1)


if d.cfg("MODE") == "delete":
    delete_sweep()
if d.cfg("MODE") == "adopt":
    adopt_sweep()
print("PASS")
