"""What the client refuses and what it sets aside, on the unix port: application strings
that are not MQTT UTF-8 (refused at the call, nothing on the wire), a keeper's backoff
settings out of range (ValueError), poison messages (a broker that closes on a message, or
refuses it with a reason code: set aside, later messages go on, the backoff grows while
the broker drops each connection; the log hook has a line for each connect, link loss,
set-aside message, protocol error and the disconnect), and TLS that is secure by default
(ssl=True refused, an unverifying context warned about once, a refused certificate at a
keeper's reconnect is a link failure)."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest

from harness import Broker, Certs, run_device
from hostile import (
    CONNECT,
    DISCONNECT,
    PINGREQ,
    PUBACK,
    PUBLISH,
    SUBSCRIBE,
    HostileBroker,
    Script,
    connack,
    packet,
)

HEAP = "256k"
DEVICE = {"blocking": "dev_guard.py", "aio": "dev_aio_guard.py"}  # the scripts per front


class AckingBroker(HostileBroker):
    """One more step: ("puback", body_tail) acknowledges the client's last PUBLISH (its
    packet ID read past the topic), body_tail after the ID (MQTT 5 reason code)."""

    def _step(self, s: Any, r: Any, conn: Any, step: Any) -> bool:
        if step[0] != "puback":
            return super()._step(s, r, conn, step)
        body = conn.of_type(PUBLISH)[-1]
        pid = body[2 + int.from_bytes(body[:2], "big") :][:2]
        tail = step[1]
        s.sendall(bytes([PUBACK, 2 + len(tail)]) + pid + tail)
        return True


class SubackingBroker(AckingBroker):
    """Two more steps: ("suback", version) answers the client's last SUBSCRIBE: refused
    (0x80) when its filter contains "bad", else granted QoS 1; ("listen", seconds)
    records what the client sends meanwhile."""

    def _step(self, s: Any, r: Any, conn: Any, step: Any) -> bool:
        if step[0] == "listen":
            end = time.monotonic() + step[1]
            while r.next(end) is not None:
                pass
            return True
        if step[0] != "suback":
            return super()._step(s, r, conn, step)
        body = conn.of_type(SUBSCRIBE)[-1]
        tail = (b"\x00" if step[1] == 5 else b"") + (b"\x80" if b"bad" in body else b"\x01")
        s.sendall(bytes([0x90, 2 + len(tail)]) + body[:2] + tail)
        return True


def run(scripts: list[Script], test: str, version: int = 4, settle: bool = True,
        device: str = "dev_guard.py", small: bool = False, **kw: Any) -> tuple[Any, Any]:
    """Runs the scenario against the scripted broker. settle: wait (up to 5 s) until the
    client has closed every connection, so its last packets are recorded. small: the
    broker's receive buffer as small as a node's peer's (4 KB; on loopback the kernel
    takes megabytes otherwise: the device script makes its own send buffer small)."""
    with SubackingBroker(scripts) as b:
        if small:
            b._lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        cfg = {"HOST": b.host, "PORT": b.port, "VERSION": version, "TEST": test, **kw}
        r = run_device(device, cfg, heap=HEAP, timeout=60)
        deadline = time.monotonic() + (5 if settle else 0)
        while time.monotonic() < deadline and not all(c.closed_by_client for c in b.conns):
            time.sleep(0.05)
    return r, b


def ok(v: int, n: int = 4) -> Script:
    """Accept, then acknowledge every QoS 1 PUBLISH (up to n)."""
    return [("expect", CONNECT), ("send", connack(version=v))] + [
        s for _ in range(n)
        for s in (("expect", PUBLISH), ("puback", b""))]


@pytest.mark.parametrize("version", [4, 5])
def test_bad_application_strings_refused_before_the_wire(version: int) -> None:
    r, b = run([ok(version)], "bad_input", version)
    assert r.out.count("refused") == 9
    sent = [f & 0xF0 for c in b.conns for f, _ in c.packets]
    assert SUBSCRIBE not in sent
    topics = [body[2 : 2 + int.from_bytes(body[:2], "big")]
              for c in b.conns for body in c.of_type(PUBLISH)]
    assert topics == [b"t/ok"]


@pytest.mark.parametrize("qos", [1, 2])
def test_poison_message_set_aside_after_three_closes(qos: int) -> None:
    # each of the first connections closes when a PUBLISH arrives (for QoS 2 as AWS IoT
    # and Azure IoT Hub do); then a broker that acknowledges
    drop: Script = [("expect", CONNECT), ("send", connack()), ("expect", PUBLISH), ("close",)]
    r, b = run([drop, drop, drop, ok(4)], "poison", QOS=qos)
    why = r.values("WHY")[0]
    assert "3 closes" in " ".join(why)
    assert ("QoS 2" in " ".join(why)) == (qos == 2)
    assert len(b.conns) == 4
    last = [body[2 : 2 + int.from_bytes(body[:2], "big")] for body in b.conns[3].of_type(PUBLISH)]
    assert last == [b"t/good"]


def test_poison_message_set_aside_with_a_stored_subscription() -> None:
    # each new session at the broker (Session Present 0) is subscribed again first: its
    # SUBACK must not count as the broker taking the message, or the strikes and the
    # backoff start over at every connection and the keeper reconnects without end
    sub: Script = [("expect", SUBSCRIBE), ("reply", SUBSCRIBE, SUBACK_1)]
    drop: Script = [("expect", CONNECT), ("send", connack()), *sub, ("expect", PUBLISH),
                    ("close",)]
    good = ok(4)
    r, b = run([drop, drop, drop, good[:2] + sub + good[2:]], "poison", SUB=1)
    assert "3 closes" in " ".join(r.values("WHY")[0])
    assert len(b.conns) == 4, f"{len(b.conns)} connections"
    last = [body[2 : 2 + int.from_bytes(body[:2], "big")] for body in b.conns[3].of_type(PUBLISH)]
    assert last == [b"t/good"]


def test_innocent_window_is_not_set_aside() -> None:
    drop: Script = [("expect", CONNECT), ("send", connack())] + [("expect", PUBLISH)] * 16 + [
        ("close",)]
    r, b = run([drop, drop, drop, ok(4, 15)], "innocent_window")
    assert len(b.conns) == 4 and len(b.conns[3].of_type(PUBLISH)) == 15


def test_refused_with_reason_code_set_aside() -> None:
    script: Script = [("expect", CONNECT), ("send", connack(version=5)), ("expect", PUBLISH),
                      ("puback", b"\x87"), ("expect", PUBLISH), ("puback", b"")]
    run([script], "refused", 5)


@pytest.mark.parametrize("front", ["blocking", "aio"])
@pytest.mark.parametrize("reason", [0x8B, 0x8E, 0x99])
def test_broker_going_away_is_no_strike_against_the_message(front: str, reason: int) -> None:
    # MQTT 5: a DISCONNECT while a message is in flight, strikes=1. Server shutting down
    # or session taken over say nothing about the message: it goes out again on the next
    # connection. Payload format invalid may be about it: set aside (one strike), the
    # next connection sees none of it
    gone: Script = [("expect", CONNECT), ("send", connack(version=5)), ("expect", PUBLISH),
                    ("send", packet(DISCONNECT, bytes([reason, 0]))), ("close",)]
    r, b = run([gone, ok(5)], "gone", 5, device=DEVICE[front])
    blamed = reason == 0x99
    assert r.value("ASIDE") == ("t/kept" if blamed else "-")
    assert r.value("LAST") == str(reason)
    assert len(b.conns) == 2
    again = [body[2 : 2 + int.from_bytes(body[:2], "big")] for body in b.conns[1].of_type(PUBLISH)]
    assert again == ([b"t/next"] if blamed else [b"t/kept", b"t/next"])


SUBACK_1 = b"\x90\x03\x00\x00\x01"  # granted QoS 1 (the packet ID spliced in)
QOS3 = b"\x36\x05\x00\x01t\x00\x01"  # a PUBLISH with QoS 3: malformed


def test_malformed_while_publish_waits_is_a_link_failure_with_a_keeper() -> None:
    bad: Script = [("expect", CONNECT), ("send", connack()), ("expect", PUBLISH),
                   ("send", QOS3)]
    run([bad, ok(4)], "keeper_malformed")


def test_malformed_while_publish_waits_raises_mqttexception_without_a_keeper() -> None:
    bad: Script = [("expect", CONNECT), ("send", connack()), ("expect", PUBLISH),
                   ("send", QOS3)]
    run([bad], "no_keeper_malformed")


def test_link_hook_that_raises_changes_nothing() -> None:
    r, b = run([ok(4), ok(4)], "raising_hook")
    assert "mqttsession: link: on_change(True) raised" in r.out
    assert len(b.conns) == 2 and all(c.closed_by_client for c in b.conns)


def test_link_backoff_arguments_refused() -> None:
    # Link(...): min_ms <= 0, min_ms > max_ms, a factor below 1, a jitter outside 0 to <1 or
    # a wifi_timeout_ms <= 0 raise ValueError, a setting not a number TypeError, each naming
    # the argument; min_ms == max_ms, jitter 0 and just under 1, factor 1 are taken
    r = run_device("dev_guard.py", {"HOST": "127.0.0.1", "PORT": 1, "TEST": "link_args"},
                   heap=HEAP)
    assert r.out.count("refused") == 16 and r.out.count(" taken") == 7


def test_store_arguments_refused() -> None:
    # SessionStore(...): a root not a str, max_bytes or ram not None or an int >= 1, newer
    # not "refuse" or "aside" raise, naming the argument, before the filesystem is touched;
    # so do get(), has_any(), delete() and null_session() given a host that is not a str
    # or a client ID that is not a str or bytes
    r = run_device("dev_guard.py", {"HOST": "127.0.0.1", "PORT": 1, "TEST": "store_args"},
                   heap=HEAP)
    assert r.out.count("refused") == 18 and r.out.count(" taken") == 4
    assert r.out.count("dirs.py freed") == 8
    assert "ok nothing made or removed by them" in r.out


@pytest.mark.parametrize("keeper", [False, True], ids=["no-keeper", "keeper"])
def test_link_lost_while_subscribe_waits_is_logged(keeper: bool) -> None:
    # the log hook gets a line on a link loss: here the broker closes while subscribe()
    # waits for its SUBACK (subscribe raises OSError, with a keeper too)
    script: Script = [("expect", CONNECT), ("send", connack()), ("expect", SUBSCRIBE),
                      ("close",)]
    r, _ = run([script], "sub_link_lost", settle=False, KEEPER=keeper)
    assert r.value("RAISED").startswith("OSError")
    assert r.value("LINK_LOST_LINES").split()[0] == "1", r.out


def test_ssl_true_refused() -> None:
    run_device("dev_guard.py", {"HOST": "127.0.0.1", "PORT": 1, "TEST": "ssl_true"}, heap=HEAP)


def test_ssl_not_a_context_refused_naming_it() -> None:
    # "Bad values raise ValueError or TypeError naming the keyword": ssl=1 or the ssl module
    # got past the constructor and raised AttributeError from connect(), and from a keeper's
    # publish()/check_msg(), which never raise for a link failure
    run_device("dev_guard.py", {"HOST": "127.0.0.1", "PORT": 1, "TEST": "ssl_not_a_context"},
               heap=HEAP)


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory, certs: Certs) -> Any:
    b = Broker(tmp_path_factory.mktemp("tls"), tls=certs)
    yield b
    b.stop()


def test_tls_default_context_warned_once(tls_broker: Broker) -> None:
    r = run_device("dev_guard.py", {"HOST": "127.0.0.1", "PORT": tls_broker.tls_port,
                                    "TEST": "tls_default_context"}, heap=HEAP)
    assert r.out.count("does not verify") == 1
    assert r.values("CONNECTED_UNVERIFIED")


def test_tls_rogue_ca_at_a_keeper_reconnect_is_a_link_failure(tls_broker: Broker,
                                                              certs: Certs) -> None:
    # a CA that did not sign the server's certificate: the first connect raises OSError,
    # and every reconnect of the keeper fails as a link failure (backoff, last_error)
    cfg = {"HOST": "127.0.0.1", "PORT": tls_broker.tls_port, "TEST": "tls_keeper_cert_failure",
           "CA_DER": certs.wrong_ca_der}
    r = run_device("dev_guard.py", cfg, heap=HEAP)
    assert "does not verify" not in r.out
    assert r.values("FIRST")




def test_qos0_behind_a_stalled_socket_is_dropped_and_counted_not_piled_up() -> None:
    # 100 messages of 8 KB while the broker reads nothing for 2 s, in a 128 KB heap: each
    # publish within its budget; what was not dropped (lost0) arrives, in order
    r, b = run([[("expect", CONNECT), ("send", connack()), ("sleep", 2)]], "qos0_stall",
               small=True)
    assert "PASS" in r.out, r.out
    got = [int(x[5:9]) for x in b.conns[0].of_type(PUBLISH)]
    assert got == sorted(set(got)), got[:16]  # in order, none twice
    assert len(got) == 100 - int(r.value("LOST0")), (len(got), r.value("LOST0"))


def test_keeper_records_a_deadline_passed_as_etimedout_not_a_reset() -> None:
    # link.last_error says why the link went: a broker that stops answering and reading
    # (no PINGRESP within 1.5 x keepalive; output not taken within timeout) is ETIMEDOUT
    r, b = run([[("expect", CONNECT), ("send", connack()), ("sleep", 60)]], "late",
               settle=False, small=True)
    assert "PASS" in r.out, r.out
    assert len(b.conns) >= 2


@pytest.mark.parametrize("front", ["blocking", "aio"])
def test_end_session_online_v5_counts_what_it_gives_up(front: str) -> None:
    # MQTT 5, connected: the session ends with Session Expiry 0 at DISCONNECT (no clean
    # connect, which counted them); the three messages never acknowledged are counted.
    # The broker answers the PINGREQ that makes sure the DISCONNECT reaches it
    silent: Script = [("expect", CONNECT), ("send", connack(version=5)),
                      ("expect", PINGREQ), ("send", b"\xd0\x00"), ("listen", 30)]
    r, b = run([silent], "end_inflight", 5, device=DEVICE[front])
    assert "PASS" in r.out, r.out
    assert r.value("PENDING") == "3"
    assert len(b.conns) == 1, b.conns  # connected throughout
    assert len(b.conns[0].of_type(PUBLISH)) == 3
    assert b.conns[0].of_type(DISCONNECT) == [b"\x00\x05\x11\x00\x00\x00\x00"]  # expiry 0


@pytest.mark.parametrize("front", ["blocking", "aio"])
def test_disconnect_sends_what_waits_for_the_socket_first(front: str) -> None:
    # a 30 KB QoS 0 message the socket has not taken when disconnect() is called (the
    # broker reads nothing for 2 s): it arrives whole, then DISCONNECT (no will sent);
    # before, the link was closed with it
    r, b = run([[("expect", CONNECT), ("send", connack()), ("sleep", 2)]], "bye_waits",
               device=DEVICE[front], small=True)
    assert "PASS" in r.out, r.out
    kinds = [f & 0xF0 for f, _ in b.conns[0].packets]
    assert kinds == [CONNECT, PUBLISH, DISCONNECT], kinds
    assert b.conns[0].of_type(PUBLISH) == [b"\x00\x05t/bye" + bytes(30000)]
