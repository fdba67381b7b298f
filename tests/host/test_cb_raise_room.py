"""The blocking callback raising out of publish()'s wait for window room: the message is
accepted all the same (README "Exceptions: one rule"), for KeyboardInterrupt and
SystemExit too (handled alike, as the README says of connect())."""

from __future__ import annotations

import pytest

from harness import run_device
from hostile import CONNECT, PUBLISH, HostileBroker, Script, connack, publish


@pytest.mark.parametrize("exc", ["value", "kbi", "exit"])
def test_publish_raising_the_callbacks_exception_in_the_window_wait_accepted(exc: str) -> None:
    script: Script = [("expect", CONNECT), ("send", connack(0)), ("expect", PUBLISH),
                      ("expect", PUBLISH), ("send", publish(b"t/cmd", b"boom")),
                      ("sleep", 5)]
    with HostileBroker([script]) as b:
        cfg = {"HOST": b.host, "PORT": b.port, "EXC": exc}
        r = run_device("dev_cb_raise_room.py", cfg, heap="256k", timeout=60)
    assert "PUB raised" in r.out, r.out
    assert "PENDING 3" in r.out, r.out
