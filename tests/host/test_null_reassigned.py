"""A null session (MQTT 5, client ID "") assigned an ID the store already holds a session
under: a broker whose assigned IDs repeat (a counter reset by its restart), or an ID the
node used before (tests/device/dev_null_reassigned.py, a scripted broker). The session the
broker now holds under that ID is the one the next boot resumes (client ID None), with
its unacknowledged message; the old one is kept under another client ID, and reported.
Up to 0.2.x the new session stayed under ~null while "last" named the old one: the next
boot resumed the old session and the new message was never sent again."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest

from harness import run_device
from hostile import CONNECT, PUBACK, PUBLISH, Conn, HostileBroker, ack, connack

HEAP = "256k"
AID = b"X"
ASSIGNED = bytes([0x12]) + len(AID).to_bytes(2, "big") + AID  # Assigned Client Identifier


def topic_payload(body: bytes) -> tuple[bytes, bytes]:
    # an MQTT 5 QoS 1 PUBLISH body: topic, packet ID, properties, payload
    n = int.from_bytes(body[:2], "big")
    i = 2 + n + 2
    return body[2:2 + n], body[i + 1 + body[i]:]  # properties short here: one length byte


class Broker(HostileBroker):
    """A scripted broker with one more step: ("puback",) acknowledges the last PUBLISH."""

    def _step(self, s: socket.socket, r: Any, conn: Conn, step: Any) -> bool:
        if step[0] != "puback":
            return super()._step(s, r, conn, step)
        body = conn.of_type(PUBLISH)[-1]
        n = int.from_bytes(body[:2], "big")
        s.sendall(ack(PUBACK, int.from_bytes(body[2 + n:4 + n], "big")))
        return True


def client_id(connect: bytes) -> bytes:
    # an MQTT 5 CONNECT body: protocol name, level, flags, keepalive, properties, client ID
    i = 2 + 4 + 1 + 1 + 2
    i += 1 + connect[i]  # properties short here: one length byte
    n = int.from_bytes(connect[i:i + 2], "big")
    return connect[i + 2:i + 2 + n]


@pytest.mark.parametrize("repeats", [1, 2])
def test_reassigned_id_resumes_the_new_session(tmp_path: Path, repeats: int) -> None:
    # repeats: boots with client ID "" assigned X again, each leaving a message the broker
    # never acknowledged (the broker restarted between them)
    new = [("expect", CONNECT), ("send", connack(0, 0, 5, ASSIGNED))]
    scripts = [
        # boot 1: X assigned, the first message acknowledged, the second not
        [("expect", CONNECT), ("send", connack(0, 0, 5, ASSIGNED)),
         ("expect", PUBLISH), ("puback",)],
        # the broker restarted: X assigned again, a new session; nothing acknowledged
        *[new] * repeats,
        # the next boot resumes X: the broker holds the session of the last boot
        [("expect", CONNECT), ("send", connack(1, 0, 5)),
         ("expect", PUBLISH), ("puback",)],
    ]
    img = tmp_path / "flash.img"
    with Broker(scripts) as b:
        c: dict[str, Any] = {"HOST": b.host, "PORT": b.port, "VERSION": 5,
                             "IMAGE": str(img), "PREFIX": "nr"}
        r = run_device("dev_null_reassigned.py", {**c, "PHASE": "old"}, heap=HEAP, timeout=60)
        assert r.value("CID") == "X" and r.value("PENDING") == "1", r.out
        news = []
        for k in range(repeats):
            r = run_device("dev_null_reassigned.py", {**c, "PHASE": "new", "RUN": k + 2},
                           heap=HEAP, timeout=60)
            assert r.value("CID") == "X" and r.value("PENDING") == "1", r.out
            news.append(r)
        r = run_device("dev_null_reassigned.py", {**c, "PHASE": "resume"}, heap=HEAP,
                       timeout=60)
        deadline = time.monotonic() + 20
        while len(b.conns) < repeats + 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(b.conns) == repeats + 2, [x.packets for x in b.conns]
        last = b.conns[-1]
        assert [client_id(x) for x in last.of_type(CONNECT)] == [AID], last.packets
        sent = [topic_payload(x)[1] for x in last.of_type(PUBLISH)]
        # the message of the session the broker holds is sent again; none of the older
        # sessions' (the broker has none of them)
        assert sent == [b"r%d-pending" % (repeats + 1)], (sent, r.out)
        assert r.value("PENDING") == "0", r.out
        assert not b.errors, b.errors
    # each older session: reported when it was moved aside, and still there with its
    # message, loaded by the client ID it was kept as
    names = ["X~old", "X~old1"][:repeats]
    for k, n in enumerate(names):
        reports = [ln for ln in news[k].lines if ln.startswith("REPORT")]
        assert len(reports) == 1 and f"kept as client ID {n} " in reports[0], news[k].out
        assert any(ln.startswith("mqttsession: store:") for ln in news[k].lines), news[k].out
    r = run_device("dev_null_reassigned.py", {**c, "PHASE": "inspect", "ASIDE": ",".join(names)},
                   heap=HEAP, timeout=60)
    assert r.values("LAST") == [["X", "[]"]], r.out
    # boot 1's message in the first one set aside, a later boot's in the next
    assert r.values("ASIDE", 1) == [[n, f"[b'r{k + 1}-pending']"] for k, n in enumerate(names)], \
        r.out
    assert not r.values("REPORT"), r.out
