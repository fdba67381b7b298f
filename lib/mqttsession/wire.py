# The transport half of the protocol core (core.Core builds on it): the connect steps,
# the incremental receive path and the write path, each step under one deadline. The
# front ends drive it with
#   _conn_start(clean, ms) (ms None: timeout), then _conn_step() whenever the socket may
#     be ready (_poll is registered for the direction the step needs; wait at most until
#     the deadline _cn[_DL]) until it returns Session Present; every failure closes the
#     socket and raises;
#   _recv() when the socket is readable, or at once while _hold (whole packets are
#     buffered): handles the buffered whole packets, else reads once and handles every
#     whole packet that arrived; returns the last packet type or None. A packet that has
#     started (_r0 != _r1 or _skip) must end within timeout of its first byte (_p0): wait
#     no longer, else OSError(ETIMEDOUT);
#   _wait_out(): the front end's, called when the socket did not take a whole packet
#     (the rest waits in _ob); it waits, or its loop calls _flush() as the socket drains;
#   _keepalive(ping) between reads: PINGREQ when due, and the link declared dead when
#     no answer came.
# Core supplies _mod (the modules ctl.py: connect_packet, aside.py: a broker's faults),
# _handle (one packet) and _ack.
from micropython import const
# builtins the publish and receive path calls, as names of this module: a builtin is
# looked up in the module's dictionary first (a miss, probed to an empty slot) and then
# among the builtins; imported, it is one hit
from builtins import len
import socket
import time

from .packet import MQTTException, err

_PUBACK = const(0x40)
_CONNACK = const(0x20)
_PINGREQ = const(0xC0)
_SSL = const(2)  # in _cn (args.py)
_DL = const(5)
_CB = const(7)
_CO = const(8)
_PRE = const(21)
_WHY = const(11)
_LARGE = const(12)
_LATE = const(15)
_AGAIN = const(16)
_HEAD = const(17)
_INCB = const(18)  # in _cn: application code the client called is running
_RAW = const(22)
_MALFORMED = const(0x81)
_ENOTCONN = const(107)
_ETIMEDOUT = const(110)
_ECONNRESET = const(104)
_EINPROGRESS = const(115)
_ECONNABORTED = const(103)
_ENOBUFS = const(105)
_POLLIN = const(1)
_POLLOUT = const(4)
_warned = False  # the warning about a TLS context that does not verify: once


# --- the hot path, module functions (a method call would first miss in the instance's
# attribute table, nearly full by design and probed to an empty slot on every miss) ---
# The socket is non-blocking. _rx[_r0:_r1] holds what arrived and is not handled yet; one
# read takes whatever has arrived and every whole packet in it is handled. A packet must
# be whole within timeout of its first byte (_p0). A packet larger than _rx is dropped as
# it arrives (_skip bytes to go), its packet ID kept as it passes (to acknowledge it),
# then it is refused with 0x95 (aside.py).


def _write(w, buf, n):
    # the whole packet in one write. What the socket does not take waits in _ob (a copy:
    # the caller reuses its buffer; it allocates, but only while the socket is full) and
    # goes out as the socket drains, in order, within timeout (the front end's
    # _wait_out). On OSError the front end closes the socket (see _lost).
    s = w.sock
    if s is None:
        raise OSError(_ENOTCONN)
    k = 0
    if not w._ob:
        k = s.write(buf, n) or 0
    if k != n:
        _hold(w, buf, k, n)
        w._wait_out()
    w._ltx = time.ticks_ms()


def _hold(w, buf, k, n):
    # buf[k:n] waits in _ob (apart from _write: a handler makes a frame larger than 11
    # words, taken from the heap at every call of the publish path's _write)
    try:
        if w._ob:
            w._ob += memoryview(buf)[k:n]
        else:
            w._ot = time.ticks_ms()
            w._cn[_HEAD] = n - k  # (see _flush)
            w._ob = bytearray(memoryview(buf)[k:n])
            w._cn[_AGAIN] = n - k  # the rest of the write the socket did not take (_flush)
    except MemoryError:
        # no heap for what waits: part of a packet may be on the wire already, so the
        # connection goes (the front end closes it on OSError), never cut
        raise OSError(105)  # ENOBUFS


