"""tools/board_test.py, the board test runner.

- the whole default scenario list on the ESP32-sized virtual board (about 45 s): every
  scenario passes or is skipped for its stated heap need, and the heap figures are printed;
- a couple of scenarios with a broker that is not there: the table says which failed and
  the exit status is 1;
- a real board's checks without one: a missing port, a missing or loopback --broker, a
  port where nothing answers; each exits 2 with a message, within its time limit;
- the Wi-Fi step run before each scenario on a real board, on the virtual board's Wi-Fi;
- scenario selection with --only.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import board_scenarios
import board_target
from harness import free_port
from vboard import BOARDS, ESP32_HEAP, VirtualBoard

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "board_test.py"
PY = sys.executable
# A documentation address (RFC 5737): nothing answers there.
NOWHERE = "192.0.2.1"


def _runner(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(
        [PY, str(TOOL), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    # A failed run on the virtual board keeps its work directory for a look: not here.
    for kept in re.findall(r"work directory kept: (\S+)", r.stdout):
        if Path(kept).name.startswith("mqs-board-test-"):
            shutil.rmtree(kept, ignore_errors=True)
    return r


def _table(out: str) -> dict[str, tuple[str, str]]:
    """scenario name -> (status, note) from the summary table."""
    rows: dict[str, tuple[str, str]] = {}
    in_table = False
    for line in out.splitlines():
        if line.startswith("scenario ") and "result" in line:
            in_table = True
            continue
        if in_table:
            m = re.match(r"(\S+)\s+(PASS|FAIL|SKIP)\s+[\d.]+s\s+\d+/\d+\s*(.*)$", line)
            if m:
                rows[m.group(1)] = (m.group(2), m.group(3))
            elif not line.startswith("-"):
                break
    return rows


def _heap(out: str) -> dict[str, tuple[int, int]]:
    rows = {}
    for label, key in (
        ("after boot", "boot"),
        ("after import mqttsession (.mpy)", "import"),
        ("after connect() with a SessionStore", "connect"),
    ):
        m = re.search(re.escape(label) + r"\s+(\d+)\s+(\d+)", out)
        if m:
            rows[key] = (int(m.group(1)), int(m.group(2)))
    return rows


def test_all_scenarios_on_the_esp32_sized_virtual_board() -> None:
    r = _runner(timeout=240)  # a bound on a hung run, not a speed check
    print(r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "esp32-sized: heap 122k, littlefs prog 32" in r.stdout
    assert re.search(r"deployed \d+ .mpy files and devlib.mpy to lib/", r.stdout)
    rows = _table(r.stdout)
    want = {s.name for s in board_scenarios.scenarios()}
    assert set(rows) == want, sorted(want ^ set(rows))
    for name, (status, note) in rows.items():
        if name.startswith("bad_input/"):
            # 70,000-byte client ID: more than the ESP32-sized heap has left.
            assert status == "SKIP" and "70,000-byte" in note, (name, status, note)
        else:
            assert status == "PASS", (name, status, note)
    for two_phase in ("ids", "null/v5", "lost_session/v4", "lost_session/v5"):
        assert re.search(rf"^{re.escape(two_phase)}\s+PASS\s+[\d.]+s\s+2/2", r.stdout, re.M)
    heap = _heap(r.stdout)
    assert set(heap) == {"boot", "import", "connect"}, r.stdout
    free_boot = heap["boot"][0]
    assert abs(free_boot - BOARDS["esp32"][2]) < 4096, heap
    assert heap["import"][0] < free_boot and heap["connect"][0] < heap["import"][0], heap
    assert heap["connect"][1] > heap["import"][1] > heap["boot"][1], heap


def test_failed_scenarios_are_reported_and_exit_1() -> None:
    # No broker at that port: the core scenario fails, the store one (no network) passes.
    closed = f"127.0.0.1:{free_port()}"
    r = _runner("--only", "roundtrip/v4,ids", "--broker", closed, "--no-heap", timeout=90)
    assert r.returncode == 1, r.stdout + r.stderr
    rows = _table(r.stdout)
    assert set(rows) == {"roundtrip/v4", "ids"}, r.stdout
    assert rows["ids"][0] == "PASS"
    status, note = rows["roundtrip/v4"]
    assert status == "FAIL" and "OSError" in note, note
    assert "1 passed, 1 failed, 0 skipped of 2" in r.stdout
    # The failing scenario's output is shown.
    assert "--- roundtrip/v4, phase 1 of 1: output" in r.stdout


def test_missing_port_exits_2_quickly(tmp_path: Path) -> None:
    t0 = time.monotonic()
    r = _runner("--port", str(tmp_path / "ttyACM9"), "--broker", NOWHERE, timeout=30)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "does not exist" in r.stderr and "plugged in" in r.stderr, r.stderr
    assert time.monotonic() - t0 < 10
    # A vboard link whose board is gone.
    gone = tmp_path / "vb-gone"
    gone.symlink_to(tmp_path / "pts-gone")
    r = _runner("--port", str(gone), timeout=30)
    assert r.returncode == 2 and "virtual board" in r.stderr, r.stderr


def test_real_board_needs_a_broker_it_can_reach(tmp_path: Path) -> None:
    port = tmp_path / "ttyUSB0"
    port.write_text("")  # exists; never opened, the broker check comes first
    r = _runner("--port", str(port), timeout=30)
    assert r.returncode == 2 and "needs --broker HOST[:PORT]" in r.stderr, r.stderr
    for loop in ("127.0.0.1", "localhost:1884", "[::1]:1883"):
        r = _runner("--port", str(port), "--broker", loop, timeout=30)
        assert r.returncode == 2 and "loopback" in r.stderr, (loop, r.stderr)


def test_port_where_nothing_answers_exits_2(tmp_path: Path) -> None:
    # A terminal nobody is behind: mpremote would wait forever; the runner gives up.
    master, slave = os.openpty()
    try:
        t0 = time.monotonic()
        r = _runner(
            "--port", os.ttyname(slave), "--broker", NOWHERE, "--probe-timeout", "3",
            timeout=60,
        )
        took = time.monotonic() - t0
    finally:
        os.close(master)
        os.close(slave)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "does not answer" in r.stderr, r.stderr
    assert took < 20, took


def test_only_and_list() -> None:
    all_ = board_scenarios.scenarios()
    names = [s.name for s in all_]
    assert len(names) == len(set(names))
    assert [s.name for s in board_scenarios.select(all_, ["roundtrip"])] == [
        "roundtrip/v4",
        "roundtrip/v5",
    ]
    picked = board_scenarios.select(all_, ["ids,corrupt", "keepalive/v5"])
    assert [s.name for s in picked] == [
        "keepalive/v5",
        "ids",
        "corrupt/msg-truncate",
        "corrupt/ident-flip",
        "corrupt/hot-random",
    ]
    assert board_scenarios.select(all_, []) == all_
    with pytest.raises(board_target.SetupError, match="no scenario named nosuch"):
        board_scenarios.select(all_, ["roundtrip,nosuch"])
    r = _runner("--only", "nosuch", timeout=30)
    assert r.returncode == 2 and "known:" in r.stderr, r.stderr
    r = _runner("--list", timeout=30)
    assert r.returncode == 0 and [ln.split()[0] for ln in r.stdout.splitlines()] == names


# Stands in for the port's network module on the virtual board (which has none).
_NETWORK = "import board\nSTA_IF = 0\nWLAN = board.WLAN\n"


@pytest.fixture
def wifi_board(tmp_path: Path) -> Iterator[tuple[VirtualBoard, Path]]:
    # The real boards' Wi-Fi step, on the virtual board: board.py is the virtual one,
    # config.py as tools/deploy.py --board puts it on a board.
    link = tmp_path / "wifi"
    vb = VirtualBoard(
        tmp_path / "flash.img", heap=ESP32_HEAP, link=str(tmp_path / "vb"), wifi=link
    )
    vb.start()
    try:
        (tmp_path / "network.py").write_text(_NETWORK)
        (tmp_path / "config.py").write_text(
            "WIFI_SSID = 'net'\nWIFI_KEY = 'key'\nWIFI_TIMEOUT_MS = 300\n"
        )
        vb.mpremote("cp", str(tmp_path / "network.py"), str(tmp_path / "config.py"), ":")
        yield vb, link
    finally:
        vb.stop()


def test_wifi_step_connects_or_says_why(wifi_board: tuple[VirtualBoard, Path]) -> None:
    vb, link = wifi_board
    check = "import board; print('UP', board.wifi_isconnected())"
    out = vb.mpremote("exec", board_target.WIFI, "+", "exec", check)
    assert "UP True" in out.stdout, out.stdout
    vb.restart()
    link.write_text("down\n")
    r = vb.mpremote("exec", board_target.WIFI, check=False)
    assert r.returncode != 0
    assert "Wi-Fi did not connect: no access point" in r.stdout + r.stderr, r.stdout + r.stderr
    # No board.py/config.py to connect with: a message saying what to do.
    vb.restart()
    vb.mpremote("rm", ":config.py")
    r = vb.mpremote("exec", board_target.WIFI, check=False)
    assert r.returncode != 0 and "connect in boot.py" in r.stdout + r.stderr, r.stdout
