"""A node that reboots into its stored session with a damaged file or other settings, on
the unix port with littlefs images (tests/device/dev_store_reboot.py): every message the
damage did not touch goes out, and nothing is given up that the application did not give
up."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import Broker, Observer, run_device, start_device

HEAP = "256k"


def run(broker: Broker, tmp_path: Path, test: str, **kw: object) -> str:
    c = {"HOST": broker.host, "PORT": broker.port, "VERSION": 4, "TEST": test,
         "PREFIX": f"rb-{tmp_path.name}", "IMAGE": str(tmp_path / "flash.img"), **kw}
    r = run_device("dev_store_reboot.py", c, heap=HEAP, timeout=120)
    assert "PASS" in r.out, r.out
    return r.out


def test_a_damaged_identity_does_not_give_up_the_queue_mqtt5(broker: Broker,
                                                              tmp_path: Path) -> None:
    with Observer(broker.host, broker.port, f"rb-{tmp_path.name}/#", qos=1) as obs:
        run(broker, tmp_path, "id_damaged", VERSION=5)
        got = sorted(m.payload for m in obs.wait_for(3, timeout=30))
    assert got == [b"m0", b"m1", b"m2"], got


def test_a_cut_newest_segment_is_damage_when_the_tail_moved_on(broker: Broker,
                                                               tmp_path: Path) -> None:
    run(broker, tmp_path, "newest_segment_cut")


def test_drop_oldest_keeps_a_released_qos2_message_after_a_reboot(broker: Broker,
                                                                 tmp_path: Path) -> None:
    c = {"HOST": broker.host, "PORT": broker.port, "VERSION": 4, "TEST": "q2_released",
         "PREFIX": f"rb-{tmp_path.name}", "IMAGE": str(tmp_path / "flash.img"), "PHASE": 1}
    with Observer(broker.host, broker.port, f"rb-{tmp_path.name}/#", qos=2) as obs:
        p = start_device("dev_store_reboot.py", c, heap=HEAP)
        try:
            p.wait_for("CUT", timeout=60)
            p.kill()
        finally:
            p.close()
        run(broker, tmp_path, "q2_released", PHASE=2)
        obs.wait_for(1, timeout=30)
        assert b"old" in obs.payloads(), obs.payloads()  # the broker's PUBREL came


@pytest.mark.parametrize("which", [0, 2])
def test_a_segment_shorter_than_its_name_is_reported(broker: Broker, tmp_path: Path,
                                                     which: int) -> None:
    run(broker, tmp_path, "segment_short", WHICH=which)
