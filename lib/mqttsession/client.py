# MQTTClient: the blocking front end, a drop-in for umqtt.simple on the shared core.
from micropython import const
import time

from . import packet as P
from .packet import MQTTException
from .core import Core

_ENOTCONN = const(107)
_ETIMEDOUT = const(110)
_ENOBUFS = const(105)
_ENETUNREACH = const(113)
_TOO_LARGE = const(0x95)


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
        for _ in self._poll.ipoll(due if ms < 0 or ms > due else ms):
            return self._handle(self._read_packet())
        return None

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
        s = self._s
        if timeout is None:
            timeout = self.timeout
        self._close()
        self._open()
        buf, n = self._connect_packet(clean_session)
        self._write(buf, n)
        t0 = time.ticks_ms()
        while True:
            left = timeout * 1000 - time.ticks_diff(time.ticks_ms(), t0)
            if left <= 0 or not any(True for _ in self._poll.ipoll(left)):
                self._close()
                raise OSError(_ETIMEDOUT)
            present = self._connack(self._read_packet())
            break
        if present and clean_session:
            present = 0  # a broker that ignored Clean Start: treat as a new session
        if present and self.store and s.fresh and self.version == 5:
            # [MQTT-3.2.2-4]: no local state for a session the broker kept: close, start clean
            self._close()
            return self.connect(True, timeout)
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
        self._want = False  # a link keeper does not reconnect after this
        if self.sock:
            try:
                self._write(self._ab, P.disconnect(self._ab, self.version))
            except OSError:
                pass
        self._close()

    def ping(self):
        self._send_ping()

    def publish(self, topic, msg, retain=False, qos=0):
        topic = self._topic(topic)
        P.check_topic(topic)
        P.check_qos(qos)
        msg = self._payload(msg)
        self._check_size(topic, msg, qos)
        if not self._ensure():
            if qos == 0 and self.link:
                self.lost0 += 1  # QoS 0 is fire and forget: counted, not queued
                return
            if self.store is None and self.link is None:
                raise OSError(_ENOTCONN)
            self._queue(topic, msg, qos, retain, self.sock is not None)
            return
        if qos == 0:
            try:
                self._publish0(topic, msg, retain)
                if self._keepalive_due(self._ltx) <= 0:
                    self._step(0)
            except OSError as e:
                self._down(e, self.link)
            return
        s = self._s
        try:
            while s.full() or s.inflight() >= self._quota:
                self._step(self._tms)  # room in the window first
        except OSError as e:
            self._down(e, self.store or self.link)
            self._queue(topic, msg, qos, retain, self.sock is not None)
            return
        k = self._queue(topic, msg, qos, retain, self.sock is not None)
        seq = s.seq[k]
        try:
            self._send_slot(k)
            if self.window == 1:
                # umqtt's meaning: wait for the acknowledgement (no closure: no allocation)
                t0 = time.ticks_ms()
                while s.fl[k] and s.seq[k] == seq:
                    left = self._tms - time.ticks_diff(time.ticks_ms(), t0)
                    if left <= 0:
                        raise OSError(_ETIMEDOUT)
                    self._step(left)
                return
            for _ in self._poll.ipoll(0):
                self._handle(self._read_packet())
        except OSError as e:
            self._down(e, self.store or self.link)
        if s.fl[k] and s.seq[k] == seq and not s.durable(k):
            s._keep(k)  # still unacknowledged: flash holds it until the broker does

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

    def _down(self, e, keep):
        # the link broke: with a keeper (or a store holding the message) carry on
        self._close()
        if not keep:
            raise e
        if self.link:
            self.link.failed(e)

    def _sub_wait(self, pid, n, buf):
        self._sub = pid
        self._subrc = -1
        self._write(buf, n)
        self._until(lambda: self._sub == 0, self.timeout)
        return self._subrc

    def subscribe(self, topic, qos=0):
        topic = bytes(self._topic(topic))
        P.check_filter(topic)
        P.check_qos(qos)
        if self.sock is None:
            raise OSError(_ENOTCONN)
        buf = self._tx if len(topic) + 16 <= len(self._tx) else bytearray(len(topic) + 16)
        pid = self._s.next_pid()
        rc = self._sub_wait(pid, P.subscribe(buf, pid, topic, qos, self.version), buf)
        if rc >= 0x80:
            raise MQTTException(rc, "subscription refused")
        self._s.sub(topic, qos)

    def unsubscribe(self, topic):
        topic = bytes(self._topic(topic))
        P.check_filter(topic)
        if self.sock is None:
            raise OSError(_ENOTCONN)
        buf = self._tx if len(topic) + 16 <= len(self._tx) else bytearray(len(topic) + 16)
        pid = self._s.next_pid()
        rc = self._sub_wait(pid, P.unsubscribe(buf, pid, topic, self.version), buf)
        self._s.unsub(topic)
        if rc >= 0x80 and self.version == 5:
            raise MQTTException(rc, "unsubscribe refused")

    def wait_msg(self):
        # blocks until a packet arrives; handles it and returns its type (umqtt's meaning).
        # With a link keeper it rides through outages, reconnecting as backoff allows.
        while True:
            if not self._ensure():
                if self.link is None:
                    raise OSError(_ENOTCONN)
                time.sleep_ms(max(10, min(self.link.due(), 1000)))
                continue
            try:
                op = self._step(-1)
            except OSError as e:
                self._down(e, self.link)
                continue
            if op is not None:
                return op

    def check_msg(self):
        # handles a packet if one is waiting; never blocks on an idle link (with a link
        # keeper, a due reconnect attempt is bounded by the timeouts)
        if not self._ensure():
            if self.link is None:
                raise OSError(_ENOTCONN)
            return None
        try:
            return self._step(0)
        except OSError as e:
            self._down(e, self.link)
            return None

    def isconnected(self):
        return self.sock is not None

    def pending(self):
        # QoS 1/2 messages accepted and not yet acknowledged (queued or in flight)
        return self._s.pending()
