"""The log hook raising KeyboardInterrupt or SystemExit on the "connected" line of the
keeper's reconnect (blocking client) or of connect() (asyncio client): the exception
comes out of the call once, and the connection ends as after any connect (connected,
link.up, on_change(True)), not half made as up to 0.2.23 (tests/device/dev_log_hook_kbi.py,
dev_aio_log_hook_kbi.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import Broker, run_device


@pytest.mark.parametrize("exc", ["kbi", "exit"])
@pytest.mark.parametrize("script", ["dev_log_hook_kbi.py", "dev_aio_log_hook_kbi.py"])
def test_log_hook_raising_keyboard_interrupt_at_connect_leaves_the_link_whole(
        broker: Broker, tmp_path: Path, script: str, exc: str) -> None:
    cfg = {"HOST": broker.host, "PORT": broker.port, "EXC": exc,
           "PREFIX": f"lk-{tmp_path.name}"[-20:]}
    r = run_device(script, cfg, heap="256k", timeout=120, check=False)
    assert "RESULT ok" in r.out, r.out
