"""Damage the filesystem itself reports, or that sits in the image's blocks, below the
store (tests/device/dev_flash_blocks.py): a boot on a block device that raises EIO for
one block, or on an image with bytes inverted in one block, either raises the flash's
own error or comes up, and one that comes up holds every message or reports the damage.
Up to now a tail file littlefs could not read (EIO on its directory's metadata) was taken
for an absent one: its message was lost without a report (the next seal reused its
slot); and a store root that could not be read raised EEXIST (the stat's EIO taken for
absence, then mkdir) instead of the EIO. And a byte inverted in a tail directory's
metadata makes littlefs drop that directory's newest commits without an error: a tail
file back at an older, sealed message was taken for one whose message is complete, and
the message written there was lost without a report (it is reported now: a slot holding
a message older than a slot before it, below a slot holding a pending one)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import run_device


# flip, seed 8: among others, the segments' directory back at an older commit (the
# newest segment gone, part of its messages still in the tail)
# eio-subs: a session with subscriptions too, their file larger than littlefs keeps
# inline (a data block of its own)
@pytest.mark.parametrize("kind,seed,flips,subs", [
    pytest.param("eio", 0, 0, 0, id="eio"), pytest.param("eio", 0, 0, 12, id="eio-subs"),
    pytest.param("flip", 44, 3, 0, id="flip"), pytest.param("flip", 8, 8, 0, id="flip-seed8")])
def test_block_damage_is_raised_or_reported(tmp_path: Path, kind: str, seed: int,
                                            flips: int, subs: int) -> None:
    c = {"TEST": kind, "IMAGE": str(tmp_path / "flash.img"), "SEED": seed, "FLIPS": flips,
         "SUBS": subs}
    r = run_device("dev_flash_blocks.py", c, heap="256k", timeout=300, check=False)
    fails = [line for line in r.out.splitlines() if line.startswith("FAIL")]
    assert not fails and "PASS" in r.out, r.out
