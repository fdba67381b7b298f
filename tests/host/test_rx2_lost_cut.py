"""Incoming QoS 2 packet IDs awaiting PUBREL when the broker lost the session, and a power
cut after the CONNACK that said so, before the node wrote its new session's state
(tests/device/dev_rx2_lost_cut.py, the scripted broker of test_rx2_burst.py). The broker
holds the new session that connection made: the next connect finds it present, and the
new session's first message, numbered with a packet ID the old session's record still
held, was taken for a resend of the old one: answered (PUBREC) and never delivered."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from harness import run_device, start_device
from test_rx2_burst import QoS2Broker, Rounds
from test_rx2_burst import burst as burst_fixture  # noqa: F401 (a fixture, by this name)


@pytest.mark.parametrize("take", ["blocking", "messages"])
def test_a_cut_as_the_broker_lost_session_is_taken_up_loses_no_new_message(
        burst_fixture: Callable[[Rounds], QoS2Broker], tmp_path: Path,  # noqa: F811
        take: str) -> None:
    # connection 0: "a1" (ID 1) taken, its PUBREC lost with the link; connection 1: the
    # broker lost the session (Session Present 0), the node is cut; connection 2: the
    # session connection 1 made is present, and its first message "b1" has ID 1
    b = burst_fixture([(False, [(1, b"a1")], None, False),
                  (False, [], None, True),
                  (True, [(1, b"b1")], None, True)])
    c = {"HOST": "127.0.0.1", "PORT": b.port, "VERSION": 4, "TAKE": take,
         "IMAGE": str(tmp_path / "flash.img")}
    r = run_device("dev_rx2_lost_cut.py", {**c, "STAGE": 1}, heap="256k", timeout=60)
    assert r.value("GOT") == "a1", r.out
    with start_device("dev_rx2_lost_cut.py", {**c, "STAGE": 2}, heap="256k") as p:
        p.wait_for("CUT", timeout=60)
        p.kill()
    r = run_device("dev_rx2_lost_cut.py", {**c, "STAGE": 3}, heap="256k", timeout=60)
    assert r.value("GOT") == "b1", r.out
