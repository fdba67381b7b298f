"""Driving the fault rig: random cut schedules, scripts of modes, the timeline's text form and
the control channel (a line protocol on a loopback port)."""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING

from faultrig_conn import _CALL_TIMEOUT, CUT_KINDS, MODES, Cut, Event, Step

if TYPE_CHECKING:
    from faultrig_proxy import FaultProxy


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
