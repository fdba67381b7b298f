# Subscriptions changed while offline, and those made again after a broker lost the
# session: recorded in the session (in flash with a store) and made on the next connect.
# With a store the changes owed (c._todo) are in its "owed" file too (ctl.owe), so a reset before
# that connect keeps them (the client takes them back when it loads the session).
# Both clients load it on first use (Core._mod): a node that subscribes while connected
# and keeps its session never does.
from micropython import const

from .ctl import owe
from .packet import MQTTException

_ENOTCONN = const(107)
_ENOBUFS = const(105)


def later(c, topic, qos, sent=False):
    # offline with a link keeper (both clients), the link broke before the ack (the
    # asyncio client), or from the blocking client's callback (made after it): the
    # change (qos None: unsubscribe) is recorded and made on the next connect (or by the
    # blocking client's next call, connected: its _msg). Without a keeper OSError(ENOTCONN),
    # once a bad filter or QoS has been named, unless sent (the blocking client's callback
    # raised while its answer was awaited: made again by the next call, with or without one)
    t = c._mod("ctl").sub_filter(c, topic, qos)
    if c.link is None and not c._cn[18] and not sent:  # (18: from the callback or a hook)
        raise OSError(_ENOTCONN)
    # owed first, then the session's subscriptions: a power cut between the two writes
    # leaves the change owed, and the next connect makes it and puts it in the session
    # (todo). The other order left it in the session only: never made at the broker
    # (after a reset the connect makes only what is owed), or an unsubscribe the broker
    # never heard of
    o = c._todo.get(t, -1)
    if o != qos:
        c._todo[t] = qos
        try:
            owe(c)
        except (OSError, MemoryError):
            # not owed in flash: not in _todo either, so the application's retry writes it
            if o == -1:
                del c._todo[t]
            else:
                c._todo[t] = o
            raise
    # (this write failing raises with the change owed: made on the next connect all the
    # same, and the application's retry writes it)
    if qos is None:
        c._s.unsub(t)
    else:
        c._s.sub(t, qos)


def todo(c, present, clean):
    # after CONNACK, the (filter, QoS) to send (QoS None: UNSUBSCRIBE): after a session
    # loss every stored subscription, else those changed offline. A clean start wiped
    # the session's: the ones made offline are kept.
    # The owed changes go into the session first (a write only where it differs: a
    # power cut in subscribe() after the owed file's write, before the session's)
    s = c._s
    td = c._todo
    for t, q in td.items():
        if q is None:
            s.unsub(t)
        else:
            s.sub(t, q)
    # the list before _todo is emptied: no heap for it (MemoryError) leaves them owed
    td = list((td if present else s.subs).items())
    c._todo = {}
    return td


def make(c, present, clean):
    # the blocking client's: each one waited for in turn (its SUBACK within timeout). One
    # the broker refuses leaves the session (sent again at every connect it would be
    # refused again) and the log hook says so; the connect goes on. When the link goes
    # meanwhile, the ones not acknowledged are made on the next connect
    owed = c._todo
    td = todo(c, present, clean)
    s = c._s.subs
    mk = c._mk
    c._mk = (td, mk)  # owed in flash until made, whatever the callback changes (ctl.owe)
    try:
        for i in range(len(td)):
            t, q = td[i]
            if s.get(t) != q:
                continue  # the callback changed it since: its change is made, not this
            try:
                c.subscribe(t, ... if q is None else q)  # (... : unsubscribe)
            except (OSError, MQTTException) as e:
                if isinstance(e, OSError) or c.sock is None:  # the link went
                    keep(c, td, i)
                    if c.sock is None:  # (with a keeper the close's cause is in link)
                        struck(c, t, c.link.last_error if c.link else e)
                    raise
                c._s.unsub(t)  # refused
                c._log("subscription refused: %s 0x%02x", (t, e.args[0]))
            except BaseException:
                # the callback's, out of the wait for the SUBACK (KeyboardInterrupt too):
                # this one and the rest are made later (the same SUBSCRIBE again, should
                # this one's SUBACK come)
                keep(c, td, i)
                raise
    finally:
        c._mk = mk
    c._cn[23] = None  # all made: no strikes
    if owed:
        owe(c)  # all made: the store's record of them goes


def keep(c, td, i):
    # (make) those not made yet owed again; not one the application changed since (its
    # change, newer, is owed itself or made already)
    s = c._s.subs
    for t, q in td[i:]:
        if s.get(t) == q:
            c._todo[t] = q


def struck(c, t, e):
    # the link went (e: how) with t's SUBSCRIBE (UNSUBSCRIBE) unanswered: `strikes`
    # closes in a row on it give it up, refused, as a message in flight is set aside
    # (aside.struck). An MQTT 3.1.1 broker refuses one it cannot take by closing
    # (mosquitto: longer than its max_packet_size); made again at every connect, it kept
    # the node off for good
    k = c._cn
    if not isinstance(e, OSError) or e.errno == _ENOBUFS or k[23] is False:
        # the broker's protocol error, the node's own heap (a MemoryError, or the link
        # failure for want of heap: ENOBUFS), the blocking callback's OSError
        # (client._deliver: False): not the filter's. (Counted, a node short of heap
        # while the broker answered gave its subscriptions up as refused)
        k[23] = None
        return
    n = k[23][1] + 1 if k[23] and k[23][0] == t else 1
    k[23] = (t, n)
    if n >= c.strikes:
        k[23] = None
        c._s.unsub(t)  # (the flash failing: still owed, given up at a later close)
        c._todo.pop(t, None)
        c._log("subscription refused: %s (closed on %d times)", (t, n))
        r = getattr(c, "_report", None)  # the asyncio client's on_error
        if r:
            r(MQTTException(0x80, "subscription refused: %s" % t))


def dropped(c, e):
    # the asyncio client's link went (aio._drop, e: how; None from resub) with
    # SUBSCRIBEs resub sent unanswered: owed again. The oldest (farthest behind the
    # session's last packet ID) is the one a broker closed on. Raises nothing: raised in
    # the reader's close, it ended the reader, and the keeper with it
    b = -1
    try:
        for i, (t, q) in c._rs.items():
            c._todo[t] = q
            if (c._s.pid - i) % 65535 > b:
                b = (c._s.pid - i) % 65535
                o = t
        c._rs = None
        struck(c, o, e)
    except (OSError, MemoryError):
        # the flash, the heap: the close goes on. No heap for _todo's growth leaves
        # them in _rs (owed by the next resub); struck's write, given up at a later close
        pass
