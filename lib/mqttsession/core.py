# The protocol core shared by the blocking and asyncio front ends: one socket, one
# preallocated receive buffer, one transmit buffer, packets handled one at a time.
# It never waits on its own for a packet to start: the front ends decide how to wait.
from micropython import const
from array import array
import socket
import time

from . import packet as P
from .packet import MQTTException
from .session import Session, SENT, REL, PID

# packet types and reason codes, as local constants so they fold at compile time
_PUBLISH = const(0x30)
_PUBACK = const(0x40)
_PUBREC = const(0x50)
_PUBREL = const(0x60)
_PUBCOMP = const(0x70)
_SUBACK = const(0x90)
_UNSUBACK = const(0xB0)
_PINGREQ = const(0xC0)
_PINGRESP = const(0xD0)
_DISCONNECT = const(0xE0)
_CONNACK = const(0x20)
_MALFORMED = const(0x81)
_PROTOCOL_ERROR = const(0x82)
_TOO_LARGE = const(0x95)
_ENOTCONN = const(107)
_ETIMEDOUT = const(110)
_ECONNRESET = const(104)
_EINPROGRESS = const(115)
_POLLIN = const(1)
_POLLOUT = const(4)


class Core:
    def __init__(self, client_id, server, port=0, user=None, password=None, keepalive=0,
                 ssl=None, version=4, store=None, window=1, max_packet=1024, tx_size=256,
                 timeout=10, expiry=None, queue=16, link=None, full="error"):
        if version not in (4, 5):
            raise ValueError("version must be 4 (MQTT 3.1.1) or 5")
        if not 0 <= keepalive < 65536:
            raise ValueError("keepalive must be 0 to 65535 seconds")
        if not 0 < window < 65536:
            raise ValueError("window must be 1 to 65535")
        if max_packet < 64 or tx_size < 32:
            raise ValueError("max_packet must be >= 64 and tx_size >= 32")
        self.server = server
        self.port = port or (8883 if ssl else 1883)
        self.user = self._bytes(user, "user")
        self.pswd = self._bytes(password, "password")
        if version == 4 and password is not None and user is None:
            raise ValueError("password needs user with MQTT 3.1.1 [MQTT-3.1.2-22]")
        self.keepalive = keepalive
        self.ssl = ssl
        self.version = version
        self.window = window
        self.timeout = timeout
        self._tms = int(timeout * 1000)
        self.expiry = expiry
        self.store = store
        if link is True:
            from .link import Link

            link = Link()
        self.link = link  # a link.Link: ride through outages, reconnect with backoff
        if full not in ("error", "drop_oldest"):
            raise ValueError("full must be 'error' or 'drop_oldest'")
        self.full = full
        self.lost0 = 0  # QoS 0 messages published while the link was down
        self._want = False  # connected on purpose: the keeper may reconnect
        if store is None:
            if client_id is None:
                raise ValueError("client_id None needs a store")
            s = Session(self._bytes(client_id, "client_id"), server, max(window, queue))
        elif client_id is not None and not len(client_id):
            if version != 5:
                raise ValueError("client_id '' (a null session) needs version=5")
            s = store.null_session(server, capacity=max(window, queue))
        else:
            s = store.get(server, client_id, capacity=max(window, queue))
        if len(s.client_id) > 65535:
            raise ValueError("client_id longer than 65535 bytes")
        self._s = s
        self.cb = None
        self._raw = False
        self._topics = [b""] * 8  # recent incoming topics, for raw callbacks
        self._ti = 0
        self.lw = None
        self.sock = None
        self._poll = None
        self._cs = 0  # connect step: 1 TCP, 2 TLS and CONNECT, 3 CONNACK; 0 none under way
        self._r0 = self._r1 = self._skip = 0
        self._hold = False
        self._p0 = self._rt = 0
        self._rx = bytearray(max_packet)
        self._tx = bytearray(tx_size)
        self._ab = bytearray(4)  # acknowledgements, so they never clobber _tx
        self._pf = array("i", (0, 0, 0, 1 if version == 5 else 0))  # publish_fields
        self._t = self._m = self._pt = self._pm = None  # messages in hand (see _check)
        self._rem = 0
        self._ts = None  # last str topic and its encoding
        self._tb = None
        self._sub = 0  # packet ID of the SUBSCRIBE/UNSUBSCRIBE awaiting its ack
        self._subrc = -1
        self._ping = 0  # ticks when an unanswered PINGREQ went out, 0 if none
        self._ltx = self._lrx = 0
        self._quota = window  # lowered to the broker's Receive Maximum (MQTT 5)
        self._maxout = 268435460  # broker's Maximum Packet Size
        self.dropped = 0  # stored messages a later broker refused as too large
        self.ka = keepalive  # keepalive in force (MQTT 5 Server Keep Alive may change it)

    @property
    def client_id(self):
        c = self._s.client_id
        return c.decode() if isinstance(c, bytes) else c

    @staticmethod
    def _bytes(v, name):
        if v is None or isinstance(v, (bytes, bytearray)):
            return v
        if isinstance(v, str):
            return v.encode()
        raise TypeError(name + " must be str or bytes")

    def _topic(self, t):
        # topics as bytes; a repeated str topic object is encoded once (no allocation)
        if isinstance(t, str):
            if t is not self._ts:
                self._tb = t.encode()
                self._ts = t
            return self._tb
        if isinstance(t, bytes) or isinstance(t, bytearray):
            return t
        raise TypeError("topic must be str or bytes")

    @staticmethod
    def _payload(m):
        if isinstance(m, bytes) or isinstance(m, bytearray) or isinstance(m, memoryview):
            return m
        if isinstance(m, str):
            return m.encode()
        raise TypeError("msg must be bytes, bytearray, memoryview or str")

    def set_callback(self, f, raw=False):
        # f(topic, msg) with both as bytes, as umqtt; raw=True: f(topic, buf, start, end)
        # with the payload in buf[start:end], valid during the call, and topic a bytes
        # object reused for a repeated topic: receiving then allocates nothing
        self.cb = f
        self._raw = raw

    def set_last_will(self, topic, msg, retain=False, qos=0):
        topic = self._topic(topic)
        P.check_topic(topic)
        P.check_qos(qos)
        self.lw = (bytes(topic), bytes(self._payload(msg)), retain, qos)

    # --- connection ---
    # A connect is a series of non-blocking steps under one deadline (timeout): the front
    # end calls _conn_start(clean), then _conn_step() each time the socket is ready (see
    # _conn_ms for how long to wait; _poll is registered for what the step needs) until
    # it returns Session Present. Every failure closes the socket.
    def _conn_start(self, clean, tms=None):
        self._close()
        self._dl = time.ticks_add(time.ticks_ms(), self._tms if tms is None else tms)
        self._cb = self._connect_packet(clean)  # bad arguments fail before the socket
        self._co = 0
        # DNS blocks in MicroPython: resolved once per attempt (a numeric address is quick)
        ai = socket.getaddrinfo(self.server, self.port, 0, socket.SOCK_STREAM)[0]
        s = socket.socket(ai[0], socket.SOCK_STREAM, ai[2])
        self.sock = s
        self._cs = 1
        try:
            s.setblocking(False)
            try:
                s.connect(ai[-1])
            except OSError as e:
                if e.errno != _EINPROGRESS:
                    raise
            try:
                s.setsockopt(6, 1, 1)  # TCP_NODELAY: a packet is one write, send it now
            except (OSError, AttributeError):
                pass
            import select

            self._poll = select.poll()
            self._poll.register(s, _POLLOUT)
        except Exception:
            self._close()
            raise

    def _conn_ms(self):
        # ms left for the connect under way
        return max(0, time.ticks_diff(self._dl, time.ticks_ms()))

    def _conn_step(self):
        # None while the connect is under way; Session Present (0/1) once CONNACK accepted
        try:
            if self._cs == 1:
                self._tcp_up()
            if self._cs == 2:
                self._send_connect()
            if self._cs == 3:
                self._recv()
            if not self._cs:
                return self._cp
            if not self._conn_ms():
                raise OSError(_ETIMEDOUT)
        except Exception:
            self._close()
            raise
        return None

    def _tcp_up(self):
        # TCP connect finished (the socket is writable; a refusal shows on the first write)
        for _ in self._poll.ipoll(0):
            self._cs = 2
            if self.ssl:
                self._tls()
            return

    def _tls(self):
        ctx = self.ssl
        if ctx is True:
            import ssl

            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.verify_mode = ssl.CERT_NONE
        # The handshake is not done here: MicroPython's ssl (mbedTLS, unix port 1.29 too)
        # with do_handshake_on_connect=False runs it inside the first writes on the
        # non-blocking socket, each returning None (EAGAIN) until it is done, and its poll
        # reports readiness in the direction the handshake needs next. Certificate
        # failures surface there as OSError or ValueError.
        s = ctx.wrap_socket(self.sock, server_hostname=self.server,
                            do_handshake_on_connect=False)
        self._poll.unregister(self.sock)
        self.sock = s
        self._poll.register(s, _POLLOUT)

    def _send_connect(self):
        buf, n = self._cb
        w = self.sock.write(buf, self._co, n - self._co)
        if w:
            self._co += w
        if self._co >= n:
            self._cs = 3
            self._cb = None
            self._ltx = time.ticks_ms()
            self._poll.modify(self.sock, _POLLIN)

    def _connect_packet(self, clean):
        s = self._s
        cid = s.client_id
        exp = 0
        if self.version == 5:
            # like 3.1.1: a session asked to persist lives until the next clean start
            exp = self.expiry if self.expiry is not None else (
                0xFFFFFFFF if self.store or not clean else 0)
        self._exp = exp
        buf = self._tx
        need = 40 + len(cid) + sum(len(x) for x in (self.user or b"", self.pswd or b""))
        if self.lw:
            need += len(self.lw[0]) + len(self.lw[1])
        if need > len(buf):
            buf = bytearray(need)  # a long will or credentials: once per connect
        return buf, P.connect(buf, cid, clean, self.keepalive, self.version, self.user,
                              self.pswd, self.lw, exp, 32, len(self._rx))

    def _close(self):
        if self.link and self.sock:
            self.link.lost()
        if self.sock:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None
        self._poll = None
        self._ping = 0
        self._cs = 0
        self._r0 = self._r1 = self._skip = 0
        self._hold = False

    # --- output ---
    # The publish and receive paths are split into small functions and keep the message
    # in hand in self._t/_m/_rem: a frame larger than 11 words would be allocated on the
    # heap at every call (tools/frames.py lists them).
    def _write(self, buf, n):
        # the whole packet in one write; a partial one continues in _write_rest. On
        # OSError the front end closes the socket (see _lost).
        if self.sock is None:
            raise OSError(_ENOTCONN)
        w = self.sock.write(buf, n)
        if w != n:
            self._write_rest(buf, n, w or 0)
        self._ltx = time.ticks_ms()

    def _write_rest(self, buf, n, w):
        # the socket took part of the packet: the rest goes as it drains, within timeout
        t0 = time.ticks_ms()
        while w < n:
            left = self._tms - time.ticks_diff(time.ticks_ms(), t0)
            if left <= 0:
                raise OSError(_ETIMEDOUT)
            self._wait_out(left)
            w += self.sock.write(buf, w, n - w) or 0

    def _wait_out(self, ms):
        # until the socket takes more output, at most ms: the one place a write waits.
        # Blocking by default; a front end with its own loop may replace it.
        p = self._poll
        p.modify(self.sock, _POLLOUT)
        try:
            p.poll(ms)
        finally:
            p.modify(self.sock, _POLLIN)

    def _lost(self, keep):
        # the link broke under a call: close; True when the call must raise (no keeper,
        # and nothing that makes the message durable without the link)
        self._close()
        if self.link:
            self.link.failed(OSError(_ECONNRESET))
        return not keep

    def _ack(self, first, pid):
        self._write(self._ab, P.ack(self._ab, first, pid))

    # Two messages in hand, kept on the client so the frames stay small: _t/_m is the one
    # the caller is publishing; _pt/_pm/_rem the one going on the wire now (the caller's,
    # or a queued one that a resend loads), so a resend never clobbers the caller's.
    def _check(self, topic, msg, qos):
        # validates the caller's message and takes it in hand
        P.check_topic(topic)
        P.check_qos(qos)
        self._t = topic
        self._m = msg
        self._hand(qos)
        if self._rem + 5 > self._maxout:
            raise MQTTException(_TOO_LARGE, "message exceeds the broker's maximum packet size")

    def _hand(self, qos):
        # the caller's message goes on the wire next
        self._pt = self._t
        self._pm = self._m
        self._size(qos)

    def _size(self, qos):
        n = P.publish_size(len(self._pt), len(self._pm), qos, self.version)
        self._rem = n
        if len(self._pt) + 10 > len(self._tx):
            self._tx = bytearray(len(self._pt) + 64)  # a topic longer than tx_size: once

    def _pub0(self, retain):
        # QoS 0 of the caller's message (a reconnect may have sent others since _check)
        self._hand(0)
        self._pub(_PUBLISH | (1 if retain else 0), 0)

    def _pub(self, first, pid):
        # PUBLISH of the packet in hand: header and payload in one write when they fit
        i = P.publish_header(self._tx, first, self._pt, pid, self._rem)
        if self.version == 5:
            self._tx[i] = 0  # no properties: full topic names, no alias
            i += 1
        self._body(i)

    def _body(self, i):
        tx = self._tx
        m = self._pm
        n = i + len(m)
        if n <= len(tx):
            tx[i:n] = m
            self._write(tx, n)
        else:
            self._write(tx, i)
            self._write(m, len(m))

    def _send_slot(self, k):
        # (re)send ring slot k: PUBLISH with DUP when resent, or PUBREL once released
        s = self._s
        if not s.fl[k] & PID:
            s.assign(k)
        f = s.fl[k]
        s.fl[k] = f | SENT
        if f & REL:
            self._ack(0x62, s.ids[k])
        elif self._load(k):
            self._pub(_PUBLISH | (8 if f & SENT else 0) | (f & 3) << 1 | (f >> 2 & 1), s.ids[k])

    def _load(self, k):
        # puts slot k's message on the wire next; False when this broker never takes it
        s = self._s
        if s.top[k] is None:
            self._pt, self._pm = s.load(k)
        else:
            self._pt = s.top[k]
            self._pm = s.msg[k]
        self._size(s.fl[k] & 3)
        if self._rem + 5 <= self._maxout:
            return True
        # stored under a broker that allowed it; this one never will: give it up
        self.dropped += 1
        s.drop(k)
        return False

    def _queue(self, qos, retain, online):
        # takes the message in hand into the session; returns its slot. QoS 2 gets its
        # packet ID when online, and with a store a QoS 2 or offline message is in flash
        # before this returns (so a resend after a reboot carries the ID the broker knows)
        if self._s.full():
            if self.full != "drop_oldest" or not self._drop_oldest():
                raise OSError(105, "session queue full")
        k = self._s.add(self._t, self._m, qos, retain)
        if not online or qos == 2:
            self._durable(k, online)
        return k

    def _durable(self, k, online):
        s = self._s
        try:
            if online:
                s.assign(k)
            s._keep(k)
        except OSError:
            s.pop_tail()  # not accepted: the session stays as it was
            raise

    def _drop_oldest(self):
        # queue-full policy "drop_oldest": the oldest message not yet on the wire goes
        s = self._s
        for k in s.live():
            if not s.fl[k] & PID:  # no packet ID: the broker never saw it
                s.drop(k)
                self.dropped += 1
                return True
        return False

    def _pump(self):
        # send queued messages while the in-flight window has room, in order
        s = self._s
        if not s.nq or self.sock is None:
            return
        for i in range(s.n):
            if s.nin >= self._quota:
                return
            k = s.slot(i)
            f = s.fl[k]
            if f and not f & PID:
                self._send_slot(k)

    def _sub_start(self, topic, qos):
        # sends SUBSCRIBE (qos 0-2) or UNSUBSCRIBE (qos None); returns the filter. The
        # front end waits until _sub is 0, then calls _sub_end.
        topic = bytes(self._topic(topic))
        P.check_filter(topic)
        if qos is not None:
            P.check_qos(qos)
        if self.sock is None:
            raise OSError(_ENOTCONN)
        buf = self._tx if len(topic) + 16 <= len(self._tx) else bytearray(len(topic) + 16)
        pid = self._s.next_pid()
        if qos is None:
            n = P.unsubscribe(buf, pid, topic, self.version)
        else:
            n = P.subscribe(buf, pid, topic, qos, self.version)
        self._sub = pid
        self._subrc = -1
        try:
            self._write(buf, n)
        except OSError:
            self._close()
            raise
        return topic

    def _sub_end(self, topic, qos):
        rc = self._subrc
        if qos is None:
            self._s.unsub(topic)
            if rc >= 0x80 and self.version == 5:
                raise MQTTException(rc, "unsubscribe refused")
        elif rc >= 0x80:
            raise MQTTException(rc, "subscription refused")
        else:
            self._s.sub(topic, qos)

    def _bye(self):
        # DISCONNECT and close; a link keeper does not reconnect after this
        self._want = False
        if self.sock:
            try:
                self._write(self._ab, P.disconnect(self._ab, self.version))
            except OSError:
                pass
        self._close()

    # --- input ---
    # The socket is non-blocking. _rx[_r0:_r1] holds what arrived and is not handled
    # yet; one read takes whatever has arrived and every whole packet in it is handled.
    # A packet must be whole within timeout of its first byte (_p0). A packet larger
    # than _rx keeps its first bytes (to acknowledge it) and the rest is dropped as it
    # arrives (_skip bytes to go), then it is refused with 0x95.
    def _recv(self):
        # handles the whole packets buffered, else reads once and handles those; returns
        # the type of the last packet handled, or None. OSError: the link is broken (the
        # caller closes); MQTTException: the connection is closed, except for a refused
        # oversized packet.
        if self.sock is None:
            raise OSError(_ENOTCONN)
        self._large = False
        try:
            return self._recv1()
        except MQTTException:
            if not self._large:
                self._fail(None)  # the broker broke the protocol: end the connection
            raise

    def _recv1(self):
        t = self._parse()
        if t is None and self._fill():
            t = self._parse()
        if (self._r1 != self._r0 or self._skip) and time.ticks_diff(
                time.ticks_ms(), self._p0) >= self._tms:
            raise OSError(_ETIMEDOUT)  # a packet started and did not end in time
        return t

    def _rx_ms(self, ms):
        # ms to wait for input, bounded by the deadline of a packet that has started
        if self._hold:
            return 0  # whole packets left in the buffer
        if self._r1 == self._r0 and not self._skip:
            return ms
        return min(ms, max(0, self._tms - time.ticks_diff(time.ticks_ms(), self._p0)))

    def _fill(self):
        # one read of whatever has arrived, into the free part of _rx; the number of
        # bytes (0: nothing yet)
        r1 = self._r1
        if self._r0 == r1:
            # empty: read to the front (no memoryview, so no allocation)
            self._r0 = self._r1 = r1 = 0
            n = self.sock.readinto(self._rx)
            new = not self._skip
        else:
            if r1 == len(self._rx):
                r1 = self._compact()
            n = self.sock.readinto(memoryview(self._rx)[r1:])
            new = False
        if n is None:
            return 0
        if not n:
            raise OSError(_ECONNRESET)
        now = time.ticks_ms()
        if new:
            self._p0 = now
        self._rt = self._lrx = now
        self._r1 = r1 + n
        return n

    def _compact(self):
        # moves the partial packet at _r0 to the front of _rx; returns its end
        r0 = self._r0
        n = self._r1 - r0
        if r0:
            self._rx[0:n] = memoryview(self._rx)[r0 : r0 + n]
        self._r0 = 0
        self._r1 = n
        return n

    def _parse(self):
        # handles every whole packet in the buffer, stopping after a CONNACK (the session
        # resumes before what follows it); returns the last type handled or None
        t = None
        while True:
            if self._skip and not self._discard():
                return t
            n = self._whole()
            if not n:
                self._hold = False
                return t
            self._hold = True
            i = self._r0
            self._r0 = i + n  # consumed before handling: an exception leaves it handled
            self._p0 = self._rt
            self._n = i + n
            t = self._handle(self._rx[i], i + self._hl)
            if t == _CONNACK:
                return t

    def _whole(self):
        # size of the packet at _r0 when all of it is buffered, else 0
        i = self._r0
        if i + 2 > self._r1:
            return 0
        n = self._rx[i + 1]
        if n & 0x80:
            n = self._varlen(i)
        else:
            self._hl = 2
            n += 2
        if n > len(self._rx):
            return self._oversize(n)
        if not n or i + n > self._r1:
            return 0
        return n

    def _varlen(self, i):
        # total size of the packet at i from its multi-byte remaining length; 0 while
        # the length is incomplete
        rx = self._rx
        j = i + 1
        n = sh = 0
        while True:
            if j >= self._r1:
                return 0
            c = rx[j]
            n |= (c & 0x7F) << sh
            j += 1
            if not c & 0x80:
                break
            sh += 7
            if sh > 21:
                raise MQTTException(_MALFORMED, "bad remaining length")
        self._hl = j - i
        return n + j - i

    def _oversize(self, n):
        # a packet of n bytes that _rx cannot hold: keep its first len(_rx) bytes (the
        # topic and packet ID of a PUBLISH), then drop the rest as it arrives
        if self._cs:
            raise MQTTException(_TOO_LARGE, "CONNACK exceeds max_packet")
        rx = self._rx
        if self._compact() < len(rx):
            return 0
        first = rx[0]
        pid = 0
        if first & 0xF0 == _PUBLISH and first & 6:
            j = self._hl + 2 + (rx[self._hl] << 8 | rx[self._hl + 1])
            if j + 2 <= len(rx):
                pid = rx[j] << 8 | rx[j + 1]
        self._big = (first, pid, n)
        self._skip = n - len(rx)
        self._r0 = self._r1 = 0
        return 0

    def _discard(self):
        # drops buffered bytes of an oversized packet; once it has all gone, acknowledges
        # it (the broker would redeliver it forever) and refuses it
        k = min(self._skip, self._r1 - self._r0)
        self._r0 += k
        self._skip -= k
        if self._skip:
            return False
        self._p0 = self._rt
        first, pid, n = self._big
        self._large = True
        if pid and first & 6:
            if first & 4:
                self._s.rx2_add(pid)  # QoS 2: recorded as today, so a resend is not delivered
                self._ack(_PUBREC, pid)
            else:
                self._ack(_PUBACK, pid)
        raise MQTTException(_TOO_LARGE, "incoming packet of %d bytes exceeds max_packet" % n)

    def _handle(self, first, i):
        # one packet, its body in _rx[i:_n]; returns its type
        self._i = i
        if self._cs:
            return self._on_connack(first)
        t = first & 0xF0
        if t == _PUBLISH:
            self._on_publish(first)
        elif first == _PUBACK or first == _PUBREC or first == _PUBCOMP:
            self._on_ack(t)
        elif first == _PINGRESP:
            self._ping = 0
        elif first == 0x62:
            self._on_ack(t)
        else:
            self._on_other(first)
        return t

    # Malformed packets raise MQTTException here; the front end ends the connection
    # (_packet) for all but a refused oversized packet.
    def _on_publish(self, first):
        if first & 6 == 6:
            raise MQTTException(_MALFORMED, "PUBLISH QoS 3")
        P.publish_fields(self._rx, self._n, first, self._pf, self._i)
        if first & 4:
            # QoS 2: recorded (in flash with a store) before delivery and PUBREC
            if self._s.rx2_add(self._pf[1]):
                self._deliver()
            self._ack(_PUBREC, self._pf[1])
        else:
            self._deliver()
            if first & 2:
                self._ack(_PUBACK, self._pf[1])

    def _on_ack(self, t):
        r = P.ack_fields(self._rx, self._n, self.version, self._i)
        if t == _PUBREL:
            self._s.rx2_del(r & 0xFFFF)
            self._ack(_PUBCOMP, r & 0xFFFF)
        elif t == _PUBREC and r >> 16 < 0x80:
            k = self._s.acked(r & 0xFFFF, True)
            if k >= 0:
                self._send_slot(k)  # PUBREL
        else:
            # PUBACK, PUBCOMP, or a PUBREC refusing the message (MQTT 5): it ends here
            self._s.acked(r & 0xFFFF, False)
            self._pump()

    def _on_other(self, first):
        t = first & 0xF0
        v = self.version
        if first == _SUBACK or first == _UNSUBACK:
            d = P.decode(first, self._rx[self._i : self._n], v)
            if d[1] == self._sub:
                self._sub = 0
                self._subrc = d[2][0] if d[2] else 0
            return
        if first == _DISCONNECT and v == 5:
            self._close()
            rx = self._rx
            raise MQTTException(rx[self._i] if self._n > self._i else 0,
                                "disconnected by the broker")
        why = "bad flags" if t in (_PUBACK, _PUBREC, _PUBCOMP, _PUBREL, _PINGRESP) else \
            "unexpected packet"
        raise MQTTException(_MALFORMED if why[0] == "b" else _PROTOCOL_ERROR,
                            "%s 0x%02x" % (why, first))

    def _fail(self, e):
        # a protocol violation by the broker ends the connection (MQTT 5 says why)
        if self.sock and self.version == 5:
            try:
                self._write(self._ab, P.disconnect(self._ab, 5, e.args[0] if e else _MALFORMED))
            except OSError:
                pass
        self._close()
        return e

    def _deliver(self):
        if self.cb is not None:
            if self._raw:
                self._deliver_raw()
            else:
                pf = self._pf
                self.cb(bytes(self._rx[self._i + 2 : pf[0]]), bytes(self._rx[pf[2] : self._n]))

    def _deliver_raw(self):
        t = self._intern(self._pf[0] - self._i - 2)
        self.cb(t, self._rx, self._pf[2], self._n)

    def _intern(self, n):
        # the incoming topic (n bytes after the body's length field) as a bytes object,
        # reusing a recent equal one
        for j in range(8):
            t = self._topics[j]
            if len(t) == n and self._same(t, n):
                return t
        t = bytes(self._rx[self._i + 2 : self._i + 2 + n])
        self._topics[self._ti] = t
        self._ti = (self._ti + 1) & 7
        return t

    def _same(self, t, n):
        rx = self._rx
        b = self._i + 2
        i = 0
        while i < n and t[i] == rx[b + i]:
            i += 1
        return i == n

    def _on_connack(self, first):
        self._cp = self._connack(first)
        self._cs = 0
        return _CONNACK

    def _connack(self, first):
        # returns Session Present; raises MQTTException on refusal
        if first != _CONNACK:
            raise self._fail(MQTTException(_PROTOCOL_ERROR, "expected CONNACK"))
        try:
            d = P.decode(first, self._rx[self._i : self._n], self.version)
        except MQTTException as e:
            raise self._fail(e)
        if d[2]:
            self._close()
            raise MQTTException(d[2], "connection refused")
        pr = d[3]
        if pr.get(P.P_RECEIVE_MAX) == 0 or pr.get(P.P_MAX_PACKET) == 0:
            raise self._fail(MQTTException(_PROTOCOL_ERROR, "Receive Maximum or Maximum "
                                           "Packet Size of 0 in CONNACK"))
        s = self._s
        if P.P_ASSIGNED_ID in pr:
            s.client_id = pr[P.P_ASSIGNED_ID]
        self._quota = min(self.window, pr.get(P.P_RECEIVE_MAX, 65535))
        self._maxout = pr.get(P.P_MAX_PACKET, 268435460)
        self.ka = pr.get(P.P_SERVER_KEEPALIVE, self.keepalive)
        return d[1]

    def _resume(self, present, clean):
        # after CONNACK: put the session back on the wire
        s = self._s
        if clean:
            s.clear()
        s.restart(present)
        s.version = self.version
        s.expiry = self._exp
        s.connected()
        if present:
            for i in range(s.n):
                k = s.slot(i)
                if s.fl[k] & PID:
                    self._send_slot(k)

    def _keepalive_due(self, now):
        # ms until a PINGREQ is due (<= 0: now), or a large number without keepalive
        ka = self.ka * 750  # ping at 3/4 keepalive; no answer by 1.5x means the link is dead
        if not ka or self.sock is None:
            return 60000
        if self._ping:
            left = ka - time.ticks_diff(now, self._ping)
            if left <= 0:
                self._close()
                raise OSError(_ETIMEDOUT)
            return left
        return ka - max(time.ticks_diff(now, self._ltx), time.ticks_diff(now, self._lrx))

    def _send_ping(self):
        self._ab[0] = _PINGREQ
        self._ab[1] = 0
        self._write(self._ab, 2)
        self._ping = time.ticks_ms() or 1
