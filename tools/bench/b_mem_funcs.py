"""What each function of the library costs in .mpy bytes (mpy-cross -O2): the module is
compiled once whole and once without that function; the difference is the function's
bytecode, its constants and names, and its entry in the class or module. Runs on the host.

    .venv/bin/python tools/bench/b_mem_funcs.py                 # the 40 largest
    .venv/bin/python tools/bench/b_mem_funcs.py --all --lib DIR  # every function of DIR
    .venv/bin/python tools/bench/b_mem_funcs.py --used           # which ones the node runs
    .venv/bin/python tools/bench/b_mem_funcs.py --frames         # heap frames when publishing

Both compilations start from ast.unparse of the source, so comments and layout do not
count; line-number tables still do, as on a board.

--used runs the node profile of tools/bench/b_mem_node.py twice on one littlefs image (a
first boot, then a boot that resumes the stored session) with every function of a copy
of the library instrumented to record that it ran, and sums per module the .mpy bytes of
the functions the node loads but never calls. --frames names the functions whose VM frame
is taken from the heap (more than 11 words of state) on the steady-state QoS 0 and QoS 1
publish path (tools/bench/b_mem_frames.py), and how many bytes each takes per publish.
"""

from __future__ import annotations

import argparse
import ast
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent.parent / "tests" / "host"))

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


def _functions(tree: ast.Module) -> list[tuple[ast.FunctionDef | ast.AsyncFunctionDef, str]]:
    out = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out.append((node, node.name))
        elif isinstance(node, ast.ClassDef):
            for m in node.body:
                if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    out.append((m, f"{node.name}.{m.name}"))
    return out


_TRACE = """\
import micropython
HITS = set()
FRAMES = {}  # function: bytes taken from the heap on entering it (its VM frame)
LAST = [0]


def hit(name):
    d = micropython.mem_total() - LAST[0]
    if d:
        FRAMES[name] = FRAMES.get(name, 0) + d
    HITS.add(name)
    LAST[0] = micropython.mem_total()
"""


def instrument(lib: Path, out: Path) -> None:
    """A copy of lib/mqttsession in out whose functions each call mqs_trace.hit(name)
    first: the set of functions that ran, and the heap taken on entering each."""
    shutil.rmtree(out, ignore_errors=True)
    for src in mpy.sources(lib):
        module = ".".join(src.relative_to(lib).with_suffix("").parts).removesuffix(".__init__")
        tree = ast.parse(src.read_text())
        for node, name in _functions(tree):
            hit = ast.parse(f"__import__('mqs_trace').hit({module + ':' + name!r})").body
            node.body[:0] = hit
        dst = out / src.relative_to(lib)
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(ast.unparse(ast.fix_missing_locations(tree)) + "\n")
    (out / "mqs_trace.py").write_text(_TRACE)


def used(lib: Path) -> set[str]:
    """module:function names the node profile runs over a first boot and a resume."""
    from bench_setup import run_mp
    from harness import Broker

    hits: set[str] = set()
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        instrument(lib, work / "lib")
        broker = Broker(work / "broker", verbose=False)
        try:
            img = work / "node.img"
            for boot in (1, 2):
                args: dict[str, object] = {"port": broker.port, "plain": broker.port, "n": 5}
                args["img"] = img
                args["keep"] = 1 if boot == 2 else 0
                path = [work / "lib", HERE.parent.parent / "boards" / "unix", HERE]
                rc, out = run_mp("b_mem_node.py", args, path, heap="1024k", cwd=work)
                if rc != 0 or "NODE OK" not in out:
                    raise RuntimeError(f"the instrumented node failed (boot {boot}):\n{out}")
                hits |= {ln.split()[1] for ln in out.splitlines() if ln.startswith("HIT ")}
        finally:
            broker.close()
    return hits


def frames(lib: Path, n: int = 20) -> dict[str, dict[str, int]]:
    """{"q0"/"q1": {function: heap frame bytes per steady-state publish, "total": all}}"""
    from bench_setup import run_mp
    from harness import Broker

    res: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        instrument(lib, work / "lib")
        broker = Broker(work / "broker", verbose=False)
        try:
            args: dict[str, object] = {"port": broker.port, "img": work / "f.img", "n": n}
            path = [work / "lib", HERE.parent.parent / "boards" / "unix", HERE]
            rc, out = run_mp("b_mem_frames.py", args, path, heap="1024k", cwd=work)
        finally:
            broker.close()
    if rc != 0 or "DONE" not in out:
        raise RuntimeError(f"the frame probe failed:\n{out}")
    for line in out.splitlines():
        p = line.split()
        if len(p) == 4 and p[0] == "F":
            res.setdefault(p[1], {})[p[2]] = int(p[3])
        elif len(p) == 3 and p[0] == "T":
            res.setdefault(p[1], {})["total"] = int(p[2])
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lib", type=Path, default=mpy.LIB, help="the lib/ directory (default: ours)")
    p.add_argument("--all", action="store_true", help="every function, not the 40 largest")
    p.add_argument("--used", action="store_true", help="which functions the node profile runs")
    p.add_argument("--frames", action="store_true", help="heap frames on the publish path")
    a = p.parse_args(argv)
    if a.frames:
        for q, got in sorted(frames(a.lib.resolve()).items()):
            total = got.pop("total", 0)
            print(
                f"steady-state {q.upper()} publish (store, link, echo received): "
                f"{total} B of heap frames per publish (instrumented)"
            )
            for name, b in sorted(got.items(), key=lambda kv: -kv[1]):
                print(f"  {name} {b}")
        return 0
    rows = costs(a.lib.resolve())
    if a.used:
        ran = used(a.lib.resolve())
        loaded = {h.split(":")[0] for h in ran}
        print("| module (loaded by the node) | functions | run | .mpy bytes of those never run |")
        print("|---|---|---|---|")
        for m in sorted(loaded):
            mine = [r for r in rows if r.module == m]
            idle = [r for r in mine if f"{m}:{r.name}" not in ran]
            print(f"| {m} | {len(mine)} | {len(mine) - len(idle)} | {sum(r.mpy for r in idle)} |")
        print()
        print("never run by the node profile (largest first):")
        for r in rows:
            if r.module in loaded and f"{r.module}:{r.name}" not in ran:
                print(f"  {r.module}:{r.name} {r.mpy}")
        return 0
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
