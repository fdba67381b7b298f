# A clean start (connect(clean_session=True)) or an ended session (end_session=True): the
# session forgets its messages, packet IDs, incoming QoS 2 state and subscriptions, and a
# stored session its queue in flash. Only a connect or disconnect the application asks
# for runs this (reconnects keep the session), so it loads on first use and stays: a node
# that connects clean loads it at its first connect, not later at a fault.
from micropython import const
from array import array

_HOT = const(1)  # session.py's: what a _save writes
_SUBS = const(2)
_TAIL = const(32)  # as stored._TAIL
_NONE = const(0xFFFFFFFF)


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
    for j in range(_TAIL):
        s._tail[j] = _NONE
    s._tn = s._tb = s.bytes = s.more = 0
    s._done = []
    s._save(_HOT)
