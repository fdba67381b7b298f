"""The virtual board: the MicroPython unix port on a pseudo-terminal.

It runs ``micropython -X heapsize=<heap> -i boards/unix/boot.py`` on one pty
and relays its bytes to a second pty whose slave is exposed as a symlink
(``/tmp/vb-<pid>`` by default). mpremote talks to that path as to a board's
serial port; pass ``resume`` on every call, because mpremote's soft reset ends
the unix process::

    python tools/vboard.py --board esp32 --image flash.img
    mpremote connect /tmp/vb-1234 resume exec "print(1)"

From Python::

    with VirtualBoard("flash.img", prog=32, heap=ESP32_HEAP) as vb:
        vb.mpremote("cp", "x.py", ":x.py")
        vb.restart()  # a reboot: same image, same unique ID

Heap figures (free heap after boot on the real boards; sources in
boards/esp32/README.md and boards/rp2040/README.md):

- ESP32 (generic, no PSRAM): 108 KiB. MicroPython on IDF 4.4 allocated a
  110,592-byte GC heap (micropython/micropython#8940); since v1.22 the heap
  starts at 64,000 bytes and grows on demand by up to 110,592 bytes
  (micropython/micropython#12952), memory it shares with Wi-Fi, lwIP and
  mbedTLS, so 108 KiB is what a node can count on.
- Pico W (RP2040): 150 KiB. A Pico without Wi-Fi reports 209,936 bytes free
  after boot on v1.20 (micropython/micropython#12557); the Pico W's CYW43
  driver and lwIP take static RAM from the same 264 KiB, leaving an estimated
  150-190 KiB once Wi-Fi is up (kevinmcaleer/snakeros#16; no published
  measurement found); we take the low end.

The heap size passed to ``-X heapsize`` is the free figure plus
``BOOT_OVERHEAD_KIB``: what the virtual board itself uses after boot (its block
device and board layer run as Python bytecode in RAM, where a real board has
them in C or in flash): about 13 KiB, rounded up so that ``gc.mem_free()``
after boot lands within a few KiB of the board's figure. The unix port is
64-bit, so the same objects take more room than on the 32-bit boards: a node
that fits here is likely to have margin there.
"""

from __future__ import annotations

import argparse
import errno
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import tty
from pathlib import Path
from types import TracebackType
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
BOARD_DIR = ROOT / "boards" / "unix"

ESP32_FREE_KIB = 108
PICOW_FREE_KIB = 150
BOOT_OVERHEAD_KIB = 14
ESP32_HEAP = f"{ESP32_FREE_KIB + BOOT_OVERHEAD_KIB}k"
PICOW_HEAP = f"{PICOW_FREE_KIB + BOOT_OVERHEAD_KIB}k"
ESP32_PROG = 32
PICOW_PROG = 256

# name: (heap, prog size, free heap after boot in bytes)
BOARDS: dict[str, tuple[str, int, int]] = {
    "esp32": (ESP32_HEAP, ESP32_PROG, ESP32_FREE_KIB * 1024),
    "picow": (PICOW_HEAP, PICOW_PROG, PICOW_FREE_KIB * 1024),
}

DEFAULT_BLOCKS = 256  # 1 MiB image
MIN_BLOCKS = 2  # littlefs's superblock pair: fewer never mounts
BLOCK_SIZE = 4096
_PROMPT_TIMEOUT = 10.0


def _tool(name: str) -> str:
    # Prefer the tool installed next to this interpreter (the project venv).
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found next to {sys.executable} or on PATH")
    return found


class VirtualBoardError(RuntimeError):
    pass


def image_problem(image: Path, blocks: int) -> str | None:
    """Why the board could not have a filesystem on this image, or None. Checked before
    it starts: the board itself would only print a traceback and show its prompt."""
    if blocks < MIN_BLOCKS:
        return f"blocks {blocks}: a littlefs image needs at least {MIN_BLOCKS}"
    if image.is_dir():
        return f"image {image}: a directory, not an image file"
    if not image.parent.is_dir():
        return f"image {image}: no directory {image.parent}"
    if image.is_file() and image.stat().st_size < MIN_BLOCKS * BLOCK_SIZE:
        return (f"image {image}: {image.stat().st_size} bytes, smaller than a littlefs "
                f"image ({MIN_BLOCKS} blocks of {BLOCK_SIZE})")
    return None