def _recv(w):
    # handles the whole packets buffered, else reads once and handles those; returns the
    # type of the last packet handled, or None. OSError: the link is broken (and closed
    # here); MQTTException: the connection is closed, except for a refused oversized
    # packet. (Two locals at most: with the handlers, the frame stays within 11 words, on
    # the C stack; a larger one is allocated on the heap at every call: tools/frames.py)
    try:
        if w.sock is None:
            raise OSError(_ENOTCONN)
        # whole packets may wait in the buffer (_hold), or the rest of one that started
        if w._r1 != w._r0 or w._skip:
            t = _parse(w)
            # the rest of a packet that has started: all that has arrived (a fill takes
            # at most len(_tx)), while the blocking client's budget lasts and within the
            # packet's deadline (checked below): a broker that keeps the socket full with
            # an oversized packet (up to 256 MB) kept this loop reading past it. The
            # asyncio reader (_rd not None) takes one fill per call: the loop runs between
            while t is None and w._fill():
                t = _parse(w)
                if w._rd is not None or time.ticks_diff(time.ticks_ms(), w._p0) >= w._tms:
                    break
                if w.budget_ms is not None and time.ticks_diff(w._bd, time.ticks_ms()) <= 0:
                    break
        else:
            # the buffer is empty (the usual case): one read to its front, as _fill. A
            # read asks for the whole buffer and the stream layer reads again until it is
            # full or nothing is left (a second system call, that finds nothing). When
            # only acknowledgements can come (MQTT 3.1.1, no callback: 4 bytes each), it
            # asks for those in flight: usually exactly what has arrived, in one call
            w._hold = False  # as _parse finds: no whole packet buffered
            t = w._s.nin
            if t and w.cb is None and w.version == 4 and 4 * t < len(w._rx):
                t = w.sock.readinto(w._rx, 4 * t)
            else:
                t = w.sock.readinto(w._rx)
            if t is None:
                if (w._s.nq or w._s.more) and not w._cs:
                    w._pump()  # room a handler that raised left unused (see below)
                return None
            if not t:
                raise OSError(_ECONNRESET)
            if t == 4 and w._rx[0] == _PUBACK and w._rx[1] == 2:
                # one whole PUBACK and nothing else (the usual answer at window 1):
                # handled as _parse would, without its loop. The buffer stays empty
                # (_r0 == _r1, read before), and nothing follows that would need the
                # times _p0 and _rt
                w._n = 4
                w._lrx = time.ticks_ms()
                w._handle(_PUBACK, 2)
                if w._s.nq:
                    w._pump()  # (as below)
                return _PUBACK
            w._r0 = 0
            w._r1 = t
            w._p0 = w._rt = w._lrx = time.ticks_ms()
            t = _parse(w)
        if (w._r1 != w._r0 or w._skip) and time.ticks_diff(
                time.ticks_ms(), w._p0) >= w._tms:
            w._cn[_LATE] = True
            raise OSError(_ETIMEDOUT)  # a packet started and did not end in time
        if (w._s.nq or w._s.more) and not w._cs and t != _CONNACK:
            # acknowledgements made room: the messages queued behind go out once all that
            # arrived is handled, together in one write (Core._pump), or at the next call
            # when a handler raised; after a CONNACK the session resumes first
            # (ctl.resume), which sends them
            w._pump()
        return t
    except OSError:
        w._close()
        raise
    except MemoryError:
        # no heap while a packet was handled or the queue pumped (a store's read or
        # write after an acknowledgement, a batch of PUBLISHes half made): what that left
        # half done goes with the link, as the asyncio reader's, and the resume sends
        # again what is in flight. Left up, an acknowledgement whose handling was taken
        # back never came again, nor did a PUBLISH the pump marked sent and never wrote:
        # the window stayed short of them for good. A link failure (OSError ENOBUFS),
        # the node's own: no strike against a message (aside.struck)
        raise w._noheap()
    except MQTTException:
        if w._cn[_LARGE]:
            w._cn[_LARGE] = False
            raise  # a refused oversized packet (the connection stays up), a refused CONNECT
        # the broker broke the protocol: the connection ends (aside.broke: with a keeper
        # and after the connect, as a link failure); with no heap for aside.py's code,
        # as any MemoryError here
        t = w._aside()
        if t is None:
            raise w._noheap()
        t.broke(w)
        raise


