"""Fault rig: a scriptable TCP proxy on loopback that breaks the link on demand.

Put it between a device (a MicroPython process) and a broker::

    with FaultProxy("127.0.0.1", broker_port) as proxy:
        connect_device_to(proxy.port)
        proxy.set_mode("blackhole")   # or proxy.blackhole()
        ...
        proxy.forward()               # back to "pass"
        print(format_timeline(proxy.timeline(), proxy.started_at))

Modes (``set_mode``), each switchable at any time:

``pass``
    Forward bytes immediately, both ways (TCP_NODELAY on both legs).
``blackhole``
    A half-open link. Every existing connection is blackholed for good: bytes, FIN and
    resets from either side are swallowed, so the device sees silence, never a reset.
    New connections are accepted but the proxy does not connect upstream, so the broker
    sees nothing. A user-space proxy cannot hold back TCP acknowledgements, so the dropped
    bytes are lost rather than retransmitted later: a blackholed connection keeps dropping
    after the mode returns to ``pass``, and only new connections recover. That is what a
    device meets when its keepalive gives up on a dead link and it reconnects.
``refuse``
    New connections are refused by the kernel (ECONNREFUSED, as when the broker is down):
    the listening socket stops listening but keeps its port. Existing connections go on.
    Where the kernel cannot do that, the proxy accepts and resets at once instead.
``down``
    ``refuse`` plus a reset of every existing connection (Wi-Fi or broker gone).
``stall``
    Hold bytes, forward nothing (FIN included), until the mode leaves ``stall``; then
    deliver what was held, in order. Up to ``max_buffer`` bytes per direction and
    connection are read ahead; beyond that TCP flow control stalls the sender.
``throttle``
    Forward at ``rate`` bytes per second in each direction (one token bucket per direction,
    shared by all connections, with a burst of 0.1 s).

``reset()`` (also ``set_mode("reset")``) is an action, not a mode: it aborts every current
connection on both legs at once with an RST (SO_LINGER 0) and leaves the mode unchanged.

An RST from one side of a forwarded connection is passed on to the other side as an RST.
If the upstream connect fails, the device's connection is reset.

Everything runs in one background thread around ``selectors``. Every public method is
thread-safe and returns once the change is in effect. ``timeline()`` returns ``Event``
entries ``(t, event)`` with ``t`` from ``time.monotonic()`` and ``event`` a short string whose
first word is one of: mode, connect, close, abort, reset, upstream-fail, refused, cut, restore.

Command line (exits when the script ends or after ``--max-seconds``)::

    python tools/faultrig.py --listen 0 --target 127.0.0.1:1883 \\
        --script "pass:2,blackhole:5,pass:3,reset,pass:10" --control 0

A script is a comma-separated list of ``MODE[=RATE][:SECONDS]`` steps; ``reset`` is an
action. The control channel is a line protocol on a second loopback port; see
``ControlServer``.
"""

from __future__ import annotations

import argparse
import collections
import errno
import json
import random
import selectors
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, NamedTuple

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


