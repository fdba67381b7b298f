"""Two versions of the library side by side in one run: throughput against the bare-socket
floor, the backlog drain, or instructions per published message, with one mosquitto and
everything pinned to one CPU.

    .venv/bin/python tools/bench_ab.py speed --before eae1200 --rounds 5
    .venv/bin/python tools/bench_ab.py backlog --before eae1200 --rounds 3
    .venv/bin/python tools/bench_ab.py backlog --mount mtime=0 --rounds 3
    .venv/bin/python tools/bench_ab.py instr --before eae1200 --rounds 1

instr counts machine instructions with valgrind's callgrind, which a busy machine does not
disturb the way it disturbs time: b_speed.py runs once publishing nothing and once
publishing --msgs messages (QoS 1 at window 1 and 16, QoS 0), and the difference divided
by --msgs is the cost of one message. (Still not exact: whether an acknowledgement has
arrived by the time the client looks depends on timing, and the paths differ.)

"before" is lib/ at a git revision (extracted with git archive), "after" is lib/ in this
tree; both compiled with mpy-cross -O2 and run by the benchmark's own scripts
(tools/bench/b_speed.py, b_floor.py, b_backlog.py), interleaved in every round. Prints
every figure's median and, for speed, QoS 1 window 1 and 16 as shares of the floor.
backlog --mount runs this tree's lib/ twice instead, on the ports' mount ("port") and on a
mount with the given b_backlog.py settings ("mount": e.g. mtime=0, read=256).
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "tests" / "host"))

if __name__ == "__main__":  # a system Python lacks the tools: run in .venv
    import usevenv

    usevenv.ensure(modules=("paho",), programs=("micropython", "mpy-cross", "mosquitto"))

import mpy  # noqa: E402
from bench_setup import micropython_path  # noqa: E402
from harness_broker import Broker  # noqa: E402

BENCH = ROOT / "tools" / "bench"
BOARD = ROOT / "boards" / "unix"


def compile_lib(src: Path, out: Path) -> Path:
    tool = mpy.mpy_cross()
    for f in src.rglob("*.py"):
        rel = f.relative_to(src)
        dst = (out / rel).with_suffix(".mpy")
        dst.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([tool, "-O2", "-s", rel.as_posix(), "-o", str(dst), str(f)], check=True)
    return out


def lib_at(rev: str, dest: Path) -> Path:
    raw = subprocess.run(["git", "archive", rev, "lib"], cwd=ROOT, check=True,
                         capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(raw)) as t:
        t.extractall(dest, filter="data")
    return dest / "lib"


def run(script: str, args: dict[str, object], path: Path, work: Path) -> dict[str, float]:
    env = dict(os.environ, MICROPYPATH=":".join([str(path), str(BENCH), str(BOARD)]))
    cmd = [micropython_path(), "-X", "heapsize=256k", str(BENCH / script)]
    cmd += [f"{k}={v}" for k, v in args.items()]
    p = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=900)
    if "DONE" not in p.stdout:
        print(f"{script} failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}", file=sys.stderr)
    got = {}
    for line in p.stdout.splitlines():
        m = re.match(r"R (\S+) (\S+)", line)
        if m:
            got[m.group(1)] = float(m.group(2))
    return got


def instructions(args: dict[str, object], path: Path, work: Path) -> int | None:
    # instructions callgrind counts for one run of b_speed.py (None: the run failed)
    env = dict(os.environ, MICROPYPATH=":".join([str(path), str(BENCH), str(BOARD)]))
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
           micropython_path(), "-X", "heapsize=256k", str(BENCH / "b_speed.py")]
    cmd += [f"{k}={v}" for k, v in args.items()]
    p = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=1800)
    m = re.search(r"Collected : (\d+)", p.stderr)
    if "DONE" not in p.stdout or not m:
        print(f"b_speed.py under callgrind failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}",
              file=sys.stderr)
        return None
    return int(m.group(1))


def per_message(port: int, lib: Path, work: Path, msgs: int) -> dict[str, float]:
    # instructions per message for each row, from a run with no messages and one with msgs
    got = {}
    for w, q in ((1, 1), (16, 1), (1, 0)):
        args: dict[str, object] = {"port": port, "budget_ms": 10**8, "lib": "ms",
                                   "windows": w, "qos": q, "recv": ""}
        base = instructions(dict(args, n=0), lib, work)
        full = instructions(dict(args, n=msgs), lib, work)
        if base is not None and full is not None:
            got[f"instr.q{q}.w{w}"] = (full - base) / msgs
    return got


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["speed", "backlog", "instr"])
    ap.add_argument("--before", help="git revision of the earlier lib/")
    ap.add_argument("--mount", help="backlog: this lib/ on the ports' mount and on one with "
                    "these b_backlog.py settings (e.g. 'mtime=0' or 'read=256 mtime=0')")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--n", type=int, default=10000, help="backlog: messages queued")
    ap.add_argument("--msgs", type=int, default=5000,
                    help="instr: messages of the measured run (a multiple of 8)")
    a = ap.parse_args(argv)
    if (a.before is None) == (a.mount is None) or (a.mount and a.what != "backlog"):
        ap.error("give --before, or --mount with backlog")
    extra = dict(kv.split("=", 1) for kv in (a.mount or "").split())
    if a.what == "instr" and shutil.which("valgrind") is None:
        print("instr needs valgrind, which make test does not install: "
              "sudo apt-get install -y valgrind", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        work = tmp / "work"
        work.mkdir()
        after = compile_lib(ROOT / "lib", tmp / "after")
        if a.mount:  # one library, two mounts: each arm's b_backlog.py settings
            libs = {"port": after, "mount": after}
        else:
            libs = {"before": compile_lib(lib_at(a.before, tmp / "src-before"),
                                          tmp / "before"), "after": after}
        acc: dict[str, list[float]] = {}
        with Broker(verbose=False, extra=["set_tcp_nodelay true"]) as br:
            before = os.sched_getaffinity(0)
            cpu = max(before)
            os.sched_setaffinity(0, {cpu})
            os.sched_setaffinity(br.pid, {cpu})
            try:
                for _ in range(a.rounds):
                    for name, lib in libs.items():
                        if a.what == "instr":
                            for k, v in per_message(br.port, lib, work, a.msgs).items():
                                acc.setdefault(f"{name}:{k}", []).append(v)
                        elif a.what == "speed":
                            args: dict[str, object] = {
                                "port": br.port, "n": 50000, "budget_ms": 1000, "lib": "ms",
                                "windows": "1,16", "qos": "0,1", "recv": ""}
                            for k, v in run("b_speed.py", args, lib, work).items():
                                acc.setdefault(f"{name}:{k}", []).append(v)
                        else:
                            for prog in (32, 256):
                                args = {"port": br.port, "prog": prog, "n": a.n,
                                        "img": f"ab-{prog}.img",
                                        **(extra if name == "mount" else {})}
                                for k, v in run("b_backlog.py", args, lib, work).items():
                                    # (the mount's tag dropped: both arms' keys alike)
                                    k = re.sub(r"^(backlog\.p\d+)(\.r\d+)?(\.m0)?\.", r"\1.", k)
                                    acc.setdefault(f"{name}:{k}", []).append(v)
                    if a.what == "speed":
                        args = {"port": br.port, "n": 50000, "budget_ms": 1000, "window": 16}
                        for k, v in run("b_floor.py", args, BENCH, work).items():
                            acc.setdefault(f"floor:{k}", []).append(v)
            finally:
                os.sched_setaffinity(0, before)
    for k in sorted(acc):
        vals = ", ".join(f"{x:.3f}" for x in acc[k])
        print(f"{k:50s} median {statistics.median(acc[k]):12.3f}  ({vals})")
    if a.what == "speed" and "floor:floor.q1.w1" in acc:
        f1 = statistics.median(acc["floor:floor.q1.w1"])
        f16 = statistics.median(acc["floor:floor.q1.w16"])
        for name in libs:
            w1 = acc.get(f"{name}:tput.ms.pub.q1.w1")
            w16 = acc.get(f"{name}:tput.ms.pub.q1.w16")
            if w1 and w16:
                print(f"{name}: QoS 1 window 1 / stop-and-wait floor = "
                      f"{statistics.median(w1) / f1:.3f}; window 16 / floor window 16 = "
                      f"{statistics.median(w16) / f16:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
