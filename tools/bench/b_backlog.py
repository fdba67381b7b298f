# A backlog in flash: messages published offline into a littlefs store (4 KiB blocks,
# prog 32 or 256, on the counting block device), then a reboot and the drain when the
# broker is back. Reports the time to queue one message (mean over 320) at 320, 1,280
# and 10,000 queued, the flash erases and programs per message (queueing, draining, and
# one synced append per message for comparison), the boot time and heap with the
# backlog, and the drain rate and block reads with 10 and with n queued; ram=1 drains the
# same n from a RAM queue (no store) instead, parts=1 times the store's steps of both.
import gc
import os
import time

import bcommon as B
import vfs

PROG = B.num("prog", 32)
N = B.num("n", 10000)
IMG = B.arg("img", "bench-backlog.img")
BLOCKS = B.num("blocks", 1024)
# read=256: the filesystem mounted with that readsize (default 32, as the ports mount it):
# littlefs reads 4 x max(readsize, prog) bytes at a time
READ = B.num("read", 32)
# mtime=0: mounted with mtime=False (the ports mount with True): no modification time
# stored with each file, nor read when one is opened
MTIME = B.num("mtime", 1)
# parts=1: instead of the rates, one queueing and one drain of n with the store's file
# steps timed and their block reads counted (the wrappers slow them: no rates reported)
PARTS = B.num("parts", 0)
# ram=1: only the drain of n from a RAM queue (no store). A separate run with a larger
# heap: n messages in RAM do not fit the board-sized heap of the store's run
RAM = B.num("ram", 0)
# apart=1: only the drain rates (10 queued and n, each the median of several runs), tagged
# .apart: the host runs it with the broker on the other CPU, as a node's broker is on
# another machine (on one CPU the broker's work falls inside the drain of n but not
# between the first and last of 10 acknowledgements, which wait in the socket together)
APART = B.num("apart", 0)
# size=N: N-byte payloads instead of the 16 bytes every benchmark sends (a tail file
# larger than the mount's cache is not inline in littlefs metadata: README)
SIZE = B.num("size", 0)
MSG = bytes(SIZE) if SIZE else B.MSG
W = 320  # messages per queueing-cost window
# the store's bound: half the filesystem. The default (a quarter) counts each segment's
# whole block, and 10,000 16-byte messages take 313 of them (1.3 MB of the 4 MB image)
MAXB = BLOCKS * 4096 // 2
tag = (f"backlog.p{PROG}" + (f".r{READ}" if READ != 32 else "") + ("" if MTIME else ".m0")
       + (f".s{SIZE}" if SIZE else "") + (".apart" if APART else ""))
mount_heap = [0]  # the heap the last mount took (littlefs's caches, the block device)


def fresh():
    try:
        vfs.umount("/flash")
    except OSError:
        pass
    try:
        os.remove(IMG)
    except OSError:
        pass
    return B.mount(IMG, PROG, BLOCKS, READ, MTIME == 1)


def naive(n=512):
    bdev, why = fresh()
    if bdev is None:
        return B.na(tag + ".naive.erases", why)
    rec = bytearray(60)
    with open("/flash/log.bin", "ab") as f:
        bdev.reset_counts()
        for i in range(n):
            rec[0] = i & 255
            f.write(rec)
            f.flush()
    B.out(tag + ".naive.erases", bdev.erases / n)


def reboot(bdev):
    # the store as a node finds it after a reboot: unmounted and mounted again
    import blockdev

    vfs.umount("/flash")
    bdev.close()
    gc.collect()
    h = gc.mem_alloc()
    bd = blockdev.mount(IMG, "/flash", block_count=BLOCKS, prog_size=PROG, read_size=READ,
                        mtime=MTIME == 1)
    gc.collect()
    mount_heap[0] = gc.mem_alloc() - h
    bd.sync = False  # as B.mount
    return bd


