"""The demo's settings and its node process seen from the host: starting it (tools/demo_node.py
on the unix port), cutting its power, its virtual Wi-Fi, and its output parsed into events."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(1, str(ROOT / "tests" / "host"))

from harness import micropython_path  # noqa: E402
from vboard import ESP32_HEAP, ESP32_PROG  # noqa: E402

NODE_SCRIPT = ROOT / "tools" / "demo_node.py"
DEFAULT_OUT = ROOT / "build" / "demo"
MARKER = ".mqttsession-demo"  # marks a directory the demo may empty
HOST = "127.0.0.1"
PREFIX = "demo"
KEEPALIVE = 4  # seconds: short, so a half-open link is found within 1.5 x 4 s
RATE_MS = 100  # one reading every 100 ms
WINDOW = 8
FAULT_KINDS = ("reset", "blackhole", "wifi", "broker", "stall", "power")
FAULT_NAMES = {
    "reset": "TCP reset",
    "blackhole": "silent blackhole (half-open)",
    "wifi": "Wi-Fi down",
    "broker": "broker restart",
    "stall": "stall",
    "power": "power cut",
}


def now() -> float:
    return time.monotonic()


# --------------------------------------------------------------------------------------
# The node process


@dataclass
class Accepted:
    ident: str
    t: float
    qos: int
    n: int
    boot: int


class Node:
    """The MicroPython node process; its output parsed into timestamped events."""

    def __init__(self, out: Path, port: int, t0: float, log: TextIO, mpy_dir: Path) -> None:
        self.out = out
        self.mpy = mpy_dir
        self.workdir = out / "node"
        self.image = out / "flash.img"
        self.wifi = out / "wifi.ctl"
        self.stop_file = self.workdir / "stop"
        self.t0 = t0
        self.log = log
        self.lock = threading.Lock()
        self.proc: subprocess.Popen[bytes] | None = None
        self.reader: threading.Thread | None = None
        self.expected_exit = False
        self.accepted: dict[str, Accepted] = {}
        self.refused: list[tuple[float, str, int]] = []
        self.link: list[tuple[float, bool]] = []  # (t, up)
        self.queue: list[tuple[float, int]] = []  # (t, queued)
        self.boots: list[tuple[float, int, int]] = []  # (t, boot, pending at boot)
        self.kills: list[float] = []
        self.kill_t: float | None = None  # lines read after a kill were printed before it
        self.crashes: list[tuple[float, int | None, str]] = []
        self.status: dict[str, int | str] = {}
        self.sent_total = 0  # accepted in earlier boots, plus the current boot's count
        self.acked_total = 0
        self._boot_sent = 0
        self._boot_acked = 0
        self.node_longest_ms = 0
        self.min_free: int | None = None
        self.skipped_total = 0
        self._boot_skipped = 0
        self.longest_block_ms = 0
        self.blocks: list[tuple[float, int]] = []  # (t, longest call since the last STATUS)
        self.heap_after_setup: int | None = None
        self.drained: tuple[float, int, int] | None = None  # (t, pending, ms)
        self.other: list[str] = []
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "democfg.py").write_text(
            "".join(
                f"{k} = {v!r}\n"
                for k, v in {
                    "HOST": HOST,
                    "PORT": port,
                    "RATE_MS": RATE_MS,
                    "KEEPALIVE": KEEPALIVE,
                    "WINDOW": WINDOW,
                    "QUEUE": 300,
                    "STORE_BYTES": 65536,
                    "TIMEOUT": 3,
                    "WIFI_MS": 500,
                    "PREFIX": PREFIX,
                    "STOP_FILE": str(self.stop_file),
                    "DRAIN_MS": 30000,
                }.items()
            )
        )
        self.wifi.write_text("up\n")

    def rel(self) -> float:
        return now() - self.t0

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["MICROPYPATH"] = ":".join(
            [str(self.workdir), ".frozen", str(self.mpy), str(ROOT / "boards" / "unix")]
        )
        env["MQTTS_IMAGE"] = str(self.image)
        env["MQTTS_WIFI"] = str(self.wifi)
        env["MQTTS_PROG"] = str(ESP32_PROG)
        env["MQTTS_BLOCKS"] = "256"
        return env

    def start(self) -> None:
        self.expected_exit = False
        self.kill_t = None
        self.proc = subprocess.Popen(
            [micropython_path(), "-X", f"heapsize={ESP32_HEAP}", str(NODE_SCRIPT)],
            cwd=self.workdir,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self.reader.start()

    def kill(self) -> None:
        """SIGKILL: a power cut. The image stays as flash would."""
        proc = self.proc
        if proc is None:
            return
        self.expected_exit = True
        if proc.poll() is not None:
            return
        t = self.kill_t = self.rel()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if self.reader is not None:
            self.reader.join(5)
        with self.lock:
            self.kills.append(t)
            if self.link and self.link[-1][1]:
                self.link.append((t, False))
            self._end_boot()

    def _end_boot(self) -> None:
        self.sent_total += self._boot_sent
        self.acked_total += self._boot_acked
        self.skipped_total += self._boot_skipped
        self._boot_sent = self._boot_acked = self._boot_skipped = 0

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            t = self.rel()
            if self.kill_t is not None:
                t = min(t, self.kill_t)
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            self.log.write(f"{t:9.3f} {line}\n")
            with self.lock:
                self._parse(t, line)
        self.log.flush()

    def _parse(self, t: float, line: str) -> None:
        w = line.split()
        if not w:
            return
        kind = w[0]
        try:
            if kind == "ACCEPTED":
                ident = w[1]
                self.accepted[ident] = Accepted(
                    ident, t, int(w[2]), int(w[3]), int(ident.split("/")[0])
                )
            elif kind == "STATUS":
                st: dict[str, int | str] = {}
                for item in w[1:]:
                    k, _, v = item.partition("=")
                    st[k] = v if k == "link" else int(v)
                self.status = st
                self.queue.append((t, int(st["queued"])))
                self._boot_sent = int(st["sent"])
                self._boot_acked = int(st["acked"])
                self.node_longest_ms = max(self.node_longest_ms, int(st["longest"]))
                self._boot_skipped = int(st["skipped"])
                self.longest_block_ms = max(self.longest_block_ms, int(st["block"]))
                self.blocks.append((t, int(st["block"])))
                free = int(st["free"])
                self.min_free = free if self.min_free is None else min(self.min_free, free)
            elif kind == "LINK":
                self.link.append((t, w[1] == "up"))
            elif kind == "BOOT":
                self.boots.append((t, int(w[1]), int(w[3])))
                self.queue.append((t, int(w[3])))
            elif kind == "HEAP":
                self.heap_after_setup = int(w[1])
            elif kind == "REFUSED":
                self.refused.append((t, w[1], int(w[3])))
            elif kind == "DRAINED":
                self.drained = (t, int(w[1]), int(w[2]))
            else:
                self.other.append(line)
        except (IndexError, ValueError, KeyError):
            self.other.append(line)

    def check_crash(self, restart: bool = True) -> str | None:
        """If the node ended on its own (not killed, not drained), say how, and restart it
        as a board's watchdog would."""
        proc = self.proc
        if proc is None or proc.poll() is None or self.expected_exit:
            return None
        if self.reader is not None:
            self.reader.join(5)
        with self.lock:
            if self.drained is not None:
                return None
            tail = "\n".join(self.other[-15:])
            self.crashes.append((self.rel(), proc.returncode, tail))
            self._end_boot()
            if self.link and self.link[-1][1]:
                self.link.append((self.rel(), False))
        if restart:
            self.start()
        return f"node exited with {proc.returncode}{'; restarted' if restart else ''}:\n{tail}"

    def was_up(self, t: float) -> bool:
        """The node's link state at time t (down while powered off)."""
        with self.lock:
            state = False
            for te, up in self.link:
                if te > t:
                    break
                state = up
            return state

    def is_up(self) -> bool:
        with self.lock:
            return bool(self.link) and self.link[-1][1]

    def link_event_after(self, t: float, up: bool) -> float | None:
        with self.lock:
            for te, u in self.link:
                if te >= t and u == up:
                    return te
        return None

    def skipped(self) -> int:
        with self.lock:
            return self.skipped_total + self._boot_skipped

    def totals(self) -> tuple[int, int]:
        with self.lock:
            return self.sent_total + self._boot_sent, self.acked_total + self._boot_acked

    def set_wifi(self, up: bool) -> None:
        self.wifi.write_text("up\n" if up else "down\n")
