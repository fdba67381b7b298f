"""Upgrading keeps the session: format 1 stores written by the 0.1.0 library (the
fixtures, and live runs of the 0.1.0 code kept under tests/fixtures/v010) are opened and
resumed by this library; formats newer than the library are refused, never overwritten."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import Broker, Observer, publish, run_device, start_device
from test_store import HEAP, cfg

FIX = Path(__file__).resolve().parents[1] / "fixtures"
V010 = FIX / "v010" / "mqttsession"


@pytest.fixture
def v1_image(tmp_path: Path) -> Path:
    img = tmp_path / "flash.img"
    shutil.copy(FIX / "store-v1.img", img)
    return img


@pytest.fixture
def old_lib() -> Iterator[Path]:
    """A work directory whose mqttsession is the 0.1.0 library (it comes first on the
    unix port's path)."""
    with tempfile.TemporaryDirectory(prefix="mqs-v010-") as td:
        shutil.copytree(V010, Path(td) / "mqttsession")
        yield Path(td)


def test_v1_fixture_opens_with_everything(broker: Broker, v1_image: Path) -> None:
    r = run_device("dev_store_more.py", cfg(broker, v1_image, "upgrade_state", BLOCKS=64),
                   heap=HEAP)
    assert "ROUND 2 ERRORS 0" in r.out


@pytest.mark.parametrize("room", [0, 16384, 28672], ids=["full", "16k-free", "28k-free"])
def test_v1_migration_without_room_raises_enospc_and_keeps_format_1(
        broker: Broker, v1_image: Path, room: int) -> None:
    # no room on the filesystem for the format 2 copy (none at all, room for some of its
    # directories, room for all but the last): get() raises OSError(ENOSPC) and the store
    # is as it was: format 1 untouched (the same files, the same bytes) and no format 2
    # file or directory left beside it, at two boots in a row; once there is room the
    # migration is whole
    r = run_device("dev_store_more.py",
                   cfg(broker, v1_image, "upgrade_full", BLOCKS=64, ROOM=room), heap=HEAP)
    assert len(r.values("FULL")) == 2
    assert "ROUND 2 ERRORS 0" in r.out


def test_v1_migration_with_a_message_the_flash_cannot_read_raises_and_loses_nothing(
        broker: Broker, v1_image: Path) -> None:
    # the flash's EIO on a format 1 message file: get() raises it (not taken for damage:
    # that message would be left behind), and the next get() migrates everything
    r = run_device("dev_store_more.py", cfg(broker, v1_image, "upgrade_eio", BLOCKS=64),
                   heap=HEAP)
    assert len(r.values("EIO")) == 1, r.out
    assert "ROUND 2 ERRORS 0" in r.out


def test_v1_fixture_resumes_at_a_broker(broker: Broker, v1_image: Path) -> None:
    with Observer(broker.host, broker.port, "up/#", qos=2) as obs:
        run_device("dev_store_more.py", cfg(broker, v1_image, "upgrade_resume", 5, BLOCKS=64),
                   heap=HEAP)
        obs.wait_for(5)
    # the release was acknowledged by the old broker already: not published again
    assert sorted(obs.payloads()) == [b"queued-0", b"queued-1", b"queued-2", b"sent-once",
                                      b"two-sent"]
    assert "node-a" in broker.log()


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("point", ["pubrel", "pubcomp"])
def test_qos2_sender_cut_under_0_1_0_resumed_after_upgrade(
        broker: Broker, tmp_path: Path, old_lib: Path, version: int, point: str) -> None:
    img = tmp_path / "flash.img"
    cid = f"up{point}{version}"
    c = cfg(broker, img, "sender", version, CID=cid, CUT=point, QOS=2, WINDOW=1)
    with Observer(broker.host, broker.port, f"sender{version}/#", qos=2) as obs:
        p = start_device("dev_store.py", c, heap=HEAP, workdir=old_lib)
        try:
            p.wait_for("CUT", timeout=30)
            p.kill()
        finally:
            p.close()
        assert (old_lib / "mqttsession" / "store.py").read_text().count("_FMT = const(1)")
        r = run_device("dev_store.py", {**c, "TEST": "resume", "LINGER": 1500}, heap=HEAP)
        assert r.value("PENDING_AT_BOOT") == "1" and r.value("PRESENT") == "True"
        obs.wait_for(1)
        assert obs.payloads() == [b"n0"]  # exactly once
    log = broker.log()
    assert len(re.findall(rf"New client connected from \S+ as {cid} ", log)) == 2
    if point == "pubrel":
        assert not re.search(rf"Received PUBLISH from {cid} \(d1", log)


@pytest.mark.parametrize("version", [4, 5])
def test_qos2_receiver_cut_under_0_1_0_resumed_after_upgrade(
        broker: Broker, tmp_path: Path, old_lib: Path, version: int) -> None:
    img = tmp_path / "flash.img"
    c = cfg(broker, img, "receiver", version, CID=f"uprx{version}", CUT="after_pubrec")
    p = start_device("dev_store.py", c, heap=HEAP, workdir=old_lib)
    try:
        p.wait_for("READY", timeout=20)
        publish(broker.host, broker.port, f"receiver{version}/r", b"once", qos=2,
                protocol=version)
        p.wait_for("CUT", timeout=20)
        p.kill()
        first = p.output()
    finally:
        p.close()
    r = run_device("dev_store.py", {**c, "TEST": "resume", "LINGER": 1500}, heap=HEAP)
    got = [ln for ln in (first + r.out).splitlines() if ln.startswith("GOT ")]
    assert got == [f"GOT receiver{version}/r once"]


def test_offline_queue_of_0_1_0_delivered_after_upgrade(
        broker: Broker, tmp_path: Path, old_lib: Path) -> None:
    img = tmp_path / "flash.img"
    c = cfg(broker, img, "lost_session", 4, CID="upq", PHASE=1)
    run_device("dev_store.py", c, heap=HEAP, workdir=old_lib)
    with Observer(broker.host, broker.port, "lost_session4/#", qos=2) as obs:
        run_device("dev_store.py", {**c, "TEST": "resume"}, heap=HEAP)
        obs.wait_for(3)
    assert sorted(obs.payloads()) == [b"q0", b"q1", b"q2"]


def test_newer_format_is_refused_or_set_aside(broker: Broker, tmp_path: Path) -> None:
    r = run_device("dev_store_more.py", cfg(broker, tmp_path / "flash.img", "newer"), heap=HEAP)
    assert "REFUSED" in r.out and "ASIDE" in r.out and "ASIDE TWICE" in r.out


def test_0_1_0_meeting_format_2_destroys_nothing(broker: Broker, tmp_path: Path,
                                                 old_lib: Path) -> None:
    # a rollback: 0.1.0 runs on a format 2 store (it cannot read it and starts a session
    # beside it); the next upgrade finds format 2 whole and adds what 0.1.0 queued
    img = tmp_path / "flash.img"
    c = cfg(broker, img, "rollback", PHASE=1)
    run_device("dev_store_more.py", c, heap=HEAP)
    r = run_device("dev_store_more.py", {**c, "PHASE": 2}, heap=HEAP, workdir=old_lib)
    assert "OLD_PENDING 0" in r.out
    r = run_device("dev_store_more.py", {**c, "PHASE": 3}, heap=HEAP)
    assert "PASS" in r.out


def test_power_cut_sweep_over_the_migration(tmp_path: Path) -> None:
    c = {"IMAGE": str(tmp_path / "flash.img"), "PROG": 32, "BLOCKS": 32, "MODE": "migrate",
         "FIXTURE": str(FIX / "store-v1-sweep.img")}
    r = run_device("dev_sweep.py", c, heap=HEAP, timeout=300)
    writes = int(r.values("WRITES")[0][0])
    cuts, _, runs = r.values("CUTS")[0]
    assert writes > 10 and int(runs) == writes + 1 and int(cuts) > 0
