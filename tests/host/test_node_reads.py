"""What a blocking node reads, and when (tests/device/dev_node_reads.py), against a scripted
broker that answers what it is sent:

- a node that only publishes QoS 0 and never calls check_msg() hears the PINGRESPs to
  the pings it sends (up to 0.2.20 each went unread and the link was declared dead every
  1.5 x keepalive, or publish() raised OSError(ETIMEDOUT) without a keeper);
- check_msg() reads all of a started packet that has arrived (up to 0.2.20 at most 256
  bytes of it per call: a 16 KB message took 62 calls, never arrived within timeout,
  and the link was declared dead at each resend);
- a node kept from reading past 3/4 keepalive after a ping (its loop calls check_msg()
  every 0.8 x keepalive, or a callback takes that long) reads the PINGRESP that came
  meanwhile before judging the ping overdue (up to 0.2.21 the link was declared dead:
  check_msg() raised OSError(ETIMEDOUT), or the keeper counted an outage);
- a refused CONNECT is MQTTException(code) with a keeper too, in connect(), in
  link.last_error after connect(wait=False) and the keeper's attempts (up to 0.2.20
  OSError(ECONNRESET), logged as a protocol error)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from harness import run_device
from hostile import (
    CONNECT,
    PINGREQ,
    PUBLISH,
    PUBREL,
    HostileBroker,
    Script,
    ack,
    connack,
    packet,
)

HEAP = "256k"


class ServingBroker(HostileBroker):
    """("serve", seconds): answers PINGREQ, QoS 1/2 PUBLISH and PUBREL for that long."""

    def _step(self, s: Any, r: Any, conn: Any, step: Any) -> bool:
        if step[0] != "serve":
            return super()._step(s, r, conn, step)
        end = time.monotonic() + step[1]
        while time.monotonic() < end and not self._stop.is_set():
            p = r.next(min(end, time.monotonic() + 0.05))
            if p is None:
                if conn.closed_by_client:
                    return False
                continue
            f, body = p
            if f & 0xF0 == PUBLISH and f & 6:
                n = int.from_bytes(body[:2], "big")
                pid = int.from_bytes(body[2 + n : 4 + n], "big")
                s.sendall(ack(0x40 if f & 6 == 2 else 0x50, pid))
            elif f & 0xF0 == PUBREL:
                s.sendall(ack(0x70, int.from_bytes(body[:2], "big")))
            elif f & 0xF0 == PINGREQ:
                s.sendall(b"\xd0\x00")
        return True


def run(scripts: list[Script], **cfg: Any) -> tuple[Any, ServingBroker]:
    with ServingBroker(scripts) as b:
        r = run_device("dev_node_reads.py", {"HOST": b.host, "PORT": b.port, **cfg},
                       heap=HEAP, timeout=90)
    return r, b


@pytest.mark.parametrize("keeper", [1, 0])
def test_qos0_publisher_that_never_reads_keeps_a_healthy_link(keeper: int) -> None:
    r, b = run([[("expect", CONNECT), ("send", connack()), ("serve", 60)]], TEST="ping",
               KEEPER=keeper)
    assert "PASS" in r.out, r.out
    assert len(b.conns) == 1


def test_a_large_message_arriving_in_pieces_reaches_a_check_msg_loop() -> None:
    big = packet(PUBLISH | 2, b"\x00\x03t/x\x00\x05" + bytes(16000))
    script: Script = [("expect", CONNECT), ("send", connack()), ("sleep", 0.3),
                      ("send", big[:100]), ("sleep", 0.3), ("send", big[100:]),
                      ("serve", 60)]
    r, b = run([script], TEST="big")
    assert "PASS" in r.out, r.out
    assert len(b.conns) == 1


@pytest.mark.parametrize("version", [4, 5])
def test_refused_connect_with_a_keeper_says_why(version: int) -> None:
    code = 5 if version == 4 else 0x87
    script: Script = [("expect", CONNECT), ("send", connack(code=code, version=version))]
    r, _ = run([script], TEST="refused", VERSION=version)
    assert "PASS" in r.out, r.out
    assert r.value("WAITED") == f"MQTTException {code}", r.out
    assert r.value("NOWAIT") == f"None MQTTException {code}", r.out
    assert r.value("KEEPER") == f"MQTTException {code}", r.out


@pytest.mark.parametrize("keeper", [1, 0])
@pytest.mark.parametrize("slow", ["app", "cb"])
def test_a_node_kept_from_reading_past_a_ping_hears_its_pingresp(keeper: int,
                                                                 slow: str) -> None:
    script: Script = [("expect", CONNECT), ("send", connack())]
    if slow == "cb":
        # a message right after the ping; the PINGRESP while the callback runs
        script += [("expect", PINGREQ), ("send", packet(PUBLISH, b"\x00\x03t/xslow")),
                   ("sleep", 0.3), ("send", b"\xd0\x00")]
    r, b = run([script + [("serve", 60)]], TEST="slow", SLOW=slow, KEEPER=keeper)
    assert "PASS" in r.out, r.out
    assert len(b.conns) == 1
