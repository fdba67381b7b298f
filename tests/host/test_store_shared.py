"""Two holders of one session (tests/device/dev_store_shared*.py): two clients of one client
ID on one store, or on two SessionStore objects on the same root, or a client and the
application's own store.get(). Every publish that returns must be in flash after a
reboot. Up to 0.2.23 both clients wrote the session's tail from their own count, the
later overwrote the earlier's messages, and every publish returned: the earlier client's
messages were silently lost. Now the later load takes the session over and the earlier
holder's writes raise OSError(EBUSY)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import Broker, run_device

EBUSY = "16"


def run(name: str, broker: Broker, tmp_path: Path, **cfg: object) -> dict[str, list[str]]:
    cfg = {"HOST": broker.host, "PORT": broker.port, "VERSION": 4,
           "IMAGE": str(tmp_path / "flash.img"), "BLOCKS": 64, **cfg}
    r = run_device(name, cfg, heap="256k", timeout=60)
    print("\n".join(r.lines))
    return {line.split()[0]: line.split()[1:] for line in r.lines if line.strip()}


@pytest.mark.parametrize("first,second", [("client", "client"), ("client", "store"),
                                          ("client", "get"), ("aio", "client")])
def test_two_holders_of_one_session_lose_nothing(broker: Broker, tmp_path: Path,
                                                 first: str, second: str) -> None:
    got = run("dev_store_shared.py", broker, tmp_path, FIRST=first, SECOND=second)
    # nothing accepted is lost: what publish returned for is in flash after the reboot
    assert set(got["ACCEPTED"]) <= set(got["RELOAD"]), got
    # and not silently: the earlier client's publishes raised EBUSY (taken over), and
    # the later one's went in
    assert got["ERRORS"] == [EBUSY] * 3, got
    assert not any(m.startswith("A") for m in got["ACCEPTED"]), got
    if second != "get":
        assert [m for m in got["ACCEPTED"] if m.startswith("B")] == ["B0", "B1", "B2"], got


def test_taken_over_client_writes_no_owed_or_aside_file(broker: Broker, tmp_path: Path) -> None:
    # the earlier client's offline subscribe raises EBUSY and leaves the owed file as the
    # later client wrote it, and a record it sets aside is refused the same way
    # (tests/device/dev_store_shared_owed.py)
    got = run("dev_store_shared_owed.py", broker, tmp_path)
    assert got["ERR"] == [EBUSY], got
    assert got["OWED"] == ["t/b"], got
    assert got["ERRX"] == [EBUSY], got  # its set-aside record was refused too
    assert got["ASIDE"] == ["0"], got


def test_null_session_taken_over_once_assigned(broker: Broker, tmp_path: Path) -> None:
    # a null session's assigned ID, taken by a later client (client ID None): the earlier
    # client's writes raise EBUSY (tests/device/dev_store_shared_null.py)
    got = run("dev_store_shared_null.py", broker, tmp_path, VERSION=5)
    assert set(got["ACCEPTED"]) <= set(got["RELOAD"]), got
    assert got["ERRORS"] == [EBUSY] * 3, got


@pytest.mark.parametrize("first", ["client", "keeper", "aio"])
def test_taken_over_client_never_connects_again(broker: Broker, tmp_path: Path,
                                                first: str) -> None:
    # the earlier client's connect (a keeper's reconnect) raises EBUSY before its
    # CONNECT, which would end the later client's link at the broker; with a keeper the
    # blocking client's next call raises it, and the asyncio client's reader ends
    # (tests/device/dev_store_shared_link.py)
    got = run("dev_store_shared_link.py", broker, tmp_path, FIRST=first)
    assert got["EARLIER"] == [EBUSY], got
    assert got["LATER"] == ["B0", "B1", "B2"], got


@pytest.mark.parametrize("first", ["client", "aio"])
def test_deleted_session_refuses_its_holder(broker: Broker, tmp_path: Path,
                                            first: str) -> None:
    # store.delete() of a session a client holds: the client's publishes and connect()
    # raise EBUSY saying so (up to 0.2.23: ENOENT, no text), nothing of the session is
    # made again, and a new client of the ID starts fresh
    # (tests/device/dev_store_deleted.py)
    got = run("dev_store_deleted.py", broker, tmp_path, FIRST=first)
    errs = " ".join(got["ERRORS"]).split("|")
    assert len(errs) == 4, got  # three publishes and the connect
    assert all(e.startswith(EBUSY + ":") and e.endswith("or deleted") for e in errs), got
    assert got["ACCEPTED"] == [], got
    assert got["FLASH"] == [], got  # the session's directory stays gone
    assert got["RELOAD"] == ["C0"], got


def test_relative_root_is_one_directory(broker: Broker, tmp_path: Path) -> None:
    # SessionStore(".mqtt"): a later chdir does not move the session, and the root
    # spelled in full is the same session, taken over as any other second get()
    # (tests/device/dev_store_relroot.py)
    got = run("dev_store_relroot.py", broker, tmp_path)
    assert got["AFTER_CHDIR"] == ["ok"], got
    assert got["ROOT"] == ["/flash/.mqtt"], got
    assert got["TAKEN"] == [EBUSY], got
    assert got["RELOAD"] == ["A0", "A1"], got


def test_every_spelling_of_a_root_is_one_directory(broker: Broker, tmp_path: Path) -> None:
    # ".", "..", repeated and trailing "/" and a relative root all name one directory:
    # each store's root is spelled one way, and a client of any of them takes the session
    # from the client of another, which is refused (tests/device/dev_store_spelling.py)
    got = run("dev_store_spelling.py", broker, tmp_path)
    assert got["ROOT"] == ["/flash/.mqtt"] * 6, got
    assert got["TAKEN"] == [EBUSY] * 5, got
    assert got["RELOAD"] == ["A0", "A1", "A2", "A3", "A4", "A5"], got