def drain(c, bdev=None):
    # resumes the session and waits until every queued message is acknowledged: the
    # rates first to last acknowledgement (the measure) and from the first
    # PUBLISH to the last acknowledgement, and the acknowledgements counted
    st = c._s
    acked = st.acked
    seen = [0, 0, 0]  # count, first, last (ticks_us)

    def on_ack(pid, rel):
        k = acked(pid, rel)
        if k >= 0 and not rel:
            t = B.ticks()
            if not seen[0]:
                seen[1] = t
            seen[0] += 1
            seen[2] = t
        return k

    st.acked = on_ack
    # and from the first PUBLISH sent: for 10 queued the acknowledgements come after
    # every message is out, so first-to-last times their handling only
    first = [0]

    def first_send(k):
        first[0] = B.ticks()
        del c._send_slot  # the client's own method from now on
        c._send_slot(k)

    c._send_slot = first_send
    if bdev is not None:
        bdev.reset_counts()
    c.connect(clean_session=False)
    B.settle(c)
    dt = time.ticks_diff(seen[2], seen[1])
    whole = time.ticks_diff(seen[2], first[0])
    return (seen[0] - 1) * 1e6 / max(dt, 1), seen[0] * 1e6 / max(whole, 1), seen[0]


def ram(n):
    # the same drain with the whole queue in RAM (no store; queued offline with a link
    # keeper): what the client and broker take for the same work, without flash
    from mqttsession import Link

    c = B.client(f"bench-backlog-ram-{n}", window=16, queue=n, link=Link())
    c.connect(clean_session=False)
    c.disconnect()
    for _ in range(n):
        c.publish(B.TOPIC, MSG, False, 1)
    r, w, got = drain(c)
    if got != n:
        raise RuntimeError(f"RAM drain: {got} of {n} acknowledged")
    c.disconnect()
    return r, w


def parts(bdev, drain=True):
    # wraps the store's file steps of the drain (drain=False: of queueing); returns
    # {step: [calls, reads, us, calls that erased a block, their reads]}: a littlefs
    # commit that finds its directory's metadata block full compacts it (an erase)
    from mqttsession import qseg, stored

    acc = {}

    def wrap(mod, name, step):
        f = getattr(mod, name)

        def w(*a):
            r, e, t = bdev.reads, bdev.erases, B.ticks()
            try:
                return f(*a)
            finally:
                x = acc.setdefault(step, [0, 0, 0, 0, 0])
                x[0] += 1
                x[1] += bdev.reads - r
                x[2] += B.since(t)
                if bdev.erases > e:
                    x[3] += 1
                    x[4] += bdev.reads - r

        setattr(mod, name, w)

    if drain:
        # a segment opened and read (whole, or a window of it where the heap is short)
        wrap(qseg, "_win", "segment_open_read")
        wrap(qseg, "_read", "tail_read")  # a tail message read back (the newest ones)
        wrap(qseg, "_parse", "record_decode")
        wrap(stored, "_rm", "segment_remove")  # a complete segment removed
    else:
        wrap(stored, "_write", "tail_write")  # one message into its tail file
        wrap(qseg, "seal", "seal")  # the tail's files read, one segment written
    return acc


def queue(cid, n, bdev, acc=None):
    # a queue of n, 16 of them in RAM (the window): the rest waits in flash. Returns the
    # client and the mean time and block reads per message over the W messages up to W,
    # 1,280 and n queued: ten tail cycles each (320 small writes and ten segments), so
    # every figure carries the same share of seals. One cycle (32) was too short: a window
    # swung up to 4x with whether littlefs compacted a directory's metadata inside it
    from mqttsession import SessionStore

    c = B.client(cid, window=16, store=SessionStore("/flash/.mqtt", MAXB, ram=16), queue=n)
    c.connect()
    c.disconnect()
    marks = {W: 0, 1280: 0, n: 0}
    reads = {}
    bdev.reset_counts()
    t = B.ticks()
    r = 0
    for i in range(1, n + 1):
        if i + W - 1 in marks:
            t = B.ticks()
            r = bdev.reads
            if acc is not None:
                acc.clear()
        c.publish(B.TOPIC, MSG, False, 1)
        if i in marks:
            marks[i] = B.since(t) / W
            reads[i] = (bdev.reads - r) / W
            for k, (calls, rd, *_) in (acc or {}).items():
                B.out(f"{tag}.parts.queue.{k}.reads_per_call.at{i}", rd / max(calls, 1))
    return c, marks, reads


