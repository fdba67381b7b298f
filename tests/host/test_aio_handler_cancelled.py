"""A coroutine handler of the asyncio client that raises asyncio.CancelledError (it awaited
a task that was cancelled): the reader must go on, as for any exception a handler raises
(README, "Offline, errors, and what each call does"): the message counts as delivered
(PUBACK), on_error gets the exception, the next message is delivered
(tests/device/dev_aio_handler_cancelled.py)."""

from __future__ import annotations

from harness import run_device
from hostile import CONNECT, DISCONNECT, PUBACK, HostileBroker, Script, connack
from hostile import publish as pub

HEAP = "256k"


def test_handler_raising_cancelled_error_does_not_end_the_reader() -> None:
    script: Script = [("expect", CONNECT), ("send", connack()),
                      ("send", pub(b"cmd/x", b"m1", qos=1, pid=1)), ("expect", PUBACK),
                      ("send", pub(b"cmd/x", b"m2", qos=1, pid=2)), ("expect", PUBACK),
                      ("expect", DISCONNECT)]
    with HostileBroker([script]) as b:
        c = {"HOST": b.host, "PORT": b.port, "VERSION": 4}
        r = run_device("dev_aio_handler_cancelled.py", c, heap=HEAP, timeout=60, check=False)
        assert "PASS" in r.out, r.out
        assert not b.errors, b.errors
        assert b.conns[0].pids(PUBACK) == [1, 2], b.conns[0].packets
