"""A node that runs for weeks: its ticks wrap (2**30 ms on the ports). The device scripts
(dev_wrap.py) run on a clock that wraps as a port's does: tests/device/wrapclock/time.py
shadows the unix port's time module (and wrapclock_asyncio.py the C _asyncio task queue,
which keys tasks by the real clock). Through a wrap 5 s into the run, both clients with Link
and a store: pings at keepalive 2, QoS 1/2 at window 4, a broker restart after the wrap.
With the clock jumping days: a connection that lived 7 days then dropped (reconnects at
once); a Link with a backoff past 2**29 ms (up to 0.2.24 accepted, then the blocking
client's keeper never tried again and the asyncio reader died of OverflowError: now
refused); an outage of 7 days (link.longest counts it)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from harness import Broker, Observer, start_device

HEAP = "256k"


@pytest.mark.parametrize("api", ["blocking", "aio"])
def test_reconnect_after_a_week_up(tmp_path: Path, api: str) -> None:
    with Broker(tmp_path / "broker") as b:
        cfg = {"HOST": b.host, "PORT": b.port, "TEST": "longup", "API": api,
               "CID": f"wl-{api}", "WRAP_START": 1000}
        dev = start_device("dev_wrap.py", cfg, heap=HEAP)
        try:
            dev.wait_for("JUMPED", timeout=60)
            b.restart()
            r = dev.result(timeout=120, check=False)
        finally:
            dev.close()
    assert r.passed, r.out


@pytest.mark.slow  # (coverage, 22 s each: behind --runslow)
@pytest.mark.parametrize("api", ["blocking", "aio"])
def test_across_the_wrap(tmp_path: Path, api: str) -> None:
    with Broker(tmp_path / "broker", persistence=True) as b:
        prefix = f"wa-{tmp_path.name}"
        cfg = {"HOST": b.host, "PORT": b.port, "TEST": "across", "PREFIX": prefix,
               "API": api, "CID": f"wa-{api}", "IMAGE": str(tmp_path / "flash.img")}
        with Observer(b.host, b.port, f"{prefix}/#", qos=2, persistent=True) as obs:
            dev = start_device("dev_wrap.py", cfg, heap=HEAP)
            try:
                dev.wait_for("WRAPPED", timeout=60)
                time.sleep(1)
                b.restart()
                r = dev.result(timeout=120, check=False)
            finally:
                dev.close()
            assert r.passed, r.out
            accepted = {int(v[0]) for v in r.values("ACCEPTED")}
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                got = [int(m.payload) for m in obs.messages]
                if accepted <= set(got):
                    break
                time.sleep(0.1)
            got = [int(m.payload) for m in obs.messages]
            assert accepted <= set(got), sorted(accepted - set(got))
            two = [int(m.payload) for m in obs.messages if m.topic == f"{prefix}/p2"]
            assert len(two) == len(set(two)), "QoS 2 duplicates"


@pytest.mark.parametrize("api", ["blocking", "aio"])
def test_backoff_past_the_ticks_range(tmp_path: Path, api: str) -> None:
    """Link(max_ms=7 days): a backoff past 2**29 ms never ended on a port (due() stays > 0
    whatever ticks_diff gives); such a value is now refused as budget_ms's is."""
    with Broker(tmp_path / "broker") as b:
        go = tmp_path / "go"
        cfg = {"HOST": b.host, "PORT": b.port, "TEST": "bigwait", "API": api, "CID": f"wb-{api}",
               "GO": str(go), "WRAP_START": 1000}
        dev = start_device("dev_wrap.py", cfg, heap=HEAP)
        try:
            if "BIGWAIT taken" in dev.wait_for("BIGWAIT", timeout=60):
                dev.wait_for("UP", timeout=60)
                b.stop()
                dev.wait_for("DOWN", timeout=60)
                b.start()
                go.write_text("1")
            r = dev.result(timeout=120, check=False)
        finally:
            dev.close()
    assert r.passed, r.out


def test_longest_outage_of_a_week(tmp_path: Path) -> None:
    """An outage of 7 days ridden through: link.longest counts it (up to 0.2.23 it said 0:
    ticks_diff past 2**29 ms is negative on a port)."""
    with Broker(tmp_path / "broker") as b:
        cfg = {"HOST": b.host, "PORT": b.port, "TEST": "weekout", "CID": "ww-node",
               "WRAP_START": 1000}
        dev = start_device("dev_wrap.py", cfg, heap=HEAP)
        try:
            dev.wait_for("UP", timeout=60)
            b.stop()
            dev.wait_for("WEEK", timeout=120)
            b.start()
            r = dev.result(timeout=120, check=False)
        finally:
            dev.close()
    assert r.passed, r.out
