# The asyncio client's rarer paths, loaded on first use: disconnect() (end_session=True
# among it), a subscription changed while offline or sent again after the broker lost the
# session (and the broker's answer to it), a second connect() while a reader runs, the
# on_connect hook, output the socket did not take at once. A node that keeps its session,
# subscribes while connected and has no on_connect loads it only when it disconnects or
# its link stalls.
from micropython import const
import time

from . import packet as P
from .packet import MQTTException

_LINGER = const(1000)  # as ctl._LINGER


async def disconnect(c, end):
    # MQTTClient.disconnect(end_session=end). Output the socket has not taken (what
    # publish accepted) goes out first, within timeout: closed with it, it was lost and
    # the broker sent the will. Called while a handler coroutine runs (from it, say on a
    # "stop" command): that message is answered first (else the broker sends it again on
    # the next connect, and the node stops again), and the coroutines of the messages
    # after it are closed unrun, unanswered: a persistent session gets those again (a
    # clean one is discarded at the broker with what it had not delivered)
    if end and (c.version == 4 or not c.isconnected()):
        import asyncio

        if asyncio.current_task() is c._task:
            # from a handler coroutine: the clean connect (end_session) needs a reader of
            # its own, and the reader is the task awaiting this (it could never end)
            raise RuntimeError("a message handler cannot wait for the broker: use a task")
    # the message messages() handed out last is answered too (as if the next was asked
    # for), and the one a handler coroutine runs for
    h = c._mod("aio_held")
    h.owed(c, c._qo)
    c._qo = 0
    aws = c._aws
    if c._hr and aws and type(aws[0]) is int and aws[0] >> 16 != 1:
        # (run popped its coroutine: its answer. _REC, 1, is the next message's, read in
        # the same batch: recorded, that one would be taken for a duplicate when the
        # broker sends it again, and never delivered)
        h.owed(c, aws.pop(0))
    t0 = time.ticks_ms()
    try:
        while c._ob is not None and c.isconnected():
            await c._wait(c._rest(t0))
        # then the answers to the messages in flight, within the same timeout (unless a
        # handler runs, or messages() is full: the reader that would read them waits for
        # the application). Left unread, they would be sent again on the next connect,
        # and unread input at the close makes the kernel reset the connection (ctl.bye)
        q = c._quota
        c._quota = 0  # (no message queued behind them goes out meanwhile)
        try:
            while c._s.nin and c.isconnected() and not c._hr and len(c._q) < (c._qn or 8):
                await c._wait(c._rest(t0))
            while c._ob is not None and c.isconnected():
                await c._wait(c._rest(t0))  # output other tasks added meanwhile
        finally:
            if q:  # (0: another disconnect() waits too; the first one restores it)
                c._quota = q
    except (OSError, MQTTException):
        pass
    try:
        if end:
            await end_session(c)
    finally:
        if not c._up:
            c._close()  # a connect under way: no DISCONNECT on a socket not connected
        # the reader wakes on the closed socket and ends; in the keeper's backoff it
        # sleeps: cancelled (a sleep, never an I/O wait)
        lg = c._mod("ctl").bye(c, end, True)
        for a in aws:
            if type(a) is not int:
                a.close()
            elif a >> 16 == 0x50:
                # a QoS 2 message whose coroutine goes unrun, recorded as it arrived (the
                # callback not yet known to be a coroutine function): no longer, else the
                # broker's resend would be taken for a duplicate and never delivered
                try:
                    c._s.rx2_del(a & 0xFFFF)
                except (OSError, MemoryError):
                    pass  # (the store's: kept recorded, that one is lost, as before)
        aws.clear()
        c._q.clear()  # nor what waits for messages() (a persistent session's come again)
        c._qa.clear()
        if c._nap:
            c._nap = False
            c._task.cancel()
        c._err = None
        c._bye += 1  # the message iterator ends
        c._qev.set()
        if lg:
            await linger(c)  # last: a cancel there skips nothing above


async def linger(c):
    # ctl.bye's wait for the broker to close after the DISCONNECT (a second at most),
    # without holding the event loop. The client is closed at once (down, link.lost, the
    # reader ends without a link failure when woken) and the socket set aside: what
    # comes is read, into a buffer of its own, and dropped, then it closes. A connect()
    # made meanwhile owns the client (a connection of its own, after the old reader)
    import asyncio

    t = time.ticks_ms()
    try:
        # the DISCONNECT itself may wait for the socket (a large message just before it
        # filled the send buffer): out first, within timeout, or it was dropped with the
        # socket and the broker sent the will
        while c._ob is not None and c.isconnected():
            await c._wait(c._rest(t))
    except (OSError, MQTTException):
        pass
    s = c.sock
    if s is None:
        return  # (the link went meanwhile: closed)
    c.sock = None
    c._close()  # (no socket there: its hooks are not run)
    if c.link:
        c.link.lost()  # (which _close runs with a socket)
    b = bytearray(64)
    t = time.ticks_ms()
    try:
        while s.readinto(b) != 0 and time.ticks_diff(time.ticks_ms(), t) < _LINGER:
            await asyncio.sleep_ms(20)
    except OSError:
        pass
    finally:
        s.close()


