"""Test harness: real mosquitto brokers on free loopback ports."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from harness_certs import Certs
from harness_proc import HOST, _tail, free_port, mosquitto_path, wait_port

# --------------------------------------------------------------------------------------
# Broker

# Every Broker not yet closed; conftest closes the leftovers at the end of the session.
_live_brokers: set[Broker] = set()
_broker_serial = 0

# What the broker_factory fixture yields: broker_factory(persistence=False, tls=False, **kw).
BrokerFactory = Callable[..., "Broker"]


def live_brokers(since: int = 0) -> list[Broker]:
    """Brokers not yet closed, oldest first; since=broker_serial() taken earlier limits them
    to the brokers created after that point."""
    return sorted((b for b in _live_brokers if b.serial > since), key=lambda b: b.serial)


def broker_serial() -> int:
    """How many Broker objects have been created so far."""
    return _broker_serial


class Broker:
    """A mosquitto process on 127.0.0.1 with its own config, log and persistence directory.

    persistence: keep sessions and retained messages in workdir across stop()/restart();
        saved after every change, so even a SIGKILL loses little.
    tls: a Certs; adds a TLS listener on tls_port with the server certificate.
    max_keepalive: mosquitto's max_keepalive (MQTT 5 Server Keep Alive).
    extra: more config lines, appended after the listeners.
    verbose: log every packet (log_type all); turn off for long benchmarks.
    """

    host = HOST

    def __init__(
        self,
        workdir: Path | str | None = None,
        *,
        persistence: bool = False,
        tls: Certs | None = None,
        max_keepalive: int | None = None,
        extra: Sequence[str] = (),
        port: int | None = None,
        tls_port: int | None = None,
        autosave_interval: int = 1,
        verbose: bool = True,
        start: bool = True,
    ) -> None:
        global _broker_serial
        _broker_serial += 1
        self.serial = _broker_serial
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="mqs-broker-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.tls_port: int | None = (tls_port or free_port()) if tls else None
        self.persistence = persistence
        self.tls = tls
        self.config_path = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"
        self.console_path = self.workdir / "mosquitto.console"
        self.persistence_dir = self.workdir / "persist"
        self._proc: subprocess.Popen[bytes] | None = None
        self._paused = False
        self._closed = False
        self.config_path.write_text(self._config(max_keepalive, extra, autosave_interval, verbose))
        _live_brokers.add(self)
        if start:
            try:
                self.start()
            except BaseException:
                self.close()
                raise

    def _config(
        self, max_keepalive: int | None, extra: Sequence[str], autosave: int, verbose: bool
    ) -> str:
        lines = [
            f"user {pwd.getpwuid(os.getuid()).pw_name}",  # stay the current user, even as root
            f"log_dest file {self.log_path}",
            "log_type all" if verbose else "log_type error\nlog_type warning\nlog_type notice",
            "log_timestamp_format %H:%M:%S",
            "connection_messages true",
            "allow_anonymous true",
        ]
        if self.persistence:
            self.persistence_dir.mkdir(exist_ok=True)
            lines += [
                "persistence true",
                f"persistence_location {self.persistence_dir}/",
                "persistence_file mosquitto.db",
                # With autosave_on_changes the interval counts changes, not seconds.
                "autosave_on_changes true",
                f"autosave_interval {autosave}",
            ]
        else:
            lines.append("persistence false")
        if max_keepalive is not None:
            lines.append(f"max_keepalive {max_keepalive}")
        lines.append(f"listener {self.port} {HOST}")
        if self.tls is not None:
            lines += [
                f"listener {self.tls_port} {HOST}",
                f"cafile {self.tls.ca_cert}",
                f"certfile {self.tls.server_cert}",
                f"keyfile {self.tls.server_key}",
            ]
        lines += list(extra)
        return "\n".join(lines) + "\n"

    # -- process control

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 5.0) -> None:
        if self.running:
            return
        if self._closed:
            raise RuntimeError("broker was closed")
        with open(self.console_path, "ab") as console:
            self._proc = subprocess.Popen(
                [mosquitto_path(), "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
            )
        self._paused = False
        deadline = time.monotonic() + timeout
        ports = [self.port] + ([self.tls_port] if self.tls_port else [])
        for p in ports:
            while not wait_port(HOST, p, timeout=0.1):
                if self._proc.poll() is not None:
                    raise RuntimeError(
                        f"mosquitto exited with {self._proc.returncode}:\n{self.log()}"
                    )
                if time.monotonic() >= deadline:
                    self.stop()
                    raise RuntimeError(f"mosquitto not listening on {p}:\n{self.log()}")

    def stop(self, timeout: float = 3.0) -> None:
        """SIGTERM (mosquitto saves its persistence file), SIGKILL after timeout seconds."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
            if self._paused:
                proc.send_signal(signal.SIGCONT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self._paused = False

    def kill(self) -> None:
        """SIGKILL: a broker crash. Only what autosave wrote survives."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.kill()
        proc.wait()
        self._paused = False

    def restart(self, timeout: float = 5.0) -> None:
        """Stop and start again on the same ports with the same persistence directory."""
        self.stop()
        self.start(timeout)

    def pause(self) -> None:
        """SIGSTOP: the broker keeps its sockets open but stops answering."""
        if self._proc is not None and self.running:
            self._proc.send_signal(signal.SIGSTOP)
            self._paused = True

    def resume(self) -> None:
        if self._proc is not None and self.running:
            self._proc.send_signal(signal.SIGCONT)
            self._paused = False

    def close(self) -> None:
        """Stop for good; removes workdir if the broker created it."""
        self.stop()
        self._closed = True
        _live_brokers.discard(self)
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Broker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(Exception):
                proc.kill()

    # -- inspection

    def log(self) -> str:
        """mosquitto's log file, preceded by anything it printed before opening it."""
        parts = []
        for p in (self.console_path, self.log_path):
            with contextlib.suppress(FileNotFoundError):
                parts.append(p.read_text(errors="replace"))
        return "".join(parts)

    def log_tail(self, lines: int = 80) -> str:
        return _tail(self.log(), lines)

    def __repr__(self) -> str:
        tls = f" tls_port={self.tls_port}" if self.tls_port else ""
        return f"<Broker {HOST}:{self.port}{tls} pid={self.pid} running={self.running}>"
