# MQTTClient for asyncio, on the same core as the blocking client. Two long-lived tasks:
# the reader owns the socket (connects, reconnects with link=, sleeps in asyncio's poller
# until input or a connect step is due) and the clock (keepalive, deadlines; sleeps until
# one is due). An I/O wait is never cancelled (MicroPython 1.29 leaves a stale entry in
# asyncio's I/O queue then): a step past its deadline is ended by closing the socket,
# which wakes its waiter. Only the reader opens sockets, so a closed one's number is not
# reused before asyncio's next poll has seen it closed. The two tasks: aio_tasks.py.
from micropython import const
import asyncio
import sys
import time

from .packet import MQTTException, err
from .core import Core, _check, _mods, _put
from . import aio_tasks

_ENOTCONN = const(107)
_ETIMEDOUT = const(110)


class MQTTClient(Core):
    # on_connect: a coroutine function f(client), run as a task after every (re)connect.
    # on_error: f(exc) for an exception raised by the message handler, a connect hook or
    # the client's own tasks; default: its traceback printed (once, when it happens).
    _cf = None  # the callback last seen to be a coroutine function (aio_held.give)

    def __init__(self, *args, on_connect=None, on_error=None, **kw):
        for f, n in ((on_connect, "on_connect"), (on_error, "on_error")):
            if f is not None and not callable(f):
                raise err(58, n)  # %s must be callable or None
        super().__init__(*args, **kw)
        self.on_connect = on_connect
        self.on_error = on_error
        self.up = asyncio.Event()  # set on every (re)connect; the application clears it
        self.down = asyncio.Event()  # set on every loss of the link; likewise
        self.errors = 0  # exceptions reported through on_error
        self._ev = asyncio.Event()  # set whenever the reader handled something
        self._lock = asyncio.Lock()  # one SUBSCRIBE/UNSUBSCRIBE waits for its ack at a time
        self._lo = asyncio.Lock()  # publishes waiting for output to go out, in arrival order
        # _task: the reader; _clk: the clock; _dr: the socket whose waiting output (_ob) a
        # drain task sends; _err: what ended the reader (awaits raise it); _present:
        # Session Present of the last attempt (None: it failed)
        self._task = self._clk = self._dr = self._err = self._present = None
        self._zz = self._rd = self._nap = self._hr = False  # the clock sleeps (a kick may
        # cancel it); the reader waits for input (not for the application); it sleeps in a
        # backoff; _aws's handlers are being run (aio_held.run)
        self._up = self._cb3 = False  # _up: connected and resumed, publish may use the socket
        self._att = 0  # connect attempts made by the reader
        self._bye = self._it = 0  # disconnect() calls; their count when an iteration began
        self._aws = []  # handler coroutines to await, in arrival order (with answers)
        # messages(): queue of (topic, msg, retained) and of the answer each one owes
        # (_later); _qn: its size, 0 until messages() is called
        self._q, self._qa, self._qn, self._qev = [], [], 0, asyncio.Event()
        self._qo = 0  # the answer the message messages() handed out last owes

    def set_callback(self, f, raw=False, retained=False):
        # f(topic, msg), or f(topic, msg, retained) with retained=True; f may be a coroutine
        # function (its coroutines awaited by the reader in order; not with raw)
        Core.set_callback(self, f, raw)
        self._cb3 = retained
        if self._q and not self._qn:  # held for a consumer since connect(): f's
            self._mod("aio_held").hand_over(self)
            self._qev.set()  # the reader may wait for room (aio_tasks.run)

    # --- the application's side ---
    async def connect(self, clean_session=True, wait=False):
        # Session Present, even when the broker breaks the link right after CONNACK. With
        # link= the keeper owns the link from here on: a failed first attempt returns None
        # at once (wait=True: once connected) and the reader goes on trying; called again:
        # the state now. Without link=, a failed attempt raises.
        att = -1
        if self._task is None or not self.link or not self._want:
            if self._task is not None:  # no keeper, or after disconnect(): it may not
                from . import aio_rare  # have ended yet

                await aio_rare.stop(self)  # the reader of an earlier connect() ends
            att = self._att
            if self._task is None:  # (else another connect() made meanwhile started one:
                self._err = None  # this one waits for its attempt, not a second reader)
                self._want = True
                self._task = asyncio.create_task(aio_tasks.run(self, clean_session))
                if self._clk is None:
                    self._clk = asyncio.create_task(aio_tasks.clock(self))
        while self._task is not None and (self._att == att or wait and self._present is None):
            self._ev.clear()
            await self._ev.wait()
        if self._present is None:
            self._raise()
            return None
        return bool(self._present)

    def _raise(self):
        # an await on a client whose reader ended with an error raises it
        if self._task is None and self._err is not None:
            raise self._err

    async def disconnect(self, end_session=False):
        # the client ends disconnected; end_session=True also ends the session on purpose,
        # as the blocking client's (aio_rare.py, loaded then: once a run)
        await self._mod("aio_rare").disconnect(self, end_session)

    async def publish(self, topic, msg, retain=False, qos=0):
        self._raise()
        _check(self, topic, msg, qos)
        if qos > self._maxq & 3 or retain and self._maxq & 4:
            qos, retain = self._mod("v5").limit(self, qos, retain)  # the broker's MQTT 5 limits
        s = self._s
        t, m = self._t, self._m
        # from a coroutine handler (the reader awaits it) nothing can wait for the broker:
        # the message is queued or sent, and acknowledged later
        rd = asyncio.current_task() is self._task
        # Output the socket has not taken yet goes out first (a publish never adds to it:
        # behind a slow link the heap holds one packet waiting, not every message
        # published meanwhile), the publishes waiting for it in arrival order; the output
        # has its own deadline (the clock ends the link past it). Then room in the window,
        # within timeout from the start of that wait, or from the last time the window
        # moved (its oldest message completed: other tasks waiting too may have taken the
        # room), whatever else the reader handles meanwhile (a PINGRESP, other messages):
        # then the link is dead
        t0 = h = None
        try:
            while not rd and self.isconnected():
                if self._ob is not None:
                    async with self._lo:
                        while self._ob is not None and self.isconnected():
                            await self._wait(2 * self._tms)
                elif qos and (s.full() or s.nin >= self._quota):
                    if h != s.seq[s.head]:  # (the oldest message's number)
                        h = s.seq[s.head]
                        t0 = time.ticks_ms() or 1
                    await self._wait(self._rest(t0))
                else:
                    break  # output out and room: sent below with no wait between
        except OSError as e:
            if self._lost(self.store or self.link if qos else self.link, e):
                raise
        self._t, self._m = t, m  # other tasks may have published meanwhile
        if not self.isconnected():
            if qos == 0 and (self.link or self.store):
                self.lost0 += 1  # QoS 0 is fire and forget: counted, not queued
            elif self.store is None and self.link is None:
                raise OSError(_ENOTCONN)
            else:
                self._queue(qos, retain, None)
            return
        if qos == 0:
            try:
                self._hand(0)
                _put(self, 0x30 | (1 if retain else 0), 0)  # PUBLISH
            except OSError:
                if self._lost(self.link):
                    raise
            return
        room = s.nin < self._quota
        k = self._queue(qos, retain, room)
        if not room:
            return
        seq = s.seq[k]
        t0 = time.ticks_ms()
        try:
            self._send_slot(k)
            while not rd and self.window == 1 and s.fl[k] and s.seq[k] == seq:
                await self._wait(self._rest(t0))
        except OSError:
            if self._lost(self.store or self.link):
                raise
        finally:
            # accepted: in flash before anything leaves this call, also the error of a
            # reader that ended meanwhile (a broker's protocol error without a keeper)
            # and a cancel (asyncio.wait_for, task.cancel()) of the wait for its PUBACK
            s.hold(k, seq)

    async def _wait(self, ms):
        # until the reader handles a packet; OSError when nothing comes within ms (never
        # from the reader itself: see publish and subscribe)
        self._ev.clear()
        if self._task is None or self.sock is None:
            raise OSError(_ENOTCONN)
        try:
            await asyncio.wait_for_ms(self._ev.wait(), ms)
        except asyncio.TimeoutError:
            raise OSError(_ETIMEDOUT)
        self._raise()

    async def subscribe(self, topic, qos=0):
        # (qos None: unsubscribe) online: waits for SUBACK/UNSUBACK; no ack within timeout
        # closes the link. Offline with link=, or when the link breaks before the ack:
        # recorded (in the session, so in the store with one) and made on the next connect.
        # Refused from a coroutine handler before anything is sent: the reader that
        # would read the SUBACK is the one awaiting the handler
        if qos is ...:  # unsubscribe()'s; None from the application is a bad qos
            qos = None
        elif qos is None:
            raise err(14)  # qos must be 0, 1 or 2
        if asyncio.current_task() is self._task:
            raise RuntimeError("a message handler cannot wait for the broker: use a task")
        self._raise()
        async with self._lock:
            while self.isconnected():
                cn = self._att
                t0 = time.ticks_ms()
                t = None
                try:
                    t = self._mod("ctl").sub_start(self, topic, qos)
                    while self._cn[13]:  # the SUBSCRIBE's packet ID
                        await self._wait(self._rest(t0))
                    self._mod("ctl").sub_end(self, t, qos)
                    if t in self._todo:  # owed by a cancelled call (below): this one is
                        del self._todo[t]  # made, and the later
                        self._mod("ctl").owe(self)
                    return
                except OSError as e:
                    if self._att == cn and self.isconnected():
                        self._drop(e)  # no ack in time: the link is dead, let it go
                    if self.link is None:
                        raise
                except MQTTException:
                    raise  # a refusal, the broker's protocol error: nothing recorded
                except BaseException:
                    # cancelled (asyncio.wait_for, task.cancel()) with the request sent:
                    # the broker makes it, so the session holds it too, owed (made again
                    # on the next connect), as the blocking client's interrupted wait
                    if t is not None and self._cn[13]:
                        self._mod("subs").later(self, topic, qos, True)
                    raise
            self._mod("subs").later(self, topic, qos)  # no keeper: ENOTCONN

    def messages(self, n=8):
        # incoming messages as an async iterator of (topic, msg, retained), beside or instead
        # of the callback; at n queued the reader waits (so does the broker), never drops
        if type(n) is not int or n < 1:
            raise err(42)  # messages(n): n must be an int >= 1
        self._qn = n
        return self

    def __aiter__(self):
        self._it = self._bye  # this iteration ends at the next disconnect()
        return self

    async def __anext__(self):
        # the application is done with the message it took last: its answer goes now
        # (a reset while it was handled loses nothing, as with a callback)
        h = self._mod("aio_held")
        h.owed(self, self._qo)
        self._qo = 0
        q = self._q
        while not (q and h.took(self)):
            if q:
                continue  # the store failed to record that one: it went (see took)
            self._raise()
            if self._it != self._bye or self._task is None and not self._want:
                raise StopAsyncIteration
            self._qev.clear()
            await self._qev.wait()
        self._qev.set()  # room for the reader
        return q.pop(0)

    def _later(self, first):
        # (_on_publish) a QoS 1/2 message: aio_held.py
        return self._mod("aio_held").later(self, first)

    def isconnected(self):
        return self._up and self.sock is not None

    async def _io(self, out):
        # until the socket is readable (out: writable) or closed: asyncio wakes a waiter
        # on a closed socket. With TLS the socket's poll asks what the handshake needs.
        q = asyncio.core._io_queue
        if self.sock is not None:
            yield q.queue_write(self.sock) if out else q.queue_read(self.sock)

    def _copy(self):
        return None  # (core._on_publish's: this client copies in _deliver, _copy3)

    def _copy3(self):
        # (topic, msg, retained) of the message in the receive buffer, copied
        rx = memoryview(self._rx)
        return (bytes(rx[self._i + 2 : self._pf[0]]), bytes(rx[self._pf[2] : self._n]),
                bool(self._rx[self._i - self._hl] & 1))  # RETAIN, in the first byte

    def _deliver(self, owed=0):
        # a handler's exception is reported and the reader goes on; the message counts
        # as delivered (acknowledged, not redelivered). owed: the answer its messages()
        # entry owes (_later), 0 for none. The copies come first, outside the handler's
        # try: no heap for them (MemoryError) is the reader's link failure, before the
        # message is queued, recorded or answered, and the broker sends it again. So is
        # no heap for the queue's entry or for the call (a coroutine function's
        # coroutine: its handler has not run; reported, it went answered, unhandled)
        if owed or self._qn or self.cb is not None and not self._raw:
            t, m, r = self._copy3()
        try:
            if self._raw:  # a plain function's (a coroutine's is refused: aio_rare.raw)
                (a := Core._deliver(self, None)) is None or self._mod("aio_rare").raw(a)
            if not (owed or self._qn) and (self.cb is None or self._raw):
                return  # (messages() beside a raw callback gets a copy, below)
            if owed or self._qn:
                self._q.append((t, m, r))
                try:
                    self._qa.append(owed)
                except MemoryError:
                    self._q.pop()  # (the two lists in step)
                    raise
                self._qev.set()
            if self.cb is not None and not self._raw:
                a = self.cb(t, m, r) if self._cb3 else self.cb(t, m)
                if a is not None and hasattr(a, "send"):
                    self._aws.append(a)
        except MemoryError:
            raise
        except Exception as e:
            self._report(e)

    def _report(self, e):
        self.errors += 1
        try:
            if self.on_error:
                return self.on_error(e)
        except Exception as x:
            e = x
        sys.print_exception(e)

    def _close(self):
        if self._up:
            self._up = False
            self.down.set()
        m = _mods.get("aio_held")  # (loaded with the first QoS 1/2 message: none held before)
        if m:
            m.closed(self)
        self._ev.set()
        Core._close(self)

    # --- output the socket did not take at once (the core keeps it in _ob, in order) ---
    def _wait_out(self):
        # never waits: a task sends it as the socket drains; the clock keeps the deadline
        if self._dr is not self.sock:
            self._dr = self.sock
            asyncio.create_task(self._mod("aio_rare").drain(self, self.sock))
            self._kick()

    def _drop(self, e):
        # the link failed: close; the keeper backs off. A broker's protocol error (OSError
        # 104 from the core with a keeper) is kept as itself: link.last_error. A
        # MemoryError is the node's own: no message in flight is blamed (aside.struck)
        if isinstance(e, MemoryError):
            self._cn[11] = e
        self._close()
        c = self._cn
        self._err = e = c[11] or e  # the broker's error
        c[11] = None
        self._log("link lost: %r", (e,))
        if self._rs:  # subscriptions sent on connect, not acknowledged: owed again
            self._mod("subs").dropped(self, e)  # (loaded by resub: never raises)
        if self.link:
            self.link.failed(e)

    def _lost(self, keep, e=None):
        # the link broke under a call (e: how, if known): counted once (the reader may have
        # dropped it)
        if self.sock:
            self._drop(e or OSError(104))
        return not keep

    # --- the clock ---
    def _kick(self):
        # wakes the clock early: cancels its sleep (a sleep, never an I/O wait)
        if self._zz:
            self._zz = False
            self._clk.cancel()

    def _rest(self, t0):
        # ms left of a step started at t0; OSError(110) once past its deadline
        ms = self._tms - time.ticks_diff(time.ticks_ms(), t0)
        if ms <= 0:
            raise OSError(_ETIMEDOUT)
        return ms