class FaultProxy:
    """TCP proxy from ``listen_host:listen_port`` to ``target_host:target_port``."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        *,
        max_buffer: int = 256 * 1024,
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.listen_host = listen_host
        self.listen_port = listen_port
        self.max_buffer = max_buffer
        self.on_event = on_event
        self.started_at = time.monotonic()
        # Counters (written by the proxy thread only).
        self.bytes_up = 0
        self.bytes_down = 0
        self.dropped_up = 0
        self.dropped_down = 0
        self.accepted = 0
        self.refused = 0
        self.resets = 0
        self.upstream_failures = 0
        self.closed_connections = 0
        self._mode = "pass"
        self._rate: float | None = None
        self._buckets: dict[str, _Bucket] = {}
        self._conns: dict[int, _Conn] = {}
        self._next_id = 1
        self._events: collections.deque[Event] = collections.deque(maxlen=_TIMELINE_MAX)
        self._events_lock = threading.Lock()
        self._commands: collections.deque[_Command] = collections.deque()
        self._direct_lock = threading.RLock()
        self._sel: selectors.BaseSelector | None = None
        self._listener: socket.socket | None = None
        self._listening = False
        self._kernel_refuse = True
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._target_addr: tuple[Any, ...] = ()
        self._target_family = socket.AF_INET
        self._schedules: list[CutSchedule] = []

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        if self._thread is not None:
            raise RuntimeError("proxy already started")
        info = socket.getaddrinfo(self.target_host, self.target_port, type=socket.SOCK_STREAM)
        self._target_family, _, _, _, self._target_addr = info[0]
        self._listener = self._bind()
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel.register(self._wake_r, _READ, None)
        self.started_at = time.monotonic()
        self._stopping = False
        self._log(f"mode {self._mode_label()}")
        self._set_listening(self._mode not in ("refuse", "down"))
        self._thread = threading.Thread(target=self._run, name="faultrig", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        for sched in list(self._schedules):
            sched.cancel()
            sched.join(_CALL_TIMEOUT)
        thread = self._thread
        if thread is None:
            return
        self._stopping = True
        self._wake()
        thread.join(_CALL_TIMEOUT)
        self._thread = None
        for conn in list(self._conns.values()):
            self._close(conn, abort=False, quiet=True)
        for sock in (self._listener, self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()
        if self._sel is not None:
            self._sel.close()
        self._listener = self._wake_r = self._wake_w = None
        self._sel = None
        self._listening = False

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The listening port (valid after ``start()``)."""
        if self._listener is None:
            raise RuntimeError("proxy not started")
        return int(self._listener.getsockname()[1])

    @property
    def address(self) -> tuple[str, int]:
        return (self.listen_host, self.port)

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def rate(self) -> float | None:
        return self._rate

    # -- control ---------------------------------------------------------------------------

    def set_mode(self, mode: str, rate: float | None = None) -> None:
        """Switch mode; ``rate`` (bytes/s) is required for ``throttle``.

        ``"reset"`` runs ``reset()`` and keeps the current mode.
        """
        if mode == "reset":
            self.reset()
            return
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; expected one of {MODES + ('reset',)}")
        if mode == "throttle":
            if rate is None or rate <= 0:
                raise ValueError("throttle needs a positive rate in bytes per second")
        elif rate is not None:
            raise ValueError(f"mode {mode!r} takes no rate")
        self._call(lambda: self._apply_mode(mode, rate))

    def forward(self) -> None:
        self.set_mode("pass")

    def blackhole(self) -> None:
        self.set_mode("blackhole")

    def refuse(self) -> None:
        self.set_mode("refuse")

    def down(self) -> None:
        self.set_mode("down")

    def stall(self) -> None:
        self.set_mode("stall")

    def throttle(self, bytes_per_second: float) -> None:
        self.set_mode("throttle", bytes_per_second)

    def reset(self) -> int:
        """Abort every current connection (RST both legs); returns how many."""
        result: list[int] = []
        self._call(lambda: result.append(self._reset_all()))
        return result[0] if result else 0

    def stats(self) -> dict[str, Any]:
        """A snapshot of the counters."""
        result: list[dict[str, Any]] = []
        self._call(lambda: result.append(self._stats()))
        return result[0]

    def timeline(self) -> list[Event]:
        with self._events_lock:
            return list(self._events)

    def mark(self, event: str) -> None:
        """Add an entry of your own to the timeline (for example a test phase)."""
        self._log(event)

    def schedule_random_cuts(
        self,
        seed: int | str | None,
        count: int,
        min_up: float,
        max_up: float,
        min_down: float,
        max_down: float,
        kinds: Sequence[str] = ("reset", "blackhole", "refuse"),
    ) -> CutSchedule:
        """Start a background scheduler of ``count`` random cuts; see ``CutSchedule``."""
        sched = CutSchedule(self, seed, count, min_up, max_up, min_down, max_down, kinds)
        self._schedules.append(sched)
        sched.start()
        return sched

    # -- internals: calls into the proxy thread --------------------------------------------

    def _call(self, fn: Callable[[], None]) -> None:
        thread = self._thread
        if thread is None or not thread.is_alive() or thread is threading.current_thread():
            with self._direct_lock:
                fn()
            return
        cmd = _Command(fn)
        self._commands.append(cmd)
        self._wake()
        deadline = time.monotonic() + _CALL_TIMEOUT
        while not cmd.done.wait(0.05):
            if not thread.is_alive():
                # The thread ended (stop) between our check and the append: run it here.
                try:
                    self._commands.remove(cmd)
                except ValueError:
                    continue
                with self._direct_lock:
                    fn()
                return
            if time.monotonic() > deadline:
                raise RuntimeError("fault proxy thread did not answer")
        if cmd.error is not None:
            raise cmd.error

    def _wake(self) -> None:
        if self._wake_w is not None:
            try:
                self._wake_w.send(b"x")
            except (BlockingIOError, OSError):
                pass

    def _log(self, event: str) -> None:
        entry = Event(time.monotonic(), event)
        with self._events_lock:
            self._events.append(entry)
        if self.on_event is not None:
            try:
                self.on_event(entry)
            except Exception:  # a printing callback must not kill the proxy
                pass

    def _mode_label(self) -> str:
        if self._mode == "throttle":
            return f"throttle {self._rate:g}"
        return self._mode

    def _stats(self) -> dict[str, Any]:
        return {
            "mode": self._mode,
            "rate": self._rate,
            "bytes_up": self.bytes_up,
            "bytes_down": self.bytes_down,
            "dropped_up": self.dropped_up,
            "dropped_down": self.dropped_down,
            "held_up": sum(len(c.to_up) for c in self._conns.values()),
            "held_down": sum(len(c.to_down) for c in self._conns.values()),
            "accepted": self.accepted,
            "refused": self.refused,
            "resets": self.resets,
            "upstream_failures": self.upstream_failures,
            "active": len(self._conns),
            "closed": self.closed_connections,
        }

    # -- internals: proxy thread -----------------------------------------------------------

    def _bind(self) -> socket.socket:
        info = socket.getaddrinfo(self.listen_host, self.listen_port, type=socket.SOCK_STREAM)
        family, _, _, _, addr = info[0]
        port = self.listen_port
        probe = None
        if port == 0:
            # Bind the chosen port explicitly on a second socket: an explicitly bound port
            # survives shutdown() of a listening socket, which "refuse" relies on.
            probe = socket.socket(family, socket.SOCK_STREAM)
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(addr)
            port = probe.getsockname()[1]
            addr = (addr[0], port, *addr[2:])
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(addr)
        except OSError:
            sock.close()
            raise
        finally:
            if probe is not None:
                probe.close()
        sock.setblocking(False)
        return sock

    def _set_listening(self, on: bool) -> None:
        lst = self._listener
        if lst is None or self._sel is None or on == self._listening:
            return
        registered = lst in self._sel.get_map()
        if on:
            lst.listen(128)
            if not registered:
                self._sel.register(lst, _READ, None)
        elif self._kernel_refuse:
            try:
                lst.shutdown(socket.SHUT_RD)
            except OSError:
                # Fallback: keep accepting, and reset each new connection in _accept.
                self._kernel_refuse = False
            else:
                if registered:
                    self._sel.unregister(lst)
        self._listening = on

    def _run(self) -> None:
        sel = self._sel
        assert sel is not None
        while not self._stopping:
            timeout = self._refresh_all()
            for key, mask in sel.select(timeout):
                if key.fileobj is self._wake_r:
                    self._drain_wake()
                elif key.fileobj is self._listener:
                    self._accept()
                else:
                    conn = key.data
                    sock = key.fileobj
                    assert isinstance(conn, _Conn) and isinstance(sock, socket.socket)
                    self._ready(conn, sock, mask)
            self._run_commands()
        self._run_commands()

    def _drain_wake(self) -> None:
        assert self._wake_r is not None
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def _run_commands(self) -> None:
        while self._commands:
            cmd = self._commands.popleft()
            try:
                cmd.fn()
            except Exception as exc:
                cmd.error = exc
            cmd.done.set()

    def _apply_mode(self, mode: str, rate: float | None) -> None:
        self._mode = mode
        self._rate = rate
        if mode == "throttle":
            assert rate is not None
            self._buckets = {"up": _Bucket(rate), "down": _Bucket(rate)}
        self._log(f"mode {self._mode_label()}")
        if mode == "blackhole":
            for conn in self._conns.values():
                self._blacken(conn)
        elif mode == "down":
            self._reset_all()
        self._set_listening(mode not in ("refuse", "down"))

    def _blacken(self, conn: _Conn) -> None:
        conn.black = True
        self.dropped_up += len(conn.to_up)
        self.dropped_down += len(conn.to_down)
        conn.to_up.clear()
        conn.to_down.clear()

    def _reset_all(self) -> int:
        conns = list(self._conns.values())
        for conn in conns:
            self._close(conn, abort=True, quiet=True)
        self.resets += len(conns)
        self._log(f"reset {len(conns)}")
        return len(conns)

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


