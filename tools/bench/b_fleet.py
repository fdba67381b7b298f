"""A fleet on one broker: N virtual nodes (unix-port processes, each with its own littlefs
store) publish QoS 1 and 2 to one mosquitto with persistence while the broker is restarted
twice and nodes are power-cut (SIGKILL) at random. Checks that every message a node's
publish() accepted arrives (0 lost) and no QoS 2 message arrives twice, and measures the
reconnection herd after each broker restart: peak connects in any 1 s and any 100 ms.

    python3 tools/bench/b_fleet.py --duration 60        # quick (about 2.5 minutes)
    python3 tools/bench/b_fleet.py --duration 300       # for the record

Runs the fleet once per --jitter value (default: 0 and the keeper's default 0.25), each for
--duration seconds. Prints "R key value" lines like tools/bench.py; exit status 1 when a
message was lost or a QoS 2 message duplicated.
"""

from __future__ import annotations

import argparse
import bisect
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "host"))
sys.path.insert(0, str(REPO / "tools"))

if __name__ == "__main__":  # a system Python lacks the tools: run in .venv
    import usevenv

    usevenv.ensure(modules=("paho",), programs=("micropython", "mosquitto"))

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from harness import Broker, micropython_path  # noqa: E402

MP_PATH = [".frozen", str(REPO / "lib"), str(HERE), str(REPO / "boards" / "unix")]


