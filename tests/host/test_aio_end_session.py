"""Ending a session on purpose with the asyncio client against mosquitto
(tests/device/dev_aio_end.py), as test_interop_signals.py does for the blocking client:
after `await c.disconnect(end_session=True)` the broker (Session Present 0 on the next
connect) and the store (no messages, no subscriptions) have both forgotten the session, and
messages queued in flash are never sent. Online with MQTT 3.1.1 (a clean connect) and 5
(Session Expiry 0 at DISCONNECT); offline without a keeper; taken over by another node with
the same ID while the keeper backs off for 10 minutes (the end does not wait for it); and a
broker that cannot be reached: the error is raised and nothing is forgotten."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from harness import Broker, Observer, free_port, run_device

HEAP = "256k"


@pytest.mark.parametrize("version,mode", [(4, "online"), (5, "online"), (4, "offline"),
                                          (5, "taken"), (4, "fail")])
def test_aio_end_session(broker_factory: Any, tmp_path: Path, version: int, mode: str) -> None:
    b: Broker = broker_factory()
    c = {"HOST": b.host, "PORT": b.port, "VERSION": version, "PREFIX": f"aes{version}{mode}",
         "CID": f"aes-{version}-{mode}", "IMAGE": str(tmp_path / "flash.img"), "PHASE": 1,
         "MODE": mode, "DEAD_PORT": free_port()}
    with Observer(b.host, b.port, f"{c['PREFIX']}/#", qos=1, protocol=version) as obs:
        r1 = run_device("dev_aio_end.py", c, heap=HEAP, timeout=90)
        r2 = run_device("dev_aio_end.py", {**c, "PHASE": 2}, heap=HEAP, timeout=90)
        if mode == "fail":
            obs.wait_for(2)
        time.sleep(0.5)
    queued = "0" if mode == "online" else "2"
    assert (r1.value("PENDING_BEFORE"), r1.value("SUBS_BEFORE")) == (queued, "1")
    assert r1.value("CONNECTED") == "False"
    if mode == "taken":
        assert r1.value("OTHER_PRESENT") == "True"
        assert r1.value("NAPPING") == "True"  # the keeper was in its backoff
    if mode == "fail":  # nothing forgotten: the session resumes and its messages go out
        assert r1.value("ENDED").split()[0] == "OSError"
        assert (r1.value("PENDING_AFTER"), r1.value("SUBS_AFTER")) == ("2", "1")
        assert (r2.value("PENDING_AT_BOOT"), r2.value("SUBS_AT_BOOT")) == ("2", "1")
        assert r2.value("PRESENT") == "True"
        assert r2.value("PENDING_AFTER_CONNECT") == "0"
        assert sorted(obs.payloads()) == [b"q0", b"q1"]
        return
    assert r1.value("ENDED") == "OK"
    assert (r1.value("PENDING_AFTER"), r1.value("SUBS_AFTER")) == ("0", "0")
    assert (r2.value("PENDING_AT_BOOT"), r2.value("SUBS_AT_BOOT")) == ("0", "0")
    assert r2.value("PRESENT") == "False"  # the broker forgot it too
    assert obs.messages == []  # messages queued in flash were given up, never sent