class _Command:
    def __init__(self, fn: Callable[[], None]) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.error: BaseException | None = None


class CutSchedule:
    """Background scheduler: ``count`` times, stay up for a random time, then cut.

    Up periods are uniform in ``[min_up, max_up]``, down periods in ``[min_down, max_down]``,
    and each cut's kind is a random choice from ``kinds`` (``reset``, ``blackhole``,
    ``refuse``, ``down``, ``stall``); all from ``random.Random(seed)``, so a seed replays the
    same sequence. A ``reset`` is instantaneous: its down period is skipped. After each cut
    the mode returns to ``pass``. Each cut adds ``cut <i>/<count> <kind>`` and
    ``restore <i>/<count>`` to the proxy's timeline; ``cuts`` lists what was done.
    """

    def __init__(
        self,
        proxy: FaultProxy,
        seed: int | str | None,
        count: int,
        min_up: float,
        max_up: float,
        min_down: float,
        max_down: float,
        kinds: Sequence[str] = ("reset", "blackhole", "refuse"),
    ) -> None:
        if count < 0:
            raise ValueError("count must be >= 0")
        if not 0 <= min_up <= max_up or not 0 <= min_down <= max_down:
            raise ValueError("need 0 <= min <= max for the up and down periods")
        bad = [k for k in kinds if k not in CUT_KINDS]
        if bad or not kinds:
            raise ValueError(f"kinds must be a non-empty subset of {CUT_KINDS}, got {kinds}")
        self.proxy = proxy
        self.count = count
        self.kinds = tuple(kinds)
        self.cuts: list[Cut] = []
        self._rng = random.Random(seed)
        self._up = (min_up, max_up)
        self._down = (min_down, max_down)
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, name="faultrig-cuts", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def cancel(self) -> None:
        self._cancel.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the schedule to finish; True if it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def done(self) -> bool:
        return self._thread.ident is not None and not self._thread.is_alive()

    def _run(self) -> None:
        proxy = self.proxy
        for i in range(1, self.count + 1):
            if self._cancel.wait(self._rng.uniform(*self._up)):
                return
            kind = self._rng.choice(self.kinds)
            down = 0.0 if kind == "reset" else self._rng.uniform(*self._down)
            proxy.mark(f"cut {i}/{self.count} {kind}")
            self.cuts.append(Cut(kind, time.monotonic(), down))
            if kind == "reset":
                proxy.reset()
            else:
                proxy.set_mode(kind)
                self._cancel.wait(down)
                proxy.set_mode("pass")
            proxy.mark(f"restore {i}/{self.count}")


