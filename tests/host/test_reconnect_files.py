"""What a reconnect that changes nothing in the session does with the store
(tests/device/dev_reconnect_files.py). Before, the client ID last used for the host was
read from flash at every reconnect: a file opened, about 300 bytes of heap in one piece,
which a heap in small pieces could not give (the node reconnected into MemoryError until
the application freed heap). Now a reconnect opens no file without subscriptions, and
only the owed file (ctl.pre_owe) with them; no heap for that file no longer keeps the
node offline. With the application's data leaving the heap in pieces of about 128
bytes, the node reconnects and carries a QoS 0 message (before, it tried again and
again, each attempt failing on a file's heap). Once another session of the same host has
connected, the next reconnect names this one last again, and a boot that names no client
ID resumes it. The asyncio client's keeper too reconnects with the heap in pieces
(tests/device/dev_aio_reconnect_files.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness import DeviceResult, run_device


def _run(broker_factory: Any, tmp_path: Path, script: str, pre: str,
         version: int = 4) -> DeviceResult:
    b = broker_factory(persistence=True)
    cfg = {"HOST": b.host, "PORT": b.port, "CID": f"{pre}-{tmp_path.name[-16:]}",
           "PREFIX": f"{pre}-{tmp_path.name}", "IMAGE": str(tmp_path / "flash.img"),
           "VERSION": version}
    return run_device(script, cfg, heap="256k", timeout=180, check=False)


@pytest.mark.parametrize("version", [4, 5])
def test_reconnect_opens_no_file_it_does_not_need(broker_factory: Any, tmp_path: Path,
                                                  version: int) -> None:
    r = _run(broker_factory, tmp_path, "dev_reconnect_files.py", "rf", version)
    for what in ("a reconnect without subscriptions opened no file",
                 "a reconnect without subscriptions wrote no flash",
                 "a reconnect with a subscription opened the owed file only",
                 "the node reconnected (no heap for the owed file)",
                 "no attempt failed for the owed file",
                 "m5 acknowledged and received back",
                 "the node reconnected (a heap in small pieces)",
                 "the link carries, reconnected with the heap in small pieces",
                 "the reconnect after another session named this one last again",
                 "the next boot resumes"):
        assert "ok " + what in r.out, r.out
    assert r.passed, r.out


def test_aio_reconnects_with_the_heap_in_pieces(broker_factory: Any, tmp_path: Path) -> None:
    r = _run(broker_factory, tmp_path, "dev_aio_reconnect_files.py", "ra")
    for what in ("the reconnect opened the owed file only",
                 "the node reconnected with the heap in small pieces, and the link carries",
                 "m2 received back"):
        assert "ok " + what in r.out, r.out
    assert r.passed, r.out
