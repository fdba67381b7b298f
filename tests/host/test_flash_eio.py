"""A flash that refuses writes (the driver returns -EIO), on the unix port with a littlefs
image: the store's writes that follow the broker's answers fail, then the node reboots
with the flash working. Up to 0.2.19 each of these kept in RAM what flash did not get:
a QoS 2 release (PUBREC) not recorded was sent on (PUBREL) at the reconnect, so after the
reboot the store sent the PUBLISH again and the broker delivered it twice; a QoS 2 packet
ID not written was used by the next connect, so after a reboot the message went out under
another ID; a subscription change not written was kept, so the application's retry wrote
nothing and the reboot lost it; an acknowledgement not recorded was counted at every
reconnect (the session's byte count drifted below what flash holds); a connected
publish(qos=1) that could not make its message durable raised and kept it all the same
(pending, sent again after a link loss)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import Broker, run_device
from hostile import CONNECT, PUBLISH, Script, connack
from test_guard import run as run_scripted

HEAP = "256k"


def run(broker: Broker, tmp_path: Path, test: str, **kw: object) -> dict[str, list[str]]:
    cfg = {"HOST": broker.host, "PORT": broker.port, "VERSION": 4, "TEST": test,
           "IMAGE": str(tmp_path / "flash.img"), "PREFIX": f"eio-{tmp_path.name}",
           "CID": f"e-{tmp_path.name}"[-20:], **kw}
    r = run_device("dev_flash_eio.py", cfg, heap=HEAP, timeout=120)
    return {line.split()[0]: line.split()[1:] for line in r.out.splitlines() if line.strip()}


def test_a_qos2_release_not_recorded_is_not_sent_on(broker: Broker, tmp_path: Path) -> None:
    got = run(broker, tmp_path, "release")
    assert got["BEFORE"] == ["0"], got  # no PUBREL went out: the broker did not deliver
    assert got["AFTER"] == ["1"], got  # after the reboot: delivered once


def test_a_qos2_packet_id_not_written_is_not_used(broker: Broker, tmp_path: Path) -> None:
    got = run(broker, tmp_path, "assign")
    p1, p2 = got["IDS"]
    assert p1 == p2 != "-1", got  # the same ID before and after the reboot


@pytest.mark.parametrize("sub", [1, 0])
def test_a_subscription_change_not_written_is_made_by_the_retry(broker: Broker,
                                                                tmp_path: Path,
                                                                sub: int) -> None:
    got = run(broker, tmp_path, "subs", SUB=sub)
    prefix = f"eio-{tmp_path.name}"
    want = [f"{prefix}/a", f"{prefix}/b"] if sub else [f"{prefix}/a"]
    assert got["SUBS"] == want, got


def test_an_acknowledgement_not_recorded_is_not_counted(broker: Broker,
                                                        tmp_path: Path) -> None:
    got = run(broker, tmp_path, "counts")
    before, after = got["BYTES"]
    assert before == after, got  # the message is still in flash: its bytes still count


def test_a_publish_that_raises_did_not_accept_its_message(tmp_path: Path) -> None:
    never_acks: Script = [("expect", CONNECT), ("send", connack()), ("expect", PUBLISH),
                          ("listen", 5)]
    r, _ = run_scripted([never_acks], "publish", device="dev_flash_eio.py",
                        IMAGE=str(tmp_path / "flash.img"), PREFIX="eio", CID="eio-publish")
    got = {line.split()[0]: line.split()[1:] for line in r.out.splitlines() if line.strip()}
    assert got["PUBLISH"] == ["5", "0"], got  # EIO raised, and nothing left pending
