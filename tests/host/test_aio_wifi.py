"""The asyncio client's keeper brings Wi-Fi up in steps (Link.wifi_step): while the
network is missing the event loop keeps running, and the node connects once it is back
(tests/device/dev_aio_wifi.py on the virtual board)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from harness import Observer, start_device
from test_aio import GAP_MS, HEAP, gap


def test_loop_runs_while_wifi_is_down(broker_factory: Any, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    b = broker_factory()
    wifi = tmp_path / "wifi"
    wifi.write_text("down")
    monkeypatch.setenv("MQTTS_WIFI", str(wifi))  # the virtual board's Wi-Fi control file
    topic = f"aio-{tmp_path.name}/wifi"
    cfg = {"HOST": b.host, "PORT": b.port, "VERSION": 4, "CID": f"w-{tmp_path.name}"[-23:],
           "TOPIC": topic, "WIFI_MS": 8000}
    with Observer(b.host, b.port, topic, qos=1) as obs:
        dev = start_device("dev_aio_wifi.py", cfg, heap=HEAP)
        try:
            dev.wait_for("BOOTED", timeout=30)
            time.sleep(2.5)  # Wi-Fi stays down; a blocking Wi-Fi step would stall the loop
            wifi.write_text("up")
            r = dev.result(timeout=60)
        finally:
            dev.close()
        assert gap(r.out) < GAP_MS, r.out
        assert [m.payload for m in obs.wait_for(1)] == [b"after wifi"]
