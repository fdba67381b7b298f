"""The freeze manifests (manifest.py, boards/*/manifest*.py) evaluated as MicroPython's
firmware build evaluates them (tests/host/manifest_eval.py), against stand-in port and
board manifests laid out as in the MicroPython tree: boards with and without a manifest
of their own, for the ESP32 and the rp2 ports."""

from __future__ import annotations

from pathlib import Path

import pytest

import package
from manifest_eval import ManifestError, evaluate

ROOT = Path(__file__).resolve().parents[2]
LIB = ROOT / "lib"

# The stand-ins: what each port's and board's manifest does, in the shape MicroPython's do.
PORT_MANIFEST = 'freeze("$(PORT_DIR)/modules")\nrequire("mip")\n'
BOARD_MANIFESTS = {
    ("esp32", "ESP32_GENERIC"): None,  # no manifest of its own: the port's is its default
    ("esp32", "UM_TINYPICO"): 'include("$(PORT_DIR)/boards/manifest.py")\nfreeze("modules")\n',
    ("rp2", "RPI_PICO"): None,
    ("rp2", "RPI_PICO_W"): (
        'include("$(PORT_DIR)/boards/manifest.py")\nrequire("bundle-networking")\n'
    ),
}
# (port, board, our manifest, board.py frozen): the combinations the README documents
GOOD = [
    ("esp32", "ESP32_GENERIC", "boards/esp32/manifest.py", True),
    ("esp32", "ESP32_GENERIC", "boards/esp32/manifest_port.py", True),
    ("esp32", "UM_TINYPICO", "boards/esp32/manifest_board.py", True),
    ("rp2", "RPI_PICO_W", "boards/rp2040/manifest.py", True),
    ("rp2", "RPI_PICO_W", "boards/rp2040/manifest_board.py", True),
    ("rp2", "RPI_PICO", "boards/rp2040/manifest_port.py", False),
]


def _tree(tmp: Path, port: str, board: str) -> dict[str, str]:
    mpy = tmp / "micropython"
    port_dir = mpy / "ports" / port
    board_dir = port_dir / "boards" / board
    board_dir.mkdir(parents=True)
    (port_dir / "modules").mkdir()
    (port_dir / "boards" / "manifest.py").write_text(PORT_MANIFEST)
    text = BOARD_MANIFESTS[(port, board)]
    if text is not None:
        (board_dir / "manifest.py").write_text(text)
        if 'freeze("modules")' in text:
            (board_dir / "modules").mkdir()
    return {
        "MPY_DIR": str(mpy),
        "MPY_LIB_DIR": str(mpy / "lib" / "micropython-lib"),
        "PORT_DIR": str(port_dir),
        "BOARD_DIR": str(board_dir),
    }


def _lib_targets() -> list[str]:
    return sorted(p.relative_to(LIB).as_posix() for p in (LIB / "mqttsession").glob("*.py"))


@pytest.mark.parametrize(("port", "board", "manifest", "with_board_py"), GOOD)
def test_manifest_builds_for_board(
    tmp_path: Path, port: str, board: str, manifest: str, with_board_py: bool
) -> None:
    pv = _tree(tmp_path, port, board)
    r = evaluate(ROOT / manifest, pv)
    port_manifest = Path(pv["PORT_DIR"]) / "boards" / "manifest.py"
    board_manifest = Path(pv["BOARD_DIR"]) / "manifest.py"
    ours = (ROOT / "manifest.py").resolve()
    # include order: the board's default (its own manifest, which includes the port's, or
    # the port's), then the library's manifest
    assert port_manifest in r.included and ours in r.included
    assert r.included.index(port_manifest) < r.included.index(ours)
    if board_manifest.exists():
        assert r.included.index(board_manifest) < r.included.index(port_manifest)
    if (Path(pv["BOARD_DIR"]) / "modules").exists():
        assert Path(pv["BOARD_DIR"]) / "modules" in r.freeze_dirs  # the board's extras stay
    assert Path(pv["PORT_DIR"]) / "modules" in r.freeze_dirs
    assert "mip" in r.required
    if board == "RPI_PICO_W":
        assert "bundle-networking" in r.required
    lib = sorted(t for t in r.targets() if t.startswith("mqttsession/"))
    assert lib == _lib_targets()
    assert ("board.py" in r.targets()) == with_board_py
    for f in r.frozen:
        if f.target == "board.py":
            assert f.source == (ROOT / manifest).parent.resolve() / "board.py"
    assert len(r.targets()) == len(set(r.targets()))
    assert r.metadata.get("version") == package.read_version()


@pytest.mark.parametrize(
    ("port", "board", "manifest"),
    [
        ("rp2", "RPI_PICO", "boards/rp2040/manifest.py"),  # the Pico W's, on a plain Pico
        ("rp2", "RPI_PICO", "boards/rp2040/manifest_board.py"),
        ("esp32", "ESP32_GENERIC", "boards/esp32/manifest_board.py"),
    ],
)
def test_board_variant_on_a_board_without_manifest_fails_clearly(
    tmp_path: Path, port: str, board: str, manifest: str
) -> None:
    pv = _tree(tmp_path, port, board)
    with pytest.raises(ManifestError, match="manifest file not found: .*/boards/.*/manifest.py"):
        evaluate(ROOT / manifest, pv)


def test_port_variant_on_a_board_with_manifest_loses_its_extras(tmp_path: Path) -> None:
    # why manifest_board.py exists: FROZEN_MANIFEST replaces the board's own manifest
    pv = _tree(tmp_path, "esp32", "UM_TINYPICO")
    r = evaluate(ROOT / "boards" / "esp32" / "manifest_port.py", pv)
    assert Path(pv["BOARD_DIR"]) / "modules" not in r.freeze_dirs


def test_evaluator_rules(tmp_path: Path) -> None:
    # the rules the checks above rely on, each able to fail on its own
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "manifest.py").write_text('module("m.py")\n')
    (tmp_path / "sub" / "m.py").write_text("")
    top = tmp_path / "top.py"
    top.write_text('include("sub")\ninclude("$(X)/sub/manifest.py")\nmetadata(version="1")\n')
    r = evaluate(top, {"X": str(tmp_path)})
    assert r.included == [top, tmp_path / "sub" / "manifest.py"]  # a directory, read once
    assert r.targets() == ["m.py"]
    top.write_text('metadata(version="1")\nmetadata(version="2")\n')
    with pytest.raises(ManifestError, match="twice"):
        evaluate(top, {})
    top.write_text('module("missing.py")\n')
    with pytest.raises(ManifestError, match="cannot stat"):
        evaluate(top, {})
    top.write_text('include("$(NOPE)/x.py")\n')
    with pytest.raises(ManifestError, match="unknown path variable"):
        evaluate(top, {})
