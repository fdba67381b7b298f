# A power cut after the n-th block write of a block device (boards/unix/blockdev.py),
# for the device scripts that sweep one over every write (dev_rare_cuts.py,
# dev_store_overlap_upgrade.py). Apart from devlib.py: every device script, on the
# virtual boards too, loads that one.


class _Cut:
    # the image file after the power cut: read as it is, written no more
    def __init__(self, f):
        self.f = f

    def seek(self, n):
        return self.f.seek(n)

    def readinto(self, b):
        return self.f.readinto(b)

    def write(self, b):
        return len(b)

    def flush(self):
        pass


def cut_after(bd, n):
    # the power cut after n block writes: every later one reaches nothing, while the code
    # runs on unaware (with EIO the store's removal, which takes errors in its stride,
    # goes on into a littlefs that a failed commit left in no state to go on)
    left = [n]
    may = bd._may_write

    def f():
        may()
        if left[0] <= 0 and not isinstance(bd._f, _Cut):
            bd._f = _Cut(bd._f)
        left[0] -= 1

    bd._may_write = f
