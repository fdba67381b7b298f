# socket for the plain Raspberry Pi Pico (RPI_PICO: no radio, no socket module): one TCP
# connection at a time, carried over a UART by a bridge on the other end of the wires
# (tools/pico/pico.mjs does it for the emulated board). The library imports this module
# as `socket` and runs unchanged.
#   UART0 (GP0/GP1): the stream, both ways.
#   UART1 (GP4/GP5), board to bridge: b"C<host>:<port>\n" connect, b"X" close;
#                    bridge to board: b"O" connected, b"E" + one errno byte, b"H" the
#                    peer closed (sent after all its data went out on UART0).
# Blocking, timeout and non-blocking modes as a socket: readinto/write return None when
# they would block; connect raises EINPROGRESS when non-blocking, and POLLOUT says done.
import io
import time

import machine
import select
from micropython import const

AF_INET = const(2)
SOCK_STREAM = const(1)
IPPROTO_TCP = const(6)
SOL_SOCKET = const(1)
SO_REUSEADDR = const(4)
TCP_NODELAY = const(1)

_EMFILE = const(24)
_ECONNRESET = const(104)
_EISCONN = const(106)
_ENOTCONN = const(107)
_ETIMEDOUT = const(110)
_EINPROGRESS = const(115)
_POLLIN = const(1)
_POLLOUT = const(4)
_POLLERR = const(8)
_POLLHUP = const(16)
_RXBUF = const(2048)  # a packet up to this size is taken in one readinto

_NEW = const(0)
_OPENING = const(1)
_UP = const(2)
_EOF = const(3)  # the peer closed; what it sent before is still readable
_FAILED = const(4)
_CLOSED = const(5)

_u0 = None
_u1 = None
_p = None  # polls both UARTs: the wait for data or control bytes
_owner = None  # the socket that holds the link
_b = bytearray(16)


def _uarts():
    global _u0, _u1, _p
    if _u0 is None:
        P = machine.Pin
        _u0 = machine.UART(0, 921600, tx=P(0), rx=P(1), rxbuf=_RXBUF, timeout=0, timeout_char=1)
        _u1 = machine.UART(1, 115200, tx=P(4), rx=P(5), timeout=0, timeout_char=1)
        _p = select.poll()
        _p.register(_u0, select.POLLIN)
        _p.register(_u1, select.POLLIN)


def _drain():
    # drops what a closed connection left on both UARTs
    while _u0.any():
        _u0.readinto(_b)
    while _u1.any():
        _u1.readinto(_b)


def _left(t0, to):
    # ms left of timeout to (ms; None: no limit -> -1)
    if to is None:
        return -1
    return max(0, to - time.ticks_diff(time.ticks_ms(), t0))


def getaddrinfo(host, port, af=0, type=0, proto=0, flags=0):
    # the bridge resolves the name
    return [(AF_INET, SOCK_STREAM, IPPROTO_TCP, "", (host, port))]