def foreign_file(image: Path) -> str | None:
    """Why the command line will not start on this file, or None: an existing file that is
    neither a littlefs image (its superblock's magic at offset 8 of block 0 or 1) nor
    blank flash. The board formats flash it cannot mount, as a board's boot does; a file
    named by mistake (`--image README.md`) would be lost."""
    if not image.is_file() or image.stat().st_size < MIN_BLOCKS * BLOCK_SIZE:
        return None  # absent (made), or refused by image_problem
    with image.open("rb") as f:
        head = f.read(2 * BLOCK_SIZE)
    blocks = (head[:BLOCK_SIZE], head[BLOCK_SIZE:])
    if any(b[8:16] == b"littlefs" for b in blocks) or not head.strip(head[:1]):
        return None  # a littlefs image (damaged or not), or erased flash (one byte repeated)
    return (f"image {image}: not a littlefs image; the board would format it and its "
            "contents would be lost (remove it first to start on a new image)")


class VirtualBoard:
    """A unix-port MicroPython process on a pty, with littlefs flash."""

    def __init__(
        self,
        image: str | os.PathLike[str],
        prog: int = 32,
        heap: str = "64k",
        link: str | os.PathLike[str] | None = None,
        wifi: str | os.PathLike[str] | None = None,
        blocks: int = DEFAULT_BLOCKS,
        env: dict[str, str] | None = None,
        run_main: bool = False,
        auto_restart: bool = False,
        log: str | os.PathLike[str] | None = None,
    ) -> None:
        if prog not in (32, 256):
            raise ValueError("prog: 32 (ESP32) or 256 (RP2040)")
        self.image = Path(image).resolve()
        problem = image_problem(self.image, blocks)
        if problem:
            raise ValueError(problem)
        if link is not None and not Path(link).parent.is_dir():
            raise ValueError(f"link {link}: no directory {Path(link).parent}")
        self.prog = prog
        self.heap = heap
        self.blocks = blocks
        self.wifi = Path(wifi).resolve() if wifi is not None else None
        self.path = str(link) if link is not None else f"/tmp/vb-{os.getpid()}-{id(self):x}"
        self.extra_env = dict(env or {})
        self.run_main = run_main
        self.auto_restart = auto_restart
        self.log = Path(log) if log is not None else None
        self.proc: subprocess.Popen[bytes] | None = None
        self.boots = 0
        self._board_fd = -1  # master side of the pty micropython runs on
        self._client_master = -1  # master side of the pty clients open
        self._client_slave = -1  # kept open so the master never sees EIO
        self._wake_r, self._wake_w = -1, -1
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._retired: list[int] = []
        self._stopping = False
        self._output = bytearray()  # recent board output, for diagnostics
        self._logf: IO[bytes] | None = None

    # --- lifecycle -------------------------------------------------------

    def __enter__(self) -> VirtualBoard:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, timeout: float = _PROMPT_TIMEOUT, wait: bool = True) -> VirtualBoard:
        """Start the board and wait for its REPL prompt (wait=False: do not; a board that
        runs main.py may sleep before it shows one)."""
        if self._thread is not None:
            raise VirtualBoardError("already started")
        self._stopping = False
        link = Path(self.path)
        if link.is_symlink():
            link.unlink()  # left by a board that was killed
        elif link.exists():
            raise VirtualBoardError(f"{link} exists and is not a symlink: choose another link")
        master, slave = os.openpty()
        tty.setraw(slave)
        self._client_master, self._client_slave = master, slave
        os.set_blocking(master, False)
        link.symlink_to(os.ttyname(slave))
        self._wake_r, self._wake_w = os.pipe()
        if self.log is not None:
            self._logf = open(self.log, "ab")  # closed in stop()
        self._spawn()
        self._thread = threading.Thread(target=self._relay, name="vboard-relay", daemon=True)
        self._thread.start()
        try:
            if wait:
                self.wait_prompt(timeout)
        except VirtualBoardError:
            self.stop()  # __exit__ does not run when __enter__ fails
            raise
        return self

    def stop(self) -> None:
        """Kill the board process and tear down the ptys and the link."""
        self._stopping = True
        self._kill()
        if self._wake_w >= 0:
            os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._close_retired()
        fds = (self._board_fd, self._client_master, self._client_slave, self._wake_r, self._wake_w)
        for fd in fds:
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._board_fd = self._client_master = self._client_slave = -1
        self._wake_r = self._wake_w = -1
        link = Path(self.path)
        if link.is_symlink():
            link.unlink()
        if self._logf is not None:
            self._logf.close()
            self._logf = None

    def restart(self, timeout: float = _PROMPT_TIMEOUT, wait: bool = True) -> None:
        """Kill the process (a power cut) and boot again on the same image. wait=False
        returns at once: a board running main.py may sleep before it shows a prompt."""
        with self._lock:
            self._kill()
            self._spawn()
        if wait:
            self.wait_prompt(timeout)

    def kill(self) -> None:
        """Kill the process without restarting it: the power stays off."""
        with self._lock:
            self._kill()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # --- process ---------------------------------------------------------

    def env(self) -> dict[str, str]:
        e = dict(os.environ)
        e.update(
            MICROPYPATH=f".frozen:{BOARD_DIR}:/flash/lib",
            MQTTS_IMAGE=str(self.image),
            MQTTS_PROG=str(self.prog),
            MQTTS_BLOCKS=str(self.blocks),
        )
        if self.wifi is not None:
            e["MQTTS_WIFI"] = str(self.wifi)
        if self.run_main:
            e["MQTTS_MAIN"] = "1"
        e.update(self.extra_env)
        return e

    def _spawn(self) -> None:
        master, slave = os.openpty()
        # Raw both ways, like a UART: no echo, no CR/LF translation.
        tty.setraw(slave)
        try:
            self.proc = subprocess.Popen(
                [
                    _tool("micropython"),
                    "-X",
                    f"heapsize={self.heap}",
                    "-i",
                    str(BOARD_DIR / "boot.py"),
                ],
                stdin=slave,
                stdout=slave,
                stderr=slave,
                cwd=str(self.image.parent),
                env=self.env(),
                start_new_session=True,
            )
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        if self._board_fd >= 0:
            # The relay thread may be in select() on it: it closes it.
            self._retired.append(self._board_fd)
        self._board_fd = master
        self._output.clear()
        self.boots += 1
        if self._wake_w >= 0:
            os.write(self._wake_w, b"x")

    def _kill(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def _wake_delay(self) -> float:
        # board.deepsleep(ms) leaves <image>.wake with the sleep time.
        try:
            ms = int(Path(str(self.image) + ".wake").read_text() or 0)
        except (OSError, ValueError):
            return 0.0
        return max(0, ms) / 1000

    # --- relay -----------------------------------------------------------

    def _relay(self) -> None:
        pending = bytearray()  # client -> board bytes not yet written
        while not self._stopping:
            with self._lock:
                self._close_retired()
                board_fd = self._board_fd
            rlist = [self._client_master, self._wake_r]
            if board_fd >= 0:
                rlist.append(board_fd)
            try:
                ready, _, _ = select.select(rlist, [], [], 0.2)
            except (OSError, ValueError):
                continue
            if self._wake_r in ready:
                os.read(self._wake_r, 64)
            if board_fd >= 0 and board_fd in ready:
                try:
                    data = os.read(board_fd, 4096)
                except BlockingIOError:
                    data = None
                except OSError as e:
                    if e.errno != errno.EIO:
                        raise
                    data = b""
                if data == b"":
                    self._board_exited(board_fd)
                    continue
                if data and board_fd == self._board_fd:  # not a killed board's last words
                    self._to_client(data)
            if self._client_master in ready:
                try:
                    pending += os.read(self._client_master, 4096)
                except (BlockingIOError, OSError):
                    pass
            if pending and self._board_fd >= 0:
                try:
                    n = os.write(self._board_fd, pending)
                    del pending[:n]
                except BlockingIOError:
                    pass
                except OSError:
                    pending.clear()

    def _to_client(self, data: bytes) -> None:
        self._output += data
        if len(self._output) > 65536:
            del self._output[:-32768]
        if self._logf is not None:
            self._logf.write(data)
            self._logf.flush()
        try:
            os.write(self._client_master, data)
        except (BlockingIOError, OSError):
            # Nobody reads the port and its buffer is full: the bytes are
            # lost, as on a UART with no host listening.
            pass

    def _close_retired(self) -> None:
        while self._retired:
            try:
                os.close(self._retired.pop())
            except OSError:
                pass

    def _board_exited(self, fd: int) -> None:
        with self._lock:
            if fd != self._board_fd:
                return
            self._board_fd = -1
            self._retired.append(fd)
            if self.proc is not None:
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
            if not self.auto_restart or self._stopping:
                return
        delay = self._wake_delay()
        end = time.monotonic() + delay
        while not self._stopping and time.monotonic() < end:
            time.sleep(min(0.05, end - time.monotonic()))
        with self._lock:
            if not self._stopping and self._board_fd < 0:
                self._spawn()

    # --- talking to it ---------------------------------------------------

    def output(self) -> bytes:
        """What the board printed since its last boot (last 32-64 KiB)."""
        return bytes(self._output)

    def wait_prompt(self, timeout: float = _PROMPT_TIMEOUT) -> None:
        """Wait until the board has booted to its REPL prompt."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if b">>> " in self._output:
                return
            if self.proc is not None and self.proc.poll() is not None and not self.auto_restart:
                break
            time.sleep(0.02)
        raise VirtualBoardError(
            f"board did not reach its prompt in {timeout:.0f} s; output:\n"
            + self.output().decode(errors="replace")
        )

    def mpremote(
        self,
        *args: str,
        timeout: float = 30.0,
        check: bool = True,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``mpremote connect <path> resume <args>`` with a time limit."""
        cmd = [_tool("mpremote"), "connect", self.path, "resume", *args]
        try:
            res = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        except subprocess.TimeoutExpired as e:
            raise VirtualBoardError(f"mpremote {' '.join(args)}: no answer in {timeout} s") from e
        if check and res.returncode != 0:
            raise VirtualBoardError(
                f"mpremote {' '.join(args)} exited {res.returncode}:\n{res.stdout}{res.stderr}"
            )
        return res

    def exec(self, code: str, timeout: float = 30.0) -> str:
        """Run code on the board through mpremote and return what it printed."""
        return self.mpremote("exec", code, timeout=timeout).stdout


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--image", default="flash.img", help="littlefs image (created if absent)")
    p.add_argument("--board", choices=sorted(BOARDS), help="ESP32- or Pico W-sized heap and prog")
    p.add_argument("--prog", type=int, choices=(32, 256), help="littlefs prog size")
    p.add_argument("--heap", help="MicroPython heap, e.g. 122k")
    p.add_argument("--blocks", type=int, default=DEFAULT_BLOCKS, help="4 KiB blocks of a new image")
    p.add_argument("--link", help="symlink to create for the serial port (default /tmp/vb-PID)")
    p.add_argument("--wifi", help="Wi-Fi control file: 'up' or 'down'")
    p.add_argument("--main", action="store_true", help="run main.py from flash at boot")
    p.add_argument("--no-restart", action="store_true", help="do not reboot when the process ends")
    p.add_argument("--log", help="append the board's output to this file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = _parse_args(argv)
    heap, prog, _ = BOARDS.get(a.board or "esp32", BOARDS["esp32"])
    problem = foreign_file(Path(a.image))
    if problem:
        print(f"vboard: error: {problem}", file=sys.stderr)
        return 2
    try:
        vb = VirtualBoard(
            a.image,
            prog=a.prog or prog,
            heap=a.heap or heap,
            link=a.link,
            wifi=a.wifi,
            blocks=a.blocks,
            run_main=a.main,
            auto_restart=not a.no_restart,
            log=a.log,
        )
    except ValueError as e:  # an image the board could not mount
        print(f"vboard: error: {e}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        vb.start(wait=not a.main)  # with --main the node may sleep before any prompt
        print(f"virtual board on {vb.path} (heap {vb.heap}, prog {vb.prog}, image {vb.image})")
        print(f"  mpremote connect {vb.path} resume repl", flush=True)
        while not stop.wait(0.5):
            if not vb.running and not vb.auto_restart:
                print("board process ended", file=sys.stderr)
                return 1
    except VirtualBoardError as e:
        print(e, file=sys.stderr)
        return 1
    finally:
        vb.stop()
    return 0


if __name__ == "__main__":
    import usevenv  # a system Python lacks the tools: run in .venv

    usevenv.ensure(programs=("micropython", "mpremote"))
    sys.exit(main())
