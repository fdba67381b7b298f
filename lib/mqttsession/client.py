# MQTTClient: the blocking front end, a drop-in for umqtt.simple on the shared core.
from micropython import const
import time

from .packet import MQTTException
from .core import Core

_ENOTCONN = const(107)
_ETIMEDOUT = const(110)
_ENETUNREACH = const(113)
_PUBLISH = const(0x30)


class MQTTClient(Core):
    def _step(self, ms):
        # waits up to ms (-1: until keepalive work is due) for one packet and handles it;
        # returns the packet type, or None when nothing arrived
        if self.sock is None:
            raise OSError(_ENOTCONN)
        due = self._keepalive_due(time.ticks_ms())
        if due <= 0:
            self._send_ping()
            due = self._keepalive_due(time.ticks_ms())
        if self._ready(self._rx_ms(due if ms < 0 or ms > due else ms)) or \
                self._r1 != self._r0 or self._skip:
            return self._take()
        return None

    def _take(self):
        try:
            return self._recv()
        except OSError:
            self._close()
            raise

    def _ready(self, ms):
        for _ in self._poll.ipoll(ms):
            return True
        return False

    def _until(self, done, timeout):
        # handles packets until done() or timeout seconds pass (then the link is dead)
        t0 = time.ticks_ms()
        ms = int(timeout * 1000)
        while not done():
            left = ms - time.ticks_diff(time.ticks_ms(), t0)
            if left <= 0:
                self._close()
                raise OSError(_ETIMEDOUT)
            self._step(left)

    def connect(self, clean_session=True, timeout=None):
        if self.link:
            self._want = True  # from now on the keeper reconnects, even if this fails
        try:
            return self._connect(clean_session, timeout)
        except Exception:
            self._close()  # a failed connect leaves no socket open
            raise

    def _connect(self, clean_session, timeout):
        s = self._s
        if timeout is None:
            timeout = self.timeout
        self._conn_start(clean_session, int(timeout * 1000))
        while True:
            present = self._conn_step()
            if present is not None:
                break
            self._ready(self._conn_ms())
        if present and clean_session:
            present = 0  # a broker that ignored Clean Start: treat as a new session
        if present and self.store and s.fresh and self.version == 5:
            # [MQTT-3.2.2-4]: no local state for a session the broker kept: close, start clean
            self._close()
            return self._connect(True, timeout)
        self._resume(present, clean_session)
        if not present and not clean_session:
            # a new session at the broker: subscriptions first, so the node also hears
            # its own stored messages published again below
            for t, q in list(s.subs.items()):
                self.subscribe(t, q)
        self._pump()
        self._want = True
        if self.link:
            self.link.connected()
        return bool(present)

    def disconnect(self):
        self._bye()

    def ping(self):
        self._send_ping()

    def publish(self, topic, msg, retain=False, qos=0):
        self._check(self._topic(topic), self._payload(msg), qos)
        if self.sock is None and not self._ensure():
            return self._offline(qos, retain)
        if qos:
            return self._publish12(qos, retain)
        self._publish0(retain)

    def _publish0(self, retain):
        try:
            self._pub0(retain)
            if self._keepalive_due(time.ticks_ms()) <= 0:
                self._step(0)
        except OSError:
            if self._lost(self.link):
                raise

    def _offline(self, qos, retain):
        if qos == 0 and self.link:
            self.lost0 += 1  # QoS 0 is fire and forget: counted, not queued
            return
        if self.store is None and self.link is None:
            raise OSError(_ENOTCONN)
        self._queue(qos, retain, False)

    def _publish12(self, qos, retain):
        if self._room():
            self._sendwait(self._queue(qos, retain, True))
        else:
            self._queue(qos, retain, False)

    def _room(self):
        # waits for room in the window; False when the link broke meanwhile
        t0 = time.ticks_ms()
        try:
            while self._s.full() or self._s.nin >= self._quota:
                if time.ticks_diff(time.ticks_ms(), t0) > self._tms:
                    raise OSError(_ETIMEDOUT)  # no acknowledgement for too long: link down
                self._step(self._tms)
        except OSError:
            if self._lost(self.store or self.link):
                raise
            return False
        return True

    def _sendwait(self, k):
        # sends slot k; window=1 waits for its acknowledgement (umqtt's meaning). With a
        # store, a message still unacknowledged when this returns is in flash.
        seq = self._s.seq[k]
        self._sent(k)
        if self._s.fl[k] and self._s.seq[k] == seq and not self._s.durable(k):
            self._s._keep(k)

    def _sent(self, k):
        try:
            self._send_slot(k)
            self._acks(k)
        except OSError:
            if self._lost(self.store or self.link):
                raise

    def _acks(self, k):
        # window=1 waits for slot k's acknowledgement; a wider window takes what is there
        if self.window == 1:
            self._await(k, self._s.seq[k])
        elif self._ready(0):
            self._step(0)

    def _await(self, k, seq):
        s = self._s
        t0 = time.ticks_ms()
        while s.fl[k] and s.seq[k] == seq:
            left = self._tms - time.ticks_diff(time.ticks_ms(), t0)
            if left <= 0:
                raise OSError(_ETIMEDOUT)
            self._step(left)

    def _ensure(self):
        # True when connected; with a link keeper, reconnects when its backoff allows
        if self.sock is not None:
            return True
        lk = self.link
        if lk is None or not self._want or lk.due() > 0:
            return False
        try:
            if not lk.wifi():
                raise OSError(_ENETUNREACH)
            self.connect(False)
            return True
        except (OSError, MQTTException) as e:
            self._close()
            lk.failed(e)
            return False

    def subscribe(self, topic, qos=0):
        self._sub_call(topic, qos)

    def unsubscribe(self, topic):
        self._sub_call(topic, None)

    def _sub_call(self, topic, qos):
        topic = self._sub_start(topic, qos)
        self._until(lambda: self._sub == 0, self.timeout)
        self._sub_end(topic, qos)

    def wait_msg(self):
        # blocks until a packet arrives; handles it and returns its type (umqtt's meaning).
        # With a link keeper it rides through outages, reconnecting as backoff allows.
        while True:
            op = self._wait_one()
            if op is not None:
                return op

    def _wait_one(self):
        if self.sock is None and not self._ensure():
            if self.link is None:
                raise OSError(_ENOTCONN)
            self._pause()
            return None
        try:
            return self._step(-1)
        except OSError:
            if self._lost(self.link):
                raise
        return None

    def _pause(self):
        # offline with a keeper: sleep until the next reconnect attempt (at most 1 s)
        time.sleep_ms(max(10, min(self.link.due(), 1000)))

    def check_msg(self):
        # handles a packet if one is waiting; never blocks on an idle link (with a link
        # keeper, a due reconnect attempt is bounded by the timeouts)
        if self.sock is None and not self._reconnect():
            return None
        try:
            return self._step(0)
        except OSError:
            if self._lost(self.link):
                raise
        return None

    def _reconnect(self):
        if self._ensure():
            return True
        if self.link is None:
            raise OSError(_ENOTCONN)
        return False

    def isconnected(self):
        return self.sock is not None and not self._cs

    def pending(self):
        # QoS 1/2 messages accepted and not yet acknowledged (queued or in flight)
        return self._s.pending()
