"""The first install route on an ESP32: `mpremote mip install` of the .mpy package that
`tools/package.py --mpy` builds, on the ESP32-sized virtual board, then import, connect and
publish. (The .py package makes the board compile the sources at import, which an ESP32's
heap does not hold; README.md gives the measured figures.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import package
from vboard import ESP32_HEAP, ESP32_PROG, VirtualBoard

ROOT = Path(__file__).resolve().parents[2]
LIB = ROOT / "lib" / "mqttsession"


@pytest.fixture
def mip_dir(tmp_path: Path) -> Path:
    out = tmp_path / "mip"
    package.build_mpy(out)
    return out


@pytest.fixture
def esp32(tmp_path: Path) -> Iterator[VirtualBoard]:
    vb = VirtualBoard(
        tmp_path / "flash.img", prog=ESP32_PROG, heap=ESP32_HEAP, link=str(tmp_path / "vb")
    )
    with vb:
        yield vb


def test_mpy_package_lists_every_module(mip_dir: Path) -> None:
    data = json.loads((mip_dir / "package.json").read_text())
    want = sorted(f"mqttsession/{p.stem}.mpy" for p in LIB.glob("*.py"))
    assert [u[0] for u in data["urls"]] == want
    assert all(u[0] == u[1] and (mip_dir / u[1]).is_file() for u in data["urls"])
    assert data["version"] == package.read_version()
    assert all((mip_dir / u[1]).read_bytes()[:1] == b"M" for u in data["urls"])  # .mpy header


def test_mip_mpy_package_runs_in_esp32_heap(
    mip_dir: Path, esp32: VirtualBoard, broker: Any
) -> None:
    r = esp32.mpremote("mip", "install", str(mip_dir / "package.json"), timeout=120)
    assert "Done" in r.stdout, r.stdout + r.stderr
    esp32.restart()  # as after installing on a board: a fresh heap
    code = (
        "import gc, mqttsession\n"
        "from mqttsession import MQTTClient\n"
        f"c = MQTTClient('mip-esp32', '127.0.0.1', port={broker.port})\n"
        "c.connect()\n"
        "c.publish('mip/t', b'x', qos=1)\n"
        "c.disconnect()\n"
        "gc.collect()\n"
        "print('OK', mqttsession.__version__, mqttsession.__file__, gc.mem_free())\n"
    )
    out = esp32.exec(code, timeout=60)
    words = out.split()
    assert words[:3] == ["OK", package.read_version(), "/flash/lib/mqttsession/__init__.mpy"], out
