"""Where tools/inspect_store.py reads a store from: a littlefs image or a plain directory,
both seen with "/"-rooted paths, and where the stores in one are when no --root is
given."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import inspect_store_v2 as v2
from inspect_format import DEFAULT_ROOT, LAST, MSG, NULL_DIR, SESSION_FILES


class Source(Protocol):
    label: str

    def entries(self, path: str) -> list[tuple[str, bool]]:
        """(name, is_dir) of a directory, sorted by name; OSError when it is not one."""
        ...

    def read(self, path: str) -> bytes: ...


def join(*parts: str) -> str:
    return "/" + "/".join(p.strip("/") for p in parts if p.strip("/"))


class ImageSource:
    """A littlefs image, mounted in memory (the file itself is never written)."""

    def __init__(self, path: Path, block_size: int, block_count: int | None) -> None:
        from littlefs import LittleFS
        from littlefs.context import UserContext

        self.label = f"image {path}"
        data = bytearray(path.read_bytes())
        if block_size <= 0:
            raise ValueError(f"bad block size {block_size}")
        if block_size % 32:  # else littlefs's C code aborts the process (an assert)
            raise ValueError(f"bad block size {block_size}: littlefs blocks are a multiple "
                             f"of its 32-byte read and prog size")
        whole = len(data) // block_size
        if whole < 2:
            raise ValueError(f"{path}: {len(data)} bytes is not a littlefs image "
                             f"of {block_size}-byte blocks")
        # From the file size first, then as the superblock says (block_count 0).
        counts = [block_count] if block_count is not None else [whole, 0]
        err: Exception | None = None
        for n in counts:
            fs = LittleFS(context=UserContext(buffer=bytearray(data)), block_size=block_size,
                          block_count=n, read_size=32, prog_size=32, mount=False)
            try:
                fs.mount()
            except Exception as e:  # LittleFSError, or ValueError for a bad geometry
                err = e
                continue
            self.fs = fs
            return
        shown = block_count if block_count is not None else whole
        raise ValueError(f"{path} does not mount as littlefs with {block_size}-byte blocks "
                         f"({shown} blocks): {err}; check --block-size / --block-count")

    def entries(self, path: str) -> list[tuple[str, bool]]:
        try:
            st = self.fs.stat(path)
            if st.type != st.TYPE_DIR:
                raise NotADirectoryError(path)
            return sorted((e.name, e.type == e.TYPE_DIR) for e in self.fs.scandir(path))
        except OSError:
            raise
        except Exception as e:  # LittleFSError
            raise OSError(str(e)) from e

    def read(self, path: str) -> bytes:
        try:
            n = self.fs.stat(path).size
            if n > v2.MAXF:
                raise v2.TooLarge(n)
            with self.fs.open(path, "rb") as f:
                return bytes(f.read())
        except OSError:
            raise
        except Exception as e:  # LittleFSError
            raise OSError(str(e)) from e


class DirSource:
    """A directory tree on the host, e.g. copied off a board with mpremote."""

    def __init__(self, path: Path) -> None:
        if not path.is_dir():
            raise ValueError(f"{path} is not a directory")
        self.base = path
        self.label = f"directory {path}"

    def _p(self, path: str) -> Path:
        return self.base / path.strip("/")

    def entries(self, path: str) -> list[tuple[str, bool]]:
        with os.scandir(self._p(path)) as it:
            return sorted((e.name, e.is_dir()) for e in it)

    def read(self, path: str) -> bytes:
        n = self._p(path).stat().st_size
        if n > v2.MAXF:
            raise v2.TooLarge(n)
        return self._p(path).read_bytes()


def is_dir(src: Source, path: str) -> bool:
    try:
        src.entries(path)
        return True
    except OSError:
        return False


def _looks_like_session(src: Source, path: str) -> bool:
    if path.rsplit("/", 1)[-1] == NULL_DIR:
        return True
    try:
        names = [n for n, d in src.entries(path) if not d]
    except OSError:
        return False
    return any(n.removesuffix(".t") in SESSION_FILES or MSG.match(n) for n in names)


def _looks_like_host(src: Source, path: str) -> bool:
    try:
        ents = src.entries(path)
    except OSError:
        return False
    return any((n == LAST and not d) or (d and _looks_like_session(src, join(path, n)))
               for n, d in ents)


def _looks_like_store(src: Source, path: str) -> bool:
    try:
        ents = src.entries(path)
    except OSError:
        return False
    return any(d and _looks_like_host(src, join(path, n)) for n, d in ents)


def find_roots(src: Source) -> list[str]:
    """Where the session stores are when no --root is given."""
    if is_dir(src, DEFAULT_ROOT):
        return [DEFAULT_ROOT]
    if _looks_like_store(src, "/"):
        return ["/"]  # a store copied off a board, given directly
    return [join(n) for n, d in src.entries("/") if d and _looks_like_store(src, join(n))]


# --------------------------------------------------------------------------------------
# The report

