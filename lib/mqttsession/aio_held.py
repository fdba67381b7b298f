# The asyncio client's incoming QoS 1/2 messages held back until the application has them:
# PUBACK (QoS 1) or PUBREC (QoS 2) goes out once the application has handled the message:
# when it asks messages() for the next one, or when a coroutine handler has run, not when
# the message arrives. A power cut or a reset before then loses nothing: the broker sends
# it again. A QoS 2 one is recorded (rx2) as it is handed out, or just before its
# coroutine runs, so it comes at most once. An answer owed is kept as an int, kind << 16 |
# packet ID (kind PUBACK or PUBREC; _REC: only record it): in MQTTClient._qa beside each
# messages() entry (0: none), in _qo for the one handed out last, and in _aws around the
# coroutine it waits for. Loaded with the first QoS 1/2 message, messages() entry or
# handler coroutine (run); the blocking client answers once its callback has returned
# (core.py).
from micropython import const
import asyncio
import time

_PUBACK = const(0x40)
_PUBREC = const(0x50)
_REC = const(1)  # in _aws before a QoS 2 message's coroutine: recorded as it starts


def later(c, first):
    # (_on_publish) takes a QoS 1/2 PUBLISH; False: it goes the blocking client's way
    # (_on_publish goes on: recorded and answered now, delivered if new)
    pid = c._pf[1]
    a = (_PUBREC if first & 4 else _PUBACK) << 16 | pid
    if first & 4 and (a == c._qo or a in c._aws):
        # a QoS 2 one sent again while it is handled (handed out last, or its coroutine
        # waiting, _REC before it): answered once, then
        return True
    if first & 4 and not first & 8 and pid in c._s.rx2:
        # no DUP: a new message, the record a stale one (Session.rx2_add), gone from
        # flash too before the message is held (a reset while it is held: its resend)
        c._s.rx2_del(pid)
    if not c._qn and c.cb is not None:
        if first & 4 and pid in c._s.rx2:
            return False
        give(c, a, None)
        return True
    # for messages(), or held for it (no consumer yet: a persistent session's messages
    # come right after CONNACK, before the application asks)
    if first & 4 and pid in c._s.rx2:
        return False
    if a in c._qa:
        return True  # a QoS 2 one sent again while it waits: answered once, when taken
    n = len(c._q)
    c._deliver(a)
    if len(c._q) == n:  # not queued (a raw handler raised): delivered, answered now
        if first & 4:
            c._s.rx2_add(pid)
        c._ack(a >> 16, pid)
    return True


def give(c, a, m):
    # hands a QoS 1/2 message to the callback: the one in the receive buffer (m None,
    # answered here at once when the callback is a plain function) or one held for
    # messages() (m: (topic, msg, retained); its answer sent by owed). A coroutine's is
    # answered once the reader has run it. A QoS 2 message is recorded before the handler
    # runs: before the call while this callback is not known to be a coroutine function
    # (which it is shows only once it is called: MicroPython gives a closure the same type
    # either way), else just before its coroutine runs (_REC in _aws), so a reset before
    # then loses nothing. The store's OSError goes to the caller.
    cb = c.cb
    known = c._cf is cb  # a coroutine function: its last call said so
    if m is None and not c._raw:
        # copied before the record and the answer: no heap for the copies (MemoryError)
        # is the reader's link failure, and the broker sends the message again
        m = c._copy3()
        m0 = None
    else:
        m0 = m
    if a >> 16 == _PUBREC and not known:
        c._s.rx2_add(a & 0xFFFF)
    if m is None:
        c._deliver()
    else:
        try:
            if c._raw:
                c._mod("aio_rare").raw(cb(m[0], m[1], 0, len(m[1])))
            else:
                x = cb(*m) if c._cb3 else cb(m[0], m[1])
                if x is not None and hasattr(x, "send"):
                    # the coroutine with its answer after it (and _REC before it) in one
                    # step: no heap for the list's growth adds none of them (a coroutine
                    # left without its record ran, and its message's resend again)
                    c._aws.extend([_REC << 16 | (a & 0xFFFF), x, a] if known and
                                  a >> 16 == _PUBREC else [x, a])
                    c._cf = cb
                    return
        except MemoryError:
            # no heap for the call (a coroutine function's coroutine, say: the handler
            # has not run) is the reader's link failure, as the copies' is: unanswered,
            # the message comes again (reported, it went answered and unhandled)
            raise
        except Exception as e:
            c._report(e)
    if m0 is None:
        if a >> 16 == _PUBREC:
            c._s.rx2_add(a & 0xFFFF)  # (a callback that is a coroutine function no more)
        c._ack(a >> 16, a & 0xFFFF)
    else:
        owed(c, a)


