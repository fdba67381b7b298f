# A clean start (connect(clean_session=True)) or an ended session (end_session=True): the
# session forgets its messages, packet IDs, incoming QoS 2 state and subscriptions, and a
# stored session its queue in flash. Only a connect or disconnect the application asks
# for runs this (reconnects keep the session), so it loads on first use and stays: a node
# that connects clean loads it at its first connect, not later at a fault.
from micropython import const
from array import array
import time

from .packet import MQTTException

_HOT = const(1)  # session.py's: what a _save writes
_SUBS = const(2)
_TAIL = const(32)  # as stored._TAIL
_NONE = const(0xFFFFFFFF)
_INCB = const(18)  # in the client's _cn: the callback is running (as client._INCB)


def clear(s):
    # Session.clear (and StoredSession's: s has a directory, s._p)
    for i in range(s.n):
        k = s.slot(i)
        s._forget(k)
        s.fl[k] = 0
        s.ids[k] = 0
        s.top[k] = s.msg[k] = None
    u = s._use
    for i in range(len(u)):
        u[i] = 0
    s.head = s.n = s.nin = s.nq = 0
    s.subs = {}
    s.rx2 = []
    s._save(_HOT | _SUBS)
    p = s._p
    if p is None:
        return  # a RAM session
    from .store import _join, _rm

    for d in ("q", "t0", "t1", "t2", "t3"):
        _rm(_join(p, d))
        s._st._mkdirs(_join(p, d))
    s._sg = array("I")
    s._sl = array("I")
    s._sc = array("I")
    s._sk = 8  # (qseg.seal)
    for j in range(_TAIL):
        s._tail[j] = _NONE
    s._tn = s._tb = s.bytes = s.more = 0
    s._done = []
    s._save(_HOT)



def end(c, step):
    # the blocking client's disconnect(end_session=True), once the answers in flight are
    # read (step: its input step). MQTT 5, connected: the DISCONNECT that ends the session
    # (ctl.bye, after this) must reach the broker; on a connection the broker closed (a
    # restart) or that went silent, unnoticed while nothing was read, it reaches nobody
    # and the broker keeps the session the store forgets. So a PINGREQ answered first,
    # within timeout; else the link is closed and the session is ended as offline. 3.1.1,
    # or offline: one clean connect first (its failure raises: nothing is forgotten).
    # Returns the callback's exception met while reading, raised once disconnected
    e = None
    if c.sock and c.version == 5 and not c._cn[_INCB]:
        t0 = time.ticks_ms()
        q = c._quota
        c._quota = 0  # (no message queued goes out meanwhile)
        try:
            c._keepalive(True)
            while c._ping and c.sock:
                t = c._tms - time.ticks_diff(time.ticks_ms(), t0)
                if t <= 0:
                    break
                step(c, t)
        except (OSError, MQTTException):
            pass
        except Exception as x:
            e = x
        finally:
            c._quota = q
        if c._ping and c.sock:
            c._close()  # no PINGRESP: no DISCONNECT is known to reach the broker
    if c.sock is None or c.version == 4:
        if c.sock:
            c._mod("ctl").bye(c, False)  # a DISCONNECT first: no will is sent
        b = c._cn[_INCB]
        c._cn[_INCB] = False  # (connect() refuses the callback's own calls)
        try:
            c.connect(True)
        finally:
            c._cn[_INCB] = b
    c.dropped += c._s.pending()  # given up on purpose, counted (as a clean start)
    c._s.clear()
    return e
