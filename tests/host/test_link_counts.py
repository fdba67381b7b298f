"""README "Riding through outages": link.outages and link.longest count a disconnect()
(the asyncio client's side is in test_aio_disconnect.py's hook_seq) as the README says."""

from __future__ import annotations

from pathlib import Path

from harness import Broker, run_device


def test_disconnect_counts_as_going_down(broker: Broker, tmp_path: Path) -> None:
    cfg = {"HOST": broker.host, "PORT": broker.port, "VERSION": 4,
           "PREFIX": f"lc-{tmp_path.name}"}
    r = run_device("dev_link_counts.py", cfg, heap="256k", timeout=60)
    assert "ok a disconnect counts in outages" in r.out, r.out

