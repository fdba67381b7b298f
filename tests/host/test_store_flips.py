"""One damaged byte anywhere in a stored session's files, on the unix port with a
littlefs image (tests/device/dev_store_flips.py): every load gives a session (or refuses
a file whose format byte now says a newer library wrote it), the messages drain in
order, none twice or invented, no more missing than the damaged file held, and the
session goes on storing. Every 11th (13th) byte here; every byte with --runslow. And one
damaged byte anywhere in the blocks the filesystem uses, its own metadata included: no
message lost without a report but where the README says none can be made."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import run_device

SLOW = pytest.mark.slow


# busy: the session as a connection leaves it (QoS 2 among the messages, some in flight,
# complete, released and set aside), not only queued
@pytest.mark.parametrize(("stride", "busy"), [pytest.param(1, 0, marks=SLOW),
                                              pytest.param(1, 1, marks=SLOW), (11, 0), (13, 1)])
def test_one_damaged_byte_anywhere_in_the_store(tmp_path: Path, stride: int, busy: int) -> None:
    c = {"IMAGE": str(tmp_path / "flash.img"), "STRIDE": stride, "BUSY": busy}
    r = run_device("dev_store_flips.py", c, heap="1m", timeout=600 if stride == 1 else 300)
    cases, reported, files = (int(v) for v in r.values("CASES")[0][::2])
    # (the hot state, identity, subscriptions, last pointer, 32 tail files, 2 segments;
    # busy: and the set-aside list)
    assert files == 38 + busy and cases > 2 * 2000 // stride, r.out
    assert "PASS" in r.out, r.out


# prog: the ESP32 port's 32, the rp2 port's 256
@pytest.mark.parametrize(("stride", "prog"), [pytest.param(5, 32, marks=SLOW),
                                              pytest.param(7, 256, marks=SLOW), (29, 32)])
def test_one_damaged_byte_in_the_filesystem(tmp_path: Path, stride: int, prog: int) -> None:
    # littlefs's metadata too: a directory may lose its newer entries without an error.
    # Up to 0.2.23 the session's own directory losing them (its identity, its tail)
    # lost the session, or the tail's messages, without a report
    c = {"IMAGE": str(tmp_path / "flash.img"), "STRIDE": stride, "RAW": 1, "PROG": prog}
    r = run_device("dev_store_flips.py", c, heap="1m", timeout=300 if stride > 9 else 900)
    cases, _, _, _, blocks = (int(v) for v in r.values("CASES")[0][::2])
    assert blocks >= 8 and cases > blocks * 4096 // stride - blocks, r.out
    assert "PASS" in r.out, r.out
