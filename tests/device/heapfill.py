# The node's own data holding the heap short, for the soaks that drain a backlog with
# MemoryError at every step (tests/device/dev_backlog_cuts.py, dev_aio_backlog_cuts.py).
import gc
import time


def fill(keep):
    # takes the heap until about keep bytes are free, in a few large blocks (many small
    # ones would leave only holes between them); returns what holds them
    b = [None] * 16
    gc.collect()
    for i in range(16):
        n = gc.mem_free() - keep
        while n >= 64:
            try:
                b[i] = bytearray(n)
                break
            except MemoryError:
                n = n * 3 // 4
        if n < 64:
            break
    return b


def said(e, ne):
    # prints the ne-th exception out of a call (E <name> <first argument>), the first 300
    if ne < 300:
        print("E", type(e).__name__, e.args[0] if e.args else "")


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