async def end_session(c):
    # before the DISCONNECT: the broker is to discard the session (MQTT 5: Session Expiry
    # 0 at DISCONNECT; 3.1.1, or offline: first one clean connect, without the keeper or
    # on_connect) and the store forgets its messages and subscriptions. That connect
    # failing raises its error, and the session is kept.
    import asyncio

    if c.isconnected() and c.version == 5 and asyncio.current_task() is not c._task:
        # the DISCONNECT that ends the session must reach the broker: on a connection
        # that went silent (half open), unnoticed, it reaches nobody and the broker keeps
        # the session the store forgets. A PINGREQ answered first, within timeout; else
        # the session is ended as offline (a clean connect, which raises if it fails)
        t0 = time.ticks_ms()
        try:
            c._keepalive(True)
            while c._ping and c.isconnected():
                await c._wait(c._rest(t0))
        except (OSError, MQTTException):
            pass
        if c._ping and c.isconnected():
            c._lost(False, OSError(110))
    if not c.isconnected() or c.version == 4:
        if c.isconnected() and c._mod("ctl").bye(c, False, True):
            await linger(c)  # this connection ends with a DISCONNECT: no will is sent
        lk, hk, td = c.link, c.on_connect, c._todo
        c.link = c.on_connect = None
        c._todo = {}
        try:
            await c.connect(True)
        finally:
            c.link, c.on_connect = lk, hk
            if not c._up:
                c._todo = td  # kept with the session
        if td:
            c._mod("ctl").owe(c)  # none owed now: the store's record goes
    c.dropped += c._s.pending()  # given up on purpose, counted (as a clean start)
    c._s.clear()


def resub(c, present, clean):
    # after CONNACK: subscriptions go out without waiting (the reader takes the SUBACKs
    # afterwards). After a session loss all stored ones, else those changed offline
    s = c._s
    if c._rs:
        c._mod("subs").dropped(c, None)  # left by a close with no heap (subs.dropped)
    c._rs = rs = {}  # their acknowledgements: suback(); the link lost first: owed again
    x = False  # one refused here (v5.unsupported)
    td = c._mod("subs").todo(c, present, clean)
    for j in range(len(td)):
        t, q = td[j]
        try:
            r = c._maxq & 56 and c._mod("v5").unsupported(c, t, q)
            if r:
                c._s.unsub(t)
                c._log("subscription refused: %s 0x%02x", (t, r))
                c._report(MQTTException(r, "subscription refused: %s" % t))
                x = True
                continue
            b = c._tx if len(t) + 16 <= len(c._tx) else bytearray(len(t) + 16)
            i = s.next_pid()
            rs[i] = (t, q)
            c._write(b, P.subscribe(b, i, t, q, c.version))  # q None: UNSUBSCRIBE
        except BaseException:
            # (no heap, the link lost) this one and those not yet sent are owed again,
            # as _drop makes those sent owed (forgotten, the broker that lost the session
            # would never get them: the next connect finds it present)
            for t, q in td[j:]:
                c._todo[t] = q
            raise
    if x and not rs:
        c._rs = None
        c._mod("ctl").owe(c)  # (else suback() does, once the others are answered)


def suback(c, pid, code):
    # the SUBACK (UNSUBACK) of a SUBSCRIBE (UNSUBSCRIBE) resub() sent (ctl.on_other). A
    # refused subscription is an asynchronous error like a handler's (on_error, errors,
    # the log hook), and the filter leaves the session (and the store): sent again at
    # every connect, it would be refused again
    rs = c._rs
    t, q = rs.pop(pid)
    if code >= 0x80 and q is not None:
        c._s.unsub(t)
        c._log("subscription refused: %s 0x%02x", (t, code))
        c._report(MQTTException(code, "subscription refused: %s" % t))
    if not rs:
        c._rs = None
        c._cn[23] = None  # no strikes (subs.struck)
        c._mod("ctl").owe(c)  # all answered: the store's record of those owed goes


async def stop(c):
    # connect() again while the reader of an earlier one runs (no link keeper, or after
    # disconnect()): it ends first. In the keeper's backoff it sleeps (cancelled); else
    # it wakes on the closed socket (an I/O wait is never cancelled). From a handler
    # coroutine the reader is the task awaiting it: it could never end
    import asyncio

    if asyncio.current_task() is c._task:
        raise RuntimeError("a message handler cannot wait for the broker: use a task")
    if c._qo and c.isconnected():
        # the message messages() handed out last, which the application is handling
        # (connect() from its loop, on a "reconnect" command): answered first, as
        # disconnect() does, else the new connection brings it again, and so on
        c._mod("aio_held").owed(c, c._qo)
        c._qo = 0
    c._want = False
    c._close()
    # messages held from the old connection and not handed out: the broker sends them
    # again on the new one (kept, they would come twice)
    c._q.clear()
    c._qa.clear()
    if c._nap:
        c._nap = False
        c._task.cancel()
    c._qev.set()  # it may wait for room in messages()
    t = c._task
    while c._task is t:  # (not a reader another connect() started meanwhile)
        c._ev.clear()
        await c._ev.wait()


def raw(a):
    # what a raw=True callback returned (MQTTClient._deliver): a coroutine would run after
    # the payload's buffer is reused, so it is closed unrun and refused, an error like a
    # handler's (on_error, errors); anything else is ignored, as by the blocking client
    if hasattr(a, "send"):
        a.close()
        raise TypeError("set_callback(f, raw=True): f must be a plain function")


async def hook(c):
    # on_connect, run as a task after every (re)connect
    try:
        r = c.on_connect(c)
        if hasattr(r, "send"):  # a coroutine; a plain function has run already
            await r
    except Exception as e:
        c._report(e)


async def drain(c, s):
    # output socket s did not take at once (MQTTClient._wait_out), sent as it drains
    try:
        while c.sock is s and c._ob is not None:
            await c._io(True)
            if c.sock is s and c._ob is not None:
                c._flush()
        c._ev.set()  # all out: a publish waiting for it goes on
    except OSError as e:  # the broker stopped reading, or the link broke
        if c.sock is s:
            c._drop(e)
    finally:
        if c._dr is s:
            c._dr = None
