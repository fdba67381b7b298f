"""The client's default queue with a store (README "The queue"): bounded by the store's
max_bytes only, 16 messages in RAM and the rest in flash. Up to 0.2.23 the default was 16
with or without a store, so a node given a store and no queue refused the 17th reading
of an outage (OSError ENOBUFS) whatever flash it had: the example nodes lost readings
after 16 offline wakes, and the asyncio one's publishing task ended."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import Broker, Observer, run_device


@pytest.mark.parametrize("api", ["blocking", "aio"])
def test_default_queue_with_a_store_holds_what_max_bytes_holds(
        broker: Broker, tmp_path: Path, api: str) -> None:
    prefix = f"qdef-{tmp_path.name}"
    cfg = {"HOST": broker.host, "PORT": broker.port, "API": api,
           "IMAGE": str(tmp_path / "flash.img"), "PREFIX": prefix}
    with Observer(broker.host, broker.port, f"{prefix}/r", qos=1) as obs:
        assert obs.wait_subscribed()
        r = run_device("dev_queue_default.py", cfg, heap="256k", timeout=300)
        full = r.values("FULL")[0]
        obs.wait_for(int(full[0]), timeout=120, distinct=True)  # every one delivered
        got = {m.payload for m in obs.messages}
    taken = int(full[0])
    # refused by the store's bytes (ENOSPC), not by a count of 16 (ENOBUFS); a quarter
    # of the 1 MiB image holds 64 blocks of 32 messages, less the tail's bytes
    assert full[1] == "28" and taken > 1500, r.out
    assert r.values("RING") == [["16"]], r.out  # 16 in RAM, the rest in flash
    assert r.values("PENDING") == [[str(taken)]], r.out  # all of them after the reboot
    assert r.values("DRAINED") == [["0"]], r.out  # and every one acknowledged
    assert got == {b"%06d-reading" % i for i in range(taken)}, (len(got), r.out)
    assert r.values("Q16") == [["16", "105"]], r.out  # a given queue keeps its bound
