# The node's own data holding the heap short, for the soaks that drain a backlog or take
# incoming messages with MemoryError at every step (tests/device/dev_backlog_cuts.py,
# dev_aio_backlog_cuts.py, dev_rx_short_heap.py), or leaving it in small pieces (pieces).
import gc
import time


_kept = [None]  # the block reserve() took, until fill() gives it back


def reserve(n):
    # takes a block of n bytes for fill()'s hole now, at the start, while the heap has
    # such a run: once the node has loaded and connected, what is free may all be in
    # pieces smaller than it (how small depends on the lengths of the paths it loaded
    # its files from: a heap 25 KB free had no run of 1 KB)
    _kept[0] = bytearray(n)


def fill(keep, hole=0):
    # takes the heap until about keep bytes are free, in a few large blocks (many small
    # ones would leave only holes between them; 16 may stop short of keep where the
    # heap is in pieces); returns what holds them. The largest holes go first, so what
    # is left free is in small pieces: hole, a block of that many bytes taken first (or
    # the one reserve() took) and given back at the end, leaves one run of them among the
    # rest (without it, a heap left 13 KB free in pieces had no 304 bytes for a file's)
    b = [None] * 16
    h = _kept[0] or (bytearray(hole) if hole else None)
    _kept[0] = None
    gc.collect()
    for i in range(16):
        n = gc.mem_free() - keep + hole
        while n >= 64:
            try:
                b[i] = bytearray(n)
                break
            except MemoryError:
                n = n * 3 // 4
        if n < 64:
            break
    h = None
    gc.collect()
    return b


def pieces(n, most=4000):
    # the heap taken in blocks of n bytes (at most `most`), every other one given back: what
    # is free is in pieces of about n bytes. Returns what holds the rest, and how many
    # blocks were taken (most: the heap did not run out)
    b = [None] * most
    gc.collect()
    i = 0
    try:
        while i < most:
            b[i] = bytearray(n)
            i += 1
    except MemoryError:
        pass
    if i:
        b[i - 1] = None  # the heap is full: room for what runs next
    for j in range(0, i, 2):
        b[j] = None
    gc.collect()
    return b, i


def said(e, ne):
    # prints the ne-th exception out of a call (E <name> <first argument>), the first 300
    if ne < 300:
        print("E", type(e).__name__, e.args[0] if e.args else "")


def check(c, ne):
    # one c.check_msg(); an exception out of it is the ne+1-th (said); returns the count
    try:
        c.check_msg()
    except Exception as e:
        ne += 1
        said(e, ne)
    return ne


def turn(c, n, low):
    # at every 200th turn of a drain loop: prints "P <pending> <free heap>"; returns the
    # least free heap seen
    if n % 200:
        return low
    gc.collect()
    f = gc.mem_free()
    try:
        print("P", c.pending(), f)
    except MemoryError:
        pass
    return min(low, f)


def stalled(c, st):
    # st: [pending, when it last changed]; True once 30 s passed without a change
    p = c.pending()
    if p != st[0]:
        st[0] = p
        st[1] = time.ticks_ms()
        return False
    return time.ticks_diff(time.ticks_ms(), st[1]) > 30000
