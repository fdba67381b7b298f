"""After a reset with QoS 1/2 messages in flight (sent, never acknowledged), the next boot's
connection to a broker that kept the session (Session Present 1) resends them with the DUP
flag and their packet IDs (but a QoS 1 message queued offline, whose ID was never written:
a new message, README "Resuming"), and a QoS 2 message whose PUBREC came before
the reset goes out as a PUBREL, not as a PUBLISH: on both clients alike
(tests/device/dev_reboot_resend_flags.py). The scripted broker records each packet's first
byte."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness import run_device, start_device
from hostile import CONNECT, PUBLISH, PUBREL, HostileBroker, Script, connack

HEAP = "256k"
PUBREC = b"\x50\x02\x00\x00"  # the packet ID spliced in by "reply"


def topic(body: bytes) -> bytes:
    return body[2 : 2 + int.from_bytes(body[:2], "big")]


@pytest.mark.parametrize("off", [0, 1])
@pytest.mark.parametrize("api", ["blocking", "aio"])
def test_resend_after_reboot_carries_dup(tmp_path: Path, api: str, off: int) -> None:
    first: Script = [("expect", CONNECT), ("send", connack()), ("expect", PUBLISH),
                     ("expect", PUBLISH), ("expect", PUBLISH), ("reply", PUBLISH, PUBREC),
                     ("sleep", 60)]
    again: Script = [("expect", CONNECT), ("send", connack(1))]
    refuse: Script = [("expect", CONNECT), ("close",)]
    with HostileBroker([refuse, first, again] if off else [first, again]) as b:
        cfg: dict[str, Any] = {"HOST": b.host, "PORT": b.port, "VERSION": 4, "API": api,
                               "OFF": off,
                               "IMAGE": str(tmp_path / "flash.img")}
        dev = start_device("dev_reboot_resend_flags.py", {**cfg, "BOOT": 1}, heap=HEAP,
                           workdir=tmp_path)
        try:
            dev.wait_for("CUT", timeout=60)
            dev.kill()
        finally:
            dev.close()
        r = run_device("dev_reboot_resend_flags.py", {**cfg, "BOOT": 2}, heap=HEAP, timeout=60,
                       workdir=tmp_path)
        assert not b.errors, b.errors
        assert len(b.conns) == 2 + off, r.out
        c0, c1 = b.conns[off:]
        firsts0 = {topic(body): f for f, body in c0.packets if f & 0xF0 == PUBLISH}
        assert firsts0 == {b"t/a": 0x32, b"t/b": 0x34, b"t/c": 0x34}, c0.packets
        pubs = [(topic(body), f) for f, body in c1.packets if f & 0xF0 == PUBLISH]
        # resent, same IDs, DUP set (0x08); "c" only as its PUBREL. A QoS 1 message queued
        # offline has no packet ID in flash (README, Resuming: one write less per message):
        # after the reboot it goes out as a new message, DUP 0, under a new ID
        want = [(b"t/a", 0x32 if off else 0x3A), (b"t/b", 0x3C)]
        assert sorted(pubs) == want, (r.out, c1.packets)
        rel = [(f, body) for f, body in c1.packets if f & 0xF0 == PUBREL]
        ids0 = {topic(body): body[2 + len(topic(body)) : 4 + len(topic(body))]
                for f, body in c0.packets if f & 0xF0 == PUBLISH}
        assert rel == [(0x62, ids0[b"t/c"])], (r.out, c1.packets)
        ids1 = {topic(body): body[2 + len(topic(body)) : 4 + len(topic(body))]
                for f, body in c1.packets if f & 0xF0 == PUBLISH}
        assert ids1[b"t/b"] == ids0[b"t/b"], c1.packets
        assert (ids1[b"t/a"] == ids0[b"t/a"]) != bool(off), c1.packets


@pytest.mark.parametrize("api", ["blocking", "aio"])
def test_session_lost_after_reboot_sends_new_messages(tmp_path: Path, api: str) -> None:
    # the broker lost the session (Session Present 0): "a" and "b" go out again as new
    # messages (no DUP) with the IDs they had; "c", whose PUBREC came, is complete
    first: Script = [("expect", CONNECT), ("send", connack()), ("expect", PUBLISH),
                     ("expect", PUBLISH), ("expect", PUBLISH), ("reply", PUBLISH, PUBREC),
                     ("sleep", 60)]
    again: Script = [("expect", CONNECT), ("send", connack(0))]
    with HostileBroker([first, again]) as b:
        cfg: dict[str, Any] = {"HOST": b.host, "PORT": b.port, "VERSION": 4, "API": api,
                               "IMAGE": str(tmp_path / "flash.img")}
        dev = start_device("dev_reboot_resend_flags.py", {**cfg, "BOOT": 1}, heap=HEAP,
                           workdir=tmp_path)
        try:
            dev.wait_for("CUT", timeout=60)
            dev.kill()
        finally:
            dev.close()
        run_device("dev_reboot_resend_flags.py", {**cfg, "BOOT": 2}, heap=HEAP, timeout=60,
                   workdir=tmp_path)
        assert not b.errors, b.errors
        c0, c1 = b.conns
        ids0 = {topic(body): body[2 + len(topic(body)) : 4 + len(topic(body))]
                for f, body in c0.packets if f & 0xF0 == PUBLISH}
        pubs = sorted((topic(body), f, body[2 + len(topic(body)) : 4 + len(topic(body))])
                      for f, body in c1.packets if f & 0xF0 == PUBLISH)
        assert pubs == [(b"t/a", 0x32, ids0[b"t/a"]), (b"t/b", 0x34, ids0[b"t/b"])], c1.packets
        assert not [f for f, body in c1.packets if f & 0xF0 == PUBREL], c1.packets
