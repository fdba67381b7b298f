"""No heap for aside.py's code when the link fails with messages in flight
(tests/device/dev_memerr_strike.py, the import refused with MemoryError): the strike
against the oldest message is not counted, and the failure stays a link failure. Before,
the MemoryError came out of publish() in its place, with a keeper too, after publish()
had taken the message into the session: an application that published it again sent a
QoS 2 message twice (found by a soak of backlogs drained in a tight heap). A broker's
protocol violation whose handling cannot load raises MemoryError out of publish(), and
its message is not taken: the application may publish it again."""

from __future__ import annotations

from harness import run_device
from hostile import CONNACK, CONNECT, PUBLISH, HostileBroker, Script, connack, packet

HEAP = "256k"  # the library is compiled from source on the device


def run(script: Script, **cfg: object) -> list[list[str]]:
    with HostileBroker([script]) as b:
        r = run_device("dev_memerr_strike.py", {"HOST": b.host, "PORT": b.port, **cfg},
                       heap=HEAP, timeout=90)
    return [ln.split() for ln in r.out.splitlines()]


def test_link_failure_with_no_heap_for_the_strike_is_a_link_failure() -> None:
    # no acknowledgement: the first publish() waits for its PUBACK (budget 20 s) and the
    # ones after it wait for room in the window (budget 0.2 s each) until the close
    script = [("expect", CONNECT), ("send", connack()), ("expect", PUBLISH), ("sleep", 0.5),
              ("close",)]
    for budget in (20000, 200):
        lines = run(script, BUDGET=budget)
        assert not [ln for ln in lines if ln[0] == "E"], lines
        pubs = [ln for ln in lines if ln[0] == "P"]
        # every publish() that returned took its message, once
        assert pubs and all(int(p[1]) == int(p[2]) for p in pubs), pubs
        (inj,) = [ln for ln in lines if ln[0] == "INJECTED"]
        assert int(inj[1]) >= 1, lines  # the strike's import was refused


def test_protocol_violation_with_no_heap_for_its_handling_takes_no_message() -> None:
    # a second CONNACK once the first message waits for its PUBACK: a protocol error
    script = [("expect", CONNECT), ("send", connack()), ("expect", PUBLISH), ("sleep", 0.5),
              ("send", packet(CONNACK, b"\x00\x00"))]
    lines = run(script, BUDGET=200)
    (err,) = [ln for ln in lines if ln[0] == "E"]
    assert err[1] == "MemoryError" and err[2] == err[3], lines  # not taken
    (inj,) = [ln for ln in lines if ln[0] == "INJECTED"]
    assert int(inj[1]) >= 1, lines