def run(n, full):
    bdev, why = fresh()
    if bdev is None:
        return B.na(f"{tag}.n{n}", why)
    from mqttsession import SessionStore

    cid = f"bench-backlog-{n}"
    c, marks, reads = queue(cid, n, bdev, parts(bdev, False) if PARTS else None)
    share = marks[n] / marks[W] if full else 0
    if full:
        for k in marks:
            B.out(f"{tag}.queue_us.at{k}", marks[k])
            B.out(f"{tag}.queue_reads.at{k}", reads[k])
        B.out(f"{tag}.queued.erases", bdev.erases / n)
        B.out(f"{tag}.queued.progs", bdev.progs / n)
    qe = bdev.erases
    del c
    bdev = reboot(bdev)
    gc.collect()
    h0 = gc.mem_alloc()
    t = B.ticks()
    s = SessionStore("/flash/.mqtt", MAXB, ram=16)
    c = B.client(cid, window=16, store=s, queue=n)
    boot = B.since(t)
    gc.collect()
    if full:
        B.out(f"{tag}.boot_ms", boot / 1000)
        B.out(f"{tag}.boot_heap", gc.mem_alloc() - h0)
        B.out(f"{tag}.mount_heap", mount_heap[0])
        B.out(f"{tag}.pending_at_boot", c.pending())
    acc = parts(bdev) if PARTS else None
    r, w, got = drain(c, bdev)
    if got != n:
        raise RuntimeError(f"store drain: {got} of {n} acknowledged")
    if acc is not None:
        B.out(f"{tag}.parts.drain_us_per_msg", 1e6 / max(r, 1))
        for k, (calls, rd, us, ce, re) in acc.items():
            B.out(f"{tag}.parts.{k}.calls", calls)
            B.out(f"{tag}.parts.{k}.reads_per_call", rd / max(calls, 1))
            B.out(f"{tag}.parts.{k}.reads_per_msg", rd / n)
            B.out(f"{tag}.parts.{k}.us_per_msg", us / n)
            # the calls that compacted a directory's metadata (erased), and their share
            B.out(f"{tag}.parts.{k}.erasing_calls", ce)
            B.out(f"{tag}.parts.{k}.erasing_reads_share", re / max(rd, 1))
    # block reads per drained message: opening and removing each segment (littlefs
    # path lookups), what a board's flash driver pays for too
    B.out(f"{tag}.drain_reads.n{n}", bdev.reads / n)
    if full:
        B.out(f"{tag}.drain.erases", bdev.erases / n)
        B.out(f"{tag}.durable.erases", (qe + bdev.erases) / n)
    c.disconnect()
    return r, w, share


if PARTS:
    run(N, False)
    print("DONE")
    raise SystemExit
if RAM:
    rr, rw = ram(N)
    B.out(f"{tag}.drain_ram_per_s.n{N}", rr)
    B.out(f"{tag}.drain_ram_whole_per_s.n{N}", rw)
    print("DONE")
    raise SystemExit
if not APART:
    naive()
# 10 queued drains in a few milliseconds: the median of 5 runs (one run swings with
# when the broker's acknowledgements happen to be sent)
runs = [run(10, False) for _ in range(5)]
rates = sorted(x[0] for x in runs)
whole = sorted(x[1] for x in runs)
B.out(f"{tag}.drain_per_s.n10", rates[2])
B.out(f"{tag}.drain_whole_per_s.n10", whole[2])
if APART:
    # on two CPUs the rates swing more with the machine: the drain of n too is the
    # median of 3 runs; every run of both is reported
    for k, x in enumerate(rates):
        B.out(f"{tag}.drain_per_s.n10.run{k}", x)
    runs = [run(N, False)[0] for _ in range(3)]
    for k, x in enumerate(runs):
        B.out(f"{tag}.drain_per_s.n{N}.run{k}", x)
    r = sorted(runs)[1]
    B.out(f"{tag}.drain_per_s.n{N}", r)
    B.out(f"{tag}.drain_share", r / rates[2])
    print("DONE")
    raise SystemExit
r, w, share = run(N, True)
# the queueing cost's growth, the median of three runs (this one and two that only
# queue): one run's timing swings with the machine (1.08 and 1.61 an hour apart, with
# the same block reads per message)
shares = [share]
for k in range(2):
    bd, why = fresh()
    if bd is not None:
        m = queue(f"bench-backlog-q{k}", N, bd)[1]
        shares.append(m[N] / m[W])
for k, x in enumerate(shares):
    B.out(f"{tag}.queue_share.run{k}", x)
B.out(f"{tag}.queue_share", sorted(shares)[len(shares) // 2])
B.out(f"{tag}.drain_per_s.n{N}", r)
B.out(f"{tag}.drain_share", r / rates[2])
B.out(f"{tag}.drain_whole_per_s.n{N}", w)
B.out(f"{tag}.drain_whole_share", w / whole[2])
print("DONE")
