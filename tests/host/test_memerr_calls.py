"""MemoryError in the application's calls (tests/device/dev_memerr_calls.py, injected, so
each case is deterministic): a publish whose payload copy finds no heap (the heap locked
for that call), subscriptions made again after the broker lost the session with an
allocation failing midway (both clients, connect() and the keeper's reconnect), a store
loaded with the heap running out midway. Up to 0.2.21 the refused publish stayed queued
with no payload (every later send raised TypeError), and subscriptions failed midway
were never made again (the next connect found the broker's new, empty session present);
the loads behaved (flash unchanged, the next load whole)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import Broker, run_device


def _run(broker: Broker, tmp_path: Path, **kw: object) -> None:
    c = {"HOST": broker.host, "PORT": broker.port, "PREFIX": f"mec-{tmp_path.name}",
         "IMAGE": str(tmp_path / "flash.img"), "BLOCKS": 512, **kw}
    r = run_device("dev_memerr_calls.py", c, heap="256k", timeout=120, check=False)
    assert r.out.rstrip().endswith("PASS"), r.out


@pytest.mark.parametrize(("api", "store", "window", "qos"), [
    ("blocking", 0, 1, 1), ("blocking", 1, 16, 2), ("aio", 0, 16, 1), ("aio", 1, 1, 2)])
def test_publish_whose_copy_finds_no_heap_leaves_nothing_queued(
        broker: Broker, tmp_path: Path, api: str, store: int, window: int, qos: int) -> None:
    _run(broker, tmp_path, TEST="pub", API=api, STORE=store, WINDOW=window, QOS=qos)


@pytest.mark.parametrize(("api", "store"), [("blocking", 1), ("aio", 0)])
def test_publish_offline_whose_copy_finds_no_heap_leaves_nothing_queued(
        broker: Broker, tmp_path: Path, api: str, store: int) -> None:
    _run(broker, tmp_path, TEST="pub", API=api, STORE=store, LINK=1, ONLINE=0, QOS=1)


# where the allocation fails: subs.todo's list, the K-th SUBSCRIBE, the session's
# identity write, ctl.resume's copy of the subscriptions, the owed file's record
@pytest.mark.parametrize(("api", "where", "keeper"), [
    ("blocking", "list", 0), ("blocking", "sub", 1), ("blocking", "connected", 0),
    ("blocking", "dict", 1), ("blocking", "owe", 0), ("aio", "list", 1), ("aio", "sub", 0),
    ("aio", "connected", 1), ("aio", "dict", 0), ("aio", "owe", 1)])
def test_subscriptions_made_again_when_an_allocation_fails_midway(
        broker: Broker, tmp_path: Path, api: str, where: str, keeper: int) -> None:
    _run(broker, tmp_path, TEST="resub", API=api, WHERE=where, LINK=1, KEEPER=keeper)


@pytest.mark.parametrize("where", ["read", "parse", "win"])
def test_store_load_cut_short_by_the_heap_changes_nothing(broker: Broker, tmp_path: Path,
                                                           where: str) -> None:
    _run(broker, tmp_path, TEST="load", WHERE=where)
