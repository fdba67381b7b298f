"""disconnect() from the asyncio client's coroutine handler of a QoS 0 message, with a QoS 2
message read in the same batch behind it (tests/device/dev_aio_disconnect_in_batch.py): the QoS 2
one's handler is closed unrun and it stays unacknowledged, so the persistent session's
next connection brings it again and it is delivered then (README, "Messages and link
events"). It must not be recorded as received (its resend would then be answered and
never delivered: lost)."""

from __future__ import annotations

import pytest

from harness import run_device
from hostile import CONNECT, DISCONNECT, PUBACK, PUBCOMP, PUBREC, HostileBroker, Script, connack
from hostile import publish as pub

HEAP = "256k"


@pytest.mark.parametrize("warm_qos", [0, 1])
def test_disconnect_from_a_handler_loses_no_qos2_message_behind_it(warm_qos: int) -> None:
    # warm_qos 1: the handler is known to be a coroutine function when the QoS 2 message
    # comes (recorded just before its coroutine would run: _REC in _aws); 0: it is not
    # (no QoS 1/2 message before), so that message is recorded as it arrives
    warm = pub(b"cmd/x", b"w", qos=warm_qos, pid=3)
    batch = pub(b"cmd/x", b"stop") + pub(b"cmd/x", b"m2", qos=2, pid=9)
    first: Script = [("expect", CONNECT), ("send", connack()), ("send", warm),
                     ("expect", PUBACK) if warm_qos else ("sleep", 0.5),
                     ("send", batch), ("expect", DISCONNECT)]
    again: Script = [("expect", CONNECT), ("send", connack(1)),
                     ("send", pub(b"cmd/x", b"m2", qos=2, pid=9, flags=8)), ("expect", PUBREC),
                     ("send", b"\x62\x02\x00\x09"), ("expect", PUBCOMP), ("expect", DISCONNECT)]
    with HostileBroker([first, again]) as b:
        c = {"HOST": b.host, "PORT": b.port, "VERSION": 4}
        r = run_device("dev_aio_disconnect_in_batch.py", c, heap=HEAP, timeout=60, check=False)
        assert "PASS" in r.out, r.out
        assert not b.errors, (b.errors, r.out)
        assert b.conns[0].pids(PUBREC) == [], b.conns[0].packets
