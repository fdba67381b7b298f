"""FaultProxy: the fault rig's TCP proxy, its public methods and its thread (see faultrig.py
for the modes)."""

from __future__ import annotations

import collections
import selectors
import socket
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

from faultrig_conn import (
    _CALL_TIMEOUT,
    _READ,
    _TIMELINE_MAX,
    MODES,
    Event,
    _Bucket,
    _Command,
    _Conn,
    _Pump,
)
from faultrig_control import CutSchedule


class FaultProxy(_Pump):
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
        # the time read under the lock: the timeline stays in time order even when a
        # thread is preempted between reading the clock and appending (a loaded machine)
        with self._events_lock:
            entry = Event(time.monotonic(), event)
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