# -- scripts ---------------------------------------------------------------------------------


def parse_script(text: str) -> list[Step]:
    """Parse ``"pass:2,blackhole:5,throttle=10000:3,reset,pass:10"`` into steps."""
    steps: list[Step] = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        head, _, secs = item.partition(":")
        mode, _, rate_text = head.partition("=")
        mode = mode.strip()
        if mode != "reset" and mode not in MODES:
            raise ValueError(f"unknown mode in script step {item!r}")
        rate = float(rate_text) if rate_text else None
        if (mode == "throttle") != (rate is not None):
            raise ValueError(f"only throttle takes a rate (throttle=BYTES_PER_S): {item!r}")
        seconds = float(secs) if secs else 0.0
        if seconds < 0:
            raise ValueError(f"negative duration in {item!r}")
        steps.append(Step(mode, rate, seconds))
    return steps


def play_script(
    proxy: FaultProxy, steps: Iterable[Step], cancel: threading.Event | None = None
) -> bool:
    """Apply the steps in order, holding each for its duration; False if cancelled."""
    cancel = cancel or threading.Event()
    for step in steps:
        if cancel.is_set():
            return False
        proxy.set_mode(step.mode, step.rate)
        if step.seconds and cancel.wait(step.seconds):
            return False
    return True


def format_timeline(events: Iterable[Event], t0: float | None = None) -> str:
    """One line per event, times in seconds relative to ``t0`` (default: first event)."""
    lines = []
    for ev in events:
        if t0 is None:
            t0 = ev.t
        lines.append(f"{ev.t - t0:9.3f} {ev.event}")
    return "\n".join(lines)


