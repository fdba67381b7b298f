"""The link keeper's Wi-Fi step with a board layer whose wifi_start()/wifi_poll() raise
(tests/device/dev_wifi_raise.py): a raise ends that attempt, so the next attempt starts the
radio again (before, the attempt stayed marked under way: wifi_start() was never called
again, and a wifi_poll() that kept raising kept the node offline for good)."""

from __future__ import annotations

from pathlib import Path

from faultrig import FaultProxy
from harness import Broker, Observer, start_device


def test_wifi_start_that_raised_is_tried_again(rig: tuple[Broker, FaultProxy],
                                               tmp_path: Path) -> None:
    b, p = rig
    cfg = {"HOST": b.host, "PORT": p.port, "TEST": "start",
           "CID": f"wr-{tmp_path.name}"[-23:], "PREFIX": f"wr-{tmp_path.name}"}
    p.refuse()
    with Observer(b.host, b.port, f"{cfg['PREFIX']}/r", qos=1) as obs:
        dev = start_device("dev_wifi_raise.py", cfg, heap="128k")
        try:
            dev.wait_for("OFFLINE", timeout=30)
            p.forward()
            r = dev.result(timeout=60)
        finally:
            dev.close()
        assert r.passed, r.out
        # the reading published after connect() returned None belongs to the clean
        # session asked for: it reaches the broker (before, the keeper's clean start gave
        # it up, counted in dropped, and pending() was 0 all the same)
        assert [m.payload for m in obs.wait_for(1)] == [b"reading"], r.out
