"""The asyncio client's disconnect() around its last wait (tests/device/dev_aio_disconnect.py):
after the DISCONNECT it waits, in awaits, up to a second for the broker to close, and the
client is closed from the DISCONNECT on. Other tasks' calls meanwhile (publish,
subscribe, a second disconnect(), connect(), a cancel) leave nothing behind: no strike
against a message in flight, no link failure, the link's outage seen once, the window
open, output accepted meanwhile sent before the DISCONNECT. disconnect(end_session=True)
over MQTT 3.1.1 (a clean connect first) ends the old connection with a DISCONNECT, on
both clients: the broker sends no will."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest

from harness import Observer, run_device
from hostile import (
    CONNECT,
    DISCONNECT,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    SUBSCRIBE,
    Script,
    connack,
)
from hostile import publish as pub
from test_guard import SubackingBroker

HEAP = "256k"
PINGRESP = b"\xd0\x00"


def run(scripts: list[Script], test: str, check: bool = True, **kw: Any) -> tuple[Any, Any]:
    with SubackingBroker(scripts) as b:
        cfg = {"HOST": b.host, "PORT": b.port, "VERSION": 4, "TEST": test, **kw}
        r = run_device("dev_aio_disconnect.py", cfg, heap=HEAP, timeout=60, check=check)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not all(c.closed_by_client for c in b.conns):
            time.sleep(0.05)
    return r, b


def topics(conn: Any) -> list[bytes]:
    return [body[2 : 2 + int.from_bytes(body[:2], "big")] for body in conn.of_type(PUBLISH)]


def test_linger_close_after_a_failed_connect_is_no_strike() -> None:
    first: Script = [("expect", CONNECT), ("send", connack()), ("expect", PUBLISH),
                     ("expect", DISCONNECT), ("send", PINGRESP), ("sleep", 6)]
    refuse: Script = [("expect", CONNECT), ("close",)]
    ok: Script = [("expect", CONNECT), ("send", connack()), ("expect", PUBLISH),
                  ("puback", b""), ("expect", DISCONNECT)]
    r, b = run([first, refuse, ok], "strike", check=False)
    assert "PASS" in r.out, r.out
    assert len(b.conns) == 3 and topics(b.conns[2]) == [b"t/keep"]


LATE: Script = [("expect", CONNECT), ("send", connack()), ("expect", DISCONNECT), ("sleep", 5)]
ACKS: Script = [("expect", CONNECT), ("send", connack()), ("listen", 4)]


def test_cancel_linger() -> None:
    r, b = run([LATE, ACKS], "cancel_linger", check=False)
    assert "PASS" in r.out, r.out


def test_twice() -> None:
    r, b = run([LATE, ACKS], "twice", check=False)
    assert "PASS" in r.out, r.out


def test_calls_in_linger() -> None:
    acks: Script = [("expect", CONNECT), ("send", connack(1)), ("expect", SUBSCRIBE),
                    ("suback", 4), ("expect", PUBLISH), ("expect", PUBLISH),
                    ("send", b"\x40\x02\x00\x02\x50\x02\x00\x03"), ("expect", PUBREL),
                    ("send", b"\x70\x02\x00\x03"), ("listen", 2)]
    r, b = run([LATE, acks], "calls_in_linger", check=False)
    assert "PASS" in r.out, r.out
    assert topics(b.conns[1]) == [b"t/q1", b"t/q2"]
    assert not topics(b.conns[0])


def test_connect_in_linger() -> None:
    acks: Script = [("expect", CONNECT), ("send", connack()), ("expect", PUBLISH),
                    ("puback", b""), ("listen", 3)]
    r, b = run([LATE, acks], "connect_in_linger", check=False)
    assert "PASS" in r.out, r.out
    assert len(b.conns) == 2 and topics(b.conns[1]) == [b"t/q1"]


@pytest.mark.parametrize("test,link", [("end_will", 0), ("end_will", 1), ("blocking_end_will", 0)])
def test_end_session_sends_no_will(broker_factory: Any, test: str, link: int) -> None:
    b = broker_factory()
    will = f"bye/will/{test}{link}"
    with Observer(b.host, b.port, will, qos=1) as obs:
        r = run_device("dev_aio_disconnect.py", {"HOST": b.host, "PORT": b.port, "VERSION": 4,
                                           "TEST": test, "CID": f"hw{link}{test[:3]}",
                                           "WILL": will, "LINK": link},
                       heap=HEAP, timeout=60, check=False)
        time.sleep(1.5)
        got = obs.messages
    assert "PASS" in r.out, r.out
    assert not got, got


def test_qos2_once() -> None:
    m = pub(b"cmd/x", b"hello", qos=2, pid=5)
    dup = pub(b"cmd/x", b"hello", qos=2, pid=5, flags=8)
    first: Script = [("expect", CONNECT), ("send", connack()), ("send", m), ("expect", PUBREC),
                     ("expect", DISCONNECT), ("send", dup), ("sleep", 3)]
    again: Script = [("expect", CONNECT), ("send", connack(1)), ("send", dup),
                     ("expect", PUBREC), ("send", b"\x62\x02\x00\x05"), ("expect", PUBCOMP),
                     ("listen", 3)]
    r, b = run([first, again], "qos2_once", check=False)
    assert "PASS" in r.out, r.out


def test_cancel_flight() -> None:
    first: Script = [("expect", CONNECT), ("send", connack()), ("listen", 5)]
    r, b = run([first], "cancel_flight", check=False)
    assert "PASS" in r.out, r.out


def test_output_accepted_during_the_flight_wait_goes_before_disconnect() -> None:
    script: Script = [("expect", CONNECT), ("send", connack()), ("expect", PUBLISH),
                      ("sleep", 1), ("send", b"\x40\x02\x00\x01"), ("listen", 4)]
    with SubackingBroker([script]) as b:
        b._lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        cfg = {"HOST": b.host, "PORT": b.port, "VERSION": 4, "TEST": "late_output"}
        r = run_device("dev_aio_disconnect.py", cfg, heap=HEAP, timeout=60, check=False)
        time.sleep(1)
    assert "PASS" in r.out, r.out
    assert [len(x) for x in b.conns[0].of_type(PUBLISH)] == [8, 30007]
    assert len(b.conns[0].of_type(DISCONNECT)) == 1


def test_hook_seq() -> None:
    first: Script = [("expect", CONNECT), ("send", connack()), ("expect", DISCONNECT),
                     ("send", PINGRESP), ("sleep", 4)]
    ok: Script = [("expect", CONNECT), ("send", connack()), ("listen", 3)]
    r, b = run([first, ok], "hook_seq", check=False)
    assert "PASS" in r.out, r.out


def test_two_disconnects_in_the_flight_wait_leave_the_window_open() -> None:
    first: Script = [("expect", CONNECT), ("send", connack()), ("expect", PUBLISH),
                     ("sleep", 0.5), ("send", b"\x40\x02\x00\x01"), ("expect", DISCONNECT)]
    ok: Script = [("expect", CONNECT), ("send", connack(1)), ("expect", PUBLISH),
                  ("puback", b""), ("listen", 3)]
    r, b = run([first, ok], "twice_flight", check=False)
    assert "PASS" in r.out, r.out


def test_sub_pending() -> None:
    first: Script = [("expect", CONNECT), ("send", connack()), ("expect", SUBSCRIBE),
                     ("expect", DISCONNECT), ("sleep", 2)]
    ok: Script = [("expect", CONNECT), ("send", connack(1)), ("expect", SUBSCRIBE),
                  ("suback", 4), ("expect", SUBSCRIBE), ("suback", 4), ("listen", 3)]
    r, b = run([first, ok], "sub_pending", check=False)
    assert "PASS" in r.out, r.out
    assert len(b.conns) == 2
