# Helpers for device tests: run on the unix port and on boards (through mpremote).
# Settings come from devcfg, written by the host harness: HOST, PORT, VERSION, TEST, ...
import time

import devcfg


def cfg(name, default=None):
    return getattr(devcfg, name, default)


VERSION = cfg("VERSION", 4)
PREFIX = cfg("PREFIX", "t")


def topic(name):
    return "%s/%s" % (PREFIX, name)


def client(cid, **kw):
    from mqttsession import MQTTClient  # on first use: a store-only test does without it

    kw.setdefault("version", VERSION)
    kw.setdefault("keepalive", 30)
    return MQTTClient(cid, cfg("HOST"), cfg("PORT"), **kw)


def small_sndbuf(sock):
    # the socket's send buffer as small as a node's (SOL_SOCKET 1, SO_SNDBUF 7: Linux, the
    # kernel makes it 8 KB): on loopback it grows to megabytes, and output never waits
    sock.setsockopt(1, 7, 4096)
    return sock


def connect_packet(cid):
    # a raw CONNECT (bytes): MQTT 3.1.1, client ID cid (bytes), no clean session,
    # keepalive 30
    v = b"\x00\x04MQTT\x04\x00\x00\x1e" + bytes((0, len(cid))) + cid
    return bytes((0x10, len(v))) + v


def raw(addr, pkts):
    # a connection of its own to addr: pkts (a CONNECT and what follows), the CONNACK
    # read, a DISCONNECT. With a node's client ID (no clean session, a normal DISCONNECT:
    # the broker keeps the session) it ends the node's link. A few bytes of heap: it
    # works with the heap in small pieces
    import socket

    o = socket.socket()
    o.connect(addr)
    o.write(pkts)
    o.read(4)  # CONNACK
    o.write(b"\xe0\x00")  # DISCONNECT
    o.close()


def check(cond, what):
    if not cond:
        raise AssertionError("FAIL " + what)
    print("ok", what)


def exists(p):
    # whether path p exists (the host's go-ahead files)
    import os

    try:
        os.stat(p)
        return True
    except OSError:
        return False


def raises(exc, fn, *args, **kw):
    # returns the exception; fails when fn does not raise exc
    try:
        fn(*args, **kw)
    except exc as e:
        return e
    raise AssertionError("FAIL %r did not raise %r" % (args, exc))


def pump(c, cond, ms=30000):
    # runs the client until cond() holds or ms pass; returns cond(). The default bound is
    # generous: on a busy machine a loopback round trip can take seconds.
    t0 = time.ticks_ms()
    while not cond() and time.ticks_diff(time.ticks_ms(), t0) < ms:
        c.check_msg()
        time.sleep_ms(1)
    return cond()


def pump_noting(c, cond, ms, errs, most=5):
    # as pump, each exception a call raises noted in errs (repr) and the pumping going on,
    # up to most of them
    t0 = time.ticks_ms()
    while not cond() and time.ticks_diff(time.ticks_ms(), t0) < ms:
        try:
            c.check_msg()
        except BaseException as e:
            errs.append(repr(e))
            if len(errs) > most:
                break
        time.sleep_ms(2)
    return cond()


class Inbox:
    # a callback that records (topic, msg) pairs
    def __init__(self):
        self.got = []

    def __call__(self, t, m):
        self.got.append((t, m))

    def __len__(self):
        return len(self.got)


def drain(s, most=200):
    # a session's pending messages, in send order, each given up (complete) once taken:
    # their payloads (at most `most`)
    got = []
    for _ in range(most):
        ks = s.live()
        if not ks:
            break
        got.append(s.load(ks[0])[1])
        s.drop(ks[0])
    return got


def peek(store, host, cid):
    # the session as a reboot would load it, read while the running client goes on with
    # its own: a get() takes the session over (SessionStore._own), so the claims go back
    # as they were. Only a test reads flash under a running client this way
    o = type(store)._own
    held = dict(o)
    s = store.get(host, cid)
    o.clear()
    o.update(held)
    return s


def flash():
    # the filesystem root for stores: a littlefs image on the unix port (devcfg.IMAGE),
    # the board's own flash otherwise. Returns (root, block device or None).
    img = cfg("IMAGE")
    if not img:
        try:
            import board  # a board's own filesystem

            return board.FS_ROOT.rstrip("/"), None
        except ImportError:
            return "", None
    import blockdev

    bd = blockdev.mount(img, "/flash", block_count=cfg("BLOCKS", 64), prog_size=cfg("PROG", 32))
    return "/flash", nosync(bd)


_cut = [None]  # the block device remount() mounted last


def unmount():
    # unmounts and closes remount()'s image: one open block device at a time. The cut
    # mount's objects (a file the cut left open) are finalized first, while the image is
    # still open for reads and refuses writes as flash after a power cut would: finalized
    # later, they would touch a closed image from inside littlefs. A device's _f a test
    # replaced (a cut that writes nothing) gets its file back first (its .f)
    import gc
    import vfs

    bd = _cut[0]
    if bd and hasattr(bd._f, "f"):
        bd._f = bd._f.f
    try:
        vfs.umount("/flash")
    except OSError:
        pass
    if bd:
        bd.fail_after = 0
        gc.collect()
        bd.close()
        _cut[0] = None


def remount(create, blocks, read=32, mtime=True):
    # the image devcfg.IMAGE (PROG) of that many blocks on /flash, made afresh when
    # create: for power cut sweeps, which mount it again after each cut
    import blockdev
    import vfs

    unmount()
    prog = cfg("PROG", 32)
    bd = nosync(blockdev.FileBlockDev(cfg("IMAGE"), 4096, blocks, prog, create=create))
    if create:
        vfs.VfsLfs2.mkfs(bd, progsize=prog)
    vfs.mount(vfs.VfsLfs2(bd, progsize=prog, readsize=read, mtime=mtime), "/flash")
    _cut[0] = bd
    return bd


def nosync(bd):
    # the image file of a block device without the fsync of each block write: a power
    # cut in a test is a SIGKILL or fail_after, and what a write put in the file (the
    # unix port's files are unbuffered) is there for the next reader and the next
    # process. Only the host losing power would need the fsync; waiting on the disk for
    # each one made flash-heavy tests many times slower on a busy machine.
    bd.sync = False
    return bd


def freeze(tag):
    # a power cut at this exact point: say so, then wait for the host's SIGKILL
    print(tag)
    while True:
        time.sleep_ms(1000)
