# Flash wear per durable message on the counting block device (boards/unix/blockdev.py):
# block programs, erases and bytes programmed, for each durability setting of the store,
# and for the naive design (one synced append per message) on the same geometry.
import os

import bcommon as B
import vfs

PROG = B.num("prog", 32)
N = B.num("n", 256)
IMG = B.arg("img", "bench-flash.img")
REC = 60  # bytes per record of the naive log, as in the design notes
tag = f"flash.p{PROG}"


def fresh():
    try:
        vfs.umount("/flash")
    except OSError:
        pass
    try:
        os.remove(IMG)
    except OSError:
        pass
    return B.mount(IMG, PROG)


def report(key, bdev, n):
    B.out(key + ".erases", bdev.erases / n)
    B.out(key + ".progs", bdev.progs / n)
    B.out(key + ".bytes", bdev.prog_bytes / n)


def naive():
    bdev, why = fresh()
    if bdev is None:
        return B.na(tag + ".naive", why)
    rec = bytearray(REC)
    with open("/flash/log.bin", "ab") as f:
        bdev.reset_counts()
        for i in range(N):
            rec[0] = i & 255
            f.write(rec)
            f.flush()  # lfs_file_sync: the record is durable
        report(tag + ".naive", bdev, N)


def stored(name, window, qos, online=True):
    key = f"{tag}.{name}"
    bdev, why = fresh()
    store = None
    if bdev is not None:
        store, why = B.make_store()
    if store is None:
        for k in (key,) if online else (key + "_queued", key + "_delivered"):
            B.na(k, why)
        return
    n = N if online else min(N, 64)
    c = B.client(
        "bench-flash",
        window=window,
        store=store,
        queue=max(n, 16) if not online else max(window, 16),
    )
    if online:
        c.connect()
        for _ in range(8):
            c.publish(B.TOPIC, B.MSG, False, qos)
        B.settle(c)
        bdev.reset_counts()
        for _ in range(n):
            c.publish(B.TOPIC, B.MSG, False, qos)
        B.settle(c)  # removals on acknowledgement count too
        report(key, bdev, n)
        c.disconnect()
        return
    # offline: queued in flash while there is no link, then delivered on connect
    c.connect()
    c.disconnect()
    bdev.reset_counts()
    for _ in range(n):
        c.publish(B.TOPIC, B.MSG, False, qos)
    report(key + "_queued", bdev, n)
    bdev.reset_counts()
    c.connect(clean_session=False)
    B.settle(c)
    report(key + "_delivered", bdev, n)
    c.disconnect()


naive()
stored("w1_q1", 1, 1)
stored("w1_q2", 1, 2)
stored("w16_q1", 16, 1)
stored("offline_q1", 1, 1, online=False)
print("DONE")
