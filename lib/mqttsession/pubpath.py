# The blocking client's (client.py) publish path and the wait every blocking call makes
# (_step), as module functions taking the client: the class keeps the public calls.
#
# The whole path of a PUBLISH: client.publish() checks it (_check) and finds the link up.
# QoS 0 goes onto the socket at once (_send0: _hand sizes it, core._put writes it in
# one write). QoS 1/2 take _pub1: room in the window (_go, _await), into the session,
# onto the wire (_go: _send_slot, _put) and at window 1 its acknowledgement (wire._recv
# reads what has arrived at once, a lone PUBACK goes straight to Core._handle; _await
# then waits with _step, and wire._parse handles each packet). Offline, or no room
# within the budget: _queue. The steps are separate functions because a frame larger
# than 11 words is allocated on the heap at every call (see wire.py): each fits.
from micropython import const
import time

from .packet import MQTTException
from .core import _put
from .wire import _recv

_PUBLISH = const(0x30)
_ENOTCONN = const(107)
_ETIMEDOUT = const(110)
_POLLIN = const(1)
_RS = const(17)  # a stored record's bytes beyond topic and payload (as stored._RS)
_CP = const(6)  # in the client's _cn (as client._CP)
_INCB = const(18)  # in the client's _cn: the callback is running (as client._INCB)


def _step(c, ms):
    # waits up to ms (-1: until keepalive work is due) for input and handles every
    # whole packet that arrived; returns the last packet type, or None when nothing
    # arrived. The wait of every blocking call
    if c.sock is None:
        raise OSError(_ENOTCONN)
    if c._ob is not None and c._flush():
        c._poll.modify(c.sock, _POLLIN)  # what a stalled socket held is out
    if c._aw:
        if c._s.nin:
            _owe(c, None)  # the wait publish gave up on goes on here
        else:
            c._aw = 0
    if c.ka:
        if c._ping and time.ticks_diff(time.ticks_ms(), c._ping) >= c.ka * 750:
            # the PINGRESP is overdue, or it came while the application (or a long
            # callback) kept the client from reading: what has arrived is read first
            due = _recv(c)
            if due is not None:
                return due
        due = c._keepalive(False)  # PINGREQ when due
        if ms < 0 or ms > due:
            ms = due
    elif ms < 0:
        ms = 60000
    if c._ob is not None:  # output waits: no longer than its deadline (then _flush raises)
        due = time.ticks_diff(time.ticks_ms(), c._ot)
        ms = min(ms, max(1, c._tms - due))
    if c._s.more and c._s.nin + c._s.nq < c._s.cap:
        ms = min(ms, 1000)  # a backlog the flash could not read (qseg._eio): read again
    # whole packets buffered (_hold): no wait; a packet that has started must end
    # within timeout of its first byte (_p0)
    if c._hold:
        ms = 0
    elif c._r1 != c._r0 or c._skip:
        due = time.ticks_diff(time.ticks_ms(), c._p0)
        ms = min(ms, max(0, c._tms - due))
    else:
        # what has arrived already is read without a wait (a quick broker's answer
        # often has, by the time the publish that asked for it is out)
        due = _recv(c)
        if due is not None or not ms:
            return due
    # the wait, without iterating the result (a loop over it would take 4 more words
    # of frame): _recv reads whatever arrived and returns None when nothing did.
    # OSError: _recv has closed the link
    c._poll.ipoll(ms)
    return _recv(c)


def _send0(c, retain):
    # QoS 0 of the caller's message onto the socket (a reconnect may have sent others
    # since _check), and keepalive work when due. Output a stalled socket has not taken
    # goes first; still there when the budget is spent, the message is dropped and
    # counted (fire and forget): QoS 0 never piles up in the heap behind a slow link
    try:
        if c._ob is not None:
            c._wait_out()
            if c._ob is not None:
                c.lost0 += 1
                return
        c._hand(0)
        _put(c, _PUBLISH | (1 if retain else 0), 0)
        if c.ka:
            if c._ping and not c._cn[_INCB]:
                # a PINGREQ is out: its PINGRESP may be in (a node that only publishes
                # QoS 0 and never reads hears it here, else the link counts as dead)
                _recv(c)
            c._keepalive(False)  # OSError: the broker stopped answering pings
    except OSError:
        if c._lost(c.link):
            raise


def _pub1(c, qos, retain):
    # with a store, a QoS 2 message gets its packet ID and is in flash before it goes
    # out; one behind a backlog in flash joins the backlog (_send_slot then does nothing).
    # Messages queued and not yet sent with room in the window (a hook or the callback
    # publishing during a reconnect, before its _pump): it queues behind them, "sent
    # before anything new" (sent first, it overtook a boot's offline backlog); the
    # reconnect's _pump, or the next read's (wire._recv), sends them all in order
    s = c._s
    if s.nq and s.nin < c._quota or \
            (s.nin >= c._quota or s.nq and s.nin + s.nq >= s.cap) and not _room(c, qos, retain) or \
            c.store is not None and s.full(_RS + len(c._t) + len(c._m)):  # no room in flash
        c._queue(qos, retain, False)
        return
    k = s.add(c._t, c._m, qos, retain)  # as _queue: _go made room
    if c.store is None:
        _go(c, k)  # a RAM session: nothing to hold
        return
    if k == s.cap or qos == 2:
        c._durable(k, k != s.cap)
    qos = s.seq[k]  # from here the message's number (one local less: see above)
    _go(c, k)
    s.hold(k, qos)  # still unacknowledged: in flash when publish returns (or when the
    # callback's exception comes out of _go: aside.raised)


