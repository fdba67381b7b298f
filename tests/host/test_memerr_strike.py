"""No heap where the link fails with messages in flight (tests/device/dev_memerr_strike.py,
MemoryError injected): no aside.py code for the strike against the oldest message or for
the handling of a broker's protocol violation, or no heap for the set-aside record at the
last strike. Each is a link failure: with a keeper publish() returns, every message it
took stays queued once, and the keeper reconnects. Before, the MemoryError came out of
publish() in the failure's place after publish() had taken the message into the session:
an application that published it again sent a QoS 2 message twice (found by the backlog
soak with the heap held short, tests/host/test_backlog_cuts.py)."""

from __future__ import annotations

import pytest

from harness import run_device
from hostile import CONNACK, CONNECT, PUBLISH, HostileBroker, Script, connack, packet

HEAP = "256k"  # the library is compiled from source on the device
# no acknowledgement: then the broker closes the connection, or sends a second CONNACK (a
# protocol violation)
CLOSE: Script = [("expect", CONNECT), ("send", connack()), ("expect", PUBLISH),
                 ("sleep", 0.5), ("close",)]
BROKE: Script = [("expect", CONNECT), ("send", connack()), ("expect", PUBLISH),
                 ("sleep", 0.5), ("send", packet(CONNACK, b"\x00\x00"))]


@pytest.mark.parametrize(("fault", "script"),
                         [("code", CLOSE), ("code", BROKE), ("record", CLOSE)],
                         ids=["strike-code", "protocol-code", "strike-record"])
@pytest.mark.parametrize("budget", [20000, 200], ids=["await", "room"])
def test_no_heap_where_the_link_fails_is_a_link_failure(
        fault: str, script: Script, budget: int) -> None:
    # budget 20 s: the first publish() waits for its PUBACK when the link fails; 0.2 s:
    # it returns first and the next ones wait for room in the window (one at a time)
    with HostileBroker([script]) as b:
        r = run_device("dev_memerr_strike.py", {"HOST": b.host, "PORT": b.port,
                                                "FAULT": fault, "BUDGET": budget},
                       heap=HEAP, timeout=90)
    lines = [ln.split(None, 1) for ln in r.out.splitlines()]
    assert not [ln for ln in lines if ln[0] == "E"], r.out
    pubs = [ln[1].split() for ln in lines if ln[0] == "P"]
    # every publish() that returned took its message, once, and it is still queued
    assert pubs and all(int(a) == int(p) for a, p in pubs), r.out
    assert "DOWN" in r.out, r.out
    assert int(r.value("INJECTED")) >= 1, r.out  # the MemoryError was met
