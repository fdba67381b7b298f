"""What loading a stored session does not take on trust, on the unix port with littlefs
images (tests/device/dev_store_trust.py): completions recorded above the watermark whose
messages are then lost to damage no longer hide the newest undamaged messages; a hot
state whose watermark is past the queue is damage, not a reason to remove the queue; a
subscription whose filter or QoS the client refuses is reported and left out (it would
make every connect fail). Each is reported once."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import Broker, run_device


@pytest.mark.parametrize("case", ["done_segment", "done_tail", "hot_past", "subs_refused"])
def test_loading_checks_what_flash_says(broker: Broker, tmp_path: Path, case: str) -> None:
    c = {"HOST": broker.host, "PORT": broker.port, "TEST": case,
         "IMAGE": str(tmp_path / "flash.img")}
    r = run_device("dev_store_trust.py", c, heap="256k", timeout=120)
    assert "PASS" in r.out, r.out
