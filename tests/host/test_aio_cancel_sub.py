"""The asyncio subscribe()/unsubscribe() cancelled by the application (asyncio.wait_for)
after its request went out, while it waits for the answer: the broker makes the change,
and the session must hold it too, or the two go out of step. After a broker that lost
the session the node subscribes again to what its session holds: a cancelled subscribe
was never made again (its messages stopped for good), a cancelled unsubscribe was made
undone. The blocking client's subscribe interrupted in the same wait (the callback's
exception) owes the change and makes it again (client.subscribe, subs.later(sent=True)).
Before the fix the asyncio client recorded nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import run_device
from hostile import CONNECT, SUBACK, SUBSCRIBE, UNSUBSCRIBE, HostileBroker, Script, connack, packet


def _subscribes(conn) -> list[bytes]:  # the filters of the SUBSCRIBEs on one connection
    out = []
    for first, body in conn.packets:
        if first & 0xF0 == SUBSCRIBE:
            n = int.from_bytes(body[2:4], "big")
            out.append(bytes(body[4 : 4 + n]))
    return out


@pytest.mark.parametrize("op", ["sub", "unsub"])
def test_aio_cancelled_subscribe_keeps_session_and_broker_in_step(
        tmp_path: Path, op: str) -> None:
    first: Script = [("expect", CONNECT), ("send", connack(0))]
    if op == "unsub":  # the offline subscription, made on connect: answered
        first += [("expect", SUBSCRIBE), ("reply", SUBSCRIBE, packet(SUBACK, b"\0\0\1"))]
    first += [("expect", UNSUBSCRIBE if op == "unsub" else SUBSCRIBE), ("sleep", 3),
              ("close",)]  # never answered; then the session is gone
    again: Script = [("expect", CONNECT), ("send", connack(0))]  # then records
    with HostileBroker([first, again]) as b:
        cfg = {"HOST": b.host, "PORT": b.port, "ROOT": str(tmp_path / "store"), "OP": op}
        r = run_device("dev_aio_cancel_sub.py", cfg, heap="256k", timeout=90)
        conns = list(b.conns)
    assert "SUB raised TimeoutError" in r.out, r.out
    assert "RECONNECTED True" in r.out, r.out
    resent = _subscribes(conns[1])
    if op == "sub":
        assert "SUBS AFTER [b't/cmd']" in r.out, r.out
        assert b"t/cmd" in resent, (r.out, resent)
    else:
        assert "SUBS AFTER []" in r.out, r.out
        assert b"t/cmd" not in resent, (r.out, resent)
