"""The emulated Raspberry Pi Pico (tools/pico/pico.mjs) from Python: start it, reset it, cut
its power, read its events.

    python tools/pico/picoboard.py --image flash.img --pty pico.pty      # run in the foreground
    python tools/pico/picoboard.py --image flash.img --pty pico.pty --deploy

In the foreground the board's events are printed and lines typed on stdin are commands
for it: ``reset``, ``cut``, ``off``, ``on``, ``arm erase|program|any N F``, ``arm time LO
HI``, ``disarm``, ``status``, ``quit`` (tools/pico/pico.mjs explains them). mpremote
reaches the REPL at the pty: ``mpremote connect pico.pty resume repl`` (``resume``:
mpremote's own soft reset is fine on this board, but not needed).
``--deploy`` copies the library (.mpy for armv6m), boards/pico/socket.py and board.py and
tests/device/devlib.py to ``/lib`` first.

The firmware and boot ROM are found in ``$MQTTS_PICO_DIR``, by default
``../shared/rp2040-emulator/`` next to the repository: ``micropython-v1.28.0-RPI_PICO.uf2``
(MicroPython, MIT) and ``rp2040-bootrom-b1.bin`` (Raspberry Pi, BSD-3-Clause). The emulator
is the npm package rp2040js, installed in tools/pico/node_modules by ``make pico-deps``.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SCRIPT = HERE / "pico.mjs"
UF2 = "micropython-v1.28.0-RPI_PICO.uf2"
BOOTROM = "rp2040-bootrom-b1.bin"
FS_BLOCKS = 352  # the RPI_PICO filesystem: 352 blocks of 4096 bytes at flash offset 0xA0000
BLOCK_SIZE = 4096
PROG_SIZE = 256
BOOT_TIMEOUT = 20.0


class PicoError(RuntimeError):
    """The emulated board did not start or stopped answering."""


def firmware_dir() -> Path:
    env = os.environ.get("MQTTS_PICO_DIR")
    return Path(env) if env else ROOT.parent / "shared" / "rp2040-emulator"


def missing() -> str:
    """Why the emulated board cannot run here, or "" when it can."""
    d = firmware_dir()
    for name in (UF2, BOOTROM):
        if not (d / name).is_file():
            return f"no {name} in {d} (set MQTTS_PICO_DIR to the directory holding it)"
    if shutil.which("node") is None:
        return "node is not installed (make pico-deps installs nodejs and npm)"
    if not (HERE / "node_modules" / "rp2040js").is_dir():
        return "rp2040js is not installed in tools/pico (run make pico-deps)"
    if shutil.which("socat") is None:
        return "socat is not installed"
    return ""


class PicoBoard:
    """One emulated Pico: node running pico.mjs, its REPL on the pty at self.path."""

    def __init__(
        self,
        image: Path,
        pty: Path,
        net: bool = True,
        seed: int | None = None,
        log: Path | None = None,
    ) -> None:
        self.image = Path(image)
        self.path = str(pty)
        self.net = net
        self.seed = seed
        self.log = log
        self.proc: subprocess.Popen[str] | None = None
        self.events: list[dict[str, Any]] = []
        self._new: queue.Queue[dict[str, Any]] = queue.Queue()
        self._reader: threading.Thread | None = None
        self.boots = 0  # power-ons seen so far

    def start(self, timeout: float = BOOT_TIMEOUT) -> None:
        why = missing()
        if why:
            raise PicoError(why)
        cmd = ["node", str(SCRIPT), "--firmware", str(firmware_dir()), "--image",
               str(self.image), "--pty", self.path]
        if self.net:
            cmd.append("--net")
        if self.seed is not None:
            cmd += ["--seed", str(self.seed)]
        err = open(self.log, "ab") if self.log else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True,
            start_new_session=True,
        )
        if self.log:
            err.close()  # type: ignore[union-attr]
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.wait_usb(timeout)

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("event") == "boot":
                self.boots = int(ev["n"])
            self.events.append(ev)
            self._new.put(ev)
        self._new.put({"event": "exit"})

    def wait(self, pred: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
        """The next event that pred accepts; PicoError after timeout or when node exits."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                ev = self._new.get(timeout=max(0.0, left))
            except queue.Empty:
                raise PicoError(
                    f"no such event from the emulated Pico within {timeout:.0f} s"
                ) from None
            if ev["event"] == "exit":
                self._new.put(ev)
                raise PicoError("the emulator exited" + self._log_tail())
            if pred(ev):
                return ev

    def _log_tail(self) -> str:
        if self.log and self.log.exists():
            return ":\n" + self.log.read_text(errors="replace")[-2000:]
        return ""

    def wait_usb(self, timeout: float = BOOT_TIMEOUT, boot: int = 1) -> None:
        """Until the board's USB CDC is up after power-on number boot or a later one."""
        self.wait(lambda e: e["event"] == "usb" and e["n"] >= boot, timeout)
        time.sleep(0.2)  # the REPL prompt follows enumeration

    def command(self, line: str) -> None:
        if self.proc is None or self.proc.stdin is None or self.proc.poll() is not None:
            raise PicoError("the emulator is not running" + self._log_tail())
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def reset(self, wait: bool = True) -> None:
        """Hard reset (the RUN pin); the flash keeps what was written."""
        self._drain()
        n = self.boots + 1
        self.command("reset")
        if wait:
            self.wait_usb(boot=n)

    def cut(self, wait: bool = True) -> None:
        """Power cut now, then power on again."""
        self._drain()
        n = self.boots + 1
        self.command("cut")
        if wait:
            self.wait_usb(boot=n)

    def off(self) -> None:
        """Power cut; the board stays off until on()."""
        self._drain()
        self.command("off")
        self.wait(lambda e: e["event"] == "off", 10)

    def on(self, wait: bool = True) -> None:
        n = self.boots + 1
        self.command("on")
        if wait:
            self.wait_usb(boot=n)

    def arm(self, kind: str = "any", n: int = 1, fraction: str = "r") -> None:
        """Cut the power inside the n-th next flash operation of kind (erase, program,
        any), with fraction (0..1, or "r": random) of it done; the board boots again."""
        self._drain()
        self.command(f"arm {kind} {n} {fraction}")

    def arm_time(self, lo_ms: float, hi_ms: float) -> None:
        """Cut the power at a random instruction lo_ms to hi_ms from now (board's clock)."""
        self._drain()
        self.command(f"arm time {lo_ms} {hi_ms}")

    def status(self, timeout: float = 5.0) -> dict[str, Any]:
        self._drain()
        self.command("status")
        return self.wait(lambda e: e["event"] == "status", timeout)

    def _drain(self) -> None:
        while True:
            try:
                ev = self._new.get_nowait()
            except queue.Empty:
                return
            if ev["event"] == "exit":
                self._new.put(ev)
                return

    def close(self) -> None:
        if self.proc is None:
            return
        try:
            self.command("quit")
            self.proc.wait(5)
        except (PicoError, OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def __enter__(self) -> PicoBoard:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--image", type=Path, default=Path("pico-flash.img"),
                   help="the flash's filesystem region (created erased when absent)")
    p.add_argument("--pty", default="pico.pty", help="where the REPL's pseudo-terminal appears")
    p.add_argument("--no-net", action="store_true", help="no UART network bridge")
    p.add_argument("--deploy", action="store_true", help="copy the library and board files")
    p.add_argument("--seed", type=int, help="seed of the random cut points")
    a = p.parse_args(argv)
    board = PicoBoard(a.image, Path(a.pty), net=not a.no_net, seed=a.seed)
    try:
        board.start()
    except PicoError as e:
        print(f"picoboard: {e}", file=sys.stderr)
        return 2
    try:
        if a.deploy:
            sys.path.insert(0, str(HERE))
            import pico_target

            print("deployed:", " ".join(pico_target.deploy(board.path)), flush=True)
        print(f"board up: mpremote connect {board.path} resume repl", flush=True)
        done = threading.Event()

        def echo() -> None:
            seen = 0
            while not done.is_set():
                for ev in board.events[seen:]:
                    print(json.dumps(ev), flush=True)
                seen = len(board.events)
                time.sleep(0.2)

        threading.Thread(target=echo, daemon=True).start()
        for line in sys.stdin:
            if line.strip() == "quit":
                break
            board.command(line.strip())
        done.set()
    except KeyboardInterrupt:
        pass
    finally:
        board.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
