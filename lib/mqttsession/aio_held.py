# The asyncio client's incoming QoS 1/2 messages held back until the application has them:
# PUBACK (QoS 1) or PUBREC (QoS 2) goes out once the application has handled the message:
# when it asks messages() for the next one, or when a coroutine handler has run, not when
# the message arrives. A power cut or a reset before then loses nothing: the broker sends
# it again (a QoS 2 one is recorded as it is handed out, so at most once). An answer owed
# is kept as an int, PUBACK/PUBREC << 16 | packet ID: in MQTTClient._qa beside each
# messages() entry (0: none), in _qo for the one handed out last, and in _aws after the
# coroutine it waits for. Loaded with the first QoS 1/2 message or messages() entry; the
# blocking client answers once its callback has returned (core.py).
from micropython import const

_PUBACK = const(0x40)
_PUBREC = const(0x50)


def later(c, first):
    # (_on_publish) takes a QoS 1/2 PUBLISH; False: it goes the blocking client's way
    # (_on_publish goes on): QoS 2 for a callback, and a QoS 2 one handed out before
    pid = c._pf[1]
    a = (_PUBREC if first & 4 else _PUBACK) << 16 | pid
    if not c._qn and c.cb is not None:
        if first & 4:
            # recorded, then the handler's (a plain function's and a coroutine's alike:
            # which one it is shows only once called): a reset before it ran loses it
            return False
        n = len(c._aws)
        c._deliver()
        if len(c._aws) > n:
            c._aws.append(a)  # a coroutine's: answered once it has run (MQTTClient._run)
        else:
            c._ack(_PUBACK, pid)  # a plain function's: answered now, as ever
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


def closed(c):
    # the link is gone: what is held unanswered the broker sends again on the next
    # connection. A QoS 1 message's answer is no longer owed (sent there, it would
    # answer whatever that ID is then), and what no one has asked for yet goes
    if not c._qn:
        c._q.clear()
        c._qa.clear()
    for qa in (c._qa, c._aws):
        for i in range(len(qa)):
            if type(qa[i]) is int and qa[i] >> 16 == _PUBACK:
                qa[i] = 0
    if c._qo >> 16 == _PUBACK:
        c._qo = 0


def took(c):
    # the application takes the first messages() entry: a QoS 2 one is recorded first
    # (an OSError leaves it there); it is answered when the application asks for the
    # next one (MQTTClient.__anext__), having handled this one
    a = c._qa[0]
    if a >> 16 == _PUBREC:
        c._s.rx2_add(a & 0xFFFF)
    c._qa.pop(0)
    c._qo = a


def owed(c, a):
    # sends the answer a held message owes (0, or its connection gone: none); a QoS 2
    # one is recorded first, if it was not
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
    # handled: a coroutine's once the reader has run it (_aws), a QoS 2 one recorded
    # first, as by the iterator (the store's OSError goes to the caller, the rest kept)
    q, qa = c._q, c._qa
    while q:
        a = qa[0]
        if a >> 16 == _PUBREC:
            c._s.rx2_add(a & 0xFFFF)
        qa.pop(0)
        t, m, r = q.pop(0)
        n = len(c._aws)
        try:
            if c._raw:
                c._mod("aio_rare").raw(c.cb(t, m, 0, len(m)))
            else:
                x = c.cb(t, m, r) if c._cb3 else c.cb(t, m)
                if x is not None and hasattr(x, "send"):
                    c._aws.append(x)
        except Exception as e:
            c._report(e)
        if len(c._aws) > n:
            c._aws.append(a)
        else:
            owed(c, a)
