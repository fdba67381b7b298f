"""The fault rig's connections: modes, timeline entries, and the per-connection forwarding
(accept, connect upstream, read, hold, flush, close) run on the proxy's thread."""

from __future__ import annotations

import errno
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

MODES = ("pass", "blackhole", "refuse", "down", "stall", "throttle")
CUT_KINDS = ("reset", "blackhole", "refuse", "down", "stall")

_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE
_CHUNK = 65536
_CALL_TIMEOUT = 5.0
_TIMELINE_MAX = 100_000


class Event(NamedTuple):
    """One timeline entry: ``t`` from ``time.monotonic()``, ``event`` a short string."""

    t: float
    event: str


class Cut(NamedTuple):
    """One cut made by ``CutSchedule``: when it started and how long the link stayed down."""

    kind: str
    start: float
    down: float


class Step(NamedTuple):
    """One script step: a mode (or ``reset``), an optional rate, and how long to hold it."""

    mode: str
    rate: float | None
    seconds: float


def _abort(sock: socket.socket) -> None:
    """Close with an RST instead of a FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def _nodelay(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass


class _Bucket:
    """Token bucket for ``throttle``."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.burst = max(1, min(int(rate / 10), _CHUNK))
        self.tokens = float(self.burst)
        self.last = time.monotonic()

    def refill(self, now: float) -> None:
        self.tokens = min(float(self.burst), self.tokens + (now - self.last) * self.rate)
        self.last = now


class _Conn:
    """One proxied connection: the device leg (client) and the broker leg (upstream)."""

    def __init__(self, cid: int, client: socket.socket) -> None:
        self.id = cid
        self.client = client
        self.upstream: socket.socket | None = None
        self.connecting = False
        self.to_up = bytearray()
        self.to_down = bytearray()
        self.client_eof = False
        self.upstream_eof = False
        self.up_shut = False
        self.down_shut = False
        self.black = False
        self.closed = False
        self.masks: dict[socket.socket, int] = {}


class _Command:
    def __init__(self, fn: Callable[[], None]) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.error: BaseException | None = None


