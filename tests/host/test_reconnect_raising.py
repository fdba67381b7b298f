"""Application code that raises while the client connects, resumes a session or makes
subscriptions again (both clients, a scripted broker): the blocking callback raising
while connect() or the keeper's reconnect waits for the SUBACKs of the subscriptions made
again after the broker lost the session (Session Present 0), with a reading in flight or
in hand; the asyncio client's on_aside raising as the broker's close sets a message
aside. The connection must end as after any connect (up, link.up, on_change(True), the
subscriptions all made, the reading sent), the exception coming out of the call. Up to
0.2.21 connect() closed the link, the keeper's reconnect stopped half made (link.up
False), a KeyboardInterrupt lost the subscriptions not yet made, publish() raised with
its reading never queued, and the asyncio reader ended for good. Also the callback
raising while subscribe() waits for its SUBACK (online) or in the reconnect subscribe()
makes (offline with a keeper): the change is owed and made by the next call (up to
0.2.21 it was lost); and the blocking client's on_aside raising in a link loss: the loss
is handled as any other (link.last_error, the backoff; up to 0.2.21 skipped), also in a
reconnect (the keeper's backoff was undone)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness import run_device
from hostile import (
    CONNECT,
    DISCONNECT,
    PUBACK,
    PUBLISH,
    SUBSCRIBE,
    HostileBroker,
    Script,
    connack,
    publish,
)

HEAP = "256k"
SUBACK1 = bytes([0x90, 3, 0, 0, 1])
# a connection that subscribes once, then closes
CLOSES: Script = [("expect", CONNECT), ("send", connack(0)), ("expect", SUBSCRIBE),
                  ("reply", SUBSCRIBE, SUBACK1), ("sleep", 0.3), ("close",)]


def lost_then(*more: Any) -> Script:
    """The broker lost the session: two subscriptions made again, a command the callback
    raises on before the first SUBACK, a command after them; then the steps in more."""
    return [("expect", CONNECT), ("send", connack(0)), ("expect", SUBSCRIBE),
            ("send", publish(b"cmd", b"boom", 1, 7)), ("reply", SUBSCRIBE, SUBACK1),
            ("expect", SUBSCRIBE), ("reply", SUBSCRIBE, SUBACK1),
            ("send", publish(b"cmd", b"after", 1, 8)), *more, ("sleep", 10)]


def _run(tmp_path: Path, case: str, scripts: list[Script], **kw: object) -> tuple[Any, list[Any]]:
    with HostileBroker(scripts) as b:
        cfg = {"HOST": b.host, "PORT": b.port, "CASE": case, "CID": f"hr-{case}",
               "ROOT": str(tmp_path / "store"), **kw}
        r = run_device("dev_reconnect_raising.py", cfg, heap=HEAP, timeout=120, check=False)
        conns = list(b.conns)
    return r, conns


@pytest.mark.parametrize("exc", ["value", "kbi"])
def test_callback_raising_while_connect_resubscribes(tmp_path: Path, exc: str) -> None:
    first: Script = [("expect", CONNECT), ("send", connack(0)),
                     ("expect", SUBSCRIBE), ("reply", SUBSCRIBE, SUBACK1),
                     ("expect", SUBSCRIBE), ("reply", SUBSCRIBE, SUBACK1),
                     ("expect", DISCONNECT)]
    # the session is lost: both subscriptions are made again; a command arrives before
    # the first SUBACK and the callback raises on it
    lost: Script = [("expect", CONNECT), ("send", connack(0)),
                    ("expect", SUBSCRIBE),
                    ("send", publish(b"cmd", b"boom", 1, 7)),
                    ("reply", SUBSCRIBE, SUBACK1),
                    ("expect", SUBSCRIBE), ("reply", SUBSCRIBE, SUBACK1),
                    ("expect", SUBSCRIBE), ("reply", SUBSCRIBE, SUBACK1),
                    ("send", publish(b"cmd", b"after", 1, 8)), ("sleep", 10)]
    r, conns = _run(tmp_path, "blk_connect", [first, lost], EXC=exc)
    assert "RESULT ok" in r.out, r.out
    assert len(conns) == 2, (r.out, len(conns))
    assert any(b[:2] == b"\x00\x07" for b in conns[1].of_type(PUBACK)), r.out


def test_callback_raising_in_the_keepers_resubscribe(tmp_path: Path) -> None:
    first: Script = [("expect", CONNECT), ("send", connack(0)),
                     ("expect", SUBSCRIBE), ("reply", SUBSCRIBE, SUBACK1),
                     ("expect", PUBLISH), ("sleep", 0.3), ("close",)]
    lost: Script = [("expect", CONNECT), ("send", connack(0)),
                    ("expect", SUBSCRIBE),
                    ("send", publish(b"cmd", b"boom", 1, 7)),
                    ("reply", SUBSCRIBE, SUBACK1),
                    ("expect", SUBSCRIBE), ("reply", SUBSCRIBE, SUBACK1),
                    ("send", publish(b"cmd", b"after", 1, 8)), ("sleep", 10)]
    r, conns = _run(tmp_path, "blk_keeper", [first, lost])
    assert "RESULT ok" in r.out, r.out
    assert len(conns) == 2, (r.out, len(conns))
    # the reading in flight when the link went is sent again on the new connection
    assert any(b.endswith(b"r1") for b in conns[1].of_type(PUBLISH)), (r.out, conns[1].packets)


def test_callback_raising_in_the_reconnect_publish_makes(tmp_path: Path) -> None:
    r, conns = _run(tmp_path, "blk_publish", [CLOSES, lost_then(("expect", PUBLISH))])
    assert "RESULT ok" in r.out, r.out
    assert len(conns) == 2, (r.out, len(conns))
    # the reading publish() had in hand when the callback raised goes out
    assert any(b.endswith(b"r2") for b in conns[1].of_type(PUBLISH)), (r.out, conns[1].packets)


def test_aio_on_aside_raising_leaves_the_keeper_going(tmp_path: Path) -> None:
    closes: Script = [("expect", CONNECT), ("send", connack(0)), ("expect", PUBLISH),
                      ("close",)]
    later: Script = [("expect", CONNECT), ("send", connack(0)), ("sleep", 10)]
    r, conns = _run(tmp_path, "aio_aside", [closes, later])
    assert "RESULT ok" in r.out, r.out


def test_callback_raising_while_subscribe_waits(tmp_path: Path) -> None:
    # the command comes before the SUBACK: the subscription is owed all the same, made by
    # the next call (the same SUBSCRIBE again), kept in the store, and made again once the
    # broker lost the session. Up to 0.2.21 it was made at the broker but recorded nowhere
    first: Script = [("expect", CONNECT), ("send", connack(0)),
                     ("expect", SUBSCRIBE),
                     ("send", publish(b"cmd", b"boom", 1, 7)),
                     ("reply", SUBSCRIBE, SUBACK1),
                     ("send", publish(b"cmd", b"after", 1, 8)),
                     ("expect", SUBSCRIBE), ("reply", SUBSCRIBE, SUBACK1),
                     ("expect", DISCONNECT)]
    lost: Script = [("expect", CONNECT), ("send", connack(0)),
                    ("expect", SUBSCRIBE), ("reply", SUBSCRIBE, SUBACK1),
                    ("send", publish(b"cmd", b"after2", 1, 9)), ("sleep", 10)]
    r, conns = _run(tmp_path, "blk_sub_online", [first, lost])
    assert "RESULT ok" in r.out, r.out
    assert len(conns) == 2, (r.out, len(conns))
    assert any(b"cmd" in b for b in conns[1].of_type(SUBSCRIBE)), (r.out, conns[1].packets)


def test_callback_raising_in_the_reconnect_subscribe_makes(tmp_path: Path) -> None:
    # subscribe("new") offline starts the keeper's reconnect; the callback raises in the
    # subscriptions made again there: "new" is owed all the same. Up to 0.2.21 it was lost
    r, conns = _run(tmp_path, "blk_sub_offline", [
        CLOSES, lost_then(("expect", SUBSCRIBE), ("reply", SUBSCRIBE, SUBACK1))])
    assert "RESULT ok" in r.out, r.out
    assert len(conns) == 2, (r.out, len(conns))
    assert any(b"new" in b for b in conns[1].of_type(SUBSCRIBE)), (r.out, conns[1].packets)


def test_on_aside_raising_in_a_link_loss(tmp_path: Path) -> None:
    # the blocking client's on_aside raises as the broker's close sets the reading aside:
    # out of the call, and the loss handled as any (link.last_error, the backoff). Up to
    # 0.2.22 its exception replaced the OSError: last_error stale, no backoff
    closes: Script = [("expect", CONNECT), ("send", connack(0)), ("expect", PUBLISH),
                      ("close",)]
    later: Script = [("expect", CONNECT), ("send", connack(0)), ("sleep", 10)]
    r, conns = _run(tmp_path, "blk_aside", [closes, later])
    assert "RESULT ok" in r.out, r.out
    assert len(conns) == 2, (r.out, len(conns))


def test_on_aside_raising_in_the_reconnect(tmp_path: Path) -> None:
    # the same while the keeper's reconnect makes a subscription owed from offline, the
    # reading resent in flight (Session Present 1): the link stays down with its backoff
    closes: Script = [("expect", CONNECT), ("send", connack(0)), ("expect", PUBLISH),
                      ("close",)]
    again: Script = [("expect", CONNECT), ("send", connack(1)), ("expect", PUBLISH),
                     ("expect", SUBSCRIBE), ("close",)]
    later: Script = [("expect", CONNECT), ("send", connack(1)),
                     ("expect", SUBSCRIBE), ("reply", SUBSCRIBE, SUBACK1), ("sleep", 10)]
    r, conns = _run(tmp_path, "blk_aside_rejoin", [closes, again, later])
    assert "RESULT ok" in r.out, r.out
    assert len(conns) == 3, (r.out, len(conns))


def test_keyboard_interrupt_in_the_reconnect_publish_makes_accepts_nothing(
        tmp_path: Path) -> None:
    script: Script = [("expect", CONNECT), ("send", connack(0)), ("sleep", 10)]
    r, conns = _run(tmp_path, "blk_wifi_kbi", [script])
    assert "RESULT ok" in r.out, r.out
    assert not conns[0].of_type(PUBLISH), conns[0].packets
