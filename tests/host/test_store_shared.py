"""Two clients on one client ID from one store, or from two SessionStore objects on the
same root (tests/device/dev_store_shared.py): every publish that returns must be in flash
after a reboot. Up to this test both clients wrote the session's tail from their own
count, the second overwrote the first's messages, and every publish returned: the first
client's messages were silently lost. Now the later client takes the session over and
the earlier one's publish raises OSError(EBUSY)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import Broker, run_device


@pytest.mark.parametrize("two", [0, 1])
def test_two_clients_on_one_session_lose_nothing(broker: Broker, tmp_path: Path,
                                                 two: int) -> None:
    cfg = {"HOST": broker.host, "PORT": broker.port, "VERSION": 4, "TWO": two,
           "IMAGE": str(tmp_path / "flash.img"), "BLOCKS": 64}
    r = run_device("dev_store_shared.py", cfg, heap="256k", timeout=60)
    got = {line.split()[0]: line.split()[1:] for line in r.lines if line.strip()}
    print("\n".join(r.lines))
    # nothing accepted is lost: what publish returned for is in flash after the reboot
    assert set(got["ACCEPTED"]) <= set(got["RELOAD"]), got
    # and not silently: the refused ones raised, EBUSY (the session taken over)
    assert got["ERRORS"] == ["16"] * 3, got


def test_taken_over_client_writes_no_owed_file(broker: Broker, tmp_path: Path) -> None:
    # the earlier client's offline subscribe raises EBUSY and leaves the owed file as the
    # later client wrote it (tests/device/dev_store_shared_owed.py)
    cfg = {"HOST": broker.host, "PORT": broker.port, "VERSION": 4,
           "IMAGE": str(tmp_path / "flash.img"), "BLOCKS": 64}
    r = run_device("dev_store_shared_owed.py", cfg, heap="256k", timeout=60)
    got = {line.split()[0]: line.split()[1:] for line in r.lines if line.strip()}
    print("\n".join(r.lines))
    assert got["ERR"] == ["16"], got
    assert got["OWED"] == ["t/b"], got


def test_null_session_taken_over_once_assigned(broker: Broker, tmp_path: Path) -> None:
    # a null session's assigned ID, taken by a later client (client ID None): the earlier
    # client's writes raise EBUSY (tests/device/dev_store_shared_null.py)
    cfg = {"HOST": broker.host, "PORT": broker.port, "VERSION": 5,
           "IMAGE": str(tmp_path / "flash.img"), "BLOCKS": 64}
    r = run_device("dev_store_shared_null.py", cfg, heap="256k", timeout=60)
    got = {line.split()[0]: line.split()[1:] for line in r.lines if line.strip()}
    print("\n".join(r.lines))
    assert set(got["ACCEPTED"]) <= set(got["RELOAD"]), got
    assert got["ERRORS"] == ["16"] * 3, got
