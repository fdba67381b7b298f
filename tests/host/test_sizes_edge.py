"""Sizes at the edges (tests/device/dev_sizes_edge.py).

A message whose record (topic, payload and 17 bytes) is exactly the store's max_bytes fits
within max_bytes (README: the new message "is refused only when it alone exceeds
max_bytes"; "the flash a session's queued messages may take"): it is taken, offline and
connected, by both clients, and arrives whole and once after a reboot; one byte more is
refused with OSError(ENOSPC). Before the fix a record of exactly max_bytes was refused.

Set-aside messages are kept in flash "the newest, within a quarter of the store's
max_bytes", across reboots. With a max_bytes above 262 KB (a quarter of an ESP32's
usual filesystem is more) the aside file could grow past the 65600 bytes the store
reads of any file: it was then taken for damage, reported and removed, and every
set-aside message was lost (already at the next aside(), and after a reboot).

A message far larger than a segment (3 KB) queued behind smaller ones in the tail was
sealed with them into one segment file larger than the 65600 bytes the store reads: at
the next load that segment was taken for damage and removed, and every message in it
(each of which publish had returned for, in flash) was lost.

Subscriptions (filters of up to 65535 bytes each) whose stored record passed that same
file limit were written, then taken for damage at the next load: every subscription and
every change owed was lost. Now the subscription that would pass it is refused at the
call, OSError(ENOSPC), as a message too large for the store is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness import Broker, Observer, run_device
from hostile import CONNECT, PUBLISH, HostileBroker, connack

HEAP = "512k"
MAXB = 5000


def pl(n: int, seed: int) -> bytes:
    return bytes((i * 7 + seed) & 0xFF for i in range(n))


def cfg(broker: Broker, tmp_path: Path, test: str, **kw: Any) -> dict[str, Any]:
    return {"HOST": broker.host, "PORT": broker.port, "VERSION": 4, "TEST": test,
            "IMAGE": str(tmp_path / "flash.img"), "BLOCKS": 64, "MAXB": MAXB,
            "PREFIX": "edge", **kw}


@pytest.mark.parametrize("qos", [1, 2])
def test_record_of_exactly_max_bytes_offline_then_reboot(broker: Broker, tmp_path: Path,
                                                         qos: int) -> None:
    c = cfg(broker, tmp_path, "max_bytes_offline", QOS=qos)
    run_device("dev_sizes_edge.py", {**c, "PHASE": 1}, heap=HEAP, timeout=60)
    with Observer(broker.host, broker.port, "edge/#", qos=2) as obs:
        run_device("dev_sizes_edge.py", {**c, "PHASE": 2}, heap=HEAP, timeout=60)
        obs.wait_for(1, timeout=30)
        got = obs.messages
    t = "edge/exact"
    assert [(m.topic, m.payload) for m in got] == [(t, pl(MAXB - 17 - len(t), 2))]


def test_record_of_exactly_max_bytes_connected(broker: Broker, tmp_path: Path) -> None:
    with Observer(broker.host, broker.port, "edge/#", qos=1) as obs:
        run_device("dev_sizes_edge.py", cfg(broker, tmp_path, "max_bytes_connected"),
                   heap=HEAP, timeout=60)
        obs.wait_for(2, timeout=30)
        got = sorted((m.topic, m.payload) for m in obs.messages)
    want = [(f"edge/c{a}", pl(MAXB - 17 - 7, 3 + a)) for a in (0, 1)]
    assert got == want


def test_large_set_aside_messages_kept_across_reboot(tmp_path: Path) -> None:
    # each connection: CONNACK, the PUBLISH read, then the link closed (strikes=1)
    script = [("expect", CONNECT), ("send", connack()), ("expect", PUBLISH), ("close",)]
    with HostileBroker([script]) as b:
        c = {"HOST": b.host, "PORT": b.port, "VERSION": 4, "TEST": "aside_large",
             "IMAGE": str(tmp_path / "flash.img"), "BLOCKS": 256, "PREFIX": "edge"}
        r1 = run_device("dev_sizes_edge.py", {**c, "PHASE": 1}, heap="1m", timeout=60,
                        check=False)
        print(r1.out)
        r2 = run_device("dev_sizes_edge.py", {**c, "PHASE": 2}, heap="1m", timeout=60,
                        check=False)
        print(r2.out)
    assert r1.passed and r2.passed


BIG = ((2800, 1), (65000, 2), (2000, 1), (100, 2), (60000, 1))


@pytest.mark.parametrize("ram", [None, 2])
def test_large_message_behind_the_tail_survives_reboot(broker: Broker, tmp_path: Path,
                                                       ram: Any) -> None:
    c = cfg(broker, tmp_path, "big_behind_tail", BLOCKS=256, RAM=ram)
    run_device("dev_sizes_edge.py", {**c, "PHASE": 1}, heap="1m", timeout=60)
    with Observer(broker.host, broker.port, "edge/#", qos=2) as obs:
        r = run_device("dev_sizes_edge.py", {**c, "PHASE": 2}, heap="1m", timeout=90,
                       check=False)
        print(r.out)
        assert r.passed
        obs.wait_for(len(BIG), timeout=30, distinct=True)
        got = {(m.topic, m.payload) for m in obs.messages}
        n2 = [m.topic for m in obs.messages if m.topic in ("edge/b1", "edge/b3")]
    assert got == {(f"edge/b{i}", pl(n, i)) for i, (n, _) in enumerate(BIG)}
    assert sorted(n2) == ["edge/b1", "edge/b3"]  # QoS 2: once


@pytest.mark.parametrize("first", ["subs_large", "owed_large"])
def test_subscriptions_past_the_file_limit(tmp_path: Path, first: str) -> None:
    """subs_large: a third subscription; owed_large: an unsubscribe of a filter never
    subscribed, which goes into the owed file only (up to 0.2.23 taken: that file was
    then damage at the next load, every change owed lost)."""
    c = {"VERSION": 4, "TEST": "subs_large", "IMAGE": str(tmp_path / "flash.img"),
         "BLOCKS": 256, "PREFIX": "edge", "HOST": "127.0.0.1", "PORT": 1,
         "OWED": first == "owed_large"}
    r1 = run_device("dev_sizes_edge.py", {**c, "PHASE": 1, "TEST": first}, heap="1m",
                    timeout=60, check=False)
    print(r1.out)
    r2 = run_device("dev_sizes_edge.py", {**c, "PHASE": 2}, heap="1m", timeout=60,
                    check=False)
    print(r2.out)
    assert r1.passed and r2.passed
    assert "OSError(28" in r1.values("THIRD")[0][0], r1.out
