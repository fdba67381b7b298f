"""The benchmark tool (tools/bench.py): a quick run yields a complete table, and the
allocation measurement works. No timing assertions: the machine is shared and noisy."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import bench
from harness import REPO, Broker

NUMBER = re.compile(r"^-?[\d,]+(\.\d+)?$")
NA = re.compile(r"^n/a \(.+\)$")
AREAS = ("heap", "alloc", "code", "speed", "flash", "recovery", "min heap")
# measurements every run must report (a number or an explicit n/a with its reason)
MUST = (
    "mqttsession (.mpy): connected",
    "mqttsession (.mpy, with store): connected",
    "mem_peak() rise over the loop",
    "mqttsession: publish QoS 0 (window=1)",
    "mqttsession: publish QoS 1 (window=1)",
    "mqttsession: publish QoS 2 (window=1)",
    "mqttsession: receive QoS 1, umqtt-form callback",
    "mqttsession: receive QoS 1, raw callback",
    "mqttsession total",
    "mqttsession: publish QoS 1, window=1",
    "mqttsession: publish QoS 1, window=16",
    "mqttsession with store (littlefs): publish QoS 1, window=1",
    "floor: QoS 1 stop-and-wait (bare socket)",
    "floor: QoS 1 window=32",
    "paho-mqtt (CPython): QoS 1 stop-and-wait",
    "paho-mqtt (CPython): QoS 1 window=32",
    "mosquitto_pub -l: QoS 1",
    "umqtt.simple",
    "mqtt_as",
    "prog 32: naive: one synced append per message",
    "prog 256: naive: one synced append per message",
    "prog 32: store, QoS 1, window=1 (acknowledged before return): erases",
    "prog 32: store, QoS 1 offline queue: queued: erases",
    "link return to backlog acknowledged",
    "mqttsession (.mpy): connect, subscribe, QoS 0/1/2 loop",
)
TARGETS = (
    "QoS 1 window=1 vs umqtt.simple",
    "QoS 1 window=1 vs the floor",
    "windowed QoS 1 vs the windowed floor",
    "connected heap with a store vs mqtt_as",
    "bytes allocated per steady-state QoS 0 publish",
    "bytes allocated per steady-state QoS 1 publish",
    "total .mpy vs mqtt_as",
    "runs in a 24 KB heap",
    "erases per durable message",
    "flash writes for a message acknowledged before return",
)


def tables(text: str) -> list[list[list[str]]]:
    """The markdown tables of text, each as rows of cells (header and rule dropped)."""
    found: list[list[list[str]]] = []
    current: list[list[str]] | None = None
    for line in text.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if current is None:
                current = []
                found.append(current)
                continue  # header
            if all(set(c) <= {"-", ":"} for c in cells):
                continue
            current.append(cells)
        else:
            current = None
    return found


def test_quick_run_reports_every_row(tmp_path: Path) -> None:
    out = tmp_path / "BENCH.md"
    r = subprocess.run(
        [sys.executable, str(REPO / "tools" / "bench.py"), "--quick", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    text = out.read_text()
    for word in ("uname", "CPU", "micropython", "python", "Date:", "tools/bench.py --quick"):
        assert word in text, word
    found = tables(text)
    assert len(found) == 2, "expected the results table and the targets table"
    results, targets = found
    for area, what, value, unit, _note in results:
        assert area in AREAS, area
        assert unit, what
        assert NUMBER.match(value) or NA.match(value), f"{what}: {value!r}"
    names = [row[1] for row in results]
    for must in MUST:
        assert any(must in n for n in names), f"no row for {must!r}"
    assert {row[0] for row in results} == set(AREAS)
    for what, _goal, measured, status in targets:
        assert status in ("met", "not met", "-"), what
        assert (status == "-") == bool(NA.match(measured)), f"{what}: {measured!r}"
    for t in TARGETS:
        assert any(t in row[0] for row in targets), f"no target row for {t!r}"
    # the same tables went to stdout
    assert tables(r.stdout) == found


@pytest.fixture(scope="module")
def nodelay_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    b = Broker(
        tmp_path_factory.mktemp("bench-broker"), verbose=False, extra=["set_tcp_nodelay true"]
    )
    yield b
    b.close()


def test_allocation_per_message_is_measured(nodelay_broker: Broker) -> None:
    # bytes allocated per steady-state QoS 0/1 publish and per receive come out as
    # numbers; whether they reach 0 is for the benchmark table to say
    res = bench.Results()
    bench.RUN.mkdir(parents=True, exist_ok=True)
    try:
        bench.collect(
            res,
            "b_alloc.py",
            {"port": nodelay_broker.port, "lib": "ms", "n": 40},
            [bench.LIB_DIR, bench.BENCH_DIR, bench.BOARD_DIR],
            "alloc.ms",
            timeout=90,
            heap="8m",
        )
    finally:
        shutil.rmtree(bench.RUN, ignore_errors=True)
    assert not res.na, (res.na, res.log)
    for key in (
        "alloc.ms.pub.q0",
        "alloc.ms.pub.q1",
        "alloc.ms.recv.q0.raw",
        "alloc.ms.recv.q1.raw",
        "alloc.ms.recv.q1.cb",
        "alloc.ms.pub.q0.garbage",
        "alloc.ms.recv.q1.raw.garbage",
    ):
        v = res.get(key)
        assert v is not None and 0 <= v < 1e6, (key, v, res.log)
