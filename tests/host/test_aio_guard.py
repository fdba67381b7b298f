"""Poison messages and broker errors on the asyncio client, as tests/host/test_guard.py
proves them on the blocking one: a message the broker closes on `strikes` times in a row is
set aside and later messages go on; an MQTT 5 refusal sets it aside; a broker's protocol
error is a link failure with the real cause in link.last_error."""

from __future__ import annotations

import time
from typing import Any

import pytest

from harness import run_device
from hostile import CONNECT, PUBLISH, SUBSCRIBE, Script, connack
from test_guard import HEAP, QOS3, AckingBroker, ok


class SubackingBroker(AckingBroker):
    """One more step: ("suback", version) answers the client's last SUBSCRIBE: refused
    (0x80) when its filter contains "bad", else granted QoS 1."""

    def _step(self, s: Any, r: Any, conn: Any, step: Any) -> bool:
        if step[0] != "suback":
            return super()._step(s, r, conn, step)
        body = conn.of_type(SUBSCRIBE)[-1]
        tail = (b"\x00" if step[1] == 5 else b"") + (b"\x80" if b"bad" in body else b"\x01")
        s.sendall(bytes([0x90, 2 + len(tail)]) + body[:2] + tail)
        return True


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


def test_aio_link_hook_that_raises_changes_nothing() -> None:
    r, b = run([ok(4)], "raising_hook")
    assert "mqttsession: link: on_change(True) raised" in r.out
    assert len(b.conns) == 1 and b.conns[0].closed_by_client


@pytest.mark.parametrize("version", [4, 5])
def test_aio_refused_subscription_sent_on_connect_is_reported_and_dropped(version: int) -> None:
    # mosquitto grants subscriptions its ACL denies: the refusal comes from the script
    ack2: Script = [("expect", CONNECT), ("send", connack(version=version)),
                    ("expect", SUBSCRIBE), ("suback", version),
                    ("expect", SUBSCRIBE), ("suback", version)]
    ack1: Script = [("expect", CONNECT), ("send", connack(version=version)),
                    ("expect", SUBSCRIBE), ("suback", version)]
    r, b = run([ack2, ack1], "suback_refused", version)
    assert not b.errors, b.errors
    assert "MQTTException(128," in r.value("REFUSED"), r.out
    subs = [[body[2:] for body in c.of_type(SUBSCRIBE)] for c in b.conns]
    assert len(subs) == 2 and len(subs[0]) == 2, subs
    assert [b"cmd/ok" in x for x in subs[1]] == [True], subs  # cmd/bad not sent again
