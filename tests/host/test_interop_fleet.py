"""The fleet benchmark (tools/bench/b_fleet.py) as a short soak: a few nodes, a broker
restarted twice and power cuts; it fails on any lost message or QoS 2 duplicate."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness import REPO


@pytest.mark.slow
def test_small_fleet_loses_nothing() -> None:
    r = subprocess.run(
        [sys.executable, str(REPO / "tools" / "bench" / "b_fleet.py"), "--nodes", "5",
         "--duration", "12", "--jitter", "0.25", "--kills", "3"],
        capture_output=True, text=True, timeout=180,
    )
    got = dict(line.split()[1:3] for line in r.stdout.splitlines() if line.startswith("R "))
    assert r.returncode == 0, r.stdout + r.stderr
    assert int(got["fleet.j0.25.accepted"]) > 0
    assert got["fleet.j0.25.lost"] == "0"
    assert got["fleet.j0.25.qos2_duplicates"] == "0"
    assert got["fleet.j0.25.restart2.reconnected"] == "5"