def _parse(w):
    # handles every whole packet in the buffer, stopping after a CONNACK (the session
    # resumes before what follows it) or when the blocking client's budget is spent;
    # returns the last type handled or None
    t = None
    rx = w._rx
    while True:
        if w._skip and not w._mod("aside").discard(w):
            return t
        i = w._r0
        if i + 2 > w._r1:
            break
        n = rx[i + 1]
        if n & 0x80:
            n = w._varlen(i)  # 0 while incomplete; sets _hl
        else:
            w._hl = 2
            n += 2
        if n > len(rx):
            n = w._mod("aside").oversize(w, n)  # a broker's fault: see aside.py
        if not n or i + n > w._r1:
            break
        w._hold = True
        w._r0 = i + n  # consumed before handling: an exception leaves it handled
        w._p0 = w._rt
        w._n = i + n
        t = w._handle(rx[i], i + w._hl)
        if w._r0 < w._r1 and (t == _CONNACK or w.budget_ms is not None and
                              time.ticks_diff(w._bd, time.ticks_ms()) <= 0):
            return t  # the rest waits (_hold): the blocking client's budget is spent
    w._hold = False
    return t


def _hook(f, m, a):
    # the log hook, given line m % a: what it raises is printed and goes no further, as
    # Link's on_change (it runs inside the client's connect, close and resume, which must
    # finish either way). No heap for the line (or in the hook): not logged (raised, it
    # ended the asyncio reader from inside its link failure, and the keeper with it).
    # Apart from _log: a try there takes its frame past 11 words
    try:
        f(m % a)
    except MemoryError:
        pass
    except Exception as e:
        print("mqttsession: log hook raised %r" % (e,))


