"""What each function of the library costs in .mpy bytes (mpy-cross -O2): the module is
compiled once whole and once without that function; the difference is the function's
bytecode, its constants and names, and its entry in the class or module. Runs on the host.

    .venv/bin/python tools/bench/b_mem_funcs.py                 # the 40 largest
    .venv/bin/python tools/bench/b_mem_funcs.py --all --lib DIR  # every function of DIR

Both compilations start from ast.unparse of the source, so comments and layout do not
count; line-number tables still do, as on a board.
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import mpy  # noqa: E402


@dataclass(frozen=True)
class FuncCost:
    module: str
    name: str  # Class.method or function
    lines: int
    mpy: int  # bytes the .mpy shrinks by without it


def _size(tool: str, src: str, work: Path) -> int:
    py = work / "m.py"
    out = work / "m.mpy"
    py.write_text(src)
    subprocess.run(
        [tool, "-O2", "-s", "m.py", "-o", str(out), str(py)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return out.stat().st_size


def _without(tree: ast.Module, owner: list[ast.stmt], i: int) -> str:
    node = owner.pop(i)
    try:
        if not owner:
            owner.append(ast.Pass())
        return ast.unparse(tree)
    finally:
        if len(owner) == 1 and isinstance(owner[0], ast.Pass) and node is not owner[0]:
            owner.pop()
        owner.insert(i, node)


def costs(lib: Path = mpy.LIB) -> list[FuncCost]:
    tool = mpy.mpy_cross()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        for src in mpy.sources(lib):
            module = ".".join(src.relative_to(lib).with_suffix("").parts).removesuffix(".__init__")
            tree = ast.parse(src.read_text())
            whole = _size(tool, ast.unparse(tree), work)
            places: list[tuple[list[ast.stmt], str]] = [(tree.body, "")]
            places += [(n.body, n.name + ".") for n in tree.body if isinstance(n, ast.ClassDef)]
            for owner, prefix in places:
                for i, node in enumerate(list(owner)):
                    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        n = whole - _size(tool, _without(tree, owner, i), work)
                        lines = (node.end_lineno or node.lineno) - node.lineno + 1
                        rows.append(FuncCost(module, prefix + node.name, lines, n))
    return sorted(rows, key=lambda r: -r.mpy)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lib", type=Path, default=mpy.LIB, help="the lib/ directory (default: ours)")
    p.add_argument("--all", action="store_true", help="every function, not the 40 largest")
    a = p.parse_args(argv)
    rows = costs(a.lib.resolve())
    print("| module | function | lines | .mpy bytes |")
    print("|---|---|---|---|")
    for r in rows if a.all else rows[:40]:
        print(f"| {r.module} | {r.name} | {r.lines} | {r.mpy} |")
    by: dict[str, tuple[int, int]] = {}
    for r in rows:
        n, b = by.get(r.module, (0, 0))
        by[r.module] = (n + 1, b + r.mpy)
    print()
    print("| module | functions | their .mpy bytes |")
    print("|---|---|---|")
    for m, (n, b) in sorted(by.items()):
        print(f"| {m} | {n} | {b} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
