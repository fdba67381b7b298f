# The asyncio client's (aio.py) two long-lived tasks, as functions taking the client:
# the reader (run: it owns the socket, connects and reconnects with link=, sleeps in
# asyncio's poller until input or a connect step is due; connect: one attempt's steps)
# and the clock (keepalive and deadlines; it sleeps until one is due, and a kick,
# MQTTClient._kick, ends its sleep early).
from micropython import const
import asyncio
import time

from .packet import MQTTException
from .core import _mods
from .wire import _recv

_ETIMEDOUT = const(110)
_ENETUNREACH = const(113)
_CC = const(9)  # in _cn (args.py): a clean start still to make
_IDLE_MS = const(3600000)  # the clock's sleep when nothing is due


async def run(c, clean):
    lk = c.link
    aws = c._aws
    nap = False  # a reconnect: after the keeper's backoff
    c._cn[_CC] = bool(clean)  # clean until that clean start is made (connect, below)
    try:
        while c._want:
            if c.sock is None:
                if nap:
                    if lk is None:
                        break
                    c._nap = True
                    await asyncio.sleep_ms(max(0, lk.due()))
                    c._nap = False
                try:
                    # Wi-Fi in steps (a board layer without wifi_poll() blocks here);
                    # what the board raises is a failed attempt, as in the blocking
                    # client: the keeper backs off and starts the radio again
                    w = lk is None or lk.wifi_step()
                    while w is None and c._want:
                        await asyncio.sleep_ms(50)
                        w = lk.wifi_step()
                    if not c._want:
                        break
                    if not w:
                        raise OSError(_ENETUNREACH)
                    c._present = await connect(c, c._cn[_CC])
                except (OSError, MQTTException, MemoryError) as e:
                    c._present = None
                    if not c._want:
                        break  # disconnect() ended the attempt: no failure to keep
                    if c.store and c.store._taken(c._s):
                        raise  # taken over by a later client (stored._mine): it ends
                    c._drop(e)
                    if lk is None:
                        break
                    if c._cn[_CC] is True:  # MQTTClient.connect() returns None: the
                        c._mod("ctl").offline_clean(c)  # clean start is made now
                nap = True
                c._att += 1
                c._ev.set()
                continue
            try:
                # messages() full (without a callback QoS 1/2 messages wait for it from
                # connect() on, 8 at most): until the application takes some
                q = c._q
                while len(q) >= (c._qn or 8) and c._want:
                    c._qev.clear()
                    await c._qev.wait()
                    # back from the application: a PINGRESP in the socket is due from now
                    c._ping = c._ping and (time.ticks_ms() or 1)
                if not c._hold:  # no whole packet left in the buffer: wait for input
                    c._rd = True
                    await c._io(False)
                    c._rd = False
                if c.sock is not None:  # the packet that has started to arrive
                    try:
                        _recv(c)
                    except (OSError, MQTTException, MemoryError) as e:
                        # (MemoryError: what the handling left half done goes with the
                        # link, and the keeper resumes the session)
                        if not isinstance(e, MQTTException) or c.sock is None:
                            c._drop(e)
                        else:  # a refused oversized packet: the link stays
                            c._err = e
                            c._report(e)
                    s = c._s
                    if c._r1 != c._r0 or c._skip or s.more and s.nin + s.nq < s.cap:
                        # a packet has started: the clock keeps its deadline; or the ring
                        # has room for a backlog it could not read: the clock reads again
                        c._kick()
                    if aws and not c._hr:  # handler coroutines, in order (aio_held.run)
                        await c._mod("aio_held").run(c)
            except MemoryError as e:
                # no heap for a coroutine of the reader's own (its wait for input, the
                # handlers' runner): a link failure, as any MemoryError while input is
                # handled (raised, it ended the reader, and the keeper with it)
                c._rd = False
                c._drop(e)
            c._ev.set()
    except Exception as e:  # a bug must not end the client silently
        c._close()
        c._err = e
        c._report(e)
    finally:
        c._task = None
        c._nap = False
        c._ev.set()
        c._kick()
        c._qev.set()



async def connect(c, clean):
    s = c._s
    # steps that never block (DNS aside): TCP, TLS, CONNECT, CONNACK, under one
    # deadline that the clock keeps by closing the socket
    c._conn_start(clean, None)
    c._kick()
    present = c._conn_step()
    while present is None:
        await c._io(c._cs < 3)
        if c.sock is None:
            raise OSError(_ETIMEDOUT)
        present = c._conn_step()
    if present and clean:
        present = 0
    if present and c.store and s.fresh and c.version == 5:
        c._close()  # [MQTT-3.2.2-4]
        return await connect(c, 2)  # (a clean start keeping the queue: ctl.resume)
    present = c._mod("ctl").resume(c, present, clean)
    c._cn[_CC] = False  # a clean start is made: the keeper resumes it
    m = _mods.get("aio_held")
    if m and not present:
        m.closed(c, True)  # a new session: no answer is owed to the old one's IDs
    if c._todo or not present and s.subs:  # changed offline, or the session lost
        from . import aio_rare

        aio_rare.resub(c, present, clean)
    c._pump()
    c._up = True
    c._kick()  # keepalive from now on
    if c.link:
        c.link.connected()
    c.up.set()
    if c.on_connect:
        asyncio.create_task(c._mod("aio_rare").hook(c))
    if isinstance(c._cn[6], BaseException):
        raise c._cn[6]  # the log hook's KeyboardInterrupt (ctl.resume), connected
    return present



async def clock(c):
    # does what is due (keepalive, the deadlines of a connect, of a packet that has
    # started, of output waiting) and sleeps until something else is due
    try:
        while c._task is not None:
            ms = _IDLE_MS
            if c._cs and c.sock:  # a connect under way
                ms = max(0, time.ticks_diff(c._cn[5], time.ticks_ms()))  # [5]: the deadline
                if not ms:
                    c._close()  # wakes the reader; the step raises OSError(110)
                    ms = _IDLE_MS
            elif c.isconnected():
                try:
                    if c._ob is not None:
                        ms = c._rest(c._ot)  # output drains
                    if not c._rd:  # the reader is with the application: input
                        # waits, yet the broker needs a packet within keepalive; the
                        # PINGRESPs are read once the reader is back (no deadline here)
                        ms = min(ms, 250)
                        t = time.ticks_diff(time.ticks_ms(), c._ltx)
                        if c.ka and t >= c.ka * 750:
                            c._ping = 0
                            c._keepalive(True)
                    else:
                        if c.ka:  # PINGREQ when due; OSError: PINGRESP overdue
                            ms = min(ms, c._keepalive(False))
                        if c._r1 != c._r0 or c._skip:  # a packet started
                            ms = min(ms, c._rest(c._p0))  # whole in time
                        ms = max(1, ms)
                    s = c._s
                    if s.more and s.nin + s.nq < s.cap:
                        # the ring has room for a backlog it could not read (the
                        # flash's read error, qseg._eio): read again within a second
                        c._pump()
                        ms = min(ms, 1000)
                except (OSError, MemoryError) as e:
                    c._drop(e)
                    ms = _IDLE_MS
            c._zz = True
            try:
                await asyncio.sleep_ms(ms)
            except asyncio.CancelledError:
                if c._zz:
                    raise  # cancelled by someone else: end
            c._zz = False
    finally:
        c._zz = c._clk = None
