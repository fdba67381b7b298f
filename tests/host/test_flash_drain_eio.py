"""A segment of the backlog that the flash cannot read for a while (the driver's EIO on
its data block), while the node drains (tests/device/dev_flash_drain_eio.py): a read
error is not damage. The segment is kept and reported once, the drain waits for it
(nothing behind it is passed over, so the watermark cannot pass it either) and reads it
again at most once a second; once the flash reads it, every message arrives, in the same
boot or at the next. A full store meanwhile gives up nothing it cannot read."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import Broker, run_device

MODES = {"next-boot": {}, "same-boot": {"LIVE": 1}, "full-offline": {"FULL": 1},
         "same-boot-second-segment": {"LIVE": 1, "SEG": 1},
         # wait_msg() alone without keepalive: it does not wait past the next read
         "same-boot-wait-msg": {"LIVE": 1, "WAIT": 1, "KA": 0},
         # the asyncio client: nothing published meanwhile, its clock reads it again
         "aio-same-boot": {"LIVE": 1, "API": "aio"},
         "aio-same-boot-second-segment": {"LIVE": 1, "API": "aio", "SEG": 1}}


@pytest.mark.parametrize("mode", list(MODES))
def test_a_segment_unreadable_for_a_while_is_not_given_up(broker: Broker, tmp_path: Path,
                                                          mode: str) -> None:
    c = {"HOST": broker.host, "PORT": broker.port, "VERSION": 4, **MODES[mode],
         "PREFIX": f"deio-{tmp_path.name}", "IMAGE": str(tmp_path / "flash.img")}
    r = run_device("dev_flash_drain_eio.py", c, heap="512k", timeout=180)
    # reported once, though read again for seconds, and as kept
    assert r.values("REPORTED") == [["1"]], r.out
    assert "[Errno 5] EIO - kept, read again later" in r.out, r.out
    got, _, accepted = r.values("GOT")[0]
    if mode == "full-offline":
        # drop_oldest found nothing it could give up: the publish raised ENOSPC
        assert r.values("FULL") == [["28", "0"]], r.out
        assert int(accepted) > 150, r.out  # the store took new messages behind it first
    else:
        assert accepted == "150", r.out
    # the segments before the unreadable one went, none behind it
    stalled = int(accepted) - 32 * MODES[mode].get("SEG", 0)
    assert r.values("STALLED") == [[str(stalled)]], r.out
    assert r.values("DUPS") == [["0"]], r.out
    assert got == accepted, r.out  # every message accepted arrives
    if "WAIT" in MODES[mode]:
        # read again within a second, the first acknowledgement then ends the call: far
        # below the 60 s an idle wait without keepalive takes
        assert int(r.values("WAITED")[0][0]) < 30000, r.out


def test_a_seal_that_cannot_read_the_tail_keeps_it(broker: Broker, tmp_path: Path) -> None:
    # tests/device/dev_seal_eio.py: the publish that needs the seal raises the flash's EIO
    # (not accepted), the one whose seal failed after it was written returns, and nothing
    # leaves the tail; a drain that cannot read a tail file waits for it: every message
    # accepted arrives once, in order
    c = {"HOST": broker.host, "PORT": broker.port, "VERSION": 4,
         "PREFIX": f"seio-{tmp_path.name}", "IMAGE": str(tmp_path / "flash.img")}
    r = run_device("dev_seal_eio.py", c, heap="512k", timeout=120)
    assert r.values("RAISED") == [["5"]], r.out
    assert r.values("PENDING") == [["32", "33"]], r.out
    assert r.values("STALLED") == [["1"]], r.out  # the tail's message, kept
    assert r.values("GOT") == [[",".join(f"m{i}" for i in range(33))]], r.out
