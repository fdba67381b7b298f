# Power-cut sweep: a scenario of publishes, acknowledgements, releases, incoming QoS 2
# and enough rewrites to make littlefs compact its metadata, cut after N block writes for
# every N. After each cut: remount, reload, and check the store holds the old or the new
# state and every message whose publish had returned.
import binascii
import gc
import os
import vfs

import blockdev
import devlib as d
from mqttsession import SessionStore
from mqttsession.session import PID

IMG = d.cfg("IMAGE")
PROG = d.cfg("PROG", 32)
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
        self.gone = None  # replay(): set when busy is kept but gone after the cut


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


_bd = [None]
_jr = [None, None, None]  # while the scenario is journaled: journal, model file, its model


class _NoSync:
    # the image file without the fsync of its flush: the sweep cuts power inside this
    # process (fail_after) and kills none, so what a write put in the file is in it, for
    # every reader (the unix port's files are unbuffered). An fsync per block write made
    # the sweep wait on the disk, many times longer on a busy machine.
    def __init__(self, f):
        self.seek = f.seek
        self.readinto = f.readinto
        self.write = f.write
        self.close = f.close

    def flush(self):
        pass


class Journal(blockdev.FileBlockDev):
    # trail: a checksum of where and how much each write made so far wrote; while the
    # scenario is journaled, each write is recorded (offset, length, bytes; length 0: a
    # block erased) with what the scenario had been told was durable when it was made
    trail = 0

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self._f = _NoSync(self._f)

    def writeblocks(self, block, buf, off=None):
        if off is None:
            raise OSError(95)  # littlefs uses the protocol with offsets
        super().writeblocks(block, buf, off)
        self.trail = _record(self.trail, block * self.block_size + off, buf)

    def ioctl(self, op, arg):
        r = super().ioctl(op, arg)
        if op == 6:
            self.trail = _record(self.trail, arg * self.block_size, b"")
        return r


def _record(trail, at, buf):
    if _jr[0]:
        _jr[0].write(b"%d %d\n" % (at, len(buf)))
        _jr[0].write(buf)
        _jr[1].write(_model(_jr[2]) + "\n")
    return binascii.crc32(b"%d %d," % (at, len(buf)), trail)


def _model(m):
    return repr((m.kept, m.acked, m.busy, sorted(m.subs.items())))


def _close():
    # unmounts and closes the image: one open block device at a time. The cut mount's
    # objects (a file the cut left open) are finalized first, while the image is still
    # open for reads and refuses writes as flash after a power cut would: finalized
    # later, they would touch a closed image from inside littlefs
    try:
        vfs.umount("/flash")
    except OSError:
        pass
    if _bd[0]:
        _bd[0].fail_after = 0
        gc.collect()
        _bd[0].close()
        _bd[0] = None


def _mount(create, path=IMG):
    _close()
    bd = Journal(path, 4096, BLOCKS, PROG, create=create)
    if create:
        vfs.VfsLfs2.mkfs(bd, progsize=PROG)
    vfs.mount(vfs.VfsLfs2(bd, progsize=PROG), "/flash")
    _bd[0] = bd
    return bd


def fresh():
    return _mount(True)


def remount():
    return _mount(False)


def verify(m, cut_at):
    st = SessionStore("/flash/.mqtt")
    s = st.get(H, "sweeper", capacity=64)  # a ring that holds everything pending
    have = [s.load(k)[1] for k in s.live()]
    if s.more:
        raise AssertionError("FAIL cut at %d: %d beyond a ring of 64" % (cut_at, s.more))
    for p in m.kept:
        if p not in have:
            if p == m.busy and m.gone is not None:
                m.gone = True  # replay(): a real cut tells whether the scenario was told
                continue
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
        bd.fail_after = None
        remount()
        reports += verify(m, n)
    print("CUTS", cuts, "REPORTED", reports)
    d.check(cuts > 0, "the sweep cut power %d times and every reload held" % cuts)


_BUF = bytearray(4096)  # one buffer for copies, checksums and journal entries
_FF = b"\xff" * 4096  # an erased block


def _copy(src, dst):
    with open(src, "rb") as f, open(dst, "wb") as g:
        while True:
            n = f.readinto(_BUF)
            if not n:
                break
            g.write(memoryview(_BUF)[:n])