class socket(io.IOBase):
    def __init__(self, af=AF_INET, type=SOCK_STREAM, proto=IPPROTO_TCP):
        _uarts()
        self._st = _NEW
        self._err = 0
        self._to = None  # ms; None blocks, 0 never waits

    def settimeout(self, t):
        self._to = None if t is None else int(t * 1000)

    def setblocking(self, flag):
        self._to = None if flag else 0

    def setsockopt(self, *a):
        pass

    def _ctl(self):
        # takes the bridge's control bytes
        while self is _owner and _u1.any():
            _u1.readinto(_b, 1)
            c = _b[0]
            if self._err < 0:
                self._err = c  # the errno byte after b"E"
            elif c == 79 and self._st == _OPENING:  # O
                self._st = _UP
            elif c == 72:  # H
                if self._st == _UP:
                    self._st = _EOF
                elif self._st == _OPENING:
                    self._st = _FAILED
                    self._err = _ECONNRESET
            elif c == 69:  # E
                self._st = _FAILED
                self._err = -1

    def connect(self, addr):
        global _owner
        if self._st != _NEW:
            raise OSError(_EISCONN)
        if _owner is not None:
            raise OSError(_EMFILE)  # one connection at a time over the UART
        _drain()
        _owner = self
        self._st = _OPENING
        _u1.write("C%s:%d\n" % (addr[0], addr[1]))
        if self._to == 0:
            raise OSError(_EINPROGRESS)
        t0 = time.ticks_ms()
        while self._st == _OPENING or self._err < 0:
            self._ctl()
            if not (self._st == _OPENING or self._err < 0):
                break
            w = _left(t0, self._to)
            if w == 0:
                raise OSError(_ETIMEDOUT)
            for _ in _p.ipoll(w):
                break
        if self._st == _FAILED:
            raise OSError(self._err)

    def _check(self):
        # state after the control bytes: raises for a socket that cannot move data
        self._ctl()
        st = self._st
        if st == _FAILED:
            raise OSError(self._err or _ECONNRESET)
        if st == _NEW or st == _CLOSED:
            raise OSError(_ENOTCONN)
        return st

    def readinto(self, buf, n=-1):
        if n < 0 or n > len(buf):
            n = len(buf)
        if n > _RXBUF and self._to != 0:
            return self._readall(buf, n)
        t0 = time.ticks_ms()
        while True:
            a = _u0.any() if self is _owner else 0
            if a >= n or (a and (self._to == 0 or self._st == _EOF)):
                return _u0.readinto(buf, a if a < n else n)
            st = self._check()
            if st == _EOF:
                if _u0.any():
                    continue
                return 0
            if self._to == 0:
                return None
            w = _left(t0, self._to)
            if w == 0:
                if a:
                    return _u0.readinto(buf, a)
                raise OSError(_ETIMEDOUT)
            for _ in _p.ipoll(w):
                break

    def _readall(self, buf, n):
        # a read larger than the UART's buffer, in pieces (allocates a view per piece)
        mv = memoryview(buf)
        got = 0
        t0 = time.ticks_ms()
        while got < n:
            a = _u0.any() if self is _owner else 0
            if a:
                got += _u0.readinto(mv[got:], min(a, n - got))
                t0 = time.ticks_ms()
                continue
            if self._check() == _EOF and not _u0.any():
                break
            w = _left(t0, self._to)
            if w == 0:
                if got:
                    break
                raise OSError(_ETIMEDOUT)
            for _ in _p.ipoll(w):
                break
        return got

    def write(self, buf, off=-1, n=-1):
        # write(buf), write(buf, n) or write(buf, off, n), as a stream's write
        if n < 0:
            n = len(buf) if off < 0 else off
            off = 0
        if self._st == _OPENING and self._to == 0:
            self._ctl()
            if self._st == _OPENING:
                return None
        if self._check() != _UP:
            raise OSError(_ECONNRESET)  # the peer closed
        w = _u0.write(buf, off, n) or 0
        if self._to == 0:
            return w or None
        t0 = time.ticks_ms()
        while w < n:
            if _left(t0, self._to) == 0:
                if w:
                    return w
                raise OSError(_ETIMEDOUT)
            w += _u0.write(buf, off + w, n - w) or 0
        return w

    def ioctl(self, req, arg):
        if req == 3:  # MP_STREAM_POLL
            self._ctl()
            st = self._st
            r = 0
            if st == _FAILED:
                r = _POLLERR | _POLLHUP | (arg & (_POLLIN | _POLLOUT))
            elif st == _EOF:
                r = _POLLHUP | (arg & _POLLIN)
            elif st == _UP:
                r = arg & _POLLOUT
                if arg & _POLLIN and self is _owner and _u0.any():
                    r |= _POLLIN
            return r
        if req == 4:  # MP_STREAM_CLOSE
            self.close()
            return 0
        return -1

    def close(self):
        global _owner
        if self is _owner:
            _u1.write(b"X")
            _drain()
            _owner = None
        self._st = _CLOSED
