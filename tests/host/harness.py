"""Host-side test harness: brokers, certificates, device runs and MQTT observers.

Everything here is plain CPython. Brokers are real mosquitto processes on free loopback
ports; device scripts run on the MicroPython unix port (or on a real board via mpremote).

The pieces: harness_proc.py (paths, ports, programs), harness_certs.py (test CA),
harness_broker.py (Broker), harness_device.py (device scripts and their results),
harness_mqtt.py (Observer, publish). They are imported from here; run_device and
start_device stay here because they follow --board (board_port).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness_broker import (
    Broker,
    BrokerFactory,
    _live_brokers,
    broker_serial,
    live_brokers,
)
from harness_certs import (
    _DATES,
    _OPENSSL_CNF,
    _REQ,
    _SIGN,
    Certs,
    _ca_dir,
    _make_ca,
    _openssl,
    make_certs,
)
from harness_device import (
    _CFG_TYPES,
    DeviceProcess,
    DeviceResult,
    _matches,
    _mpremote,
    _prepare,
    _run_on_board,
    _running_devices,
    devcfg_source,
    device_argv,
    device_env,
    heap_arg,
    resolve_script,
    stop_all_devices,
)
from harness_mqtt import (
    Msg,
    Observer,
    Publisher,
    _paho_client,
    _paho_version,
    publish,
)
from harness_proc import (
    DEVICE_DIR,
    HOST,
    LIB_DIR,
    REPO,
    _find_tool,
    _kill_group,
    _tail,
    free_port,
    micropython_path,
    mosquitto_path,
    wait_port,
)

__all__ = [
    "board_port",
    "REPO",
    "DEVICE_DIR",
    "LIB_DIR",
    "HOST",
    "free_port",
    "wait_port",
    "_find_tool",
    "mosquitto_path",
    "micropython_path",
    "_tail",
    "_kill_group",
    "Certs",
    "_OPENSSL_CNF",
    "_openssl",
    "_REQ",
    "_SIGN",
    "_DATES",
    "_ca_dir",
    "_make_ca",
    "make_certs",
    "_live_brokers",
    "BrokerFactory",
    "live_brokers",
    "broker_serial",
    "Broker",
    "_CFG_TYPES",
    "devcfg_source",
    "resolve_script",
    "device_argv",
    "device_env",
    "heap_arg",
    "DeviceResult",
    "_matches",
    "_prepare",
    "_mpremote",
    "_run_on_board",
    "_running_devices",
    "DeviceProcess",
    "stop_all_devices",
    "Msg",
    "_paho_version",
    "_paho_client",
    "Observer",
    "Publisher",
    "publish",
    "run_device",
    "start_device",
    "Devices",
]

# Set from conftest.py when pytest is given --board PORT: device scripts then run on the board.
board_port: str | None = None


def run_device(
    script: str | Path,
    cfg: Mapping[str, Any],
    *,
    heap: str | int = "64k",
    timeout: float = 60,
    args: Sequence[str] = (),
    check: bool = True,
    workdir: Path | str | None = None,
    lib: Path = LIB_DIR,
) -> DeviceResult:
    """Run a device test script on the unix port (or on the --board board) and collect its
    output. The script imports its settings from devcfg (written from cfg). Pass workdir to
    keep files the script writes there (a flash image, say) between runs; by default each run
    gets a fresh directory, removed afterwards. lib: where the library is imported from on
    the unix port (its .mpy files, say). check=True raises AssertionError with the output
    unless the script exits 0 and its last non-empty line is PASS."""
    __tracebackhide__ = True
    path = resolve_script(script)
    if board_port is not None:
        return _run_on_board(board_port, path, cfg, timeout=timeout, args=args, check=check)
    wd, own = _prepare(cfg, workdir)
    proc = subprocess.Popen(
        device_argv(path, heap, args),
        cwd=wd,
        env=device_env(wd, lib),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    timed_out = False
    try:
        raw, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
        raw, _ = proc.communicate()
    out = raw.decode("utf-8", errors="replace")
    if timed_out:
        out += f"\n[harness: killed after {timeout} s]\n"
    result = DeviceResult(proc.returncode, out, None if own else wd, timed_out)
    if own:
        shutil.rmtree(wd, ignore_errors=True)
    if check:
        result.check(f"{path.name}")
    return result


def start_device(
    script: str | Path,
    cfg: Mapping[str, Any],
    *,
    heap: str | int = "64k",
    args: Sequence[str] = (),
    workdir: Path | str | None = None,
) -> DeviceProcess:
    """Start a device script in the background on the unix port (never on a board)."""
    if board_port is not None:
        import pytest

        pytest.skip("start_device needs the unix port; not available with --board")
    return DeviceProcess(script, cfg, heap=heap, args=args, workdir=workdir)


class Devices:
    """Device scripts started by one test; every one still running is killed at teardown."""

    def __init__(self) -> None:
        self.started: list[DeviceProcess] = []

    def start(
        self,
        script: str | Path,
        cfg: Mapping[str, Any],
        *,
        heap: str | int = "64k",
        args: Sequence[str] = (),
        workdir: Path | str | None = None,
    ) -> DeviceProcess:
        d = start_device(script, cfg, heap=heap, args=args, workdir=workdir)
        self.started.append(d)
        return d

    def run(self, script: str | Path, cfg: Mapping[str, Any], **kw: Any) -> DeviceResult:
        return run_device(script, cfg, **kw)

    def close(self) -> None:
        for d in self.started:
            d.close()
