"""Build a unix-port MicroPython with the library frozen into it: the third deployment
route (code in the firmware's flash), measured on the host by tools/bench/b_mem.py.

    python3 tools/frozen_unix.py --mpy-src PATH      # writes build/frozen/micropython
    .venv/bin/python tools/bench/b_mem.py --frozen build/frozen/micropython

PATH is a MicroPython source tree (a clone of the micropython repository; v1.29 was
used here). Only its own files are needed: the firmware freezes asyncio and the library
(the repository's manifest.py) and leaves out what needs the tree's submodules (TLS,
btree, micropython-lib), which the node profile does not use. Built with the host's C
compiler, make and libffi (`apt-get install build-essential libffi-dev pkg-config`).
The set-up (make test) does not fetch a source tree: without one this tool says so and
the benchmark's frozen rows say "not measured".
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import mpy  # noqa: E402  (tools/mpy.py: the library's source files)

OUT = ROOT / "build" / "frozen"
FIRMWARE = OUT / "micropython"


def lib_digest(lib: Path) -> str:
    """A digest of the library's sources: written next to the firmware, so that a
    benchmark never measures a firmware frozen from another library as this one."""
    h = hashlib.sha256()
    for src in mpy.sources(lib):
        h.update(src.relative_to(lib).as_posix().encode() + b"\0" + src.read_bytes())
    return h.hexdigest()


def stamp(fw: Path) -> Path:
    return fw.with_name(fw.name + ".lib")


def manifest(work: Path, lib: Path) -> Path:
    """A manifest freezing asyncio and the library in lib (the repository's package)."""
    m = work / "manifest.py"
    m.write_text(
        'include("$(MPY_DIR)/extmod/asyncio")\n'
        f'package("mqttsession", base_path={str(lib)!r})\n'
    )
    return m


def build(src: Path, out: Path, lib: Path, jobs: int) -> Path:
    """Build the unix port (standard variant) from src with the library frozen; returns
    the firmware's path (out/micropython)."""
    unix = src / "ports" / "unix"
    if not (unix / "Makefile").exists() or not (src / "py" / "mkrules.mk").exists():
        raise FileNotFoundError(f"{src} is not a MicroPython source tree (no ports/unix)")
    out.mkdir(parents=True, exist_ok=True)
    work = out / "work"
    work.mkdir(exist_ok=True)
    # the build checks that micropython-lib is there even when the manifest uses none
    # of it: an empty stand-in when the tree's submodule is not initialized
    mpylib = src / "lib" / "micropython-lib"
    if not (mpylib / "README.md").exists():
        mpylib = work / "no-micropython-lib"
        mpylib.mkdir(exist_ok=True)
        (mpylib / "README.md").write_text("not used: the frozen manifest needs none of it\n")
    make = ["make", f"-j{jobs}"]
    subprocess.run([*make, "-C", str(src / "mpy-cross")], check=True)
    build_dir = work / "build"
    subprocess.run(
        [
            *make,
            "-C",
            str(unix),
            "VARIANT=standard",
            f"BUILD={build_dir}",
            f"FROZEN_MANIFEST={manifest(work, lib.resolve())}",
            f"MPY_LIB_DIR={mpylib}",
            "MICROPY_PY_SSL=0",
            "MICROPY_SSL_MBEDTLS=0",
            "MICROPY_PY_BTREE=0",
        ],
        check=True,
    )
    fw = out / "micropython"
    shutil.copy2(build_dir / "micropython", fw)
    stamp(fw).write_text(lib_digest(lib.resolve()) + "\n")
    return fw


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--mpy-src",
        type=Path,
        default=os.environ.get("MQTTS_MPY_SRC"),
        help="a MicroPython source tree (default: $MQTTS_MPY_SRC)",
    )
    p.add_argument("--out", type=Path, default=OUT, help=f"output directory (default {OUT})")
    p.add_argument("--lib", type=Path, default=ROOT / "lib", help="the lib/ to freeze")
    p.add_argument("-j", type=int, default=os.cpu_count() or 1, help="make jobs")
    a = p.parse_args(argv)
    if a.mpy_src is None:
        print(
            "error: no MicroPython source tree: give --mpy-src PATH (or MQTTS_MPY_SRC), e.g. a "
            "clone of https://github.com/micropython/micropython",
            file=sys.stderr,
        )
        return 2
    try:
        fw = build(a.mpy_src.resolve(), a.out.resolve(), a.lib, a.j)
    except (FileNotFoundError, subprocess.CalledProcessError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    ver = subprocess.run(
        [str(fw), "-c", "import sys, mqttsession; print(sys.version, mqttsession.__version__)"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "MICROPYPATH": ".frozen"},
    )
    print(f"{fw}: {ver.stdout.strip() or ver.stderr.strip()}")
    return 0 if ver.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
