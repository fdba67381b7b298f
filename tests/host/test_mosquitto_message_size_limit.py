"""mosquitto's `message_size_limit` (a payload limit it does not announce). MQTT 5: the
message past it is answered with reason code 0x95 and set aside, the others delivered.
MQTT 3.1.1: mosquitto acknowledges it and drops it, and the node cannot know (README,
Brokers: the shortfall asserted here)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from harness import Observer, run_device


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("qos", [1, 2])
def test_message_past_message_size_limit(broker_factory: Any, tmp_path: Path, version: int,
                                         qos: int) -> None:
    b = broker_factory(extra=["message_size_limit 100"])
    with Observer(b.host, b.port, "t/#", qos=2) as o:
        r = run_device("dev_mosquitto_message_size_limit.py",
                       {"HOST": b.host, "PORT": b.port, "VERSION": version, "QOS": qos,
                        "IMAGE": str(tmp_path / "flash.img")}, heap="256k", timeout=60)
        o.wait_for(2, timeout=30)
        time.sleep(0.5)
        got = sorted(m.topic for m in o.messages)
    assert got == ["t/s0", "t/s2"], (got, r.out)
    assert r.value("DROPPED") == "0", r.out
    if version == 5:
        assert r.value("ASIDE") == "[('t/s1', 149)]", r.out
    else:  # acknowledged by mosquitto, never delivered: nothing the node can see
        assert r.value("ASIDE") == "[]", r.out
        assert "Dropped too large PUBLISH" in b.log(), b.log_tail()
