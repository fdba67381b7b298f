"""Link(on_change=) raising KeyboardInterrupt or SystemExit as the link goes down (the
broker drops the node): the exception comes out of the call and the client goes on (the
keeper reconnects, a QoS 1 message goes through). Before, the client stayed marked as
running application code: every later check_msg() raised RuntimeError, for good
(tests/device/dev_on_change_kbi.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import Broker, run_device


@pytest.mark.parametrize("exc", ["kbi", "exit"])
def test_on_change_raising_keyboard_interrupt_leaves_the_client_usable(
        broker: Broker, tmp_path: Path, exc: str) -> None:
    cfg = {"HOST": broker.host, "PORT": broker.port, "EXC": exc,
           "PREFIX": f"oc-{tmp_path.name}"[-20:]}
    r = run_device("dev_on_change_kbi.py", cfg, heap="256k", timeout=120, check=False)
    assert "RESULT ok" in r.out, r.out
