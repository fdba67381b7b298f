"""A message the asyncio publish() accepted is durable with a store however the call
ends while it waits for its PUBACK at window 1: cancelled by the application
(asyncio.wait_for, task.cancel()) or raising the error of a reader that ended (a broker's
protocol error, no keeper). pending() counts it; a power cut right after must not lose
it (README "Durability"; the blocking client keeps it in the same cases). Before the fix
the slot was left in RAM only (aio.publish skipped s.hold on anything but OSError) and
the next boot had no record of it. QoS 2 goes to flash before it is sent: the control."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import run_device
from hostile import CONNECT, PUBLISH, HostileBroker, Script, connack

# an incoming PUBLISH with QoS 3: a protocol error, the connection ends (no keeper: the
# reader ends with the MQTTException and every await raises it)
_BAD = bytes([0x36, 5, 0, 1, 0x74, 0, 1])


@pytest.mark.parametrize("qos", [1, 2])
@pytest.mark.parametrize("how", ["wait_for", "cancel", "broke"])
def test_aio_publish_ended_in_its_wait_keeps_its_message_in_flash(
        tmp_path: Path, how: str, qos: int) -> None:
    script: Script = [("expect", CONNECT), ("send", connack(0)), ("expect", PUBLISH)]
    if how == "broke":
        script += [("sleep", 0.5), ("send", _BAD)]
    script += [("sleep", 10)]  # never a PUBACK
    root = str(tmp_path / "store")
    with HostileBroker([script]) as b:
        cfg = {"HOST": b.host, "PORT": b.port, "ROOT": root, "STEP": "pub",
               "HOW": how, "QOS": qos}
        r = run_device("dev_aio_cancel.py", cfg, heap="256k", timeout=60)
    want = {"wait_for": "TimeoutError", "cancel": "CancelledError",
            "broke": "MQTTException"}[how]
    assert "PUB raised " + want in r.out, r.out
    assert "PENDING 1" in r.out, r.out  # accepted
    r2 = run_device("dev_aio_cancel.py", {**cfg, "STEP": "boot"}, heap="256k", timeout=60)
    assert "BOOT PENDING 1" in r2.out, (r.out, r2.out)
