"""A QoS 1 message written to flash after a newer QoS 2 one (its publish returned
unacknowledged after the callback, or another task, published the QoS 2 one during its
wait) sealed into a segment with it: the segment was named for the first and last record
written, so its last seq was below the QoS 2 message in it. Once the QoS 1 messages
completed, the segment was removed with the QoS 2 message still pending, and a reboot
lost it (tests/device/dev_store_order.py). Likewise a QoS 1 message written after a whole
segment of newer ones was sealed: its segment's range overlapped the one before, and the
load passed over that one (tests/device/dev_store_seal_overlap.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import run_device


def test_qos2_sealed_behind_an_older_qos1_survives_a_reboot(tmp_path: Path) -> None:
    r = run_device("dev_store_order.py", {"IMAGE": str(tmp_path / "flash.img"), "BLOCKS": 64},
                   heap="256k", timeout=60, check=False)
    assert "RUNNING m31" in r.out, r.out
    assert r.passed, r.out


def test_no_heap_while_the_backlog_is_read_loses_nothing(tmp_path: Path) -> None:
    r = run_device("dev_backlog_memerr.py", {"IMAGE": str(tmp_path / "flash.img"),
                                             "BLOCKS": 64}, heap="256k", timeout=60)
    assert "MEMORYERROR" in r.out, r.out


def test_held_message_sealed_after_a_newer_segment_survives_a_reboot(tmp_path: Path) -> None:
    # two segments whose seq ranges overlap (tests/device/dev_store_seal_overlap.py)
    r = run_device("dev_store_seal_overlap.py", {"IMAGE": str(tmp_path / "flash.img"),
                                                 "BLOCKS": 64},
                   heap="256k", timeout=60, check=False)
    assert "RUNNING 70" in r.out, r.out
    assert r.passed, r.out


@pytest.mark.parametrize("ram,ack0", [(8, 0), (128, 0), (128, 40), (128, 10)])
def test_overlapping_segments_from_0_2_23_load_and_drain_without_loss(
        tmp_path: Path, ram: int, ack0: int) -> None:
    # a store 0.2.23 left with overlapping segments ([0, 33..63] beside [1..32]; ack0 of
    # them acknowledged before the upgrade), loaded by this library: rewritten once
    # (lib/mqttsession/qmend.py), every message in order, none lost across a reboot
    # midway through the drain, every segment removed at the end
    # (tests/device/dev_store_overlap_upgrade.py)
    r = run_device("dev_store_overlap_upgrade.py", {"IMAGE": str(tmp_path / "flash.img"),
                                                    "BLOCKS": 64, "RAM": ram, "ACK0": ack0},
                   heap="256k", timeout=120, check=False)
    assert "0.2.23 SEGMENTS" in r.out, r.out
    assert r.passed, r.out


@pytest.mark.parametrize("prog", [32, 256])
def test_overlapping_segments_rewrite_cut_at_every_block_write(tmp_path: Path,
                                                               prog: int) -> None:
    # the load that rewrites them cut after every block write, then loaded again: every
    # message there once, in order, the segments no longer overlap, and no damage
    # reported (a cut rewrite leaves a ".t", not a short segment; 0.2.23 wrote the tail
    # out of order too: its older copies there are no damage, resume.scan)
    r = run_device("dev_store_overlap_upgrade.py", {"IMAGE": str(tmp_path / "flash.img"),
                                                    "BLOCKS": 64, "PROG": prog, "RAM": 8,
                                                    "MODE": "cuts"},
                   heap="256k", timeout=300)
    assert int(r.values("WRITES")[0][0]) > 0 and "PASS" in r.out, r.out
    assert "older than the one before it" not in r.out, r.out


@pytest.mark.parametrize("mode,held,reverse", [("tail", 1, 0), ("tailcuts", 1, 0),
                                               ("tail", 2, 0), ("tail", 3, 1),
                                               ("tailcuts", 2, 1)])
@pytest.mark.parametrize("more", [0, 5])
def test_held_message_still_in_the_tail_from_0_2_23_survives_the_upgrade(
        tmp_path: Path, more: int, mode: str, held: int, reverse: int) -> None:
    # 0.2.23 stopped with the held message m0 in the tail after m1..m32 were sealed
    # ([1..32], tail 33..39 then 0, then `more` queued behind it): the load took that tail
    # file for a sealed message's older copy, and the segment's first seq for the
    # watermark (m0 lost, reported as damage when more followed it). Now it goes into a
    # segment of its own, sent first; nothing reported, across a second load too, and
    # with the upgrade's load cut after every block write ("tailcuts"). held > 1: that
    # many held slot after slot (each publish of an asyncio node's tasks returned
    # unacknowledged; reverse: the newest returned first): up to 0.2.24 all of them were
    # taken for an earlier round's copies and lost
    r = run_device("dev_store_overlap_upgrade.py", {"IMAGE": str(tmp_path / "flash.img"),
                                                    "BLOCKS": 64, "RAM": 128,
                                                    "MODE": mode, "MORE": more,
                                                    "HELD": held, "REVERSE": reverse},
                   heap="256k", timeout=300, check=False)
    assert f"0.2.23 SEGMENTS [({held}, {held + 31}, 32)]" in r.out, r.out
    assert mode == "tail" or int(r.out.split("WRITES ", 1)[1].split()[0]) > 0, r.out
    assert r.passed, r.out


@pytest.mark.parametrize("errno", [5, 28])
def test_held_message_upgrade_the_flash_refuses(tmp_path: Path, errno: int) -> None:
    # the segment for 0.2.23's held message refused: EIO (the flash fails now) makes the
    # load raise it, nothing changed, and the next load does it; ENOSPC is reported (the
    # tail file) and the load starts without that one message, the others in order
    r = run_device("dev_store_overlap_upgrade.py", {"IMAGE": str(tmp_path / "flash.img"),
                                                    "BLOCKS": 64, "RAM": 128,
                                                    "MODE": "refused", "ERRNO": errno},
                   heap="256k", timeout=120, check=False)
    assert r.passed, r.out


def test_an_earlier_rounds_copies_in_the_tail_are_no_held_message(tmp_path: Path) -> None:
    # this library's tail past its newest slot holds copies of an earlier round's QoS 1
    # messages, acknowledged, their segment gone and the watermark behind them: below the
    # segments and in none, as 0.2.23's held message is. None is sent again: a run of
    # them, and one alone next to the newest (with a copy of no packet ID after it)
    r = run_device("dev_store_overlap_upgrade.py", {"IMAGE": str(tmp_path / "flash.img"),
                                                    "BLOCKS": 64, "RAM": 128,
                                                    "MODE": "round"},
                   heap="256k", timeout=120, check=False)
    assert r.passed, r.out


@pytest.mark.parametrize("fs", ["littlefs", "posix"])
def test_overlap_rewrite_over_a_damaged_segment_of_the_same_name_loses_nothing(
        tmp_path: Path, fs: str) -> None:
    # 0.2.23's overlapping segments, [1..32] holding bytes past its records (not whole):
    # qmend.group's rewrite of seqs 1..32 takes that segment's own name and must not
    # truncate it before reading its records (tests/device/dev_store_overlap_upgrade.py)
    r = run_device("dev_store_overlap_upgrade.py", {"IMAGE": str(tmp_path / "flash.img"),
                                                    "BLOCKS": 64, "RAM": 8,
                                                    "MODE": "damaged",
                                                    **({"ROOT": "."} if fs == "posix"
                                                       else {})},
                   heap="256k", timeout=120, check=False)
    assert "0.2.23 SEGMENTS" in r.out, r.out
    assert r.passed, r.out


def test_overlap_rewrite_with_a_segment_the_flash_cannot_read_loses_nothing(
        tmp_path: Path) -> None:
    # the flash's EIO on one of 0.2.23's overlapping segments at the load that rewrites
    # them: the group stays as it was (reported), and the next load mends it
    # (tests/device/dev_store_overlap_upgrade.py, MODE "eio")
    r = run_device("dev_store_overlap_upgrade.py", {"IMAGE": str(tmp_path / "flash.img"),
                                                    "BLOCKS": 64, "RAM": 8, "MODE": "eio"},
                   heap="256k", timeout=120, check=False)
    assert "0.2.23 SEGMENTS" in r.out and "[Errno 5] EIO - kept, read again later" in r.out, r.out
    assert r.passed, r.out
