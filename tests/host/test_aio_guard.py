"""Poison messages and broker errors on the asyncio client, as tests/host/test_guard.py
proves them on the blocking one: a message the broker closes on `strikes` times in a row is
set aside and later messages go on; an MQTT 5 refusal sets it aside; a broker's protocol
error is a link failure with the real cause in link.last_error. A subscription refused on
connect is tested on both clients here."""

from __future__ import annotations

import time
from typing import Any

import pytest

from harness import run_device
from hostile import (
    CONNECT,
    DISCONNECT,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    SUBSCRIBE,
    Script,
    ack,
    connack,
    publish,
)
from test_guard import HEAP, QOS3, SubackingBroker, ok
from test_guard import run as run_script


def run(scripts: list[Script], test: str, version: int = 4, **kw: Any) -> tuple[Any, Any]:
    with SubackingBroker(scripts) as b:
        cfg = {"HOST": b.host, "PORT": b.port, "VERSION": version, "TEST": test, **kw}
        r = run_device("dev_aio_guard.py", cfg, heap=HEAP, timeout=60)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not all(c.closed_by_client for c in b.conns):
            time.sleep(0.05)
    return r, b


@pytest.mark.parametrize("qos", [1, 2])
def test_aio_poison_message_set_aside_after_three_closes(qos: int) -> None:
    drop: Script = [("expect", CONNECT), ("send", connack()), ("expect", PUBLISH), ("close",)]
    r, b = run([drop, drop, drop, ok(4)], "poison", QOS=qos)
    why = " ".join(r.values("WHY")[0])
    assert "3 closes" in why
    assert ("QoS 2" in why) == (qos == 2)
    assert len(b.conns) == 4
    last = [body[2 : 2 + int.from_bytes(body[:2], "big")] for body in b.conns[3].of_type(PUBLISH)]
    assert last == [b"t/good"]


def test_aio_refused_with_reason_code_set_aside() -> None:
    script: Script = [("expect", CONNECT), ("send", connack(version=5)), ("expect", PUBLISH),
                      ("puback", b"\x87"), ("expect", PUBLISH), ("puback", b"")]
    _, b = run([script], "refused", 5)
    assert len(b.conns) == 1


def test_aio_malformed_while_publish_waits_is_a_link_failure_with_its_cause() -> None:
    bad: Script = [("expect", CONNECT), ("send", connack()), ("expect", PUBLISH),
                   ("send", QOS3)]
    _, b = run([bad, ok(4)], "keeper_malformed")
    assert len(b.conns) == 2 and len(b.conns[1].of_type(PUBLISH)) == 1


def test_aio_silent_suback_closes_the_link_and_keeps_the_subscription() -> None:
    silent: Script = [("expect", CONNECT), ("send", connack()), ("expect", SUBSCRIBE)]
    acks: Script = [("expect", CONNECT), ("send", connack()), ("expect", SUBSCRIBE),
                    ("reply", SUBSCRIBE, b"\x90\x03\x00\x00\x01")]
    _, b = run([silent, acks], "suback_silent")
    assert len(b.conns) == 2, b.errors
    assert all(b"cmd/#" in body for c in b.conns for body in c.of_type(SUBSCRIBE))
    assert [len(c.of_type(SUBSCRIBE)) for c in b.conns] == [1, 1]


def test_aio_disconnect_during_a_connect_attempt_leaves_no_error_behind() -> None:
    mute: Script = [("expect", CONNECT), ("sleep", 20)]  # no CONNACK
    r, b = run([mute], "bye_mid_connect")
    assert "PASS" in r.out, r.out
    assert len(b.conns) == 1


def test_aio_qos0_flood_on_a_stalled_link_never_cuts_a_packet() -> None:
    mute: Script = [("expect", CONNECT), ("send", connack()), ("sleep", 60)]  # reads nothing
    with SubackingBroker([mute]) as b:
        cfg = {"HOST": b.host, "PORT": b.port, "VERSION": 4, "TEST": "qos0_flood"}
        r = run_device("dev_aio_guard.py", cfg, heap=HEAP, timeout=120)
    assert "PASS" in r.out, r.out


def test_aio_qos0_publish_waits_for_a_slow_reader_and_loses_nothing() -> None:
    # 100 messages of 8 KB behind a broker that reads nothing for 2 s: publish waits for
    # the socket, and every message arrives, in order
    r, b = run_script([[("expect", CONNECT), ("send", connack()), ("sleep", 2)]],
                        "qos0_slow_reader", device="dev_aio_guard.py", small=True)
    assert "PASS" in r.out, r.out
    got = [body for body in b.conns[0].of_type(PUBLISH)]
    assert [int(x[5:9]) for x in got] == list(range(100)), [x[5:9] for x in got][:8]
    assert all(len(x) == 5 + 8192 for x in got)


def test_aio_disconnect_waits_for_the_brokers_close_without_holding_the_loop() -> None:
    # a broker that keeps the connection open for 5 s after the DISCONNECT: the client
    # waits up to a second for its close in awaits, then closes its end
    late: Script = [("expect", CONNECT), ("send", connack()), ("expect", DISCONNECT),
                    ("sleep", 5)]
    r, b = run([late], "bye_linger")
    assert "PASS" in r.out, r.out
    assert len(b.conns) == 1 and len(b.conns[0].of_type(DISCONNECT)) == 1


def test_aio_link_hook_that_raises_changes_nothing() -> None:
    r, b = run([ok(4)], "raising_hook")
    assert "mqttsession: link: on_change(True) raised" in r.out
    assert len(b.conns) == 1 and b.conns[0].closed_by_client


