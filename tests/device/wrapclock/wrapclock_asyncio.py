# asyncio's task queue in Python, on wrapclock's ticks. The unix port's C _asyncio keys a
# push without a key by the real mp_hal_ticks_ms() (and orders keys with a 2**62 period):
# with a shadowed clock its tasks wait for hours. wrapclock/time.py puts this module in
# sys.modules["_asyncio"] before asyncio is imported. A sorted list (FIFO among equal keys):
# a test fixture, not a fast one.
import time


def _core():
    import asyncio.core as c

    return c


class TaskQueue:
    def __init__(self):
        self.q = []

    def peek(self):
        return self.q[0] if self.q else None

    def push(self, v, key=None):
        v.data = None
        v.ph_key = time.ticks_ms() if key is None else key
        q = self.q
        i = len(q)
        while i and time.ticks_diff(q[i - 1].ph_key, v.ph_key) > 0:
            i -= 1
        q.insert(i, v)

    def pop(self):
        return self.q.pop(0)

    def remove(self, v):
        self.q.remove(v)


class Task:
    def __init__(self, coro, globals=None):
        self.coro = coro
        self.data = None
        self.state = True  # None, False, True, a callable, or a TaskQueue of waiters
        self.ph_key = 0

    def __iter__(self):
        if not self.state:
            self.state = False  # finished: awaited now
        elif self.state is True:
            self.state = TaskQueue()
        elif type(self.state) is not TaskQueue:
            raise RuntimeError("can't wait")
        return self

    def __next__(self):
        if not self.state:
            raise self.data
        c = _core()
        self.state.push(c.cur_task)
        c.cur_task.data = self

    def done(self):
        return not self.state

    def cancel(self):
        if not self.state:
            return False
        c = _core()
        if self is c.cur_task:
            raise RuntimeError("can't cancel self")
        while isinstance(self.data, Task):
            self = self.data
        if hasattr(self.data, "remove"):
            self.data.remove(self)
            c._task_queue.push(self)
        elif time.ticks_diff(self.ph_key, time.ticks_ms()) > 0:
            c._task_queue.remove(self)
            c._task_queue.push(self)
        self.data = c.CancelledError
        return True
