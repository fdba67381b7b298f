"""Where tools/board_test.py runs its scenarios: a board mpremote reaches at a port (a real
one, or the virtual board), each mpremote call with a time limit, and the code it runs
on the device besides a scenario's script (removing a store, bringing Wi-Fi up, the heap
figures)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import deploy
import vboard

PROBE_TIMEOUT = 20.0  # a board that does not answer within this is not there
COPY_TIMEOUT = 60.0
BOOT_TIMEOUT = 30.0  # after a hard reset, until the port is back and the board answers


class SetupError(RuntimeError):
    """The run cannot start or go on: reported with exit status 2."""


# mpremote


@dataclass
class Run:
    rc: int
    out: str
    timed_out: bool


def mpremote(port: str, args: Sequence[str], timeout: float) -> Run:
    """`mpremote connect PORT resume ARGS`, killed after timeout seconds."""
    cmd = [deploy.mpremote_tool(), "connect", port, "resume", *args]
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, _ = proc.communicate()
        out += f"\n[board_test: mpremote {args[0] if args else ''} killed after {timeout:.0f} s]\n"
        return Run(-signal.SIGKILL, out, True)
    return Run(proc.returncode, out, False)


# Removes a file or a directory tree; on the device.
RM = """\
import os
def _rm(p):
    try:
        st = os.stat(p)
    except OSError:
        return
    if st[0] & 0x4000:
        for n in os.listdir(p):
            _rm(p + '/' + n)
        os.rmdir(p)
    else:
        os.remove(p)
"""

# Brings Wi-Fi up on a real board, or raises with the reason.
WIFI = """\
def _wifi():
    try:
        import network
    except ImportError:
        return
    w = network.WLAN(network.STA_IF)
    if w.isconnected():
        return
    try:
        import board, config
    except ImportError as e:
        raise OSError('Wi-Fi is not connected and there is no board.py/config.py to '
                      'connect with (%s): connect in boot.py, or deploy the board files' % e)
    ok = board.wifi_connect(config.WIFI_SSID, config.WIFI_KEY,
                            getattr(config, 'WIFI_TIMEOUT_MS', 15000))
    if not ok:
        raise OSError('Wi-Fi did not connect: %s' % board.wifi_reason())
_wifi()
del _wifi
"""

# dev_store.py mounts its store with devlib.flash(): on the unix port a littlefs image at
# /flash through blockdev.mount(devcfg.IMAGE). On the virtual board /flash is already the
# board's own image, so the mount hands back the board's block device: the store lives on
# the board's flash, where a reboot keeps it, as on a real board.
_VB_STORE = """\
import blockdev, board
def _mount(path, mountpoint='/flash', *a, **k):
    if mountpoint != board.FS_ROOT:
        raise OSError(1)
    return board.bdev()
blockdev.mount = _mount
del _mount
"""

HEAP = """\
import gc, os
gc.collect()
print('HEAP boot', gc.mem_free(), gc.mem_alloc())
import mqttsession
from mqttsession import MQTTClient, SessionStore
gc.collect()
print('HEAP import', gc.mem_free(), gc.mem_alloc())
print('FILE', mqttsession.__file__)
c = MQTTClient(None, {host!r}, port={port}, keepalive=60, store=SessionStore({store!r}))
c.connect(clean_session=False)
gc.collect()
print('HEAP connect', gc.mem_free(), gc.mem_alloc())
c.disconnect()
"""


# --------------------------------------------------------------------------------------
# Targets: where the scenarios run


class Target:
    """A device mpremote can reach at self.port."""

    port: str
    label: str
    root: str  # the filesystem root as a path prefix: "" on a board, "/flash" on the vboard

    def fresh(self) -> None:
        """A clean interpreter before a scenario."""
        raise NotImplementedError

    def reboot(self) -> None:
        """A reboot between two phases of a scenario; flash keeps what was written."""
        raise NotImplementedError

    def prelude(self, store: bool) -> str:
        """Code run before a scenario's script, after the reset."""
        return ""

    def devcfg(self, store: bool) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        pass

    def run(self, args: Sequence[str], timeout: float) -> Run:
        return mpremote(self.port, args, timeout)

    def probe(self, timeout: float = PROBE_TIMEOUT) -> str:
        code = "import sys; print(sys.implementation.name, sys.platform, sys.version)"
        r = self.run(["exec", code], timeout)
        if r.rc != 0:
            why = "no answer" if r.timed_out else f"mpremote exited {r.rc}"
            raise SetupError(
                f"the board at {self.port} does not answer ({why} within {timeout:.0f} s): "
                "is another program (a serial monitor) holding the port, or is the board in "
                f"deep sleep or running a program that ignores Ctrl-C?\n{r.out.strip()}"
            )
        return r.out.strip()


class VirtualTarget(Target):
    def __init__(self, workdir: Path, size: str) -> None:
        heap, prog, _ = vboard.BOARDS[size]
        self.image = workdir / "flash.img"
        self.vb = vboard.VirtualBoard(
            self.image, prog=prog, heap=heap, link=str(workdir / "vb"), log=workdir / "vb.log"
        )
        self.vb.start()
        self.port = self.vb.path
        self.label = f"virtual board ({size}-sized: heap {heap}, littlefs prog {prog})"
        self.root = "/flash"  # boards/unix/board.py FS_ROOT

    def fresh(self) -> None:
        self.vb.restart()

    def reboot(self) -> None:
        self.vb.restart()

    def prelude(self, store: bool) -> str:
        return _VB_STORE if store else ""

    def devcfg(self, store: bool) -> dict[str, Any]:
        # IMAGE makes devlib.flash() mount (see _VB_STORE); PROG is the image's.
        return {"IMAGE": str(self.image), "PROG": self.vb.prog} if store else {}

    def run(self, args: Sequence[str], timeout: float) -> Run:
        r = mpremote(self.port, args, timeout)
        if r.timed_out:
            # The unix port does not stop on a Ctrl-C from the terminal: power-cycle it.
            self.vb.restart()
        return r

    def close(self) -> None:
        self.vb.stop()


class SerialTarget(Target):
    def __init__(self, port: str, reset: str) -> None:
        self.port = port
        self.reset = reset
        self.label = f"board on {port}"
        self.root = ""

    def _soft_reset(self) -> None:
        r = mpremote(self.port, ["soft-reset"], PROBE_TIMEOUT)
        if r.rc != 0:
            raise SetupError(f"soft reset of the board at {self.port} failed:\n{r.out.strip()}")

    def fresh(self) -> None:
        self._soft_reset()

    def reboot(self) -> None:
        if self.reset == "soft":
            self._soft_reset()
            return
        # machine.reset() drops the USB or UART link: mpremote may report an error.
        mpremote(self.port, ["reset"], PROBE_TIMEOUT)
        time.sleep(1.0)
        deadline = time.monotonic() + BOOT_TIMEOUT
        last = ""
        while time.monotonic() < deadline:
            if os.path.exists(self.port):
                r = mpremote(self.port, ["exec", "print('up')"], 5.0)
                if r.rc == 0 and "up" in r.out:
                    return
                last = r.out.strip()
            time.sleep(0.5)
        raise SetupError(
            f"the board at {self.port} did not come back within {BOOT_TIMEOUT:.0f} s of a "
            f"hard reset (does main.py deep-sleep?)\n{last}"
        )

    def prelude(self, store: bool) -> str:
        return WIFI
