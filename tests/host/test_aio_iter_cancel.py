"""messages() iteration cancelled in the middle of a QoS 2 delivery, then a link loss and a
resumed session (tests/device/dev_aio_iter_cancel.py): the message is neither lost nor
delivered twice, and the next one comes once, also with wait_for timeouts around
__anext__."""

from __future__ import annotations

from harness import run_device
from hostile import CONNECT, DISCONNECT, PUBCOMP, PUBREC, HostileBroker, Script, connack
from hostile import publish as pub

HEAP = "256k"
REL7 = b"\x62\x02\x00\x07"
REL8 = b"\x62\x02\x00\x08"


def test_cancelled_iteration_mid_qos2_then_resume() -> None:
    first: Script = [("expect", CONNECT), ("send", connack()),
                     ("send", pub(b"cmd/x", b"m1", qos=2, pid=7)), ("sleep", 2), ("close",)]
    again: Script = [("expect", CONNECT), ("send", connack(1)),
                     ("send", pub(b"cmd/x", b"m1", qos=2, pid=7, flags=8)), ("expect", PUBREC),
                     ("send", REL7), ("expect", PUBCOMP), ("sleep", 0.5),
                     ("send", pub(b"cmd/x", b"m2", qos=2, pid=8)), ("expect", PUBREC),
                     ("send", REL8), ("expect", PUBCOMP), ("expect", DISCONNECT)]
    with HostileBroker([first, again]) as b:
        r = run_device("dev_aio_iter_cancel.py", {"HOST": b.host, "PORT": b.port, "VERSION": 4},
                       heap=HEAP, timeout=60, check=False)
        assert "PASS" in r.out, r.out
        assert not b.errors, (b.errors, r.out)
        assert b.conns[0].pids(PUBREC) == [], b.conns[0].packets
        assert b.conns[1].pids(PUBREC) == [7, 8], b.conns[1].packets
