"""The demo end to end: `tools/demo.py --quick` (about 25 s) must lose nothing, deliver no
QoS 2 reading twice, play every fault kind, and write its timeline page."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import harness

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "tools" / "demo.py"
KINDS = {"reset", "blackhole", "wifi", "broker", "stall", "power"}
TIMEOUT = 85.0  # the quick scenario takes about 25 s


def run_demo(tmp_path: Path) -> tuple[int, str, dict[str, Any]]:
    summary = tmp_path / "summary.json"
    cmd = [
        sys.executable,
        str(DEMO),
        "--quick",
        "--no-status",
        "--json",
        str(summary),
        "--out",
        str(tmp_path / "demo"),
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        # SIGTERM first: the demo then stops its broker and node (they run in sessions of
        # their own, out of reach of a group kill)
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        raise AssertionError(f"demo still running after {TIMEOUT} s:\n{out}") from None
    data = json.loads(summary.read_text()) if summary.exists() else {}
    return proc.returncode, out, data


def test_demo_quick_loses_nothing(tmp_path: Path) -> None:
    harness.mosquitto_path()  # a clear error when mosquitto is missing
    rc, out, s = run_demo(tmp_path)
    assert s, f"no JSON summary written (exit {rc}):\n{out}"
    assert s["lost"] == 0, out
    assert s["duplicates_q2"] == 0, out
    assert rc == 0, out
    assert s["ok"] and not s["problems"], out

    # every fault kind was played, and each one ended (the network or power came back)
    assert set(s["kinds"]) == KINDS
    assert all(s["kinds"].values()), s["kinds"]
    assert {f["kind"] for f in s["faults"]} == KINDS
    assert all(f["happened"] for f in s["faults"]), s["faults"]

    # the node published throughout, drained at the end and never crashed
    assert s["published"] >= 60, out
    assert s["delivered"] >= s["published"], out
    assert s["drained"] and s["crashes"] == 0, out
    assert s["power_cuts"] >= 1 and s["boots"] == s["power_cuts"] + 1, out

    # the half-open link was found by the keepalive, within 1.5 x keepalive (plus slack
    # for the scheduling of the node's loop)
    ka = s["keepalive_s"]
    assert s["halfopen_detect_s"] is not None, out
    assert s["halfopen_detect_s"] <= 1.5 * ka + 1.0, out

    # the report says so, and the timeline page is there
    assert "lost (published, never delivered)      0" in out
    assert "duplicates at QoS 2                    0" in out
    page = Path(s["timeline"])
    assert page.is_file()
    text = page.read_text(encoding="utf-8")
    assert "<svg" in text and "silent blackhole" in text
