"""The blocking callback raising OSError or MQTTException while the node's own QoS 1
message is in flight (a keeper, a store, strikes=1): the link is closed as after a link
failure, and the message stays queued (README "Exceptions: one rule"). The close is the
node's own doing, no strike against its message: it is not set aside, and goes out on the
next connection."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import run_device
from hostile import CONNECT, PUBLISH, HostileBroker, Script, connack, publish


@pytest.mark.parametrize("exc", ["os", "mqtt"])
def test_callback_raising_oserror_is_no_strike_against_the_message_in_flight(
        tmp_path: Path, exc: str) -> None:
    first: Script = [("expect", CONNECT), ("send", connack(0)), ("expect", PUBLISH),
                     ("send", publish(b"t/cmd", b"boom"))]
    again: Script = [("expect", CONNECT), ("send", connack(1))]
    with HostileBroker([first, again]) as b:
        cfg = {"HOST": b.host, "PORT": b.port, "EXC": exc, "ROOT": str(tmp_path / "store")}
        r = run_device("dev_cb_raise_strike.py", cfg, heap="256k", timeout=120, check=False)
        conns = list(b.conns)
    assert "RESULT ok" in r.out, r.out
    assert len(conns) == 2 and any(p.endswith(b"r1") for p in conns[1].of_type(PUBLISH)), \
        (r.out, [c.packets for c in conns])
