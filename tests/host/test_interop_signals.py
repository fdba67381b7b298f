"""What brokers announce or do beyond plain MQTT, scripted exactly with the hostile broker
(tests/host/hostile.py), and ending a session on purpose against mosquitto:

- a PUBACK answering a QoS 2 PUBLISH completes it (RabbitMQ, no QoS 2): counted;
- MQTT 5 CONNACK Maximum QoS and Retain Available cap what the node sends (policy
  `limits="downgrade"`, the default, counted; or `"refuse"`: ValueError);
- a 3.1.1-style refusal of an MQTT 5 CONNECT (amqtt) raises MQTTException at once;
- the broker's Session Expiry Interval is used and stored, its Server Keep Alive used;
- DISCONNECT 0x8E (session taken over): surfaced, and the keeper backs off to its maximum;
- Server Reference on CONNACK 0x9C/0x9D followed only when opted in, one hop;
- `disconnect(end_session=True)`: broker and store forget the session; when the broker
  cannot be reached, the connect's error is raised and nothing is forgotten.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest

from harness import Broker, Observer, free_port, run_device
from hostile import (
    CONNECT,
    DISCONNECT,
    PINGREQ,
    PUBACK,
    PUBLISH,
    Conn,
    HostileBroker,
    Script,
    connack,
    packet,
)

HEAP = "256k"


class Broker5(HostileBroker):
    """The hostile broker plus one step: ("ack_publish", first) answers the client's last
    PUBLISH with a two-byte acknowledgement of its packet ID (PUBACK, PUBREC)."""

    def _step(self, s: socket.socket, r: Any, conn: Conn, step: tuple[Any, ...]) -> bool:
        if step[0] != "ack_publish":
            return super()._step(s, r, conn, step)
        bodies = conn.of_type(PUBLISH)
        if not bodies:
            self.errors.append(f"connection {conn.index}: no PUBLISH to acknowledge")
            return False
        n = int.from_bytes(bodies[-1][:2], "big")
        s.sendall(bytes([step[1], 2]) + bodies[-1][2 + n : 4 + n])
        return True


def run(scripts: list[Script], test: str, version: int = 4, settle: bool = False,
        **kw: Any) -> tuple[Any, Any]:
    """Runs the scenario against the scripted broker. settle: wait until the client has
    closed every connection, so its last packets are recorded."""
    with Broker5(scripts) as b:
        cfg = {"HOST": b.host, "PORT": b.port, "VERSION": version, "TEST": test, **kw}
        r = run_device("dev_interop_signals.py", cfg, heap=HEAP, timeout=60)
        # what the client sent last (DISCONNECT) is recorded once the broker has read it
        deadline = time.monotonic() + (5 if settle else 0)
        while time.monotonic() < deadline and not all(c.closed_by_client for c in b.conns):
            time.sleep(0.05)
    return r, b


def u16(n: int) -> bytes:
    return n.to_bytes(2, "big")


def u32(n: int) -> bytes:
    return n.to_bytes(4, "big")


def utf8(s: str) -> bytes:
    return u16(len(s)) + s.encode()


@pytest.mark.parametrize("version", [4, 5])
def test_puback_for_qos2_completes_and_is_counted(version: int) -> None:
    script = [("expect", CONNECT), ("send", connack(version=version)),
              ("expect", PUBLISH), ("ack_publish", PUBACK)]
    r, b = run([script], "qos2_puback", version, settle=True)
    assert r.value("PUB").split()[0] == "OK"
    assert r.value("DOWNGRADED") == "1"
    assert r.value("PENDING") == "0"
    assert len(b.conns) == 1  # no reconnect: the link stayed up


@pytest.mark.parametrize(("policy", "want_q2", "want_ret"), [
    (None, "OK", "OK"), ("downgrade", "OK", "OK"), ("refuse", "ValueError", "ValueError")])
def test_maximum_qos_and_retain_available(policy: str | None, want_q2: str,
                                          want_ret: str) -> None:
    props = b"\x24\x01" + b"\x25\x00"  # Maximum QoS 1, Retain Available 0
    script = [("expect", CONNECT), ("send", connack(version=5, props=props)),
              ("expect", PUBLISH), ("ack_publish", PUBACK)]
    if policy == "refuse":
        script = script[:2]
    r, b = run([script], "limits", 5, settle=True, LIMITS=policy, RETQOS=0)
    assert r.value("PUBQ2").split()[0] == want_q2
    assert r.value("PUBRET").split()[0] == want_ret
    pubs = [f for f, _ in b.conns[0].packets if f & 0xF0 == PUBLISH]
    if policy == "refuse":
        assert pubs == []
        assert r.value("DOWNGRADED") == "0"
    else:
        assert pubs == [0x32, 0x30]  # QoS 2 sent as QoS 1; the retain flag cleared
        assert r.value("DOWNGRADED") == "2"


def test_maximum_qos_and_retain_available_asyncio() -> None:
    props = b"\x24\x01" + b"\x25\x00"
    script = [("expect", CONNECT), ("send", connack(version=5, props=props)),
              ("expect", PUBLISH), ("ack_publish", PUBACK)]
    r, b = run([script], "limits_aio", 5, settle=True)
    assert (r.value("PUBQ2"), r.value("PUBRET")) == ("OK", "OK")
    assert r.value("DOWNGRADED") == "2"
    pubs = [f for f, _ in b.conns[0].packets if f & 0xF0 == PUBLISH]
    assert pubs == [0x32, 0x30]


@pytest.mark.parametrize("max_qos", [1, 0])
def test_queued_messages_sent_within_the_limits(tmp_path: Path, max_qos: int) -> None:
    props = b"\x24" + bytes([max_qos]) + b"\x25\x00"  # Maximum QoS, Retain Available 0
    script = [("expect", CONNECT), ("send", connack(version=5, props=props)),
              ("expect", PUBLISH), ("expect", PUBLISH)]
    if max_qos:
        script = script[:3] + [("ack_publish", PUBACK), ("expect", PUBLISH),
                               ("ack_publish", PUBACK)]
    r, b = run([script], "queued_limits", 5, settle=True, IMAGE=str(tmp_path / "flash.img"),
               CID="ql")
    assert r.value("QUEUED") == "2"
    assert r.value("PENDING") == "0"
    assert r.value("DOWNGRADED") == "2"
    pubs = [(f, body) for f, body in b.conns[0].packets if f & 0xF0 == PUBLISH]
    # both at the broker's Maximum QoS, neither retained
    assert [f for f, _ in pubs] == [0x30 | max_qos << 1] * 2
    if not max_qos:  # QoS 0: no packet ID between the topic and the payload
        assert [body[-2:] for _, body in pubs] == [b"q2", b"r1"]
        assert all(len(body) == 2 + body[1] + 1 + 2 for _, body in pubs), pubs


def test_311_refusal_of_mqtt5_connect_raises_at_once() -> None:
    # amqtt's answer to an MQTT 5 CONNECT: a 3.1.1 CONNACK, return code 1, then close
    script = [("expect", CONNECT), ("send", b"\x20\x02\x00\x01"), ("close",)]
    r, _ = run([script], "refused_v5", 5, TIMEOUT=8)
    name, code = r.value("CONNECT").split()[:2]
    assert name == "MQTTException" and int(code) in (1, 0x84), r.out


def test_311_refusal_held_open_raises_at_once() -> None:
    # the same refusal with the connection left open: the client must not wait it out
    script = [("expect", CONNECT), ("send", b"\x20\x02\x00\x01"), ("sleep", 10)]
    r, _ = run([script], "refused_v5", 5, TIMEOUT=8)
    name, code = r.value("CONNECT").split()[:2]
    assert name == "MQTTException" and int(code) in (1, 0x84), r.out


def test_broker_session_expiry_and_keepalive_used_and_stored(tmp_path: Path) -> None:
    props = b"\x11" + u32(300) + b"\x13" + u16(2)  # Session Expiry 300 s, Server Keep Alive 2 s
    script = [("expect", CONNECT), ("send", connack(version=5, props=props)),
              ("expect", PINGREQ), ("send", b"\xd0\x00")]
    r, b = run([script], "expiry", 5, IMAGE=str(tmp_path / "flash.img"), CID="exp",
               KEEPALIVE=60, LINGER=3500)
    assert r.value("EXPIRY") == "300"
    assert r.value("KA") == "2"
    assert r.value("STORED_EXPIRY") == "300"
    assert b.conns[0].of_type(PINGREQ), "no PINGREQ within 3.5 s at Server Keep Alive 2 s"
    assert b.errors == []


def test_session_taken_over_backs_off_hard() -> None:
    script = [("expect", CONNECT), ("send", connack(version=5)), ("sleep", 0.5),
              ("send", packet(DISCONNECT, b"\x8e\x00")), ("close",)]
    r, b = run([script, [("expect", CONNECT), ("send", connack(version=5))]], "takeover", 5)
    assert r.value("TAKEN") == str(0x8E)
    assert int(r.value("DUE")) > 10000  # the keeper's max_ms is 20 s: not 100 ms
    assert len(b.conns) == 1  # it did not fight back at once


@pytest.mark.parametrize("opt_in", [None, True])
def test_server_reference_on_connack(opt_in: bool | None) -> None:
    with HostileBroker([[("expect", CONNECT), ("send", connack(version=5))]]) as target:
        ref = f"127.0.0.1:{target.port}"
        moved = [("expect", CONNECT),
                 ("send", connack(code=0x9D, version=5, props=b"\x1c" + utf8(ref))), ("close",)]
        r, _ = run([moved], "redirect", 5, REDIRECT=opt_in)
        time.sleep(0.2)
        followed = len(target.conns)
    if opt_in:
        assert r.value("CONNECT").split()[0] == "OK"
        assert r.value("PORT") == str(target.port)
        assert followed == 1
    else:
        assert r.value("CONNECT").split()[:2] == ["MQTTException", str(0x9D)]
        assert r.value("REF") == ref
        assert followed == 0


@pytest.mark.parametrize("what", ["port", "empty"])
def test_server_reference_naming_nothing_reachable_not_followed(what: str) -> None:
    # port 65536 + P: a port no socket takes (MicroPython's socket would wrap it to P, the
    # target's); an empty reference names no server (it became the server ""): neither
    # is followed, the reference kept and the refusal raised as without it
    with HostileBroker([[("expect", CONNECT), ("send", connack(version=5))]]) as target:
        ref = f"127.0.0.1:{65536 + target.port}" if what == "port" else ""
        moved = [("expect", CONNECT),
                 ("send", connack(code=0x9D, version=5, props=b"\x1c" + utf8(ref))), ("close",)]
        r, first = run([moved], "redirect", 5, REDIRECT=True)
        time.sleep(0.2)
        followed = len(target.conns)
    assert r.value("CONNECT").split()[:2] == ["MQTTException", str(0x9D)]
    assert r.value("PORT") == str(first.port)
    assert r.value("SERVER") == first.host
    assert r.values("REF") == [[ref] if ref else []]
    assert followed == 0


def test_server_reference_followed_one_hop_only() -> None:
    with HostileBroker([[("expect", CONNECT), ("sleep", 3)]]) as third:
        with HostileBroker([[("expect", CONNECT), ("send", connack(
                code=0x9C, version=5, props=b"\x1c" + utf8(f"127.0.0.1:{third.port}"))),
                ("close",)]]) as second:
            ref = f"127.0.0.1:{second.port}"
            moved = [("expect", CONNECT),
                     ("send", connack(code=0x9C, version=5, props=b"\x1c" + utf8(ref))),
                     ("close",)]
            r, _ = run([moved], "redirect", 5, REDIRECT=True)
            hops = len(second.conns), len(third.conns)
    assert r.value("CONNECT").split()[:2] == ["MQTTException", str(0x9C)]
    assert hops == (1, 0)


def test_server_reference_on_disconnect_followed_by_the_keeper() -> None:
    with HostileBroker([[("expect", CONNECT), ("send", connack(version=5))]]) as target:
        ref = utf8(f"127.0.0.1:{target.port}")
        moved = [("expect", CONNECT), ("send", connack(version=5)), ("sleep", 0.3),
                 ("send", packet(DISCONNECT, b"\x9d" + bytes([1 + len(ref)])
                                 + b"\x1c" + ref)), ("close",)]
        r, _ = run([moved], "redirect_later", 5)
        followed = len(target.conns)
    assert r.value("DISCONNECTED") == str(0x9D)
    assert r.value("PORT") == str(target.port)
    assert r.value("CONNECTED") == "True"
    assert followed == 1


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("offline", [False, True], ids=["online", "offline"])
def test_end_session_on_purpose(broker_factory: Any, tmp_path: Path, version: int,
                                offline: bool) -> None:
    b: Broker = broker_factory()
    c = {"HOST": b.host, "PORT": b.port, "VERSION": version, "TEST": "end_session",
         "PREFIX": f"es{version}{int(offline)}", "CID": f"es-{version}-{int(offline)}",
         "IMAGE": str(tmp_path / "flash.img"), "PHASE": 1, "OFFLINE": offline}
    with Observer(b.host, b.port, f"{c['PREFIX']}/#", qos=1, protocol=version) as obs:
        r1 = run_device("dev_interop_signals.py", c, heap=HEAP)
        r2 = run_device("dev_interop_signals.py", {**c, "PHASE": 2}, heap=HEAP)
        time.sleep(0.5)
    assert r1.value("SUBS_BEFORE") == "1"
    assert r1.value("PENDING_BEFORE") == ("2" if offline else "0")
    assert r1.value("ENDED").split()[0] == "OK"
    assert r1.value("CONNECTED") == "False"
    assert (r1.value("PENDING_AFTER"), r1.value("SUBS_AFTER")) == ("0", "0")
    assert (r2.value("PENDING_AT_BOOT"), r2.value("SUBS_AT_BOOT")) == ("0", "0")
    assert r2.value("PRESENT") == "False"  # the broker forgot it too
    assert obs.messages == []  # messages queued in flash were given up, never sent


@pytest.mark.parametrize("version", [4, 5])
def test_end_session_with_the_broker_unreachable_forgets_nothing(
        broker_factory: Any, tmp_path: Path, version: int) -> None:
    # the connect that ending the session needs (offline: 3.1.1 and MQTT 5 alike) finds no
    # broker: its error is raised, and the queued messages and the subscription stay, in
    # RAM and in flash; the next boot resumes the session and its messages go out
    b: Broker = broker_factory()
    c = {"HOST": b.host, "PORT": b.port, "VERSION": version, "TEST": "end_session",
         "PREFIX": f"esf{version}", "CID": f"esf-{version}", "IMAGE": str(tmp_path / "flash.img"),
         "PHASE": 1, "FAIL": True, "DEAD_PORT": free_port()}
    with Observer(b.host, b.port, f"{c['PREFIX']}/#", qos=1, protocol=version) as obs:
        r1 = run_device("dev_interop_signals.py", c, heap=HEAP)
        r2 = run_device("dev_interop_signals.py", {**c, "PHASE": 2}, heap=HEAP)
        obs.wait_for(2)
    assert (r1.value("PENDING_BEFORE"), r1.value("SUBS_BEFORE")) == ("2", "1")
    assert r1.value("ENDED").split()[0] == "OSError", r1.out
    assert r1.value("CONNECTED") == "False"
    assert (r1.value("PENDING_AFTER"), r1.value("SUBS_AFTER")) == ("2", "1")
    assert (r2.value("PENDING_AT_BOOT"), r2.value("SUBS_AT_BOOT")) == ("2", "1")
    assert r2.value("PRESENT") == "True"  # the broker kept the session too
    assert r2.value("PENDING_AFTER_CONNECT") == "0"
    assert sorted(obs.payloads()) == [b"q0", b"q1"]
