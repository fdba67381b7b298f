"""A node's littlefs image (4 KiB blocks) as the host tests read and change it."""

from __future__ import annotations

from pathlib import Path

import littlefs
from littlefs.context import UserContext


def mount(image: Path) -> littlefs.LittleFS:
    data = bytearray(image.read_bytes())
    fs = littlefs.LittleFS(context=UserContext(buffer=data), block_size=4096,
                           block_count=len(data) // 4096, mount=False)
    fs.mount()
    return fs


def mark_newer(image: Path) -> tuple[str, bytes]:
    """Marks the one stored session's identity file as written by a newer library (format
    byte 3, one above this library's 2); returns its path and new content."""
    fs = mount(image)
    ids = [f"{top}/id" for top, _dirs, files in fs.walk("/.mqtt") if "id" in files]
    assert len(ids) == 1, ids
    with fs.open(ids[0], "rb") as f:
        ident = bytearray(f.read())
    ident[3] = 3
    with fs.open(ids[0], "wb") as f:
        f.write(ident)
    image.write_bytes(bytes(fs.context.buffer))
    return ids[0], bytes(ident)


def read(image: Path, path: str) -> bytes:
    with mount(image).open(path, "rb") as f:
        return f.read()
