"""A backlog of 10,000 messages in flash and an ESP32's heap: a node queues them offline
(the blocking client) and boots with them, the library as .mpy, in the free heap of an
ESP32 (108 KiB, tools/vboard.py), both clients, and drains every one to the broker.
Queueing them needed 111 KiB up to 0.2.23: the ring held the outage's first messages,
made among each publish's garbage, and the heap was left in pieces. Loading the store
reads the segments' names one at a time (up to 0.2.16 it listed them all at once: with
10,000 queued the node's boot then needed 120-126 KiB of heap, tools/bench/b_boot_heap.py,
and a board with less failed with MemoryError at every boot). A clean start over them in
that heap; and a store on a directory of the host, whose listing comes in no particular
order, drains in full."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import mpy
from faultrig_proxy import FaultProxy
from harness import Broker, BrokerFactory, Observer, free_port, run_device
from vboard import BOARDS, ESP32_PROG

COUNT = 10000
# 10,000 small messages take about 313 blocks of 4 KiB: the image holds 1,024, and the
# store's bound is given (its default is a quarter of the filesystem)
BLOCKS = 1024
MAXB = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def queued(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    # the library as .mpy, and an image with COUNT messages queued offline in an ESP32's
    # heap (made once)
    d = tmp_path_factory.mktemp("backlog")
    mpy.compile_all(out=d / "mpy")
    img = d / "queued.img"
    r = run_device("dev_backlog.py", node(img, "queue", PORT=free_port()),
                   heap=BOARDS["esp32"][2], timeout=600, lib=d / "mpy", workdir=d)
    assert r.value("QUEUED") == str(COUNT), r.out[-2000:]
    return d / "mpy", img


def node(img: Path, phase: str, **kw: Any) -> dict[str, Any]:
    # the image by its name in the device's directory (run_device's workdir=img.parent):
    # the device holds the string, and the heap a board-sized test leaves should not
    # depend on the length of pytest's temporary paths
    return {"HOST": "127.0.0.1", "VERSION": 4, "PREFIX": "backlog", "CID": "backlog",
            "IMAGE": img.name, "BLOCKS": BLOCKS, "PROG": ESP32_PROG, "COUNT": COUNT,
            "MAXB": MAXB, "PHASE": phase, **kw}


def _drain_setup(
    queued: tuple[Path, Path], broker_factory: BrokerFactory, tmp_path: Path
) -> tuple[Broker, Path, Path]:
    # a broker, the library, and a copy of the queued image for this test to drain.
    # mosquitto gives up what it queues for a subscriber beyond 1,000 messages unless
    # told not to: the observer may lag behind the drain on a busy machine
    broker = broker_factory(extra=["max_queued_messages 0"], verbose=False)
    lib, image = queued
    img = tmp_path / "flash.img"
    shutil.copy(image, img)
    return broker, lib, img


@pytest.mark.parametrize("aio", [False, True])
def test_backlog_of_10000_boots_in_an_esp32_heap_and_drains(
    queued: tuple[Path, Path], broker_factory: BrokerFactory, tmp_path: Path, aio: bool
) -> None:
    broker, lib, img = _drain_setup(queued, broker_factory, tmp_path)
    with Observer(broker.host, broker.port, "backlog/#", qos=1) as obs:
        r = run_device("dev_backlog.py", node(img, "boot", PORT=broker.port, AIO=aio),
                       heap=BOARDS["esp32"][2], timeout=600, lib=lib, workdir=tmp_path)
        assert r.value("BOOT").split()[0] == str(COUNT), r.out[-2000:]
        assert r.value("DRAINED") == "0", r.out[-2000:]
        obs.wait_for(COUNT, timeout=120, distinct=True)
        got = set(obs.payloads())
    missing = {b"%d" % i for i in range(COUNT)} - got
    assert not missing, f"{len(missing)} never delivered, e.g. {sorted(missing)[:5]}"


@pytest.mark.parametrize("aio", [False, True])
def test_backlog_drain_in_an_esp32_heap_rides_through_link_resets(
    queued: tuple[Path, Path], broker_factory: BrokerFactory, tmp_path: Path, aio: bool
) -> None:
    # the link reset three times while the 10,000 drain (after 1,000, 3,000 and 5,000
    # delivered): each resume reads a segment of the backlog again. Up to 0.2.23 a new
    # buffer per segment read left the heap in pieces too small for the next one, and the
    # asyncio client met MemoryError at every reconnect from the first reset on
    broker, lib, img = _drain_setup(queued, broker_factory, tmp_path)
    with Observer(broker.host, broker.port, "backlog/#", qos=1) as obs, \
            FaultProxy(broker.host, broker.port) as proxy:
        done = threading.Event()
        cuts: list[int] = []

        def cutter() -> None:
            for at in (1000, 3000, 5000):
                while len(obs.messages) < at:
                    if done.wait(0.01):
                        return
                cuts.append(proxy.reset())

        t = threading.Thread(target=cutter, daemon=True)
        t.start()
        try:
            r = run_device("dev_backlog.py", node(img, "boot", PORT=proxy.port, AIO=aio),
                           heap=BOARDS["esp32"][2], timeout=600, lib=lib, check=False,
                           workdir=tmp_path)
        finally:
            done.set()
            t.join(timeout=30)
        assert r.value("BOOT").split()[0] == str(COUNT), r.out[-2000:]
        assert r.value("DRAINED") == "0", r.out[-2000:]
        assert len(cuts) == 3 and all(cuts), cuts  # each reset met a live connection
        deadline = time.monotonic() + 120
        while len(set(obs.payloads())) < COUNT and time.monotonic() < deadline:
            time.sleep(0.1)
        got = set(obs.payloads())
    missing = {b"%d" % i for i in range(COUNT)} - got
    assert not missing, f"{len(missing)} never delivered, e.g. {sorted(missing)[:5]}"


@pytest.mark.parametrize("aio", [False, True])
def test_backlog_drains_with_the_heap_in_pieces_smaller_than_a_segment(
    broker_factory: BrokerFactory, tmp_path: Path, aio: bool
) -> None:
    # 200 queued, the first 32 small and the rest with 200 bytes of padding: segments of
    # about 1 KB, then of about 7 KB. Once connected, the application's data leaves the
    # heap in pieces of about 1 KB, and the backlog drains: the larger segments are read
    # in windows of the first one's buffer. Up to 0.2.24 the buffer had to hold a whole
    # segment: MemoryError at the first larger one, and at every reconnect's resume
    # after, so the drain stopped for good (README, Tests: found in an ESP32's heap cut
    # to 98%, 2 of about 75 runs). On 0.2.24 the blocking client's drain stops here at
    # 17 of 200; the asyncio client's heap left room for the buffer
    # (test_store_hostile.py's damaged records with a limit fails on 0.2.24 either way)
    count, pad = 200, 200
    c = node(tmp_path / "flash.img", "queue", PORT=free_port(), COUNT=count, PAD=pad)
    r = run_device("dev_backlog.py", c, heap="2m", timeout=300, workdir=tmp_path)
    assert r.value("QUEUED") == str(count), r.out[-2000:]
    broker = broker_factory(verbose=False)
    with Observer(broker.host, broker.port, "backlog/#", qos=1) as obs:
        r = run_device("dev_backlog.py", {**c, "PHASE": "pieces", "PORT": broker.port,
                                          "AIO": aio, "PIECE": 1024},
                       heap="256k", timeout=300, workdir=tmp_path, check=False)
        assert r.value("BOOT").split()[0] == str(count), r.out[-2000:]
        assert int(r.value("PIECES")) > 20, r.out[-2000:]  # the heap was taken
        assert r.value("DRAINED") == "0", r.out[-2000:]
        # read in windows: no buffer as large as a padded segment (each record of one
        # holds at least a header of 13 bytes, a CRC of 4 and 203 bytes of payload)
        assert 0 < int(r.value("BUFFER")) < 32 * (13 + 4 + pad + 3), r.out[-2000:]
        obs.wait_for(count, timeout=120, distinct=True)
        got = set(obs.payloads())
    assert got == {b"%d" % i + (b"." * pad if i >= 32 else b"") for i in range(count)}


def test_backlog_on_a_directory_listed_out_of_order_drains_in_full(
    broker: Broker, tmp_path: Path
) -> None:
    count = 300  # ten segments
    c = {**node(tmp_path / "unused.img", "queue", PORT=free_port()), "DIR": str(tmp_path / "fs"),
         "COUNT": count}
    os.mkdir(tmp_path / "fs")
    r = run_device("dev_backlog.py", c, heap="2m", timeout=300, workdir=tmp_path)
    assert r.value("QUEUED") == str(count), r.out[-2000:]
    (q,) = (tmp_path / "fs").glob(".mqtt/*/*/q")
    names = os.listdir(q)
    assert len(names) >= 9 and names != sorted(names), names  # what this test is about
    with Observer(broker.host, broker.port, "backlog/#", qos=1) as obs:
        r = run_device("dev_backlog.py", {**c, "PHASE": "boot", "PORT": broker.port},
                       heap="256k", timeout=300, workdir=tmp_path)
        assert r.value("BOOT").split()[0] == str(count), r.out[-2000:]
        assert r.value("DRAINED") == "0", r.out[-2000:]
        obs.wait_for(count, timeout=120, distinct=True)
        got = set(obs.payloads())
    assert got == {b"%d" % i for i in range(count)}


def test_clean_start_over_a_backlog_of_10000_in_an_esp32_heap(
    queued: tuple[Path, Path], broker: Broker, tmp_path: Path
) -> None:
    lib, image = queued
    img = tmp_path / "flash.img"
    shutil.copy(image, img)
    r = run_device("dev_backlog.py", node(img, "clean", PORT=broker.port),
                   heap=BOARDS["esp32"][2], timeout=600, lib=lib, workdir=tmp_path)
    assert r.value("BOOT").split()[0] == str(COUNT), r.out[-2000:]
    assert r.value("DRAINED") == "0", r.out[-2000:]