class _Pump:
    """Forwarding for FaultProxy (a part of it, see faultrig_proxy): every method runs on
    the proxy's thread."""

    def _accept(self) -> None:
        lst = self._listener
        assert lst is not None
        for _ in range(256):
            try:
                sock, peer = lst.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO):
                    continue
                return
            if not self._listening:
                self.refused += 1
                self._log("refused")
                _abort(sock)
                continue
            self.accepted += 1
            sock.setblocking(False)
            _nodelay(sock)
            conn = _Conn(self._next_id, sock)
            self._next_id += 1
            self._conns[conn.id] = conn
            self._log(f"connect #{conn.id} from {peer[1]}")
            if self._mode == "blackhole":
                conn.black = True
            else:
                self._connect_upstream(conn)

    def _connect_upstream(self, conn: _Conn) -> None:
        up = socket.socket(self._target_family, socket.SOCK_STREAM)
        up.setblocking(False)
        _nodelay(up)
        conn.upstream = up
        err = up.connect_ex(self._target_addr)
        if err in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY):
            conn.connecting = True
        elif err != 0:
            self._upstream_failed(conn, err)

    def _upstream_failed(self, conn: _Conn, err: int) -> None:
        self.upstream_failures += 1
        self._log(f"upstream-fail #{conn.id} {errno.errorcode.get(err, str(err))}")
        self._close(conn, abort=True, quiet=True)

    def _close(self, conn: _Conn, *, abort: bool, quiet: bool = False) -> None:
        if conn.closed:
            return
        conn.closed = True
        self._conns.pop(conn.id, None)
        self.closed_connections += 1
        for sock, mask in conn.masks.items():
            if mask and self._sel is not None:
                try:
                    self._sel.unregister(sock)
                except (KeyError, ValueError):
                    pass
        conn.masks.clear()
        for sock in (conn.client, conn.upstream):
            if sock is None:
                continue
            if abort:
                _abort(sock)
            else:
                sock.close()
        if not quiet:
            self._log(f"{'abort' if abort else 'close'} #{conn.id}")

    def _set_mask(self, conn: _Conn, sock: socket.socket, mask: int) -> None:
        cur = conn.masks.get(sock, 0)
        if mask == cur or self._sel is None:
            return
        if cur == 0:
            self._sel.register(sock, mask, conn)
        elif mask == 0:
            self._sel.unregister(sock)
        else:
            self._sel.modify(sock, mask, conn)
        conn.masks[sock] = mask

    def _may_write(self, direction: str, pending: int, now: float) -> tuple[int, float | None]:
        """How many bytes may go out now, and if none, how long until some may."""
        if self._mode == "stall":
            return 0, None
        if self._mode != "throttle":
            return pending, None
        bucket = self._buckets[direction]
        bucket.refill(now)
        need = min(pending, bucket.burst)
        if bucket.tokens >= need:
            return min(pending, int(bucket.tokens)), None
        return 0, (need - bucket.tokens) / bucket.rate

    def _refresh_all(self) -> float | None:
        now = time.monotonic()
        timeout: float | None = 1.0
        for conn in list(self._conns.values()):
            wait = self._refresh(conn, now)
            if wait is not None:
                timeout = wait if timeout is None else min(timeout, wait)
        return timeout

    def _refresh(self, conn: _Conn, now: float) -> float | None:
        """Update selector interest for one connection; returns a throttle wait, if any."""
        cap = self.max_buffer
        wait: float | None = None
        mask = 0
        if not conn.client_eof and (conn.black or len(conn.to_up) < cap):
            mask |= _READ
        if conn.to_down and not conn.black:
            allowed, w = self._may_write("down", len(conn.to_down), now)
            if allowed:
                mask |= _WRITE
            wait = w
        self._set_mask(conn, conn.client, mask)
        if conn.upstream is not None:
            mask = 0
            if conn.connecting:
                mask = _WRITE
            else:
                if not conn.upstream_eof and (conn.black or len(conn.to_down) < cap):
                    mask |= _READ
                if conn.to_up and not conn.black:
                    allowed, w = self._may_write("up", len(conn.to_up), now)
                    if allowed:
                        mask |= _WRITE
                    if w is not None:
                        wait = w if wait is None else min(wait, w)
            self._set_mask(conn, conn.upstream, mask)
        return wait

    def _ready(self, conn: _Conn, sock: socket.socket, mask: int) -> None:
        if conn.closed:
            return
        if sock is conn.upstream and conn.connecting:
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._upstream_failed(conn, err)
                return
            conn.connecting = False
            self._flush(conn, upstream=True)
        else:
            if mask & _READ:
                self._read(conn, sock)
            if not conn.closed and mask & _WRITE:
                self._flush(conn, upstream=sock is conn.upstream)
        if not conn.closed:
            self._settle(conn)

    def _peer_reset(self, conn: _Conn, from_client: bool) -> None:
        if conn.black:
            # Swallowed: the other side must not learn anything.
            if from_client:
                conn.client_eof = True
            else:
                conn.upstream_eof = True
            return
        self._log(f"abort #{conn.id} by {'client' if from_client else 'upstream'}")
        self._close(conn, abort=True, quiet=True)

    def _read(self, conn: _Conn, sock: socket.socket) -> None:
        from_client = sock is conn.client
        try:
            data = sock.recv(_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._peer_reset(conn, from_client)
            return
        if not data:
            if from_client:
                conn.client_eof = True
            else:
                conn.upstream_eof = True
            return
        if conn.black:
            if from_client:
                self.dropped_up += len(data)
            else:
                self.dropped_down += len(data)
            return
        # Forward at once rather than waiting for the next select round.
        if from_client:
            conn.to_up.extend(data)
            self._flush(conn, upstream=True)
        else:
            conn.to_down.extend(data)
            self._flush(conn, upstream=False)

    def _flush(self, conn: _Conn, *, upstream: bool) -> None:
        if conn.black or conn.closed:
            return
        if upstream:
            sock, buf, direction = conn.upstream, conn.to_up, "up"
            if sock is None or conn.connecting:
                return
        else:
            sock, buf, direction = conn.client, conn.to_down, "down"
        if not buf:
            return
        allowed, _ = self._may_write(direction, len(buf), time.monotonic())
        if not allowed:
            return
        try:
            sent = sock.send(buf[: min(allowed, 4 * _CHUNK)])
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._peer_reset(conn, from_client=not upstream)
            return
        del buf[:sent]
        if self._mode == "throttle":
            self._buckets[direction].tokens -= sent
        if upstream:
            self.bytes_up += sent
        else:
            self.bytes_down += sent

    def _settle(self, conn: _Conn) -> None:
        """Pass on FINs once the data before them is delivered; close finished connections."""
        if conn.black:
            if conn.client_eof and (conn.upstream is None or conn.upstream_eof):
                self._close(conn, abort=False)
            return
        if self._mode == "stall":
            return
        up = conn.upstream
        if conn.client_eof and not conn.to_up and not conn.up_shut and up is not None:
            if not conn.connecting:
                try:
                    up.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                conn.up_shut = True
        if conn.upstream_eof and not conn.to_down and not conn.down_shut:
            try:
                conn.client.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            conn.down_shut = True
        if conn.up_shut and conn.down_shut:
            self._close(conn, abort=False)
