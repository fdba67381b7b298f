"""A link that carries one direction only: the node's upstream stops while the broker
(a real mosquitto, persistence on) keeps sending it messages. The wait for a PUBACK that
cannot come is bounded by timeout in both clients (README: What `timeout` bounds, What the
budget does not change), whatever else arrives meanwhile; nothing accepted is lost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness import start_device
from oneway import OneWay


@pytest.mark.parametrize("api", ["blocking", "aio"])
def test_unanswered_publish_ends_a_link_whose_upstream_stopped(broker_factory: Any,
                                                               tmp_path: Path,
                                                               api: str) -> None:
    # keepalive 30 (no ping within the stop), timeout 1 s, the upstream stopped 8 s while
    # a second client sends the node a QoS 0 message every 100 ms. Before, the blocking
    # client with a budget (a store and a keeper) counted that traffic as an answer: the
    # PUBLISH in flight was never found unanswered, the window stayed full and every
    # message queued behind it until the queue ran out
    b = broker_factory(persistence=True)
    with OneWay(b.port) as p:
        cfg = {"HOST": b.host, "PORT": p.port, "BROKER_PORT": b.port, "CTL": p.control_port,
               "API": api, "KA": 30, "TO": 1, "STOP_MS": 8000,
               "CID": f"ow-{api}-{tmp_path.name}"[-23:], "PREFIX": f"ow-{tmp_path.name}",
               "IMAGE": str(tmp_path / "flash.img")}
        dev = start_device("dev_oneway.py", cfg, heap="256k")
        try:
            r = dev.result(timeout=120, check=False)
        finally:
            dev.close()
    assert "ok the unanswered PUBLISH ended the link within the stop" in r.out, r.out
    assert "ok nothing accepted was lost" in r.out, r.out
    assert r.passed, r.out
