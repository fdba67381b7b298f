"""Benchmark rows of the asyncio client (tools/bench/b_aio.py on the unix port), measured
for the current client and, side by side, the client as it was before its rework (taken
from git at OLD_REV; n/a without git):

- aio[.old].gap.FAULT: largest gap (ms) of a 10 ms ticker task in the client's event loop
  during each fault: link reset, blackhole, stall, broker restart keeping and losing
  sessions, a second client connecting to a listener that never answers (its SYNs
  dropped), a byte-trickling link (10 bytes/s, a
  30-byte command in it);
- aio[.old].idle.wakeups_min, .idle.cpu_s, .idle.ctxsw_min: event-loop sleeps per minute,
  CPU seconds and voluntary context switches per minute over SECS idle seconds
  (connected, keepalive 60);
- aio[.old].restart.return_to_command_ms: from the broker listening again after a
  session-losing restart to the first command delivered (commands are published every
  20 ms from its return); aio.restart.connack_to_command_ms: the node's own view, from
  its CONNACK to that command.

    .venv/bin/python tools/bench_aio.py [--secs 60] [--only faults,idle,restart]

Prints "key value" rows; rows(secs) returns them for tools/bench.py.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "tests" / "host"))

if __name__ == "__main__":  # a system Python lacks the tools: run in .venv
    import usevenv

    usevenv.ensure(modules=("paho",), programs=("micropython", "mosquitto"))

from faultrig import FaultProxy  # noqa: E402
from harness import HOST, Broker, micropython_path, publish  # noqa: E402

OLD_REV = "b8a9209"  # the last commit with the polling asyncio client
SCRIPT = ROOT / "tools" / "bench" / "b_aio.py"
HEAP = "256k"
Rows = dict[str, float | str]


class Node:
    """b_aio.py in a MicroPython process: stdin for commands, stdout lines timestamped."""

    def __init__(self, lib: Path, work: Path, **args: object) -> None:
        env = dict(os.environ)
        env["MICROPYPATH"] = ":".join([".frozen", str(lib), str(SCRIPT.parent),
                                       str(ROOT / "boards" / "unix")])
        cmd = [micropython_path(), "-X", f"heapsize={HEAP}", str(SCRIPT)]
        cmd += [f"{k}={v}" for k, v in args.items()]
        self.p = subprocess.Popen(cmd, cwd=work, env=env, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        self.lines: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.p.stdout is not None
        for raw in self.p.stdout:
            with self._cond:
                self.lines.append((time.monotonic(), raw.decode(errors="replace").rstrip()))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def expect(self, word: str, timeout: float = 30, after: int = 0) -> tuple[float, str]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for t, ln in self.lines[after:]:
                    if ln.split()[:1] == [word]:
                        return t, ln
                left = deadline - time.monotonic()
                if left <= 0 or self.p.poll() is not None and not self._cond.wait(0.2):
                    out = "\n".join(ln for _, ln in self.lines[-15:])
                    raise RuntimeError(f"b_aio.py: no {word} line; output:\n{out}")
                self._cond.wait(min(left, 0.2))

    def say(self, line: str) -> None:
        assert self.p.stdin is not None
        self.p.stdin.write(line.encode() + b"\n")
        self.p.stdin.flush()

    def cpu(self) -> tuple[float, int]:
        """(CPU seconds, voluntary context switches) of the process so far."""
        stat = Path(f"/proc/{self.p.pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
        status = Path(f"/proc/{self.p.pid}/status").read_text()
        sw = next(int(ln.split()[1]) for ln in status.splitlines()
                  if ln.startswith("voluntary_ctxt_switches"))
        return cpu, sw

    def results(self, prefix: str) -> Rows:
        rows: Rows = {}
        with self._cond:
            for _, ln in self.lines:
                w = ln.split(None, 2)
                if len(w) == 3 and w[0] in ("R", "NA") and w[1].startswith("aio."):
                    key = prefix + w[1][3:]
                    rows[key] = float(w[2]) if w[0] == "R" else f"n/a: {w[2]}"
        return rows

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.p.pid, 9)
        self.p.wait()


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """A port whose listener never answers: its accept queue is full, so the kernel drops
    new SYNs (a connect hangs as towards a network that vanished)."""
    lst = socket.socket()
    lst.bind((HOST, 0))
    lst.listen(0)
    port = lst.getsockname()[1]
    fill = []
    for _ in range(2):
        s = socket.socket()
        s.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            s.connect((HOST, port))
        fill.append(s)
    try:
        yield port
    finally:
        for s in [*fill, lst]:
            s.close()


def faults(lib: Path, work: Path, prefix: str) -> Rows:
    b = Broker(work / "broker-f", persistence=True, verbose=False)
    try:
        with FaultProxy(HOST, b.port) as p:
            n = Node(lib, work, mode="faults", port=p.port)
            try:
                n.expect("READY")
                time.sleep(1)

                def mark(name: str) -> None:
                    k = len(n.lines)
                    n.say(f"mark {name}")
                    n.expect("MARKED", after=k)

                def hold(start: Callable[[], None], secs: float, settle: float) -> None:
                    start()
                    time.sleep(secs)
                    p.forward()
                    time.sleep(settle)

                def lose_sessions() -> None:
                    b.stop()
                    with contextlib.suppress(FileNotFoundError):
                        (b.persistence_dir / "mosquitto.db").unlink()
                    b.start()

                mark("base")
                hold(p.reset, 0, 2)
                mark("reset")
                hold(p.blackhole, 4, 2)
                mark("blackhole")
                hold(p.stall, 1.5, 1)
                mark("stall")
                hold(b.restart, 0, 2)
                mark("restart_kept")
                hold(lose_sessions, 0, 2)
                mark("restart_lost")
                with silent_listener() as port:
                    n.say(f"silent {port}")
                    time.sleep(4)
                    k = len(n.lines)
                    n.say("stop")
                    n.expect("STOPPED", after=k)
                mark("silent")
                def trickle() -> None:
                    p.throttle(10)
                    publish(HOST, b.port, "bench/t/cmd", b"x" * 20)

                hold(trickle, 5, 2)
                mark("trickle")
                n.say("quit")
                n.expect("DONE", 30)
                return n.results(prefix)
            finally:
                n.close()
    finally:
        b.close()


def idle(lib: Path, work: Path, prefix: str, secs: int) -> Rows:
    b = Broker(work / "broker-i", verbose=False)
    n = Node(lib, work, mode="idle", port=b.port, secs=secs)
    try:
        n.expect("READY")
        cpu0, sw0 = n.cpu()
        n.expect("END", secs + 30)
        cpu1, sw1 = n.cpu()
        n.expect("DONE")
        rows = n.results(prefix)
        rows[prefix + ".idle.cpu_s"] = round(cpu1 - cpu0, 3)
        rows[prefix + ".idle.ctxsw_min"] = round((sw1 - sw0) * 60 / secs, 1)
        return rows
    finally:
        n.close()
        b.close()


def restart(lib: Path, work: Path, prefix: str) -> Rows:
    b = Broker(work / "broker-r", verbose=False)  # no persistence: a restart loses sessions
    n = Node(lib, work, mode="restart", port=b.port, img="bench-aio.img")
    try:
        n.expect("READY")
        k = len(n.lines)
        b.stop()
        time.sleep(1)
        b.start()
        t0 = time.monotonic()
        got = None
        i = 0
        while got is None and time.monotonic() - t0 < 30:
            publish(HOST, b.port, "bench/t/cmd", f"c{i}", qos=1)
            i += 1
            with contextlib.suppress(RuntimeError):
                got = n.expect("GOT", 0.02, after=k)
        rows = n.results(prefix)
        if got is None:
            rows[prefix + ".restart"] = "n/a: no command arrived within 30 s"
            return rows
        rows[prefix + ".restart.return_to_command_ms"] = round((got[0] - t0) * 1000)
        ups = [ln for _, ln in n.lines[k:] if ln.startswith("UP ")]
        if ups:
            node_ms = int(got[1].split()[2]) - int(ups[-1].split()[1])
            rows[prefix + ".restart.connack_to_command_ms"] = node_ms
        n.say("done")
        return rows
    finally:
        n.close()
        b.close()


def old_lib(dest: Path) -> Path | None:
    """lib/ as it was at OLD_REV, or None without git."""
    git = shutil.which("git")
    if not git:
        return None
    r = subprocess.run([git, "-C", str(ROOT), "archive", OLD_REV, "lib"], capture_output=True,
                       check=False)
    if r.returncode:
        return None
    subprocess.run(["tar", "-x", "-C", str(dest)], input=r.stdout, check=True)
    return dest / "lib"


def rows(secs: int = 60, only: tuple[str, ...] = ("faults", "idle", "restart")) -> Rows:
    out: Rows = {}
    with tempfile.TemporaryDirectory(prefix="bench-aio-") as tmp:
        work = Path(tmp)
        (work / "old").mkdir()
        libs: list[tuple[str, Path | None]] = [("aio", ROOT / "lib"),
                                               ("aio.old", old_lib(work / "old"))]
        for prefix, lib in libs:
            for what in only:
                if lib is None:
                    out[f"{prefix}.{what}"] = f"n/a: no git to take lib/ at {OLD_REV}"
                    continue
                try:
                    if what == "faults":
                        out.update(faults(lib, work, prefix))
                    elif what == "idle":
                        out.update(idle(lib, work, prefix, secs))
                    else:
                        out.update(restart(lib, work, prefix))
                except RuntimeError as e:
                    out[f"{prefix}.{what}"] = f"n/a: {str(e).splitlines()[0]}"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--secs", type=int, default=60, help="idle measurement, seconds")
    ap.add_argument("--only", default="faults,idle,restart")
    a = ap.parse_args()
    for k, v in rows(a.secs, tuple(a.only.split(","))).items():
        print(f"{k:45} {v}")


if __name__ == "__main__":
    main()