@pytest.mark.parametrize("front", ["aio", "blocking"])
@pytest.mark.parametrize("version", [4, 5])
def test_refused_subscription_sent_on_connect_is_reported_and_dropped(version: int,
                                                                     front: str) -> None:
    # both clients: two subscriptions made offline go out once connected; the refused
    # one leaves the session and the store and the connect goes on (mosquitto grants
    # subscriptions its ACL denies: the refusal comes from the script)
    ack2: Script = [("expect", CONNECT), ("send", connack(version=version)),
                    ("expect", SUBSCRIBE), ("suback", version),
                    ("expect", SUBSCRIBE), ("suback", version)]
    ack1: Script = [("expect", CONNECT), ("send", connack(version=version)),
                    ("expect", SUBSCRIBE), ("suback", version)]
    r, b = (run if front == "aio" else run_script)([ack2, ack1], "suback_refused", version)
    assert not b.errors, b.errors
    assert "cmd/bad" in r.value("REFUSED"), r.out
    if front == "aio":
        assert "MQTTException(128," in r.value("REFUSED"), r.out  # on_error got it
    subs = [[body[2:] for body in c.of_type(SUBSCRIBE)] for c in b.conns]
    assert len(subs) == 2 and len(subs[0]) == 2, subs
    assert [b"cmd/ok" in x for x in subs[1]] == [True], subs  # cmd/bad not sent again


@pytest.mark.parametrize("front", ["aio", "blocking"])
def test_subscriptions_made_offline_survive_a_link_lost_at_the_connect(front: str) -> None:
    # both clients: the link goes while the connect that makes them is owed their
    # SUBACKs; the next connection finds the broker's session kept (Session Present 1),
    # so only the subscriptions still owed tell the client to send them: both go out again
    lost: Script = [("expect", CONNECT), ("send", connack(present=1)),
                    ("expect", SUBSCRIBE), ("close",)]
    again: Script = [("expect", CONNECT), ("send", connack(present=1)),
                     ("expect", SUBSCRIBE), ("suback", 4), ("expect", SUBSCRIBE), ("suback", 4)]
    r, b = (run if front == "aio" else run_script)([lost, again], "suback_lost")
    assert not b.errors, b.errors
    if front == "blocking":  # the connect that lost the link left both owed
        lost_line = next(ln for ln in r.lines if ln.startswith("LOST "))
        assert lost_line.endswith("[b'cmd/a', b'cmd/b']"), r.out
    subs = [[body[2:] for body in c.of_type(SUBSCRIBE)] for c in b.conns]
    assert len(subs) == 2 and len(subs[1]) == 2, subs
    assert sorted(x[2:7] for x in subs[1]) == [b"cmd/a", b"cmd/b"], subs


def test_aio_qos2_resent_after_a_link_loss_is_answered_once() -> None:
    # messages(): the link goes while the application handles a QoS 2 message (its
    # PUBREC owed until the application asks for the next one); the broker resends it on
    # the next connection, completes it, then sends new messages with the same packet ID.
    # 0.2.13 sent the answer owed on the new connection as well: a fourth PUBREC, for an
    # ID the broker had given to the next message meanwhile, before the application had
    # that one (and a record of it that its own PUBREL could find gone: a later message
    # with that ID would be taken for a duplicate)
    def exchange(payload: bytes, flags: int = 0) -> list[Any]:
        return [("send", publish(b"cmd", payload, 2, 9, flags=flags)), ("expect", PUBREC),
                ("send", ack(PUBREL | 2, 9)), ("expect", PUBCOMP)]

    # (on the first connection the broker resends it too, while it is handled: answered
    # once handled, not at once)
    first: Script = [("expect", CONNECT), ("send", connack()),
                     ("send", publish(b"cmd", b"b", 2, 9)), ("sleep", 0.3),
                     ("send", publish(b"cmd", b"b", 2, 9, flags=8)), ("listen", 1.0), ("close",)]
    again: Script = [("expect", CONNECT), ("send", connack(present=1)),
                     *exchange(b"b", flags=8), *exchange(b"c"), *exchange(b"d")]
    r, b = run([first, again], "resent_after_loss")
    assert [ln.split()[1] for ln in r.lines if ln.startswith("GOT ")] == ["b", "c", "d"], r.out
    assert len(b.conns) == 2, b.errors
    assert b.conns[0].pids(PUBREC) == [], b.conns[0].packets
    assert b.conns[1].pids(PUBREC) == [9, 9, 9], b.conns[1].packets


def test_aio_qos2_and_its_resend_in_one_read_reach_a_coroutine_callback_once() -> None:
    # the first message tells the client its callback is a coroutine function; the next
    # one and its resend come in one write: its record is made just before its coroutine
    # runs, and the resend must still not count as new
    def exchange(pid: int, payload: bytes, dup: bool = False) -> list[Any]:
        data = publish(b"cmd", payload, 2, pid)
        if dup:
            data += publish(b"cmd", payload, 2, pid, flags=8)
        return [("send", data), ("expect", PUBREC), ("send", ack(PUBREL | 2, pid)),
                ("expect", PUBCOMP)]

    script: Script = [("expect", CONNECT), ("send", connack()), *exchange(5, b"m0"),
                      *exchange(9, b"x", dup=True)]
    r, b = run([script], "coro_dup")
    assert [ln.split()[1] for ln in r.lines if ln.startswith("GOT ")] == ["m0", "x"], r.out
    assert not b.errors, b.errors
