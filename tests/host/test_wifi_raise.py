"""The link keeper's Wi-Fi step with a board layer whose wifi_start()/wifi_poll() raise
(tests/device/dev_wifi_raise.py): a raise ends that attempt, so the next attempt starts the
radio again (before, the attempt stayed marked under way: wifi_start() was never called
again, and a wifi_poll() that kept raising kept the node offline for good)."""

from __future__ import annotations

from pathlib import Path

from faultrig import FaultProxy
from harness import Broker, start_device


def test_wifi_start_that_raised_is_tried_again(rig: tuple[Broker, FaultProxy],
                                               tmp_path: Path) -> None:
    b, p = rig
    cfg = {"HOST": b.host, "PORT": p.port, "TEST": "start",
           "CID": f"wr-{tmp_path.name}"[-23:], "PREFIX": f"wr-{tmp_path.name}"}
    p.refuse()
    dev = start_device("dev_wifi_raise.py", cfg, heap="128k")
    try:
        dev.wait_for("OFFLINE", timeout=30)
        p.forward()
        r = dev.result(timeout=60)
    finally:
        dev.close()
    assert r.passed, r.out
