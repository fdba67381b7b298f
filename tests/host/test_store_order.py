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
