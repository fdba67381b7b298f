# Power-cut sweep: a scenario of publishes, acknowledgements, releases, incoming QoS 2
# and enough rewrites to make littlefs compact its metadata, cut after N block writes for
# every N. After each cut: remount, reload, and check the store holds the old or the new
# state and every message whose publish had returned.
import os

import devlib as d
from mqttsession import SessionStore

PID = 64  # session.py's _PID flag: the slot holds a packet ID

IMG = d.cfg("IMAGE")
PROG = d.cfg("PROG", 32)
READ = d.cfg("READ", 32)  # the mount's readsize (not the image's): littlefs's cache size
MTIME = d.cfg("MTIME", 1)  # 0: mounted with mtime=False (no modification times stored)
BLOCKS = d.cfg("BLOCKS", 16)
QOS = d.cfg("QOS", 0)  # 1: every message QoS 1 (complete segments removed without a
# hot-state write); 0: QoS 1 and 2 in turn
H = "sweep.host"


class Model:
    # what the scenario has been told is durable
    def __init__(self):
        self.kept = []  # payloads whose publish returned and whose ack has not completed
        self.acked = []  # payloads whose ack completed
        self.subs = {}
        self.busy = None  # the payload whose ack is under way (either state is fine)


def find(s, payload):
    for k in s.live():
        if s.load(k)[1] == payload:
            return k
    return -1


def scenario(s, m, rounds):
    n = 0
    for r in range(rounds):
        for i in range(4):
            p = b"r%dm%d" % (r, i)
            k = s.add(b"sw/t", p, QOS or 1 + (i & 1), False)
            if i & 1 and not QOS and k < s.cap:
                s.assign(k)  # QoS 2 in the window gets its packet ID before it is written
            s._keep(k)
            m.kept.append(p)
            n += 1
        s.sub(b"sw/%d/#" % r, r % 3)
        m.subs[b"sw/%d/#" % r] = r % 3
        # acknowledge the two oldest (the head of the ring, as a broker does): a PUBACK,
        # or for QoS 2 a release and a complete
        for p in m.kept[:2]:
            k = find(s, p)
            m.busy = p
            if not s.fl[k] & PID:
                s.assign(k)
            pid = s.ids[k]
            if s.fl[k] & 3 == 2:
                s.acked(pid, True)  # PUBREC: release recorded
            s.acked(pid, False)
            m.kept.remove(p)
            m.acked.append(p)
            m.busy = None
        s.rx2_add(100 + r)
        s.rx2_del(100 + r)
    # then everything left is acknowledged in order: the ring refills from the backlog
    # in flash, the watermark moves, complete segments are removed
    order = list(m.kept)
    if QOS:
        # the oldest after 33 others: completions out of order go into the hot state,
        # then a segment that holds some of them is removed
        order = order[1:34] + order[:1] + order[34:]
    for p in order:
        k = find(s, p)
        m.busy = p
        if not s.fl[k] & PID:
            s.assign(k)
        pid = s.ids[k]
        if s.fl[k] & 3 == 2:
            s.acked(pid, True)
        s.acked(pid, False)
        m.kept.remove(p)
        m.acked.append(p)
        m.busy = None
    return n


def fresh():
    return d.remount(True, BLOCKS, READ, MTIME == 1)


def remount():
    return d.remount(False, BLOCKS, READ, MTIME == 1)


def verify(m, cut_at):
    st = SessionStore("/flash/.mqtt")
    s = st.get(H, "sweeper", capacity=64)  # a ring that holds everything pending
    have = [s.load(k)[1] for k in s.live()]
    if s.more:
        raise AssertionError("FAIL cut at %d: %d beyond a ring of 64" % (cut_at, s.more))
    for p in m.kept:
        if p not in have:
            raise AssertionError("FAIL cut at %d: returned message %s lost" % (cut_at, p))
    # QoS 1 completions are written lazily (at most 32 behind): those may come back, to
    # be sent again with DUP, as QoS 1 allows; a QoS 2 completion never comes back
    back = [p for p in m.acked if p in have]
    if len(back) > 32 or [p for p in back if p[-1] not in b"02" and not QOS]:
        raise AssertionError("FAIL cut at %d: acknowledged %r came back" % (cut_at, back))
    extra = [p for p in have if p not in m.kept and p != m.busy and p not in back]
    # a message under way (publish not returned) may or may not be there
    if len(extra) > 1:
        raise AssertionError("FAIL cut at %d: unexpected %r" % (cut_at, extra))
    for f, q in m.subs.items():
        if s.subs.get(f) != q:
            raise AssertionError("FAIL cut at %d: subscription %s" % (cut_at, f))
    # and the store still works after the cut
    k = s.add(b"sw/t", b"after", 1, False)
    s._keep(k)
    return len(st.errors)


def run():
    rounds = d.cfg("ROUNDS", 6)
    bd = fresh()
    m = Model()
    s = SessionStore("/flash/.mqtt", ram=16).get(H, "sweeper", capacity=64)
    base = bd.progs + bd.erases
    scenario(s, m, rounds)
    total = bd.progs + bd.erases - base
    print("WRITES", total, "ERASES", bd.erases)
    step = d.cfg("STEP", 1)
    cuts = reports = 0
    for n in range(0, total + 1, step):
        bd = fresh()
        m = Model()
        s = SessionStore("/flash/.mqtt", ram=16).get(H, "sweeper", capacity=64)
        bd.fail_after = n
        try:
            scenario(s, m, rounds)
        except OSError:
            cuts += 1
        bd.fail_after = 0  # nothing more reaches the image, as after a power cut
        remount()
        reports += verify(m, n)
    print("CUTS", cuts, "REPORTED", reports)
    d.check(cuts > 0, "the sweep cut power %d times and every reload held" % cuts)


def state(s):
    return ([(s.load(k)[1], s.ids[k], s.fl[k] & 3, bool(s.fl[k] & 16)) for k in s.live()],
            sorted(s.rx2), sorted(s.subs.items()), s.client_id, s.pid)


def restore():
    # the format 1 image as 0.1.0 left it
    d.unmount()
    buf = bytearray(4096)
    with open(d.cfg("FIXTURE"), "rb") as f, open(IMG, "wb") as g:
        while f.readinto(buf):
            g.write(buf)
    return remount()


def migrate():
    # a format 1 store (written by 0.1.0) migrated with a power cut after every block
    # write: every reload has the whole session, with nothing lost or doubled
    bd = restore()
    want = state(SessionStore("/flash/.mqtt").get("broker.local"))
    print("WANT", want)
    bd = restore()
    base = bd.progs + bd.erases
    SessionStore("/flash/.mqtt").get("broker.local")
    total = bd.progs + bd.erases - base
    print("WRITES", total)
    cuts = 0
    for n in range(total + 1):
        bd = restore()
        bd.fail_after = n
        try:
            SessionStore("/flash/.mqtt").get("broker.local")
        except OSError:
            cuts += 1
        bd.fail_after = None
        remount()
        got = state(SessionStore("/flash/.mqtt").get("broker.local"))
        if got != want:
            raise AssertionError("FAIL cut at %d: %r" % (n, got))
    # a cut while format 1 files are removed is not an error the caller sees: the reload
    # finishes the removal
    print("CUTS", cuts, "RUNS", total + 1)
    d.check(cuts > 0, "cut at every write of the migration, each reload whole")


if d.cfg("MODE") == "migrate":
    migrate()
else:
    run()
print("PASS")
