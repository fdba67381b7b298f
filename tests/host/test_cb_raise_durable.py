"""A message publish() accepted while the blocking callback raised out of its read is
durable with a store: a power cut right after publish() raised loses nothing. Before
the fix the slot was left in RAM only (_pub1, now in pubpath.py, skipped s.hold when _go
raised the callback's exception) and the next boot had no record of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import run_device
from hostile import CONNECT, PUBLISH, HostileBroker, Script, connack, publish


@pytest.mark.parametrize("window", [1, 4])
def test_publish_raising_the_callbacks_exception_keeps_its_message_in_flash(
        tmp_path: Path, window: int) -> None:
    # the broker sends an incoming QoS 0 message with CONNACK (the callback raises on it
    # as publish() reads) and never a PUBACK
    script: Script = [("expect", CONNECT), ("send", connack(0) + publish(b"t/cmd", b"boom")),
                      ("expect", PUBLISH), ("sleep", 5)]
    root = str(tmp_path / "store")
    with HostileBroker([script]) as b:
        cfg = {"HOST": b.host, "PORT": b.port, "ROOT": root, "STEP": "pub",
               "WINDOW": window}
        r = run_device("dev_cb_raise_durable.py", cfg, heap="256k", timeout=60)
    assert "PUB raised ValueError" in r.out, r.out
    assert "PENDING 1" in r.out, r.out  # accepted, as the README says
    r2 = run_device("dev_cb_raise_durable.py", {**cfg, "STEP": "boot"}, heap="256k",
                    timeout=60)
    assert "BOOT PENDING 1" in r2.out, (r.out, r2.out)
