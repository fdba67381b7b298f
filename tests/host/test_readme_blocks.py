"""The README's Python blocks as a reader copies them onto a board: only the broker's
address and the store's root changed (and the board's network module a scripted one)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from harness import HOST, REPO, run_device

README = REPO / "README.md"


def _block(heading: str, must: str) -> str:
    # the first ```python block after the heading that contains must
    text = README.read_text()
    part = text[text.index("\n" + heading + "\n"):]
    for m in re.finditer(r"```python\n(.*?)```", part, re.S):
        if must in m.group(1):
            return m.group(1)
    raise AssertionError(f"no python block with {must!r} under {heading!r}")


@pytest.mark.parametrize("board,up", [("esp32", 1010), ("rp2040", 3)])
def test_readme_asyncio_node_connects_on_a_board(board: str, up: int, broker: Any,
                                                 tmp_path: Path) -> None:
    # README "The asyncio client": Link(board=board) on the ESP32 / Pico W board layer.
    # The layer reconnects to the network of its last wifi_connect(ssid, key): a block
    # that never names one ends in ValueError("ssid: no network given yet") at connect.
    src = _block("## The asyncio client", "asyncio.run(main())")
    assert '"192.168.1.10"' in src and '"/.mqtt"' in src
    src = src.replace('"192.168.1.10"', f'"{HOST}", {broker.port}')
    src = src.replace('"/.mqtt"', '".mqtt"')
    (tmp_path / "readme_block.py").write_text(src)
    cfg = {"BOARD_DIR": str(REPO / "boards" / board), "UP": up,
           "FAKE": str(REPO / "tests" / "device" / "fakeboard")}
    run_device("dev_readme_aio.py", cfg, heap="512k", workdir=tmp_path)
