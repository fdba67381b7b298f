"""The example node (boards/unix/main.py) in its deep-sleep loop on the ESP32-sized virtual
board: every wake takes a reading; a wake with Wi-Fi down queues it in flash, and a later
wake delivers it, also after an outage of 20 wakes; a wake that meets an error (a store a
newer library wrote) prints it and sleeps on. Run the same way as
`python tools/vboard.py --main` with MQTTS_SLEEP_MS."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import deploy
import mpy
from harness import Observer, free_port, micropython_path
from harness_image import mark_newer, read
from vboard import ESP32_HEAP, VirtualBoard

LINE = re.compile(r"^(published|queued) nodes/(\S+)/temperature (\{.*?\})", re.M)
ROOT = Path(__file__).resolve().parents[2]
PHASE_TIMEOUT = 90.0  # generous: one wake takes well under a second on an idle machine


def _wakes(log: Path) -> list[tuple[str, str, int]]:
    text = log.read_text(errors="replace") if log.exists() else ""
    return [(m[1], m[2], json.loads(m[3])["seq"]) for m in LINE.finditer(text)]


def _wait_wake(log: Path, kind: str, after: int) -> list[tuple[str, str, int]]:
    """Wait until a wake of this kind ("published" or "queued") follows the first `after`."""
    __tracebackhide__ = True
    deadline = time.monotonic() + PHASE_TIMEOUT
    while time.monotonic() < deadline:
        wakes = _wakes(log)
        if any(w[0] == kind for w in wakes[after:]):
            return wakes
        time.sleep(0.05)
    out = log.read_text(errors="replace")
    raise AssertionError(f"no {kind!r} wake in {PHASE_TIMEOUT} s; board output:\n{out}")


def test_offline_wake_is_queued_and_delivered_later(tmp_path: Path, broker: Any) -> None:
    wifi = tmp_path / "wifi"
    wifi.write_text("up\n")
    log = tmp_path / "board.log"
    vb = VirtualBoard(
        tmp_path / "flash.img",
        heap=ESP32_HEAP,
        link=str(tmp_path / "vb"),
        wifi=wifi,
        env={"MQTTS_BROKER": f"127.0.0.1:{broker.port}", "MQTTS_SLEEP_MS": "300"},
        run_main=True,
        auto_restart=True,
        log=log,
    )
    with Observer(broker.host, broker.port, "nodes/+/temperature", qos=1) as obs, vb:
        # the first boot finds no main.py and shows its prompt: install, then power-cycle
        deploy.deploy(vb.path, use_mpy=True, board="unix", timeout=120)
        vb.restart(wait=False)
        wakes = _wait_wake(log, "published", 0)
        wifi.write_text("down\n")
        wakes = _wait_wake(log, "queued", len(wakes))
        offline = [w[2] for w in wakes if w[0] == "queued"]
        wifi.write_text("up\n")
        wakes = _wait_wake(log, "published", len(wakes))
        vb.stop()
    assert len(wakes) >= 3 and wakes[0][0] == "published", wakes
    assert len({w[1] for w in wakes}) == 1, wakes  # one session, one client ID
    seqs = [w[2] for w in wakes]
    assert seqs == list(range(1, len(seqs) + 1)), seqs  # a reading on every wake
    out = log.read_text(errors="replace")
    assert "(1 in flash)" in out, out  # the offline wake stored its reading
    deadline = time.monotonic() + PHASE_TIMEOUT  # the broker forwards them on its own time
    while True:
        got = {json.loads(m.payload)["seq"] for m in obs.messages}
        if got >= set(seqs) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert set(offline) <= got, (offline, got, out)
    assert got == set(seqs), (got, seqs, out)


def test_vboard_cli_main_wakes_again(tmp_path: Path, broker: Any) -> None:
    # `python3 tools/vboard.py --main` with MQTTS_SLEEP_MS, as README's first steps run it
    image = tmp_path / "flash.img"
    with VirtualBoard(image, heap=ESP32_HEAP, link=str(tmp_path / "vb0")) as vb:
        deploy.deploy(vb.path, use_mpy=True, board="unix", timeout=120)
    log = tmp_path / "board.log"
    env = dict(os.environ, MQTTS_BROKER=f"127.0.0.1:{broker.port}", MQTTS_SLEEP_MS="300")
    cmd = [
        sys.executable,
        str(ROOT / "tools" / "vboard.py"),
        "--image",
        str(image),
        "--link",
        str(tmp_path / "vb"),
        "--main",
        "--log",
        str(log),
    ]
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + PHASE_TIMEOUT
        while len(_wakes(log)) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate(timeout=10)[0]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert [w[2] for w in _wakes(log)][:2] == [1, 2], log.read_text(errors="replace")


@pytest.fixture(scope="module")
def mpy_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # the library as .mpy, as `make run` and the virtual board run it (README): compiled
    # from source on the board, it needs more than the ESP32-sized heap holds in one piece
    out = tmp_path_factory.mktemp("mpy")
    mpy.compile_all(out)
    return out


def _run_main(
    image: Path, broker: Any, sleep_ms: str | None, lib: Path
) -> subprocess.CompletedProcess[str]:
    # one wake of the example node on the unix port, its flash in image
    env = dict(
        os.environ,
        MICROPYPATH=f".frozen:{lib}:{ROOT / 'boards' / 'unix'}",
        MQTTS_BROKER=f"127.0.0.1:{broker.port}",
        MQTTS_IMAGE=str(image),
    )
    env.pop("MQTTS_SLEEP_MS", None)
    if sleep_ms is not None:
        env["MQTTS_SLEEP_MS"] = sleep_ms
    return subprocess.run(
        [
            micropython_path(),
            "-X",
            f"heapsize={ESP32_HEAP}",
            str(ROOT / "boards" / "unix" / "main.py"),
        ],
        cwd=image.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_store_of_a_newer_format_is_printed_and_the_node_sleeps_on(
    tmp_path: Path, broker: Any, mpy_lib: Path
) -> None:
    # a store a newer library wrote: get() raises ValueError (README: "A format newer than
    # this library's"); the node prints it and still deep-sleeps, and the store is kept
    image = tmp_path / "flash.img"
    r = _run_main(image, broker, None, mpy_lib)
    assert "published nodes/" in r.stdout, r.stdout + r.stderr
    idpath, ident = mark_newer(image)
    wake = tmp_path / "flash.img.wake"
    assert not wake.exists()
    r = _run_main(image, broker, "300", mpy_lib)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stdout + r.stderr
    assert re.search(r"^error: ValueError\(.*newer than this library", r.stdout, re.M), r.stdout
    assert wake.read_text() == "300"  # board.deepsleep(300) was reached
    assert read(image, idpath) == ident  # never overwritten


def test_example_node_keeps_every_reading_of_a_long_outage(
    tmp_path: Path, broker: Any, mpy_lib: Path
) -> None:
    # 20 wakes with the broker unreachable, more than the 16 readings a node with a store
    # kept by default up to 0.2.23 (the 17th wake's publish raised OSError ENOBUFS and its
    # reading was lost), then wakes with the broker back until the node reports nothing
    # left in flash: every reading of every wake arrives
    image = tmp_path / "flash.img"
    down = SimpleNamespace(port=free_port())  # nothing listens there
    with Observer(broker.host, broker.port, "nodes/+/temperature", qos=1) as obs:
        for i in range(20):
            r = _run_main(image, down, None, mpy_lib)
            assert f"({i + 1} in flash)" in r.stdout, r.stdout + r.stderr
        wakes = 20
        for _ in range(10):  # each wake drains for up to 5 s (a busy machine: several)
            r = _run_main(image, broker, None, mpy_lib)
            wakes += 1
            assert "published nodes/" in r.stdout, r.stdout + r.stderr
            if "(0 still in flash)" in r.stdout:
                break
        assert "(0 still in flash)" in r.stdout, r.stdout + r.stderr
        obs.wait_for(wakes, timeout=PHASE_TIMEOUT, distinct=True)
        seqs = {json.loads(m.payload)["seq"] for m in obs.messages}
    assert seqs == set(range(1, wakes + 1)), (sorted(seqs), wakes)
