# Damage at the block level, below the store: a littlefs image on which a node queued 70
# messages offline (two segments and six tail files), then booted (the client made) with
# the block device failing or the image damaged, then 40 more published, then booted
# again with the flash sound. devcfg: IMAGE, TEST:
# eio: each block the boot reads raises OSError(EIO) for the whole boot (after the mount,
#   which reads every block);
# flip: a byte at seeded positions of each such block inverted (a mount littlefs
#   refuses is the board's boot code's, not the store's: skipped); SEED, FLIPS: the
#   seed and the positions per block (44 and 3);
# SUBS: that many subscriptions stored too (a subs file with a data block of its own).
# Every boot either raises the flash's own error (EIO, not another errno) or comes up;
# one that comes up holds every message or reports damage: nothing is lost silently. A
# read error (eio) is no damage: after it nothing is lost at all.
# Prints "FAIL <block> ..." for each one that does not, then PASS when none.
import gc
import os
import random
import sys

import blockdev
import devlib as d
from eiodev import Dev
import vfs
from mqttsession import MQTTClient, SessionStore

TEST = d.cfg("TEST")
IMG = d.cfg("IMAGE")
WORK = IMG + ".w"
N = 70
MORE = 40
subs = []  # boot's


def copy(a, b, block=-1, at=()):
    # image a to b, block by block, with the bytes at offsets at of block inverted
    x = bytearray(4096)
    with open(a, "rb") as f, open(b, "wb") as g:
        k = 0
        while f.readinto(x) == 4096:
            if k == block:
                for i in at:
                    x[i] ^= 0xFF
            g.write(x)
            k += 1


def boot(path, bad=(), more=0):
    # (pending or None, store errors, exception or None, blocks read); unmounted after.
    # SUBS: the subscriptions loaded are in subs. A board's boot starts with a fresh heap;
    # here some 160 boots share one, and what a boot left (kept by stale words on the C
    # stack: the collector is conservative) broke it into pieces too small for the next
    # boot's imports (a MemoryError depending on the paths' lengths): collected first
    gc.collect()
    bd = d.nosync(Dev(path, 4096, 64, 32))
    try:
        vfs.mount(vfs.VfsLfs2(bd, progsize=32, readsize=32), "/flash")
    except OSError as e:
        bd.close()
        return None, [], e, set()
    bd.seen = set()
    bd.bad = bad
    st = c = x = None
    try:
        st = SessionStore("/flash/.mqtt")
        c = MQTTClient("blk", "127.0.0.1", 1, store=st, window=8, queue=200)
    except OSError as e:
        x = e
    bd.bad = ()
    n = c.pending() if c else -1
    subs[:] = sorted(c._s.subs.items()) if c else []
    if c and more:
        for i in range(more):
            c.publish("b/t", b"n%d" % i, qos=1)
    vfs.umount("/flash")
    bd.close()
    return n, list(st.errors) if st else [], x, bd.seen


# the image: 70 messages queued offline (QoS 1 and 2)
try:
    os.remove(IMG)
except OSError:
    pass
bd = d.nosync(blockdev.FileBlockDev(IMG, 4096, 64, 32))
vfs.VfsLfs2.mkfs(bd, progsize=32, readsize=32)
vfs.mount(vfs.VfsLfs2(bd, progsize=32, readsize=32), "/flash")
c = MQTTClient("blk", "127.0.0.1", 1, store=SessionStore("/flash/.mqtt"), window=8, queue=200)
for i in range(N):
    c.publish("b/t", b"m%d" % i, qos=1 + i % 2)
SUBS = sorted((b"sensors/site-%02d/+/readings/#" % i, i % 3) for i in range(d.cfg("SUBS", 0)))
if SUBS:
    # stored as a connected node's subscriptions are (no broker here): a file larger than
    # littlefs keeps inline, so it has a data block of its own
    c._s.subs.update(SUBS)
    c._s._save(2)  # session.py's _SUBS
vfs.umount("/flash")
bd.close()
del c

copy(IMG, WORK)
n, errs, x, seen = boot(WORK)
d.check(n == N and not errs and x is None and subs == SUBS, "the image boots whole")
random.seed(d.cfg("SEED", 44))
bad = 0
for b in sorted(seen):
    kinds = [((b,), ())] if TEST == "eio" else [
        ((), (random.getrandbits(12),)) for _ in range(d.cfg("FLIPS", 3))]
    for eio, at in kinds:
        copy(IMG, WORK, b, at)
        n, errs, x, _ = boot(WORK, eio, MORE)
        if n is None and x is not None and not eio:
            continue  # littlefs refused the mount
        n2, errs2, x2, _ = boot(WORK)
        what = "%d %s %s: boot %r %r %d reported, then %r %d, %d subscriptions" % (
            b, TEST, at, n, x, len(errs), n2, len(errs2), len(subs))
        if x is not None and x.errno != 5:
            print("FAIL", what, "(not the flash's error)")
            bad += 1
        elif x is None and (n2 != N + MORE or subs != SUBS) and (eio or not errs):
            # a read error is no damage: once the flash reads again nothing is missing
            print("FAIL", what, "(lost)" if eio else "(lost, not reported)")
            bad += 1
        elif eio and subs != SUBS:
            print("FAIL", what, "(subscriptions lost)")
            bad += 1
        else:
            print("ok", what)
try:
    os.remove(WORK)
except OSError:
    pass
if bad:
    sys.exit(1)
print("PASS")
