"""Power cuts at every block write on the store's rare paths (tests/device/dev_rare_cuts.py):
an MQTT 5 null session assigned an ID the store already holds a session under (README:
the older session is moved aside to client ID "<ID>~old", with its messages, and
get(host, "<ID>~old") loads it): after each cut, the older session's messages are still
there under one of its two client IDs (a cut between the move and the identity's rewrite
left them under neither); and delete(): after each cut the session is whole or gone
(removed file by file, a cut left its queue without its hot state: completed QoS 2
messages pending again)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import run_device

HEAP = "256k"


@pytest.mark.parametrize("prog", [32, 256])
def test_power_cut_sweep_over_adopt(tmp_path: Path, prog: int) -> None:
    c = {"IMAGE": str(tmp_path / "flash.img"), "PROG": prog, "BLOCKS": 128, "MODE": "adopt"}
    r = run_device("dev_rare_cuts.py", c, heap=HEAP, timeout=300)
    writes = int(r.values("WRITES")[0][0])
    cuts, _, runs = r.values("CUTS")[0]
    assert writes > 0 and int(cuts) > 0 and int(runs) == writes + 1, r.out


@pytest.mark.parametrize("prog", [32, 256])
def test_power_cut_sweep_over_delete(tmp_path: Path, prog: int) -> None:
    # delete(host, client_id) cut at every block write: the reload has the session whole
    # or nothing, never a completed QoS 2 message pending again (it would be sent as a
    # new message: delivered twice)
    c = {"IMAGE": str(tmp_path / "flash.img"), "PROG": prog, "BLOCKS": 128, "MODE": "delete"}
    r = run_device("dev_rare_cuts.py", c, heap=HEAP, timeout=300)
    writes = int(r.values("WRITES")[0][0])
    assert writes > 0 and int(r.values("CUTS")[0][2]) == writes + 1 and "PASS" in r.out, r.out