# -- control channel ---------------------------------------------------------------------------


class ControlServer:
    """Line protocol on a loopback port for driving a proxy from another process.

    Commands (one per line, answers ``ok ...`` or ``error ...`` on one line):
    ``mode MODE [RATE]``, ``throttle RATE``, ``reset``, ``stats`` (JSON),
    ``timeline [N]`` (JSON list of ``[seconds since start, event]``, last N entries),
    ``mark TEXT``, ``ping``, ``quit`` (calls ``on_quit``; the CLI exits).
    """

    def __init__(
        self,
        proxy: FaultProxy,
        host: str = "127.0.0.1",
        port: int = 0,
        on_quit: Callable[[], None] | None = None,
    ) -> None:
        self.proxy = proxy
        self.on_quit = on_quit
        self._sock = socket.create_server((host, port))
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._clients: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, name="faultrig-ctl", daemon=True)

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    def start(self) -> ControlServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(_CALL_TIMEOUT)
        with self._lock:
            for client in self._clients:
                try:
                    client.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self._sock.close()

    def __enter__(self) -> ControlServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._clients.add(client)
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        client.settimeout(60.0)
        try:
            with client, client.makefile("rwb") as stream:
                while not self._stop.is_set():
                    line = stream.readline(1024)
                    if not line:
                        return
                    command = line.decode("utf-8", "replace").strip()
                    reply = self.execute(command)
                    stream.write(reply.encode() + b"\n")
                    stream.flush()
                    if command == "quit" and self.on_quit is not None:
                        self.on_quit()  # only once the reply is out: the CLI exits next
        except OSError:
            pass
        finally:
            with self._lock:
                self._clients.discard(client)

    def execute(self, line: str) -> str:
        """Run one command line and return the reply line."""
        word, _, rest = line.partition(" ")
        args = rest.split()
        try:
            if word == "mode" and args:
                rate = float(args[1]) if len(args) > 1 else None
                self.proxy.set_mode(args[0], rate)
                return f"ok mode {self.proxy.mode}"
            if word == "throttle" and len(args) == 1:
                self.proxy.throttle(float(args[0]))
                return "ok mode throttle"
            if word == "reset" and not args:
                return f"ok reset {self.proxy.reset()}"
            if word == "stats" and not args:
                return "ok " + json.dumps(self.proxy.stats())
            if word == "timeline" and len(args) <= 1:
                t0 = self.proxy.started_at
                events = self.proxy.timeline()
                if args:
                    events = events[-int(args[0]) :] if int(args[0]) > 0 else []
                return "ok " + json.dumps([[round(e.t - t0, 4), e.event] for e in events])
            if word == "mark" and rest.strip():
                self.proxy.mark(rest.strip())
                return "ok"
            if word == "ping":
                return "ok pong"
            if word == "quit":
                return "ok bye"  # _handle calls on_quit after sending this
        except (ValueError, RuntimeError) as exc:
            return f"error {exc}"
        return f"error unknown command {line!r}"