@dataclass
class Node:
    """One virtual node; restarted with the same image after a power cut (boot + 1)."""

    nid: int
    workdir: Path
    host: str
    port: int
    jitter: float
    period: int
    events: list[tuple[float, int, str]]  # (time, node, line): shared, appended under lock
    lock: threading.Lock
    boot: int = -1
    accepted: set[str] = field(default_factory=set)
    proc: subprocess.Popen[bytes] | None = None
    done: bool = False

    def start(self) -> None:
        self.boot += 1
        args = {"id": self.nid, "host": self.host, "port": self.port, "boot": self.boot,
                "img": str(self.workdir / "flash.img"), "period": self.period,
                "jitter": self.jitter, "stop": str(self.workdir.parent / "stop")}
        env = dict(os.environ, MICROPYPATH=":".join(MP_PATH))
        self.proc = subprocess.Popen(
            [micropython_path(), "-X", "heapsize=512k", str(HERE / "b_fleet_node.py"),
             *(f"{k}={v}" for k, v in args.items())],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            cwd=self.workdir, env=env, start_new_session=True,
        )
        threading.Thread(target=self._read, args=(self.proc, self.boot), daemon=True).start()

    def _read(self, proc: subprocess.Popen[bytes], boot: int) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode(errors="replace").strip()
            now = time.monotonic()
            if line.startswith("A "):
                self.accepted.add(f"{self.nid}:{boot}:{line[2:]}")
            elif line.startswith("DONE"):
                self.done = line == "DONE 0"
            with self.lock:
                self.events.append((now, self.nid, line))

    def power_cut(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def wait(self, timeout: float) -> bool:
        if self.proc is None:
            return True
        try:
            self.proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            self.power_cut()
            return False


class Collector:
    """A paho subscriber to fleet/# at QoS 2 in a persistent session: the broker keeps its
    messages across the restarts (persistence on), paho reconnects by itself."""

    def __init__(self, host: str, port: int) -> None:
        self.got: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"fleet-sink-{os.getpid()}",
                             clean_session=False)
        self.c.on_connect = lambda c, u, f, rc, p: c.subscribe("fleet/#", 2)
        self.c.on_subscribe = lambda *a: self.ready.set()
        self.c.on_message = self._on_message
        self.c.reconnect_delay_set(0.2, 2)
        self.c.connect(host, port, keepalive=10)
        self.c.loop_start()
        if not self.ready.wait(10):
            raise RuntimeError("collector could not subscribe")

    def _on_message(self, c: mqtt.Client, u: Any, m: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.got[m.payload.decode()] += 1

    def stop(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def peak(times: list[float], width: float) -> int:
    """Most events in any window of width seconds."""
    times = sorted(times)
    return max((bisect.bisect_right(times, t + width) - i for i, t in enumerate(times)), default=0)


def run(n: int, duration: float, jitter: float, kills: int, period: int, seed: int,
        out: dict[str, Any]) -> bool:
    rnd = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="mqs-fleet-"))
    broker = Broker(work / "broker", persistence=True, verbose=False,
                    extra=["max_queued_messages 100000", "set_tcp_nodelay true"])
    events: list[tuple[float, int, str]] = []
    lock = threading.Lock()
    nodes = []
    for i in range(n):
        (work / f"n{i}").mkdir()
        nodes.append(Node(i, work / f"n{i}", broker.host, broker.port, jitter, period, events,
                          lock))
    sink = Collector(broker.host, broker.port)
    tag = f"j{jitter:g}"
    try:
        for nd in nodes:
            nd.start()
        t0 = time.monotonic()
        # the plan: broker restarts at 1/3 and 2/3, power cuts spread at random in between
        plan = [(duration / 3, "restart", -1), (2 * duration / 3, "restart", -1)]
        plan += [(rnd.uniform(0.1, 0.95) * duration, "cut", rnd.randrange(n))
                 for _ in range(kills)]
        plan.sort()
        restarts: list[float] = []
        cuts = 0
        for at, what, which in plan:
            time.sleep(max(0.0, t0 + at - time.monotonic()))
            if what == "restart":
                broker.restart()
                restarts.append(time.monotonic())
            else:
                nodes[which].power_cut()
                time.sleep(rnd.uniform(0.2, 1.5))  # the node is off for a moment
                nodes[which].start()
                cuts += 1
        time.sleep(max(0.0, t0 + duration - time.monotonic()))
        (work / "stop").touch()
        drained = all([nd.wait(60) for nd in nodes]) and all(nd.done for nd in nodes)
        time.sleep(2)  # the last deliveries to the collector
        with sink.lock:
            got = Counter(sink.got)
        accepted = set().union(*(nd.accepted for nd in nodes))
        lost = sorted(accepted - set(got))
        dup2 = sorted(p for p, k in got.items() if k > 1 and int(p.rsplit(":", 1)[1]) % 2)
        dup1 = sum(k - 1 for p, k in got.items() if k > 1 and not int(p.rsplit(":", 1)[1]) % 2)
        ups = [(t, i) for t, i, line in events if line == "UP"]
        out[f"fleet.{tag}.nodes"] = n
        out[f"fleet.{tag}.duration_s"] = duration
        out[f"fleet.{tag}.accepted"] = len(accepted)
        out[f"fleet.{tag}.delivered"] = sum(got.values())
        out[f"fleet.{tag}.lost"] = len(lost)
        out[f"fleet.{tag}.qos2_duplicates"] = len(dup2)
        out[f"fleet.{tag}.qos1_duplicates"] = dup1
        out[f"fleet.{tag}.power_cuts"] = cuts
        out[f"fleet.{tag}.drained"] = int(drained)
        for k, r in enumerate(restarts):
            # the herd: each node's first connect after the restart (before the next one)
            end = restarts[k + 1] if k + 1 < len(restarts) else r + 30
            first: dict[int, float] = {}
            for t, i in ups:
                if r <= t < end and i not in first:
                    first[i] = t - r
            after = list(first.values())
            out[f"fleet.{tag}.restart{k + 1}.reconnected"] = len(after)
            out[f"fleet.{tag}.restart{k + 1}.peak_connects_1s"] = peak(after, 1.0)
            out[f"fleet.{tag}.restart{k + 1}.peak_connects_100ms"] = peak(after, 0.1)
            out[f"fleet.{tag}.restart{k + 1}.all_back_s"] = round(max(after, default=0), 3)
        errors = [f"node {i}: {line}" for _, i, line in events if "Error" in line]
        out[f"fleet.{tag}.node_errors"] = len(errors)
        for e in errors[:5]:
            print(f"# {e}", file=sys.stderr)
        if lost:
            print(f"# lost (first 10): {lost[:10]}", file=sys.stderr)
        if dup2:
            print(f"# QoS 2 duplicates (first 10): {dup2[:10]}", file=sys.stderr)
        return not lost and not dup2 and drained and not errors
    finally:
        for nd in nodes:
            nd.power_cut()
        sink.stop()
        broker.close()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=50)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds per run (300 for "
                    "the record)")
    ap.add_argument("--jitter", default="0,0.25", help="reconnect jitter per run, comma-"
                    "separated (Link(jitter=...))")
    ap.add_argument("--kills", type=int, default=0, help="power cuts per run (default: "
                    "one per 5 s of duration)")
    ap.add_argument("--period", type=int, default=500, help="ms between a node's messages")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    if a.nodes < 1 or a.duration < 6:
        ap.error("--nodes must be >= 1 and --duration >= 6")
    kills = a.kills or int(a.duration / 5)
    ok = True
    for j in (float(x) for x in a.jitter.split(",") if x):
        out: dict[str, Any] = {}
        ok &= run(a.nodes, a.duration, j, kills, a.period, a.seed, out)
        for k, v in out.items():
            print("R", k, v, flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
