# A block device whose driver fails reads of some blocks (OSError EIO, as a failing flash
# chip's driver returns -EIO), and that notes the blocks read: for the tests of damage below
# the store (dev_flash_blocks.py, dev_flash_drain_eio.py)
import blockdev


class Dev(blockdev.FileBlockDev):
    bad = ()  # the blocks whose reads fail
    seen = None  # a set: every block read is added

    def readblocks(self, block, buf, off=0):
        if self.seen is not None:
            self.seen.add(block)
        if block in self.bad:
            raise OSError(5)  # the driver's EIO
        return blockdev.FileBlockDev.readblocks(self, block, buf, off)
