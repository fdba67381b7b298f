"""full="drop_oldest" meeting, first in flash beyond the RAM ring, a QoS 2 message sent
before a reboot (tests/device/dev_drop_behind_qos2.py)."""

from __future__ import annotations

from pathlib import Path

from harness import run_device


def test_drop_oldest_passes_a_qos2_in_flight_beyond_the_ring(tmp_path: Path) -> None:
    # 6 QoS 2 in flight under ram=16 and 10 QoS 1 queued behind them; the next boot has
    # ram=4: two QoS 2 ones wait in flash beyond the ring, first. A new message with the
    # queue full gives up the oldest QoS 1 one (never sent), as README's full="drop_oldest"
    # says, instead of refusing the new one
    r = run_device("dev_drop_behind_qos2.py", {"IMAGE": str(tmp_path / "flash.img"),
                                               "BLOCKS": 64}, heap="256k", timeout=60,
                   check=False)
    assert "AFTER 16" in r.out, r.out
    assert r.passed, r.out
