"""A subscription an MQTT 3.1.1 broker answers by closing the connection (mosquitto
`max_packet_size` and a longer SUBSCRIBE: 3.1.1 has no way to refuse it otherwise),
made offline ahead of other subscriptions and queued messages. It should be given up
after `strikes` closes with it unanswered, as a message in flight is (logged as a refused
subscription; asyncio: on_error), so that the node's other subscriptions are made and its
messages go out; up to 0.2.23 the keeper reconnected for good into the same close."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from harness import run_device

HEAP = "256k"


@pytest.mark.parametrize("api", ["blocking", "aio", "aio-flashfail", "aio-memfail"])
def test_subscription_closed_on_is_given_up(broker_factory: Any, tmp_path: Path,
                                            api: str) -> None:
    """aio-flashfail: the flash fails the write that gives it up (in the reader's close,
    which goes on): given up at the third close after that one. aio-memfail: the same
    write finds no heap (MemoryError; up to 0.2.23 it ended the reader)."""
    fail = api.endswith(("flashfail", "memfail"))
    b = broker_factory(extra=["max_packet_size 100"])
    r = run_device("dev_subscribe_closed_by_broker.py",
                   {"HOST": b.host, "PORT": b.port, "TEST": api.split("-")[0], "VERSION": 4,
                    "FLASHFAIL": "memory" if api.endswith("memfail") else fail,
                    "IMAGE": str(tmp_path / "flash.img")}, heap=HEAP, timeout=90)
    assert r.value("GOT") == "True", (r.out, b.log_tail())
    assert r.value("PENDING") == "0", r.out
    assert re.search(r"subscription refused: b?'?t/f{150}'? \(closed on 3 times\)", r.out), r.out
    if api.startswith("aio"):
        assert "ON_ERROR MQTTException(128," in r.out, r.out
    assert r.value("SUBS") in ("['t/small']", "[b't/small']"), r.out
    closes = b.log().count("disconnected due to oversize packet")
    most = 6 if fail else 3  # strikes=3
    assert 1 <= closes <= most, (closes, b.log_tail())
    assert ("UNSUB EIO" in r.out) == fail, r.out
    r = run_device("dev_subscribe_closed_by_broker.py",
                   {"HOST": b.host, "PORT": b.port, "TEST": "reboot", "VERSION": 4,
                    "IMAGE": str(tmp_path / "flash.img")}, heap=HEAP, timeout=60)
    assert r.value("UP") == "True", r.out
    assert r.value("SUBS") in ("['t/small']", "[b't/small']"), r.out
    assert b.log().count("disconnected due to oversize packet") == closes, b.log_tail()
