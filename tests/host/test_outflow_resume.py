"""The outgoing QoS 1/2 flow across reconnects at a scripted broker
(tests/device/dev_outflow_resume.py): a broker that lowers its Receive Maximum on a resumed
session while a released QoS 2 message newer than the ones held back is resent; stale
and crossed acknowledgements after a resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness import run_device
from hostile import CONNECT, PUBLISH, PUBREL, HostileBroker
from hostile_cases import PUBACK, PUBCOMP, PUBREC, ack, connack, p16, props


def run(test: str, scripts: list[Any], tmp_path: Path, version: int = 5, **kw: Any) -> Any:
    with HostileBroker(scripts) as b:
        cfg = {"HOST": b.host, "PORT": b.port, "VERSION": version, "TEST": test,
               "IMAGE": str(tmp_path / "flash.img"), "BLOCKS": 64, **kw}
        r = run_device("dev_outflow_resume.py", cfg, heap="256k", timeout=90, check=False)
        print("\n".join(r.lines))
        print(b.errors)
        return r, b


def test_lowered_receive_maximum_with_a_newer_release_sends_the_held_message(
        tmp_path: Path) -> None:
    v = 5
    first = [("expect", CONNECT), ("send", connack(v)),
             ("expect", PUBLISH), ("expect", PUBLISH), ("expect", PUBLISH),
             ("send", ack(PUBREC, 3)), ("expect", PUBREL), ("close",)]
    second = [("expect", CONNECT), ("send", connack(v, 1, prop=props(p16(0x21, 1)))),
              ("expect", PUBLISH), ("expect", PUBREL),
              ("send", ack(PUBACK, 1) + ack(PUBCOMP, 3)),
              ("expect", PUBLISH), ("send", ack(PUBACK, 2))]
    r, b = run("quota_rel", [first, second], tmp_path)
    assert r.passed, r.lines
    assert not b.errors
    assert [p[-1:] for p in b.conns[1].of_type(PUBLISH)] == [b"A", b"B"]


@pytest.mark.parametrize("v", [4, 5])
def test_stale_and_crossed_acknowledgements_after_a_resume(tmp_path: Path, v: int) -> None:
    first = [("expect", CONNECT), ("send", connack(v)),
             ("expect", PUBLISH), ("send", ack(PUBACK, 1)),
             ("expect", PUBLISH), ("send", ack(PUBREC, 2)), ("expect", PUBREL), ("close",)]
    second = [("expect", CONNECT), ("send", connack(v, 1)), ("expect", PUBREL),
              ("send", ack(PUBACK, 1) + ack(PUBCOMP, 1) + ack(PUBREC, 1) + ack(PUBACK, 2)),
              ("expect", PUBLISH),
              ("send", ack(PUBACK, 2) + ack(PUBCOMP, 3) + ack(PUBREC, 3)),
              ("expect", PUBREL), ("send", ack(PUBCOMP, 3))]
    r, b = run("stale_acks", [first, second], tmp_path, version=v)
    for c in b.conns:
        print(c.index, [(hex(f), body[:8].hex()) for f, body in c.packets])
    assert r.passed, r.lines
    assert not b.errors
    pubs = b.conns[1].of_type(PUBLISH)
    assert len(pubs) == 1 and pubs[0].endswith(b"C"), pubs
