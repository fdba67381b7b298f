"""Subscription changes reach the broker in the order the application made them. A
subscribe() from the blocking client's callback is recorded and made by a later call
(README: calls from the callback); when the callback ran inside publish()'s wait for its
PUBACK, the change was made only by the next check_msg()/wait_msg(), after the
application's own later calls: an unsubscribe() of the same filter in between was undone
(the filter subscribed again, against the application's last word)."""

from __future__ import annotations

import time
from typing import Any

from harness import run_device
from hostile import CONNECT, PUBLISH, SUBSCRIBE, UNSUBSCRIBE, Script, connack, publish
from test_guard import HEAP, SubackingBroker


class AnsweringBroker(SubackingBroker):
    """One more step: ("answer", seconds) answers every SUBSCRIBE (granted QoS 2) and
    UNSUBSCRIBE the client sends meanwhile, in whatever order they come."""

    def _step(self, s: Any, r: Any, conn: Any, step: Any) -> bool:
        if step[0] != "answer":
            return super()._step(s, r, conn, step)
        end = time.monotonic() + step[1]
        while (p := r.next(end)) is not None:
            if p[0] & 0xF0 == SUBSCRIBE:
                s.sendall(b"\x90\x03" + p[1][:2] + b"\x02")
            elif p[0] & 0xF0 == UNSUBSCRIBE:
                s.sendall(b"\xb0\x02" + p[1][:2])
        return True


ORDER: Script = [("expect", CONNECT), ("send", connack()), ("expect", PUBLISH),
                 ("send", publish(b"cmd", b"go")), ("puback", b""), ("answer", 3)]


def test_a_callback_subscribe_does_not_overtake_a_later_unsubscribe() -> None:
    with AnsweringBroker([ORDER]) as b:
        cfg = {"HOST": b.host, "PORT": b.port, "VERSION": 4, "TEST": "order"}
        r = run_device("dev_sub_order.py", cfg, heap=HEAP, timeout=60)
    assert "CB cmd" in r.out, r.out
    kinds = [f & 0xF0 for f, _ in b.conns[0].packets if f & 0xF0 in (SUBSCRIBE, UNSUBSCRIBE)]
    assert kinds == [SUBSCRIBE, UNSUBSCRIBE], (kinds, r.out, b.errors)
    assert r.values("SUBS") == [["[]"]], r.out  # the last word: unsubscribed