def _rejoined(c, q):
    # publish's _ensure: the callback's exception in the reconnect (it ran while the
    # subscriptions were made again, _steps: the link is up) comes out of publish with
    # its message accepted all the same, as out of _room: queued (QoS 0: sent). (The
    # link's errors stop in _rejoin: only the application's come out of _ensure.) q: the
    # QoS, 4 for retain (two arguments, one handler: a frame within 11 words, as this
    # runs at every publish offline)
    try:
        return c._ensure()
    except BaseException:
        _taken(c, q)
        raise


def _taken(c, q):
    # only for the callback's exception, which _steps recorded once connected (anything
    # else, a KeyboardInterrupt in the Wi-Fi step, leaves the message to the application)
    if not isinstance(c._cn[_CP], BaseException):
        return
    if q & 3:
        c._queue(q & 3, q > 3, False)  # (out with the next read: wire._recv's _pump)
    elif c.sock is not None and not c._cs:
        _send0(c, q > 3)
    else:
        c.lost0 += 1  # (the link went meanwhile: QoS 0 is counted, not queued)


def _room(c, qos, retain):
    # _go(c, -1), the wait for room in the window, keeping the message in hand (_t, _m):
    # a callback run meanwhile may publish, and that takes the hand. The callback's own
    # exception comes out of publish with the message accepted all the same (queued, as
    # "Exceptions: one rule" says); the link's errors go on as _go left them. (A heap
    # frame: only when the window is full)
    t = c._t
    m = c._m
    c._cbr = False
    try:
        r = _go(c, -1)
    except (OSError, MQTTException):
        raise
    except Exception:
        c._t = t
        c._m = m
        c._queue(qos, retain, False)
        raise
    except BaseException:
        # the callback's KeyboardInterrupt or SystemExit as any of its exceptions (a
        # Ctrl-C in the wait itself leaves the message to the application)
        if not c._cbr:
            raise
        c._t = t
        c._m = m
        c._queue(qos, retain, False)
        raise
    c._t = t
    c._m = m
    return r


def _go(c, k):
    # sends slot k; window=1 waits for its acknowledgement (umqtt's meaning), within
    # the budget. A wider window does not wait: acknowledgements are read, all that
    # arrived in one read, once the window is full or by the next call that waits; with
    # a store, also what has arrived already (a message they complete needs no flash
    # write, see _pub1). k < 0: waits for room in the window instead. Either way what
    # has arrived is read and handled at once, without _step's work: on a quick link the
    # answer often has by now. False when the budget ran out first (the message then
    # waits in the session) or the link broke meanwhile.
    try:
        if k < 0:
            if c._cn[_INCB]:
                return False  # from the callback: queued, sent as acknowledgements come
            _recv(c)
            return _await(c, k)
        c._send_slot(k)
        if c._cn[_INCB]:
            return True  # from the callback: its acknowledgement is read after it
        if c.window == 1:
            _recv(c)
            if c._s.fl[k]:
                _await(c, k)
        elif c.store is not None:
            _step(c, 0)
        return True
    except OSError:
        if c._lost(c.store or c.link):
            raise
        return False


def _await(c, k):
    # handles packets until slot k is acknowledged (k < 0: until the window has room),
    # within timeout (OSError: the link is dead) and the budget (False: a later call goes
    # on, _owe). A callback may publish meanwhile: k is the message slot k holds now
    # while it holds the same number (seq). (A message a callback published during
    # _go's read holds it already only if it took the slot this one freed, the rest of
    # the ring being full: that one is then awaited, within the same budget.)
    seq = c._s.seq[k] if k >= 0 else 0
    t0 = time.ticks_ms()
    while c._s.fl[k] and c._s.seq[k] == seq if k >= 0 else c._s.nin >= c._quota or \
            c._s.nq and c._s.nin + c._s.nq >= c._s.cap:  # as s.full()
        left = c._tms - time.ticks_diff(time.ticks_ms(), t0)
        if left <= 0:
            c._cn[15] = True
            raise OSError(_ETIMEDOUT)  # no acknowledgement for too long: link down
        if c.budget_ms is not None:  # the call's budget
            b = time.ticks_diff(c._bd, time.ticks_ms())
            if b <= 0:
                _owe(c, t0)
                return False  # patience is over: a later call goes on
            if b < left:
                left = b
        _step(c, left)
    return True


def _owe(c, t0):
    # publish's patience ran out in a wait that began at t0 (None: in an earlier
    # call): later calls go on with it. An answer awaited since _aw (from when the
    # oldest message in the session last completed: the window moved) for timeout:
    # the link is dead, as the whole wait would have found, whatever else came
    # meanwhile (PINGRESPs, other messages: counting those, a link whose upstream
    # had stopped while the broker kept sending was never found dead)
    s = c._s
    now = time.ticks_ms()
    if t0 is not None and not c._aw:
        c._aw = t0 or 1
        c._ah = s.seq[s.head]
    elif c._ah != s.seq[s.head]:
        c._aw = now or 1  # the window moved: the wait starts again
        c._ah = s.seq[s.head]
    if time.ticks_diff(now, c._aw) > c._tms:
        c._close()
        c._cn[15] = True
        raise OSError(_ETIMEDOUT)
