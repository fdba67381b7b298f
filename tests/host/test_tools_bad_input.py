"""Host tools given bad input: one clear line and a non-zero exit, never a traceback or a
C assertion, and nothing of the user's removed (tools/inspect_store.py, tools/vboard.py,
tools/romfs.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import littlefs

ROOT = Path(__file__).resolve().parents[2]


def _tool(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def _clear(r: subprocess.CompletedProcess[str]) -> None:
    out = r.stdout + r.stderr
    assert r.returncode in (1, 2), (r.returncode, out)  # not 134 (abort) or a signal
    assert "Traceback" not in out and "Assertion" not in out, out
    assert len(r.stderr.strip().splitlines()) == 1, out


def test_inspect_store_block_size_not_a_multiple_of_32(tmp_path: Path) -> None:
    # littlefs-python's C code asserted block_size % cache_size == 0 and aborted the process
    img = tmp_path / "flash.img"
    fs = littlefs.LittleFS(block_size=4096, block_count=64)
    fs.makedirs("/.mqtt", exist_ok=True)
    img.write_bytes(bytes(fs.context.buffer))
    r = _tool("tools/inspect_store.py", "--image", str(img), "--block-size", "1000")
    _clear(r)
    assert r.returncode == 2 and "block size" in r.stderr, r.stderr


def test_vboard_link_in_a_missing_directory(tmp_path: Path) -> None:
    r = _tool("tools/vboard.py", "--image", str(tmp_path / "f.img"),
              "--link", str(tmp_path / "no" / "vb"), timeout=60)
    _clear(r)
    assert r.returncode == 2 and "no directory" in r.stderr, r.stderr


def test_romfs_bad_output_paths(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    _clear(_tool("tools/romfs.py", "-o", str(a_file / "rom.img")))  # under a file
    _clear(_tool("tools/romfs.py", "-o", str(tmp_path)))  # a directory
    # the staging directory is named after the image (rom.img: rom.d): one of the user's
    # own is not removed
    mine = tmp_path / "notes.d"
    mine.mkdir()
    (mine / "todo.txt").write_text("keep me")
    _clear(_tool("tools/romfs.py", "-o", str(tmp_path / "notes.img")))
    assert (mine / "todo.txt").read_text() == "keep me"
