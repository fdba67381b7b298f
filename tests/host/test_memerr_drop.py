"""MemoryError where a completion is recorded (the list of completed seqs grows its block),
injected once (tests/device/dev_memerr_drop.py): full="drop_oldest" giving up the oldest
message waiting in flash while the ring is in flight (a scripted broker that answers
nothing) raised MemoryError with that message already passed over (the backlog's count
one short, its read position past it) and not counted in c.dropped: the application's
publish again was accepted with no drop, and the message was never sent (both clients).
A PUBACK whose completion found no heap lowered the session's count of bytes in flash
once per attempt (it drifted below what flash holds, past max_bytes' bound)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import Broker, run_device
from hostile import CONNECT, HostileBroker, Script, connack


@pytest.mark.parametrize("api", ["blocking", "aio"])
def test_drop_from_flash_whose_record_finds_no_heap_loses_nothing(tmp_path: Path,
                                                                  api: str) -> None:
    script: Script = [("expect", CONNECT), ("send", connack()), ("sleep", 60)]
    with HostileBroker([script]) as b:
        c = {"HOST": b.host, "PORT": b.port, "API": api, "PREFIX": f"memdrop-{tmp_path.name}",
             "IMAGE": str(tmp_path / "flash.img"), "BLOCKS": 256}
        r = run_device("dev_memerr_drop.py", c, heap="256k", timeout=120, check=False)
    assert r.out.rstrip().endswith("PASS"), r.out


def test_completion_whose_record_finds_no_heap_keeps_the_byte_count(broker: Broker,
                                                                    tmp_path: Path) -> None:
    c = {"HOST": broker.host, "PORT": broker.port, "API": "forget",
         "PREFIX": f"memforget-{tmp_path.name}", "IMAGE": str(tmp_path / "flash.img"),
         "BLOCKS": 256}
    r = run_device("dev_memerr_drop.py", c, heap="256k", timeout=120, check=False)
    assert r.out.rstrip().endswith("PASS"), r.out
