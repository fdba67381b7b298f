"""A sensor node's own arguments and hooks (tests/device/dev_app_node.py), against a real
mosquitto: a budget_ms past the ticks range (accepted, then OverflowError out of every
call), a memoryview payload of 2-byte items at QoS 0 (sent cut to its item count, or
ValueError 'lhs and rhs should be compatible'), and a message the log hook publishes on
"connected" after a boot offline (sent ahead of the messages queued before it)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from faultrig import FaultProxy
from harness import Broker, Observer, run_device, start_device


@pytest.mark.parametrize("case", ["budget_huge", "memoryview_items"])
def test_argument_is_refused_or_sent_whole(broker: Broker, tmp_path: Path, case: str) -> None:
    cfg = {"HOST": broker.host, "PORT": broker.port, "VERSION": 4, "TEST": case,
           "PREFIX": f"an{case}-{tmp_path.name}"}
    r = run_device("dev_app_node.py", cfg, heap="2m", timeout=90, check=False)
    assert r.passed, r.out


@pytest.mark.parametrize("version", [4, 5])
def test_hook_publish_at_connect_goes_after_the_queue(rig: tuple[Broker, FaultProxy],
                                                       tmp_path: Path, version: int) -> None:
    b, p = rig
    go = tmp_path / "go"
    prefix = f"hook-{tmp_path.name}"
    cfg = {"HOST": b.host, "PORT": p.port, "VERSION": version, "TEST": "hook_order",
           "PREFIX": prefix, "ROOT": str(tmp_path / "store"), "CID": f"h-{tmp_path.name}"[-23:],
           "GO_FILE": str(go)}
    p.refuse()
    with Observer(b.host, b.port, f"{prefix}/#", qos=2, persistent=True) as obs:
        dev = start_device("dev_app_node.py", cfg, heap="256k")
        try:
            dev.wait_for("QUEUED 2", timeout=30)
            p.forward()
            go.write_text("go")
            r = dev.result(timeout=60, check=False)
        finally:
            dev.close()
        obs.wait_for(3)
        time.sleep(0.3)
    assert r.passed, r.out
    assert obs.payloads() == [b"A", b"B", b"C"], r.out
