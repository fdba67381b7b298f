"""Subscription changes made offline survive a reset before the next connect, on the unix
port with both clients: a node whose broker kept its session subscribes and unsubscribes
while the broker is out of reach, is reset before its keeper connects, and boots again
with code that only connects (umqtt's pattern: subscribe only when the broker has no
session). The store's "owed" file carries the changes across the reset (the inspector
shows them) and the next connect makes them; the file goes once the broker has
acknowledged them. A damaged "owed" file is reported and removed, and the rest of the
session loads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import inspect_store
from faultrig import FaultProxy
from harness import Broker, publish, run_device, start_device

HEAP = "256k"
ROOT = "/.mqtt-owed"


def owed(img: Path, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """The owed changes the inspector finds in the image's one session."""
    assert inspect_store.main(["--image", str(img), "--root", ROOT, "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    (s,) = [s for st in rep["stores"] for h in st["hosts"] for s in h["sessions"]]
    assert not s["damaged"], s["damaged"]
    return sorted(s["owed"], key=lambda o: o["filter"])


@pytest.mark.parametrize("api", ["blocking", "aio"])
def test_offline_changes_survive_a_reset(rig: tuple[Broker, FaultProxy], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str], api: str) -> None:
    b, p = rig
    prefix = f"owed-{tmp_path.name}"
    img = tmp_path / "flash.img"
    c = {"HOST": b.host, "PORT": p.port, "VERSION": 4, "TEST": "owed", "PREFIX": prefix,
         "IMAGE": str(img), "CID": f"o-{tmp_path.name}"[-23:], "API": api}
    run_device("dev_owed.py", {**c, "PHASE": 1}, heap=HEAP, timeout=60)
    p.refuse()
    r = run_device("dev_owed.py", {**c, "PHASE": 2}, heap=HEAP, timeout=60)
    assert "OWED" in r.out, r.out
    assert owed(img, capsys) == [{"filter": f"{prefix}/cmd/#", "qos": 2},
                                 {"filter": f"{prefix}/old", "qos": None}]
    p.forward()
    dev = start_device("dev_owed.py", {**c, "PHASE": 3, "RUN_MS": 20000}, heap=HEAP)
    try:
        dev.wait_for("UP", timeout=60)
        # "old" first: were it still subscribed, the broker would deliver it before "end"
        publish(b.host, b.port, f"{prefix}/old", "unsubscribed", qos=1)
        publish(b.host, b.port, f"{prefix}/cmd/x", "hello", qos=2)
        publish(b.host, b.port, f"{prefix}/cmd/end", "end", qos=2)
        r = dev.result(timeout=90)
    finally:
        dev.close()
    assert r.value("UP") == "True", r.out  # the broker kept the session
    assert [tuple(v) for v in r.values("GOT")] == [(f"{prefix}/cmd/x", "hello"),
                                                   (f"{prefix}/cmd/end", "end")], r.out
    assert owed(img, capsys) == []


def test_a_damaged_owed_file_is_reported_and_the_session_loads(
        rig: tuple[Broker, FaultProxy], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    b, p = rig
    prefix = f"owed-{tmp_path.name}"
    img = tmp_path / "flash.img"
    c = {"HOST": b.host, "PORT": p.port, "VERSION": 4, "TEST": "owed", "PREFIX": prefix,
         "IMAGE": str(img), "CID": f"o-{tmp_path.name}"[-23:]}
    run_device("dev_owed.py", {**c, "PHASE": 1}, heap=HEAP, timeout=60)
    p.refuse()
    run_device("dev_owed.py", {**c, "PHASE": 2}, heap=HEAP, timeout=60)
    r = run_device("dev_owed.py", {**c, "PHASE": 4}, heap=HEAP, timeout=60)
    assert "DAMAGED" in r.out, r.out
    # the inspector reports it, and the device's load removes it (reported once)
    assert inspect_store.main(["--image", str(img), "--root", ROOT, "--json"]) == 1
    rep = json.loads(capsys.readouterr().out)
    assert any(d["path"].endswith("/owed") for d in rep["damaged"]), rep["damaged"]
    r = run_device("dev_owed.py", {**c, "PHASE": 5}, heap=HEAP, timeout=60)
    assert r.value("REPORTED").startswith("1"), r.out
    assert owed(img, capsys) == []