def _tree(p="/flash"):
    # every file under p with a checksum of its bytes (not of littlefs's own metadata,
    # which holds each file's modification time)
    out = []
    for e in sorted(os.ilistdir(p)):
        q = p + "/" + e[0]
        if e[1] == 0x4000:
            out.append((q, _tree(q)))
            continue
        c = 0
        with open(q, "rb") as f:
            while True:
                n = f.readinto(_BUF)
                if not n:
                    break
                c = binascii.crc32(memoryview(_BUF)[:n], c)
        out.append((q, c))
    return out


def replay():
    # The same sweep with one pass of the scenario: its writes are journaled, and the image
    # a cut after N writes leaves (the first N writes made, none after) is rebuilt from the
    # journal for every N and checked against the model of that moment, as run() does.
    # Every STEP-th point (from OFFSET) is also cut for real: the cut must have made the
    # journal's writes and left the same files as the rebuilt image, and the reload must
    # hold what the cut scenario was told (run()'s check)
    rounds = d.cfg("ROUNDS", 6)
    rep, chk, jn, mn = IMG + ".rep", IMG + ".chk", IMG + ".jn", IMG + ".mn"
    bd = fresh()
    m = Model()
    s = SessionStore("/flash/.mqtt", ram=16).get(H, "sweeper", capacity=64)
    _copy(IMG, rep)  # every write reaches the file at once: the image where cuts start
    base = bd.progs + bd.erases
    with open(jn, "wb") as j, open(mn, "w") as mf:
        _jr[:] = [j, mf, m]
        try:
            scenario(s, m, rounds)
        finally:
            _jr[:] = [None, None, None]
        mf.write(_model(m) + "\n")  # after the last write
    total = bd.progs + bd.erases - base
    print("WRITES", total, "ERASES", bd.erases)
    step, off = d.cfg("STEP", 11), d.cfg("OFFSET", 3)
    cuts = raised = more = reports = trail = 0
    with open(jn, "rb") as j, open(mn) as mf, open(rep, "r+b") as r:
        for n in range(total + 1):
            if n:
                at, size = [int(x) for x in j.readline().split()]
                r.seek(at)
                if size:
                    j.readinto(memoryview(_BUF)[:size])
                r.write(memoryview(_BUF)[:size] if size else _FF)
                trail = binascii.crc32(b"%d %d," % (at, size), trail)
            line = mf.readline()  # the model when write n is made
            m = Model()
            m.kept, m.acked, m.busy, subs = eval(line)
            m.subs = dict(subs)
            m.gone = False
            _copy(rep, chk)
            _mount(False, chk)
            strided = n % step == off % step
            files = _tree() if strided else None
            reports += verify(m, n)
            # every STEP-th point, and every one where an acknowledgement under way had
            # completed in flash at write n (whether the scenario was told so depends on
            # whether the failed write n would have been reported to it)
            if m.gone and not strided:
                _copy(rep, chk)  # as rebuilt, before verify() wrote to it
                _mount(False, chk)
                files = _tree()
            if strided or m.gone:
                cut = Model()
                bd = fresh()
                s = SessionStore("/flash/.mqtt", ram=16).get(H, "sweeper", capacity=64)
                bd.trail = 0
                bd.fail_after = n
                try:
                    scenario(s, cut, rounds)
                except OSError:
                    raised += strided
                cuts += strided
                more += not strided
                bd.fail_after = 0  # nothing more reaches the image
                remount()
                if bd.trail != trail or _tree() != files:
                    raise AssertionError("FAIL cut at %d: not the journal's image" % n)
                # what the cut scenario was told (a failure it was not told of, such as a
                # seal after the message was written, lets it go on): run()'s check
                reports += verify(cut, n)
    print("POINTS", total + 1, "CUTS", cuts, "RAISED", raised, "MORE", more, "REPORTED", reports)
    d.check(raised > 0, "every rebuilt point reloaded; %d real cuts matched" % (cuts + more))


def state(s):
    return ([(s.load(k)[1], s.ids[k], s.fl[k] & 3, bool(s.fl[k] & 16)) for k in s.live()],
            sorted(s.rx2), sorted(s.subs.items()), s.client_id, s.pid)


def restore():
    # the format 1 image as 0.1.0 left it
    _close()
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
elif d.cfg("MODE") == "replay":
    replay()
else:
    run()
print("PASS")