def send_control(port: int, command: str, host: str = "127.0.0.1", timeout: float = 5.0) -> str:
    """Send one command to a ``ControlServer`` and return its reply line."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(command.encode() + b"\n")
        with sock.makefile("rb") as stream:
            return stream.readline(1 << 20).decode().rstrip("\n")


# -- command line ------------------------------------------------------------------------------


def _host_port(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        return default_host, int(text)
    return host.strip("[]") or default_host, int(port)


def _range(text: str) -> tuple[float, float]:
    low, _, high = text.partition(":")
    return float(low), float(high or low)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="TCP fault proxy on loopback: reset, blackhole, refuse, stall, throttle."
    )
    parser.add_argument("--listen", default="0", help="[HOST:]PORT to listen on (0 = free port)")
    parser.add_argument("--target", required=True, help="HOST:PORT to forward to")
    parser.add_argument(
        "--script", default="", help='steps like "pass:2,blackhole:5,reset,throttle=8000:3"'
    )
    parser.add_argument("--control", type=int, help="loopback port for the control channel")
    parser.add_argument("--cuts", type=int, default=0, help="number of random cuts")
    parser.add_argument("--seed", default="0", help="seed for --cuts")
    parser.add_argument("--up", default="1:5", help="MIN:MAX seconds up between cuts")
    parser.add_argument("--down", default="1:5", help="MIN:MAX seconds per cut")
    parser.add_argument("--kinds", default="reset,blackhole,refuse", help="cut kinds")
    parser.add_argument(
        "--max-seconds", type=float, default=3600.0, help="exit after this long at most"
    )
    args = parser.parse_args(argv)

    try:
        steps = parse_script(args.script)
        listen_host, listen_port = _host_port(args.listen)
        target_host, target_port = _host_port(args.target)
        up, down = _range(args.up), _range(args.down)
    except ValueError as exc:
        parser.error(str(exc))

    out_lock = threading.Lock()
    t0 = time.monotonic()

    def say(text: str) -> None:
        with out_lock:
            print(text, flush=True)

    # Events wait until the address lines are out, so a wrapper can read those first.
    pending: list[Event] | None = []

    def show(ev: Event) -> None:
        with out_lock:
            if pending is not None:
                pending.append(ev)
                return
            print(f"{ev.t - t0:9.3f} {ev.event}", flush=True)

    finished = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: finished.set())
    proxy = FaultProxy(target_host, target_port, listen_host, listen_port, on_event=show)
    control: ControlServer | None = None
    with proxy:
        say(f"listening {listen_host}:{proxy.port} -> {target_host}:{target_port}")
        if args.control is not None:
            control = ControlServer(proxy, port=args.control, on_quit=finished.set).start()
            say(f"control 127.0.0.1:{control.port}")
        with out_lock:
            for ev in pending or []:
                print(f"{ev.t - t0:9.3f} {ev.event}", flush=True)
            pending = None
        try:
            sched = None
            if args.cuts:
                seed = int(args.seed) if args.seed.lstrip("-").isdigit() else args.seed
                sched = proxy.schedule_random_cuts(
                    seed, args.cuts, *up, *down, kinds=args.kinds.split(",")
                )
            deadline = threading.Timer(args.max_seconds, finished.set)
            deadline.daemon = True
            deadline.start()
            if steps:
                play_script(proxy, steps, finished)
            elif sched is not None:
                while not finished.is_set() and not sched.done:
                    finished.wait(0.1)
            else:
                finished.wait()
            deadline.cancel()
        except KeyboardInterrupt:
            pass
        finally:
            if control is not None:
                control.stop()
        say("stats " + json.dumps(proxy.stats()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