class Wire:
    # the blocking client's budget per call (client.py: it ends at _bd); None, and always
    # in the asyncio front end: no budget
    budget_ms = None
    _rd = None  # the asyncio reader's (aio.py: False or True), None in the blocking client
    _write = _write  # also a method, for the rarer paths (ctl.py, aside.py)

    # --- connection: non-blocking steps under one deadline (timeout) ---
    def _conn_start(self, clean, ms):
        self._close()
        c = self._cn
        c[_DL] = time.ticks_add(time.ticks_ms(), self._tms if ms is None else ms)
        # bad arguments fail before the socket
        c[_CB] = self._mod("ctl").connect_packet(self, clean)
        c[_WHY] = None
        if self.store:
            self.store._failed()  # a store error from before this connect is not its cause
        c[_LATE] = False
        c[_CO] = 0
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

    def _conn_step(self):
        # None while the connect is under way; Session Present (0/1) once CONNACK accepted.
        # _cs 1: the TCP connect finished once the socket is writable (a refusal shows on
        # the first write); 2: CONNECT goes out, in parts if the socket takes it so;
        # 3: CONNACK is read (_recv)
        c = self._cn
        try:
            if self._cs == 1:
                for _ in self._poll.ipoll(0):
                    self._cs = 2
                    ctx = c[_SSL]
                    if ctx:
                        # The handshake is not done here: MicroPython's ssl (mbedTLS;
                        # checked on the unix port 1.29) with do_handshake_on_connect=False
                        # runs it inside the first writes on the non-blocking socket, each
                        # returning None (EAGAIN) until it is done, and its poll reports
                        # readiness in the direction the handshake needs next. Each step
                        # still computes (certificate checks: about 7 ms on a PC, more on a
                        # board). Certificate failures surface in those writes as OSError
                        # or ValueError; the TLS socket closed after that leaves the
                        # TCP socket open (closed with it: _close)
                        c[_RAW] = self.sock
                        s = ctx.wrap_socket(self.sock, server_hostname=self.server,
                                            do_handshake_on_connect=False)
                        self._poll.unregister(self.sock)
                        self.sock = s
                        self._poll.register(s, _POLLOUT)
                    break
            if self._cs == 2:
                if c[_PRE] is None:  # every subscription owed first (ctl.connect_packet)
                    self._mod("ctl").pre_owe(self)
                buf, n = c[_CB]
                w = self.sock.write(buf, c[_CO], n - c[_CO])
                if w:
                    c[_CO] += w
                if c[_CO] >= n:
                    self._cs = 3
                    c[_CB] = None
                    self._ltx = time.ticks_ms()
                    self._poll.modify(self.sock, _POLLIN)
            if self._cs == 3:
                _recv(self)
            if not self._cs:
                return c[6]  # Session Present
            if time.ticks_diff(c[_DL], time.ticks_ms()) <= 0:
                raise OSError(_ETIMEDOUT)
        except ValueError as e:
            self._close()
            if not c[_SSL]:
                raise
            # a certificate the client refuses (mbedTLS raises ValueError for some): a
            # link failure like any other, so a keeper backs off and tries again
            raise OSError(_ECONNABORTED, "TLS: %s" % e)
        except Exception:
            self._close()
            raise
        return None

    def _close(self):
        s = self.sock
        # the broker may be refusing a message by closing (aside.struck, below)
        k = s and not self._cs and self._want and self._s.nin and not self._cn[_WHY]
        if s:
            try:
                s.close()
                if self._cn[_RAW]:
                    self._cn[_RAW].close()
            except OSError:
                pass
            self._cn[_RAW] = None
        self.sock = None
        self._poll = None
        self._ping = 0
        self._cs = 0
        self._r0 = self._r1 = self._skip = 0
        self._hold = False
        self._ob = None  # output the socket has not taken yet
        self._cn[_AGAIN] = 0
        # the application's hooks last (on_aside, Link's on_change): they may call into
        # the client, which finds the link closed (called before, a publish there used
        # the dying socket, closed it again: a second strike, a second failure counted),
        # and queues: no reconnect starts from inside them (_INCB, client._ensure: one
        # did, before the keeper's backoff was set, and one loss counted as several)
        if k or self.link and s:
            c = self._cn
            b = c[_INCB]
            c[_INCB] = True
            try:
                if k:
                    k = self._aside()  # (no heap for its code: no strike)
                    if k:
                        k.struck(self)  # (on_aside, its record: may raise)
            finally:
                try:
                    if self.link and s:
                        self.link.lost()  # (on_change's exceptions stop in Link._tell)
                finally:
                    # (also when on_change raised KeyboardInterrupt or SystemExit, which
                    # come out of the call: left set, every later check_msg() raised
                    # RuntimeError as from inside the callback, for good)
                    c[_INCB] = b

    def _aside(self):
        # aside.py, or None when there is no heap for its code. (Its MemoryError, raised
        # while the link fails, came out of the call in the failure's place, with a keeper
        # too, after publish() had taken its message: published again, it went twice)
        try:
            return self._mod("aside")
        except MemoryError:
            return None

    def _noheap(self):
        # no heap while input was handled: the link closes, a link failure (OSError
        # ENOBUFS) of the node's own, returned for the caller to raise
        self._cn[_WHY] = e = OSError(_ENOBUFS)
        self._close()
        return e

    def _log(self, m, a):
        # the log hook: formatted only when there is one
        if self.log:
            _hook(self.log, m, a)

    def _keepalive(self, ping):
        # sends PINGREQ when due, at 3/4 keepalive (ping: now); no answer by 1.5x means
        # the link is dead (closed, OSError). Returns ms until it is due again, or a large
        # number without keepalive
        ka = self.ka * 750
        if ka and self.sock is not None:
            if self._ping:
                ka -= time.ticks_diff(time.ticks_ms(), self._ping)
                if ka <= 0:
                    self._close()
                    self._cn[_LATE] = True
                    raise OSError(_ETIMEDOUT)
            else:
                ka -= max(time.ticks_diff(time.ticks_ms(), self._ltx),
                          time.ticks_diff(time.ticks_ms(), self._lrx))
            if ka > 0 and not ping:
                return ka
        elif not ping:
            return 60000
        self._ab[0] = _PINGREQ
        self._ab[1] = 0
        self._write(self._ab, 2)
        self._ping = time.ticks_ms() or 1
        return self.ka * 750 or 60000

    # --- output the socket did not take at once (_write keeps it in _ob) ---
    def _flush(self):
        # writes what waits in _ob; True once all of it is out. OSError(ETIMEDOUT) when
        # the output that was waiting at _ot is not out within timeout of it: the broker
        # stopped reading (once it is out, the clock starts again for what waits then: a
        # slow link that keeps taking output is not dead, and no packet waits longer than
        # twice timeout). The rest of a write the socket did not take whole is asked for
        # again with its length (_cn[_AGAIN]): TLS has made its record of those bytes
        # already, and sends that one record whatever is passed then, counting it as
        # all that was passed (mbedTLS's ssl_write contract; a write larger than a record
        # may send whole records and stop at the next one)
        c = self._cn
        n = c[_AGAIN] or len(self._ob)
        w = self.sock.write(self._ob, n)
        if w:
            c[_AGAIN] = n - w
            self._ob[:w] = b""  # in place: a copy of the rest would fragment a small heap
            c[_HEAD] -= w
            if c[_HEAD] <= 0:
                self._ot = time.ticks_ms()
                c[_HEAD] = len(self._ob)
        else:
            c[_AGAIN] = n
        if not self._ob:
            self._ob = None
            return True
        if time.ticks_diff(time.ticks_ms(), self._ot) >= self._tms:
            self._cn[_LATE] = True
            raise OSError(_ETIMEDOUT)
        return False

    def _fill(self):
        # one read of whatever has arrived, into the free part of _rx; the number of
        # bytes (0: nothing yet)
        r1 = self._r1
        if self._r0 == r1:
            # empty: read to the front
            self._r0 = self._r1 = r1 = 0
            n = self.sock.readinto(self._rx)
            if n and not self._skip:
                self._p0 = time.ticks_ms()  # a packet starts
        else:
            # the rest of a packet that has started: read into the front of the transmit
            # buffer (free between writes) and copied behind it, byte by byte. A memoryview
            # of _rx's free part would be a new object at every such read: garbage on a
            # link that splits packets, and a MemoryError with the heap locked
            if r1 == len(self._rx):
                # full: the partial packet at _r0 moves to the front
                n = self._r0
                r1 -= n
                for i in range(r1):
                    self._rx[i] = self._rx[n + i]
                self._r0 = 0
                self._r1 = r1
            n = self.sock.readinto(self._tx, min(len(self._tx), len(self._rx) - r1))
            if n:
                for i in range(n):
                    self._rx[r1 + i] = self._tx[i]
        if n is None:
            return 0
        if not n:
            raise OSError(_ECONNRESET)
        self._rt = self._lrx = time.ticks_ms()
        self._r1 = r1 + n
        return n

    def _varlen(self, i):
        # total size of the packet at i from its multi-byte remaining length (sets _hl,
        # the header's length); 0 while the length is incomplete. Apart from _parse, whose
        # frame stays small: it runs for every packet, this for large ones only
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
                raise err(20, _MALFORMED)  # bad remaining length
        self._hl = j - i
        return n + j - i
