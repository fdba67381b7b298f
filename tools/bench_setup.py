"""Benchmark settings, results, running the MicroPython bench scripts (tools/bench/*.py)
and the library forms measured: this library and umqtt.simple fetched from PyPI."""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "tests" / "host"))

import mpy  # noqa: E402  (tools/mpy.py)
from harness import Broker, micropython_path  # noqa: E402, F401  (Broker: for bench_measure)

BENCH_DIR = ROOT / "tools" / "bench"
LIB_DIR = ROOT / "lib"
BOARD_DIR = ROOT / "boards" / "unix"
CACHE = ROOT / "build" / "bench"  # competitors fetched once; one run-<pid>/ per run
RUN = CACHE / f"run-{os.getpid()}"  # images, compiled .mpy, scratch: removed after the run
# mqtt_as, on no package registry: a clone of github.com/peterhinch/micropython-mqtt here
# is measured by the memory area (tools/bench/b_mem.py --mqtt-as); without one, quoted
MQTT_AS_DIR = CACHE / "micropython-mqtt"
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
    aio_secs: int = 60  # idle measurement of the asyncio client
    backlog_n: int = 10000  # messages queued offline in the backlog benchmark (>= 1024)
    fleet_secs: int = 30  # seconds per fleet run (the fleet runs only when asked for)
    fleet_nodes: int = 50


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
QUICK = Plan(
    True, 1, 2000, 250, (1, 16), (1, 16), 64, 64, 300, 1000, 1000, 4, 16, 1, 10, 2048, 20, 10
)

# Areas of the table, in order, as --only names them: the issue-6 areas measured against
# one broker, then one area per issue module (tools/bench/b_*.py, tools/bench_aio.py).
CORE_AREAS = ("heap", "alloc", "code", "speed", "flash", "recovery", "minheap")
ISSUE_AREAS = ("aio", "budget", "backlog", "memory", "pico", "fleet")
AREAS = CORE_AREAS + ISSUE_AREAS
DEFAULT_AREAS = tuple(a for a in AREAS if a != "fleet")  # the fleet is slow: only on request
AREA_LABEL = {"minheap": "min heap"}  # the area column of the table, where it differs


def area_label(area: str) -> str:
    return AREA_LABEL.get(area, area)


@contextlib.contextmanager
def pinned(pids: Sequence[int | None], apart: bool = False) -> Iterator[int | None]:
    """This process (so every child it starts) and pids on one CPU for the block: a
    lockstep exchange between two processes swings 2-4x with where the scheduler puts
    them. apart: pids on another CPU of their own instead (as a node's broker runs on
    another machine). Yields this process's CPU, or None where affinity cannot be set
    (apart: or there is one CPU only)."""
    try:
        before = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        yield None
        return
    cpus = sorted(before)
    if apart and len(cpus) < 2:
        yield None
        return
    cpu = cpus[0]
    theirs = cpus[1] if apart else cpu
    others = {p: os.sched_getaffinity(p) for p in pids if p}
    try:
        os.sched_setaffinity(0, {cpu})
        for p in others:
            os.sched_setaffinity(p, {theirs})
        yield cpu
    finally:
        os.sched_setaffinity(0, before)
        for p, mask in others.items():
            with contextlib.suppress(OSError):
                os.sched_setaffinity(p, mask)


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
    firmware: Path | None = None,
) -> tuple[int, str]:
    """Run tools/bench/<script> on the unix port (firmware: another build of it, such as
    one with the library frozen); returns (exit code, output)."""
    mp = str(firmware) if firmware is not None else micropython_path()
    cmd = [mp, "-X", f"heapsize={heap}", str(BENCH_DIR / script)]
    cmd += [f"{k}={v}" for k, v in args.items()]
    work = cwd or RUN / "work"
    work.mkdir(parents=True, exist_ok=True)
    return run_killable(cmd, work, mp_env(path), timeout)


def run_killable(cmd: Sequence[str], cwd: Path, env: dict[str, str],
                 timeout: float) -> tuple[int, str]:
    """Run cmd in its own process group; on timeout kill the group and return -9."""
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
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


def run_host(
    res: Results,
    script: Path,
    argv: Sequence[str],
    prefix: str,
    timeout: float,
    env: dict[str, str] | None = None,
) -> int:
    """Run a host-side benchmark script (CPython) and file its "R"/"NA" lines; a script
    that fails or runs out of time marks prefix n/a. Returns the exit status."""
    e = dict(os.environ, **(env or {}))
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tools"), str(ROOT / "tests" / "host")])
    rc, out = run_killable([sys.executable, str(script), *argv], ROOT, e, timeout)
    res.log.append(f"$ {script.name} {' '.join(argv)}\n{out}")
    res.parse(out)
    if rc == -9:
        res.put_na(prefix, f"{script.name} did not finish in {timeout:.0f} s")
    elif rc != 0 and not any(k.startswith(prefix) for k in res.values):
        res.put_na(prefix, f"{script.name} failed: {last_error(out)}")
    return rc


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
