"""A long life in a few hundred cycles (tests/device/dev_heap_soak.py), both clients:
subscription changes, QoS 0/1/2 out and in, link drops, disconnect()/connect() and clean
starts against a real mosquitto, with a store on a littlefs image. Past a warm-up the free
heap must not trend down and no container of the client or the session may grow. Behind
--runslow (about 30 s); it found no leak when written."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import Broker, run_device

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("api", ["blocking", "aio"])
def test_heap_flat_over_many_cycles(broker: Broker, tmp_path: Path, api: str) -> None:
    c = {
        "HOST": broker.host,
        "PORT": broker.port,
        "VERSION": 4,
        "API": api,
        "PREFIX": f"soak-{api}-{tmp_path.name}",
        "IMAGE": str(tmp_path / "flash.img"),
        "CID": f"s-{api}-{tmp_path.name}"[-23:],
        "CYCLES": 200,
    }
    r = run_device("dev_heap_soak.py", c, heap="256k", timeout=240)
    assert "MISSING" not in r.out, r.out
