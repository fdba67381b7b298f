# MQTTClient: the blocking front end, a drop-in for umqtt.simple on the shared core.
#
# budget_ms: with a store or a link keeper (default _BUDGET ms), no call but connect(),
# subscribe(), unsubscribe() and wait_msg() holds the caller longer than about budget_ms:
# publish() waits for its acknowledgement or for window room only that long (the message
# stays in the session, in flash with a store, and a later call handles the answer), and a
# reconnect (Wi-Fi, TCP, TLS, CONNECT, CONNACK) goes on in steps across calls. None: every
# wait runs to its timeout, as in umqtt.simple (the default without store and keeper).
from micropython import const
import time

from .packet import MQTTException, err
from .core import Core, _check
from .pubpath import _step, _send0, _pub1, _rejoined

_ECONNRESET = const(104)
_ENOTCONN = const(107)
_ETIMEDOUT = const(110)
_ENETUNREACH = const(113)
_POLLIN = const(1)
_POLLOUT = const(4)
_BUDGET = const(200)
_FOREVER = const(0x3FFFFFFF)
_HOPS = const(4)  # in _cn (args.py)
_DL = const(5)
_CP = const(6)
_CC = const(9)
_INCB = const(18)  # in _cn: the callback is running (_deliver)


class MQTTClient(Core):
    # the callback raised (aside.raised): what pubpath._room's wait raised is its own
    _cbr = False

    def __init__(self, *args, budget_ms=..., **kw):
        # the client's own attributes first: Core sets the rest before the session loads
        # (see there)
        self._bd = 0  # ticks when the budget of the call under way ends
        self._aw = 0  # ticks when a wait publish gave up on began (0: none owed)
        self._ah = 0  # the oldest message's number (seq) then: the window moved when it changes
        self.budget_ms = None
        super().__init__(*args, **kw)
        if budget_ms is ...:  # not given (every int is the caller's, checked below)
            budget_ms = _BUDGET if self.store is not None or self.link is not None else None
        elif budget_ms is not None and (type(budget_ms) is not int or budget_ms < 0 or
                                        budget_ms > 536870000):
            # (as timeout: within a 32-bit port's ticks, else ticks_add raises OverflowError
            # out of every call)
            raise err(30)  # budget_ms must be None or an int from 0 to 536870000
        self.budget_ms = budget_ms

    def _wait_out(self):
        # output the socket did not take: waits for it to drain within the budget (the
        # rest goes out in later calls, see _step) and within timeout (then the link is
        # dead, _flush raises)
        p = self._poll
        p.modify(self.sock, _POLLOUT)
        while not self._flush():
            b = _FOREVER if self.budget_ms is None else time.ticks_diff(self._bd, time.ticks_ms())
            if b <= 0:
                # later calls send the rest (_step); input is still heard meanwhile
                p.modify(self.sock, _POLLIN | _POLLOUT)
                return
            p.poll(max(1, min(b, self._tms - time.ticks_diff(time.ticks_ms(), self._ot))))
        p.modify(self.sock, _POLLIN)

    def connect(self, clean_session=True, timeout=None, wait=True):
        # wait=False (with a link keeper): starts the attempt and goes on with it within
        # the budget; returns Session Present once connected, None while the keeper
        # finishes it in later calls. With redirect=True, a refusal carrying a Server
        # Reference is followed once (v5.disconnected sets the hops in _cn to 1, the
        # second try to 2).
        c = self._cn
        if c[_INCB]:
            # from the callback: the new connection would get the answer of the message
            # in hand (for an ID of the old one), and the broker sends that message again
            raise err(44)  # connect() cannot run inside the callback
        c[_HOPS] = 0
        if timeout is None:
            ms = self._tms
        elif isinstance(timeout, (int, float)) and 0.001 <= timeout <= 536870:
            ms = int(timeout * 1000)
        else:
            raise err(45)  # timeout must be a number of seconds >= 0.001 and <= 536870
        while True:
            if self.budget_ms is not None:  # the call's budget runs from now
                self._bd = time.ticks_add(time.ticks_ms(), self.budget_ms)
            if self.link:
                self._want = True  # from now on the keeper reconnects, even if this fails
            try:
                c[_CC] = bool(clean_session)  # (2: ctl.resume's forced clean start)
                self._conn_start(clean_session, ms)
                if not wait and self.link:
                    if self._steps(True):
                        return bool(c[_CP])
                    self._mod("ctl").offline_clean(self)  # the keeper goes on with it
                    return None
                self._steps(False)
                return bool(c[_CP])
            except Exception as e:
                if e is c[_CP]:
                    c[_CP] = None
                    raise  # the callback's, once connected (_steps): the link stays
                self._close()  # a failed connect leaves no socket open
                if c[_HOPS] == 1 and isinstance(e, MQTTException):
                    c[_HOPS] = 2
                elif not wait and self.link and isinstance(e, (OSError, MQTTException)):
                    # offline (or refused): the keeper goes on as after a lost link
                    self.link.failed(e)
                    self._mod("ctl").offline_clean(self)
                    return None
                else:
                    raise

    def _steps(self, bound):
        # goes on with the connect under way within the budget (bound) or until it ends
        # (its timeout); True once connected and resumed. Failures close and raise.
        while True:
            present = self._conn_step()
            if present is not None:
                # CONNACK: the session resumes, or a clean connect starts over
                s = self._s
                clean = self._cn[_CC]
                if present and clean:
                    present = 0  # a broker that ignored Clean Start: treat as a new session
                if present and self.store and s.fresh and self.version == 5:
                    # [MQTT-3.2.2-4]: no local state for a session the broker kept: close,
                    # start clean (2: keeping what was published offline, see ctl.resume)
                    self._close()
                    self._cn[_CC] = 2
                    self._conn_start(True, None)
                else:
                    self._aw = 0
                    present = self._mod("ctl").resume(self, present, clean)
                    self._cn[_CC] = False  # a clean start is made: the keeper resumes it
                    e = self._cn[_CP]  # the log hook's KeyboardInterrupt (ctl.resume)
                    if not isinstance(e, BaseException):
                        e = None
                    if self._todo or not present and not clean and s.subs:
                        # a new session at the broker, or subscriptions changed offline:
                        # subscriptions first, so the node also hears its own stored
                        # messages published again below
                        try:
                            self._mod("subs").make(self, present, clean)
                        except (OSError, MQTTException):
                            raise
                        except BaseException as x:
                            if self.sock is None:
                                raise  # the link went meanwhile (on_aside: aside.struck)
                            # the callback's, out of a SUBACK's wait: the connect is made
                            # all the same (the rest owed for the next call), then it
                            # comes out of the call, the link up (connect() sees it here)
                            e = x
                    self._pump()
                    self._want = True
                    # Session Present as connect() reports it (the callback's exception:
                    # connect() raises it, keeping the link)
                    self._cn[_CP] = present if e is None else e
                    if self.link:
                        self.link.connected()
                    if e is not None:
                        raise e
                    return True
            b = _FOREVER if not bound or self.budget_ms is None else \
                time.ticks_diff(self._bd, time.ticks_ms())  # the call's budget left
            if b <= 0:
                return False
            b = min(max(0, time.ticks_diff(self._cn[_DL], time.ticks_ms())), b)
            for _ in self._poll.ipoll(b):
                break

    def disconnect(self, end_session=False):
        # end_session=True ends the session on purpose: the broker discards it (MQTT 5:
        # Session Expiry 0 at DISCONNECT; 3.1.1, or offline: a clean connect first) and
        # the store forgets its messages and subscriptions. It needs the broker reachable.
        if self._cn[_INCB] and self.sock:
            # from the callback: its message is answered first (core._on_publish finds
            # the link closed after it), else the broker sends a QoS 1 one again on the
            # next connect, and a "stop" command would stop the node at every connect
            self._mod("aside").answer(self)
        if self._cs:
            self._close()  # a connect under way: no DISCONNECT on a socket not connected
        t0 = time.ticks_ms()
        if self._ob is not None and self.sock:
            # output the socket has not taken (what publish accepted) goes out first,
            # within timeout: closed with it, it was lost and the broker sent the will.
            # One timeout for it and the answers below together (as the asyncio client's)
            try:
                self._poll.modify(self.sock, _POLLOUT)
                while self._ob is not None and time.ticks_diff(time.ticks_ms(), t0) < self._tms:
                    self._poll.poll(20)
                    self._flush()
                if self._ob is None:
                    self._poll.modify(self.sock, _POLLIN)  # (else _step's poll never waits)
            except OSError:
                pass
        q = self._quota
        self._quota = 0  # (no message queued behind them goes out meanwhile)
        e = None
        try:
            # then the answers to the messages in flight, within timeout (not from the
            # callback: no input is read there). Left unread, they would be sent again on
            # the next connect, and unread input at the close makes the kernel reset the
            # connection (see ctl.bye)
            while self._s.nin and self.isconnected() and not self._cn[_INCB]:
                t = self._tms - time.ticks_diff(time.ticks_ms(), t0)
                if t <= 0:
                    break
                _step(self, t)
        except (OSError, MQTTException):
            pass
        except Exception as x:
            e = x  # the callback's, while the answers were read: raised once disconnected
        finally:
            self._quota = q
        if end_session:
            from .clean import end  # (clean.py: the session forgotten)

            e = end(self, _step) or e
        if self.budget_ms is not None:  # the call's budget runs from now
            self._bd = time.ticks_add(time.ticks_ms(), self.budget_ms)
        self._mod("ctl").bye(self, end_session)
        if e:
            raise e

    def ping(self):
        if self.budget_ms is not None:  # the call's budget runs from now
            self._bd = time.ticks_add(time.ticks_ms(), self.budget_ms)
        if self._cs and not self._ensure():
            # a connect under way (the keeper's) goes on within the budget: no PINGREQ
            # onto a socket not connected (a TLS handshake runs inside its writes)
            raise OSError(_ENOTCONN)
        self._keepalive(True)

    def publish(self, topic, msg, retain=False, qos=0):
        # the path of a PUBLISH from here to the socket: pubpath.py
        _check(self, topic, msg, qos)
        if qos > self._maxq & 3 or retain and self._maxq & 4:
            qos, retain = self._mod("v5").limit(self, qos, retain)  # the broker's MQTT 5 limits
        if self.budget_ms is not None:
            self._bd = time.ticks_add(time.ticks_ms(), self.budget_ms)  # the call's budget
        if (self.sock is None or self._cs) and not _rejoined(self, qos | (4 if retain else 0)):
            # offline
            if qos == 0 and (self.link or self.store):
                self.lost0 += 1  # QoS 0 is fire and forget: counted, not queued
                return
            if self.store is None and self.link is None:
                raise OSError(_ENOTCONN)
            self._queue(qos, retain, None)
        elif qos:
            _pub1(self, qos, retain)
        else:
            _send0(self, retain)

    def _ensure(self):
        # True when connected. With a link keeper, a reconnect starts when its backoff
        # allows and goes on in steps (Wi-Fi, TCP, TLS, CONNACK) within each call's budget
        if self.sock is not None and not self._cs:
            return True
        if self.link is None or not self._want or self._cn[_INCB]:
            return False  # (from the callback or a hook: no reconnect inside the call)
        # the message in hand (publish's): the hooks a reconnect runs (Link's on_change,
        # the log hook) may publish, and that takes the hand
        t = self._t
        m = self._m
        try:
            return self._rejoin()
        finally:
            # (also when the callback raised in the subscriptions made again: _steps)
            self._t = t
            self._m = m

    def _rejoin(self):
        lk = self.link
        self._cn[_CP] = None  # (the callback's exception, if _steps records one: _taken)
        try:
            if self.sock is None:
                if lk.due() > 0:
                    return False
                w = lk.wifi_step() if self.budget_ms is not None else lk.wifi()
                if w is None:
                    return False  # Wi-Fi is coming up: the next call goes on
                if not w:
                    raise OSError(_ENETUNREACH)
                # clean until connect(clean_session=True)'s clean start is made
                self._conn_start(self._cn[_CC], None)
            return self._steps(True)
        except (OSError, MQTTException, MemoryError) as e:
            # (MemoryError: a resume cut short goes with the link, as the asyncio
            # client's, no strike against a message; the keeper comes back with the session)
            if isinstance(e, MemoryError):
                self._cn[11] = e
            self._close()
            lk.failed(e)
            if self.store and self.store._taken(self._s):
                raise  # taken over by a later client (stored._mine): no reconnect ever
            return False

    def subscribe(self, topic, qos=0):
        # SUBSCRIBE (UNSUBSCRIBE: qos None), then packets are handled until its
        # acknowledgement, within timeout (then the link is dead). From the callback: the
        # change is recorded and made once the callback has returned (_msg), as waiting
        # here would hand the callback the next message while it runs. unsubscribe()
        # passes qos ...; None from the application is a bad qos
        if qos is ...:
            qos = None
        elif qos is None:
            raise err(14)  # qos must be 0, 1 or 2
        if self._cn[_INCB]:
            return self._mod("subs").later(self, topic, qos)
        if self.link and (self.sock is None or self._cs):
            if self.budget_ms is not None:  # a reconnect goes on within the call's budget
                self._bd = time.ticks_add(time.ticks_ms(), self.budget_ms)
            try:
                up = self._ensure()
            except BaseException:
                # the callback's, in the subscriptions the reconnect made again (_steps:
                # the connect is made): this change is owed all the same, then it goes on
                self._mod("subs").later(self, topic, qos)
                raise
            if not up:
                # offline with a keeper (or its reconnect still under way): recorded in
                # the session, made on the next connect
                return self._mod("subs").later(self, topic, qos)
        if self._todo and self.sock is not None:
            # changes the callback made while an earlier call waited (publish's wait for
            # its PUBACK): made first, in the order they were made. Left for the next
            # check_msg(), they came after this one (an unsubscribe undone)
            try:
                self._mod("subs").make(self, True, False)
            except (OSError, MQTTException):
                if self.link is None:
                    raise
                return self._mod("subs").later(self, topic, qos)  # the link went: owed
            except BaseException:
                self._mod("subs").later(self, topic, qos)  # the callback's (as above)
                raise
        topic = self._mod("ctl").sub_start(self, topic, qos)
        t0 = time.ticks_ms()
        try:
            while self._cn[13]:  # the SUBSCRIBE's packet ID
                left = self._tms - time.ticks_diff(time.ticks_ms(), t0)
                if left <= 0:
                    self._cn[15] = True
                    raise OSError(_ETIMEDOUT)
                _step(self, left)
        except OSError:
            self._lost(False)  # closed, logged, counted by the keeper; raised either way
            raise
        except MQTTException:
            raise  # the broker's (a refusal, a protocol error): nothing recorded, as before
        except BaseException:
            # the callback's, while the answer was awaited: the change is owed (recorded,
            # made by the next call: the same request again, its answer checked as in
            # subs.make), then it goes on
            self._mod("subs").later(self, topic, qos, True)
            raise
        self._mod("ctl").sub_end(self, topic, qos)

    def wait_msg(self):
        # blocks until a packet arrives; handles it and returns its type (umqtt's meaning).
        # With a link keeper it rides through outages, reconnecting as backoff allows.
        while True:
            op = self._msg(-1)
            if op is not None:
                return op

    def check_msg(self):
        # handles a packet if one is waiting; never blocks on an idle link (with a link
        # keeper, a reconnect goes on within the budget, or the timeouts without one)
        return self._msg(0)

    def _msg(self, ms):
        # one wait of up to ms (-1: until keepalive work is due) for a packet; None when
        # none was handled. Offline with a keeper, wait_msg (ms -1) sleeps until the next
        # reconnect attempt (at most 1 s).
        if self._cn[_INCB]:
            raise err(43)  # check_msg() and wait_msg() cannot run inside the callback
        if self.budget_ms is not None:  # the call's budget runs from now
            self._bd = time.ticks_add(time.ticks_ms(), self.budget_ms)
        if not self._ensure():
            if self.link is None:
                raise OSError(_ENOTCONN)
            if ms:
                ms = min(self.link.due(), 1000)
                time.sleep_ms(max(10, ms))
            return None
        try:
            ms = _step(self, ms)
            while self._todo and self.isconnected() and not self._cn[_INCB]:
                # subscriptions the callback changed (subscribe): made now, each waited
                # for (the callback may run meanwhile, and change more)
                self._mod("subs").make(self, True, False)
            return ms
        except OSError:
            if self._lost(self.link):
                raise
        return None

    def _lost(self, keep):
        # the link broke under a call: close; True when the call must raise (no keeper,
        # and nothing that makes the message durable without the link)
        self._close()
        c = self._cn
        # the broker's error that ended the link, else a deadline passed, else the
        # store's error if its last write failed (store._write), else a reset
        w = c[11] or (OSError(_ETIMEDOUT) if c[15] else
                      self.store and self.store._failed() or OSError(_ECONNRESET))
        c[15] = False
        if self.link:
            self.link.failed(w)
            if w.args[0] == 0x8E:
                self.link.delay = self.link.max_ms  # session taken over: do not fight for it
        self._log("link lost: %r", (w,))
        c[11] = None
        return not keep

    def _deliver(self, m):
        # the callback's exception goes on once its message is answered (as core's
        # _on_publish would after it): left unanswered, it would hold a place in the
        # broker's window until the next reconnect, and a callback that raised a few times
        # would stop the flow. (No "as e": that would take the frame past 11 words.)
        # While it runs no call reads input (_go, subscribe): that would hand it the next
        # message before it returned, and so on, as deep as messages keep coming. (m:
        # Core._deliver's; no local for _cn, or the frame would pass 11 words)
        self._cn[_INCB] = True
        try:
            Core._deliver(self, m)
        except OSError:
            # the link goes (wire._recv) as after a link failure, the node's own doing:
            # no strike against its message in flight (aside.struck; before, strikes=1
            # set it aside at once)
            self._cn[_INCB] = False
            self._mod("aside").raised(self)
            self._cn[11] = OSError(_ECONNRESET)
            self._cn[23] = False  # nor a subscription awaiting its answer (subs.struck)
            raise
        except BaseException:  # (KeyboardInterrupt, SystemExit too: _INCB must not stay)
            self._cn[_INCB] = False
            self._mod("aside").raised(self)
            raise
        self._cn[_INCB] = False

    def isconnected(self):
        return self.sock is not None and not self._cs


