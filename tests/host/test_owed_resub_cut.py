"""Subscriptions made again after a broker lost the session, and a change the blocking
callback makes while they are made (tests/device/dev_owed_resub_cut.py). Every
subscription is owed in flash until its SUBACK (README: "Every subscription is owed (in
flash) from such a CONNACK until its SUBACK"); the callback's subscribe() rewrote the
owed file with only its own change, so a power cut then lost the subscriptions not yet
made: the next boot heard Session Present 1 and never made them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from harness import Broker, publish, run_device, start_device

HEAP = "256k"
TOPICS = ("a", "b", "c", "d")


def _subscribed_then_lost(b: Broker, pre: str, tmp_path: Path,
                          **kw: Any) -> tuple[Broker, str, dict[str, Any]]:
    # the node subscribed to TOPICS and "end" in a stored session, then the broker lost
    # it; a retained message waits on each topic
    c = {"HOST": b.host, "PORT": b.port, "VERSION": 4, "TEST": "owedcut", "PREFIX": pre,
         "IMAGE": str(tmp_path / "flash.img"), **kw}
    subs = ",".join(f"{t}:1" for t in TOPICS + ("end",))
    r = run_device("dev_owed_resub_cut.py", {**c, "PHASE": "sub", "SUBS": subs},
                   heap=HEAP, timeout=60)
    assert r.value("PRESENT") == "False", r.out
    b.restart()  # the session lost
    for t in TOPICS:
        publish(b.host, b.port, f"{pre}/{t}", f"ret-{t}", qos=1, retain=True)
    return b, pre, c


def test_callback_subscribe_during_resubscription_then_power_cut(
        broker_factory: Any, tmp_path: Path) -> None:
    b, pre, c = _subscribed_then_lost(broker_factory(), f"or-{tmp_path.name}"[-20:],
                                      tmp_path)
    dev = start_device("dev_owed_resub_cut.py", {**c, "PHASE": "cbcut"}, heap=HEAP)
    try:
        dev.wait_for("CUT", timeout=60)
        out = dev.output()
        dev.kill()
    finally:
        dev.close()
    assert "GOT" in out and "PRESENT" not in out, out  # cut while they were made
    for t in TOPICS:
        publish(b.host, b.port, f"{pre}/{t}", "", qos=1, retain=True)  # retained gone
    dev = start_device("dev_owed_resub_cut.py", {**c, "PHASE": "on", "RUN_MS": 15000},
                       heap=HEAP)
    try:
        dev.wait_for("UP", timeout=60)
        time.sleep(0.5)
        for t in TOPICS + ("x",):
            publish(b.host, b.port, f"{pre}/{t}", f"to-{t}", qos=1)
        publish(b.host, b.port, f"{pre}/end", "end", qos=1)
        r = dev.result(timeout=60)
    finally:
        dev.close()
    got = sorted(v[0].rsplit("/", 1)[1] for v in r.values("GOT")
                 if len(v) == 2 and v[1].startswith("to-"))
    assert got == sorted(TOPICS + ("x",)), r.out


def test_callback_unsubscribe_during_resubscription_is_not_undone(
        broker_factory: Any, tmp_path: Path) -> None:
    # the callback unsubscribes while the subscriptions the broker lost are made again:
    # those not made yet were made after its UNSUBSCRIBE (the filter ended subscribed at
    # the broker, not in the session)
    b, pre, c = _subscribed_then_lost(broker_factory(), f"ou-{tmp_path.name}"[-20:],
                                      tmp_path, TOPICS=",".join(TOPICS))
    dev = start_device("dev_owed_resub_cut.py", {**c, "PHASE": "cbunsub", "RUN_MS": 15000},
                       heap=HEAP)
    try:
        dev.wait_for("UP", timeout=60)
        time.sleep(0.5)
        for t in TOPICS:
            publish(b.host, b.port, f"{pre}/{t}", f"to-{t}", qos=1)
        publish(b.host, b.port, f"{pre}/end", "end", qos=1)
        r = dev.result(timeout=60)
    finally:
        dev.close()
    first = r.values("GOT")[0][0].rsplit("/", 1)[1]
    got = sorted(v[0].rsplit("/", 1)[1] for v in r.values("GOT")
                 if len(v) == 2 and v[1].startswith("to-"))
    assert got == [first], r.out
    assert f"SUBS {sorted(f'{pre}/{t}' for t in (first, 'end'))}" in r.out, r.out
