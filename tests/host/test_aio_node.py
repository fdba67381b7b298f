"""The asyncio example node (boards/unix/aio_main.py) on the ESP32-sized virtual board: it
boots with the broker unreachable and keeps running (watchdog fed), connects once the link
is there, publishes what it queued offline and since, and answers a QoS 2 command. A boot
that meets an error (a store a newer library wrote) prints it and sleeps, as the blocking
example node does."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import deploy
from faultrig import FaultProxy
from harness import LIB_DIR, Observer, micropython_path, publish
from harness_image import mark_newer, read
from vboard import ESP32_HEAP, PICOW_HEAP, VirtualBoard

ROOT = Path(__file__).resolve().parents[2]

RUN_S = 10


# On the ESP32-sized board (64-bit unix port: 108 KiB free after boot). It ran there with
# 94 KiB free and ran out of heap with 86 KiB (0.2.24, the same test at a smaller -X
# heapsize); earlier releases needed the Pico W-sized board for it.
def test_example_node_boots_offline_and_answers_commands(broker: Any, tmp_path: Path) -> None:
    with FaultProxy(broker.host, broker.port) as p:
        p.refuse()
        env = {"MQTTS_BROKER": f"127.0.0.1:{p.port}", "MQTTS_RUN_S": str(RUN_S)}
        with Observer(broker.host, broker.port, "nodes/#", qos=2) as obs, \
                VirtualBoard(tmp_path / "flash.img", heap=ESP32_HEAP, env=env) as vb:
            deploy.deploy(vb.path, use_mpy=True, timeout=120)
            out: list[str] = []
            run = threading.Thread(target=lambda: out.append(
                vb.exec("import aio_main", timeout=RUN_S + 60)))
            run.start()
            time.sleep(2.5)  # offline: the node runs on, readings queue
            p.forward()
            deadline = time.monotonic() + 30
            status = []
            while not status and time.monotonic() < deadline:
                status = [m for m in obs.messages if m.topic.endswith("/status")]
                time.sleep(0.1)
            assert status and status[0].payload == b"online", obs.messages
            base = status[0].topic.rsplit("/", 1)[0]
            time.sleep(0.3)  # the subscription made offline goes out on connect
            publish(broker.host, broker.port, f"{base}/cmd", "ping", qos=2)
            run.join(RUN_S + 60)
            time.sleep(0.5)
        msgs = obs.messages
    text = out[0] if out else ""
    assert "CMD ping" in text, text
    assert [m.payload for m in msgs if m.topic == f"{base}/reply"] == [b"pong"]
    temps = [m for m in msgs if m.topic == f"{base}/temperature"]
    m = re.search(r"published (\d+) commands (\d+) outages \d+ watchdog longest gap (\d+)", text)
    assert m, text
    sent, cmds, wdt_gap = (int(g) for g in m.groups())
    assert sent >= 5 and cmds == 1, text
    assert len(temps) >= sent - 1, f"{len(temps)} of {sent} readings arrived"
    assert wdt_gap < 1000, f"watchdog unfed for {wdt_gap} ms"


def _run(script: str, image: Path, broker: Any, **env: str) -> subprocess.CompletedProcess[str]:
    # one boot of an example node on the unix port, its flash in image (the library as
    # .py source, compiled as it loads: the Pico W-sized heap)
    e = dict(os.environ, MICROPYPATH=f".frozen:{LIB_DIR}:{ROOT / 'boards' / 'unix'}",
             MQTTS_BROKER=f"127.0.0.1:{broker.port}", MQTTS_IMAGE=str(image))
    for k in ("MQTTS_SLEEP_MS", "MQTTS_RUN_S"):
        e.pop(k, None)
    e.update(env)
    return subprocess.run([micropython_path(), "-X", f"heapsize={PICOW_HEAP}",
                           str(ROOT / "boards" / "unix" / script)], cwd=image.parent,
                          env=e, capture_output=True, text=True, timeout=120)


def test_store_of_a_newer_format_is_printed_and_the_node_sleeps(tmp_path: Path,
                                                                broker: Any) -> None:
    # the session the blocking node stored for this broker, then marked as written by a
    # newer library: the asyncio node's SessionStore.get raises ValueError. As in the
    # blocking node (test_node_wakes.py), it is printed and the node deep-sleeps (to boot
    # and try again), with no traceback, and the store is never overwritten
    image = tmp_path / "flash.img"
    r = _run("main.py", image, broker)
    assert "published nodes/" in r.stdout, r.stdout + r.stderr
    idpath, ident = mark_newer(image)
    wake = tmp_path / "flash.img.wake"
    assert not wake.exists()
    r = _run("aio_main.py", image, broker, MQTTS_SLEEP_MS="300", MQTTS_RUN_S="2")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stdout + r.stderr
    assert re.search(r"^error: ValueError\(.*newer than this library", r.stdout, re.M), r.stdout
    assert wake.read_text() == "300"  # board.deepsleep(300) was reached
    assert read(image, idpath) == ident  # never overwritten
