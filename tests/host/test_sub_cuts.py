"""Power cuts at every block write of subscription changes made offline
(tests/device/dev_sub_cuts.py), both clients. README: offline with a keeper, subscribe and
unsubscribe record the change in the session (in flash with a store), kept in flash until
the broker has acknowledged it (the "owed" file), so a reset before the next connect keeps
it, and that connect makes it even when the code after the reboot only connects. A cut
between the write of the session's subscriptions and the write of what is owed left the
session saying one thing and the broker, which the next connect only tells what is owed,
another: a subscription the session holds and the broker never gets (no message ever
arrives for it), or one unsubscribed in the session that the broker keeps delivering."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import run_device

HEAP = "256k"


@pytest.mark.parametrize("api", ["blocking", "aio"])
def test_power_cut_sweep_over_offline_subscription_changes(tmp_path: Path, api: str) -> None:
    c = {"IMAGE": str(tmp_path / "flash.img"), "BLOCKS": 64, "API": api, "VERSION": 4}
    r = run_device("dev_sub_cuts.py", c, heap=HEAP, timeout=300)
    writes = int(r.values("WRITES")[0][0])
    cuts, runs, bad = (int(x) for x in r.values("CUTS")[0][0::2])
    assert writes > 0 and cuts > 0 and runs == writes + 1, r.out
    assert bad == 0, r.out
    assert "PASS" in r.out, r.out
