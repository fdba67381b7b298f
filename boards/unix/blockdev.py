# A littlefs block device backed by a regular file, for the virtual board,
# the device tests and the flash-wear benchmarks.
#
# It speaks the extended block protocol (readblocks/writeblocks with an
# offset, ioctl 1-6), so VfsLfs2 programs partial blocks as it does on the
# ESP32 and rp2 flash drivers. Every write reaches the file before the call
# returns, so a SIGKILL leaves the image as a power cut would leave flash.
# With sync (the default) each one is also flushed to the disk (fsync): only the
# host losing power needs that, and tests and benchmarks turn it off (sync = False).
import os

import vfs
from micropython import const

_IOCTL_INIT = const(1)
_IOCTL_DEINIT = const(2)
_IOCTL_SYNC = const(3)
_IOCTL_BLOCK_COUNT = const(4)
_IOCTL_BLOCK_SIZE = const(5)
_IOCTL_BLOCK_ERASE = const(6)

_EIO = const(5)
_CHUNK = const(512)


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


class FileBlockDev:
    # fail_after: None, or the number of prog/erase operations that still
    # succeed; every later one raises OSError(EIO) and writes nothing.
    # That is a power cut at an exact point of a littlefs commit.

    sync = True

    def __init__(self, path, block_size=4096, block_count=64, prog_size=32, create=False):
        if block_size % prog_size:
            raise ValueError("block_size must be a multiple of prog_size")
        self.path = path
        self.block_size = block_size
        self.block_count = block_count
        self.prog_size = prog_size
        self.fail_after = None
        self._ff = b"\xff" * _CHUNK
        if create or not _exists(path):
            self._create()
        self._f = open(path, "r+b")
        self.reset_counts()

    def _create(self):
        # Fresh flash reads as erased (0xFF), not as zeros.
        with open(self.path, "wb") as f:
            for _ in range(self.block_size * self.block_count // _CHUNK):
                f.write(self._ff)

    def reset_counts(self):
        self.reads = 0
        self.progs = 0
        self.prog_bytes = 0
        self.erases = 0

    def _may_write(self):
        n = self.fail_after
        if n is None:
            return
        if n <= 0:
            raise OSError(_EIO)
        self.fail_after = n - 1

    def _erase(self, block):
        self._f.seek(block * self.block_size)
        for _ in range(self.block_size // _CHUNK):
            self._f.write(self._ff)
        self.erases += 1

    def readblocks(self, block, buf, off=0):
        self.reads += 1
        self._f.seek(block * self.block_size + off)
        n = self._f.readinto(buf)
        if n != len(buf):
            raise OSError(_EIO)

    def writeblocks(self, block, buf, off=None):
        if off is None:
            # Simple protocol: erase then program whole blocks.
            nblocks = len(buf) // self.block_size
            for i in range(nblocks):
                self._may_write()
                self._erase(block + i)
            off = 0
        self._may_write()
        self._f.seek(block * self.block_size + off)
        self._f.write(buf)
        if self.sync:
            self._f.flush()
        self.progs += 1
        self.prog_bytes += len(buf)

    def ioctl(self, op, arg):
        if op == _IOCTL_BLOCK_COUNT:
            return self.block_count
        if op == _IOCTL_BLOCK_SIZE:
            return self.block_size
        if op == _IOCTL_BLOCK_ERASE:
            self._may_write()
            self._erase(arg)
            if self.sync:
                self._f.flush()
            return 0
        if op == _IOCTL_SYNC:
            if self.sync:
                self._f.flush()
            return 0
        if op == _IOCTL_INIT or op == _IOCTL_DEINIT:
            return 0
        return None

    def close(self):
        self._f.close()


def mount(
    path,
    mountpoint="/flash",
    block_size=4096,
    block_count=256,
    prog_size=32,
    format=False,
    read_size=32,
    mtime=True,
):
    # Mounts the image at mountpoint, creating and formatting it when it is
    # new, unreadable or format=True. The geometry must match the image's:
    # block_count is taken from the file when it already exists. read_size is
    # a mount setting, not the image's: littlefs caches 4 x max(read_size,
    # prog_size) bytes at a time (at most a block). mtime, a mount setting too:
    # False stores no modification time with the files (nor reads it at open).
    if _exists(path) and not format:
        block_count = os.stat(path)[6] // block_size
    bdev = FileBlockDev(path, block_size, block_count, prog_size)
    # As the ports do: ESP32 keeps the default progsize (32), rp2 passes
    # progsize=256; readsize (unless given) and lookahead stay at their
    # defaults (32).
    kw = {"progsize": prog_size, "readsize": read_size}
    fs = None
    if not format:
        try:
            fs = vfs.VfsLfs2(bdev, mtime=mtime, **kw)
        except OSError:
            fs = None
    if fs is None:
        vfs.VfsLfs2.mkfs(bdev, **kw)
        fs = vfs.VfsLfs2(bdev, mtime=mtime, **kw)
    vfs.mount(fs, mountpoint)
    return bdev
