"""Evaluate MicroPython freeze manifests (manifest.py files) as the firmware build does.

The rules followed (MicroPython's tools/manifestfile.py, freeze mode):
- a manifest is Python, run with metadata, include, require, package, module, freeze and
  options as globals, with the working directory set to the manifest's own directory, so
  relative paths are relative to the manifest;
- $(NAME) in a path is replaced by the path variable NAME (PORT_DIR, BOARD_DIR, MPY_DIR,
  MPY_LIB_DIR) before the path is made absolute;
- include() of a directory means its manifest.py; a file included twice is read once;
  a missing file stops the build ("manifest file not found" in our words);
- package(name, base_path=...) freezes every .py below base_path/name, targets relative to
  base_path; module(file, base_path=...) freezes one file, which must exist;
- metadata() twice at one level is an error; require(name) names a micropython-lib package
  (recorded here; a build would look it up under MPY_LIB_DIR).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ManifestError(Exception):
    pass


@dataclass(frozen=True)
class Frozen:
    source: Path  # the file on the host
    target: str  # its name in the firmware, e.g. "mqttsession/client.py"
    manifest: Path  # the manifest that asked for it


@dataclass
class Result:
    included: list[Path] = field(default_factory=list)  # in the order they were read
    frozen: list[Frozen] = field(default_factory=list)
    required: list[str] = field(default_factory=list)
    freeze_dirs: list[Path] = field(default_factory=list)  # legacy freeze(path)
    metadata: dict[str, Any] = field(default_factory=dict)

    def targets(self) -> list[str]:
        return [f.target for f in self.frozen]


class _Options:
    def __init__(self, **kw: Any) -> None:
        self._kw = kw
        self._defaults: dict[str, Any] = {}

    def defaults(self, **kw: Any) -> None:
        self._defaults = kw

    def __getattr__(self, name: str) -> Any:
        return self._kw.get(name, self._defaults.get(name))


@contextlib.contextmanager
def _cwd(path: Path) -> Iterator[None]:
    prev = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(prev)


class Evaluator:
    def __init__(self, path_vars: dict[str, str]) -> None:
        self.vars = path_vars
        self.result = Result()
        self._seen: set[Path] = set()
        self._current: list[Path] = []

    def path(self, p: str) -> Path:
        for name, value in self.vars.items():
            p = p.replace(f"$({name})", value)
        if "$(" in p:
            raise ManifestError(f"unknown path variable in {p!r}")
        return Path(os.path.abspath(p))

    # -- the manifest API -------------------------------------------------------------

    def include(self, manifest: str | Iterable[str], **kw: Any) -> None:
        if not isinstance(manifest, str):
            for m in manifest:
                self.include(m, **kw)
            return
        target = self.path(manifest)
        if target.is_dir():
            target = target / "manifest.py"
        if target in self._seen:
            return
        self._seen.add(target)
        if not target.is_file():
            where = self._current[-1] if self._current else "the command line"
            raise ManifestError(f"manifest file not found: {target} (included from {where})")
        self.result.included.append(target)
        self._current.append(target)
        try:
            with _cwd(target.parent):
                code = compile(target.read_text(), str(target), "exec")
                exec(code, self._globals(kw))
        finally:
            self._current.pop()

    def metadata(self, **kw: Any) -> None:
        if self.result.metadata and kw:
            raise ManifestError("metadata() called twice")
        self.result.metadata.update(kw)

    def require(self, name: str, **kw: Any) -> None:
        self.result.required.append(name)

    def package(
        self, name: str, files: Iterable[str] | None = None, base_path: str = ".", **kw: Any
    ) -> None:
        base = self.path(base_path)
        if files is not None:
            found = [base / name / f for f in files]
        else:
            found = sorted(p for p in (base / name).rglob("*.py") if "__pycache__" not in p.parts)
        if not found:
            raise ManifestError(f"package {name!r}: no .py files under {base / name}")
        for f in found:
            self._freeze(f, f.relative_to(base).as_posix())

    def module(self, name: str, base_path: str = ".", **kw: Any) -> None:
        self._freeze(self.path(base_path) / name, name)

    def freeze(self, path: str, script: Any = None, **kw: Any) -> None:
        self.result.freeze_dirs.append(self.path(path))

    # -- internals --------------------------------------------------------------------

    def _freeze(self, source: Path, target: str) -> None:
        if not source.is_file():
            raise ManifestError(f"cannot stat {source}")
        self.result.frozen.append(Frozen(source, target, self._current[-1]))

    def _globals(self, kw: dict[str, Any]) -> dict[str, Any]:
        return {
            "metadata": self.metadata,
            "include": self.include,
            "require": self.require,
            "package": self.package,
            "module": self.module,
            "freeze": self.freeze,
            "options": _Options(**kw),
        }


def evaluate(manifest: Path, path_vars: dict[str, str]) -> Result:
    """Evaluate a top-level manifest (FROZEN_MANIFEST=manifest) with these path variables."""
    ev = Evaluator(path_vars)
    ev.include(str(manifest.resolve()))
    return ev.result
