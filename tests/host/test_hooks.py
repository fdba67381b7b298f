"""Application code the client calls, calling into the client, on the unix port (both
clients): a node that answers commands from its callback while its loop publishes
readings at window 1 (with and without a store and keeper), a callback that raises out
of the wait for window room, Link(on_change=) and the log hook publishing during the
reconnect a publish makes, connect() from the callback, connect() in a messages() loop,
connect() and disconnect(end_session=True) in an asyncio handler coroutine, and
Link(on_change=) publishing while a broker closes on every message, a callback raising
KeyboardInterrupt or SystemExit, a log hook that raises, an asyncio callback blocking
past 3/4 keepalive. Up to 0.2.20's
first fixes a publish made in between took the place of the message publish() had in
hand (the reading was lost, the other message went out twice), the callback's exception
cost the reading, connect() from the callback ran the command twice, the messages()
loop's connect() brought its command back forever, the handler coroutines waited for
their own reader (the client stayed dead), and a hook publishing on a dying link counted
one outage as two strikes. Up to 0.2.21 a KeyboardInterrupt from the blocking callback
left the client believing it ran inside the callback for good (every check_msg()
refused, the message unanswered), and a log hook that raised ended the asyncio reader
for good or stopped the blocking keeper's reconnect half made."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import Broker, run_device
from hostile import CONNECT, PUBLISH, HostileBroker, Script, connack

HEAP = "256k"
CASES = [
    ("clobber", {"MODE": "plain"}),
    ("clobber", {"MODE": "node"}),
    ("raises", {}),
    ("hook", {"HOOK": "on_change"}),
    ("hook", {"HOOK": "log"}),
    ("hook", {"HOOK": "both"}),
    ("connect", {"MODE": "node", "Q": 1}),
    ("connect", {"MODE": "node", "Q": 2}),
    ("connect", {"MODE": "plain", "Q": 1}),
    ("iter_connect", {"Q": 1}),
    ("handler_connect", {"Q": 1}),
    ("handler_end", {}),
    ("bye_raises", {}),
    ("sub_raises", {}),
    ("kbi", {"EXC": "kbi", "Q": 1}),
    ("kbi", {"EXC": "kbi", "Q": 2}),
    ("kbi", {"EXC": "exit", "Q": 0}),
    ("aio_log", {}),
    ("aio_log", {"WHEN": "connected"}),
    ("blk_log", {}),
    ("aio_slow", {}),
]


@pytest.mark.parametrize(("case", "kw"), CASES, ids=[f"{c}-{k}" for c, k in CASES])
def test_calls_from_the_application_code_the_client_runs(broker: Broker, tmp_path: Path,
                                                         case: str,
                                                         kw: dict[str, object]) -> None:
    cfg = {"HOST": broker.host, "PORT": broker.port, "VERSION": 4, "CASE": case,
           "PREFIX": f"hk-{tmp_path.name}", "ROOT": str(tmp_path / "store"), **kw}
    r = run_device("dev_hooks.py", cfg, heap=HEAP, timeout=180)
    assert "RESULT ok" in r.out, r.out


def test_a_hook_publishing_on_a_dying_link_counts_one_strike(tmp_path: Path) -> None:
    # the broker closes each connection once a PUBLISH came, without a PUBACK: with
    # strikes=3 the message is set aside once it was in flight on three connections
    first: Script = [("expect", CONNECT), ("send", connack(0)), ("expect", PUBLISH),
                     ("sleep", 0.2), ("close",)]
    later: Script = [("expect", CONNECT), ("send", connack(1)), ("expect", PUBLISH),
                     ("sleep", 0.2), ("close",)]
    with HostileBroker([first, later]) as b:
        cfg = {"HOST": b.host, "PORT": b.port, "CASE": "strikes", "HOOK": "publish",
               "CID": "hk-strikes"}
        r = run_device("dev_hooks.py", cfg, heap=HEAP, timeout=180)
        bodies = [[bytes(body) for f, body in c.packets if f & 0xF0 == PUBLISH]
                  for c in b.conns]
    assert "ASIDE [(" in r.out, r.out  # it was set aside
    first_body = bodies[0][0]  # the reading (the first message sent)
    assert sum(first_body in c for c in bodies) == 3, (r.out, bodies)


def test_on_aside_raising_leaves_the_client_usable(tmp_path: Path) -> None:
    # the broker closes on the message (strikes=1: set aside at once) and on_aside raises
    closes: Script = [("expect", CONNECT), ("send", connack(0)), ("expect", PUBLISH),
                      ("close",)]
    later: Script = [("expect", CONNECT), ("send", connack(0)), ("sleep", 3)]
    with HostileBroker([closes, later]) as b:
        cfg = {"HOST": b.host, "PORT": b.port, "CASE": "aside_raises", "CID": "hk-aside"}
        r = run_device("dev_hooks.py", cfg, heap=HEAP, timeout=180)
    assert "RESULT ok" in r.out, r.out