def closed(c, lost=False):
    # the link is gone: what is held unanswered the broker sends again on the next
    # connection. A QoS 1 message's answer is no longer owed (sent there, it would
    # answer whatever that ID is then), and what no one has asked for yet goes. A QoS 2
    # one handed out is recorded: the broker's resend is answered as it comes (sent
    # later as well, the answer could meet that ID's next message). lost (the next
    # CONNACK: the broker has no session, or a clean one): no QoS 2 answer is owed
    # either, nor recorded: that broker numbers new messages with those IDs
    if not c._qn:
        c._q.clear()
        c._qa.clear()
    for qa in (c._qa, c._aws):
        for i in range(len(qa)):
            if type(qa[i]) is int and (lost or qa[i] >> 16 == _PUBACK):
                qa[i] = 0
    c._qo = 0


def took(c):
    # the application takes the first messages() entry: a QoS 2 one is recorded first;
    # it is answered when the application asks for the next one (MQTTClient.__anext__),
    # having handled this one. False: the store could not record it, so it goes, and the
    # link with it: the broker sends it again on the next connection
    a = c._qa.pop(0)
    if a >> 16 == _PUBREC:
        try:
            c._s.rx2_add(a & 0xFFFF)
        except (OSError, MemoryError) as e:
            c._q.pop(0)
            c._drop(e)
            return False
    c._qo = a
    return True


def owed(c, a):
    # sends the answer a held message owes (0, or its connection gone: none); a QoS 2
    # one is recorded first, if it was not. _REC (the reader, before a QoS 2 message's
    # coroutine): recorded only; if the store cannot, the link goes and so do that
    # coroutine and its answer: the broker sends the message again on the next connection
    if a >> 16 == _REC:
        try:
            c._s.rx2_add(a & 0xFFFF)
        except (OSError, MemoryError) as e:
            del c._aws[:2]  # first: whatever the close meets, that coroutine never runs
            c._drop(e)
        return
    if a >> 16 == _PUBREC:
        c._s.rx2_add(a & 0xFFFF)
    if a and c.isconnected():
        try:
            c._ack(a >> 16, a & 0xFFFF)
        except OSError as e:
            c._drop(e)


def hand_over(c):
    # (set_callback) messages held for messages() (they came before any consumer, and
    # messages() was not called) go to the callback now, in order, each answered once
    # handled (give). A coroutine callback's: run by a task of their own, as the reader
    # may wait for input meanwhile (on a quiet link, for as long as no packet comes)
    q, qa = c._q, c._qa
    while q:
        give(c, qa[0], q[0])  # (the store's OSError: it stays, with the rest)
        qa.pop(0)
        q.pop(0)
    if c._aws and not c._hr:
        asyncio.create_task(run(c))


async def run(c):
    # the handlers' coroutines in _aws, in order, with the answers (ints) between them:
    # by the reader after a read, or by hand_over's task while the reader waits for input.
    # One at a time (_hr): the reader leaves what it adds meanwhile to the one under way
    if c._hr:
        return
    c._hr = True
    aws = c._aws
    try:
        while aws:
            a = aws.pop(0)
            try:
                if type(a) is int:
                    owed(c, a)
                else:
                    await a
            except (Exception, asyncio.CancelledError) as e:
                # (CancelledError: the handler's own, e.g. it awaited a task that was
                # cancelled; nothing cancels the reader while it runs handlers) reported,
                # the message counts as delivered, the reader goes on
                c._report(e)
            # back from the application: a PINGRESP in the socket is due from now
            c._ping = c._ping and (time.ticks_ms() or 1)
    finally:
        c._hr = False
