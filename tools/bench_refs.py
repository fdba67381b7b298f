"""Benchmark measurements made outside the bench scripts' own loop: the host-side references
(paho-mqtt, mosquitto_pub, mosquitto_sub), recovery through the fault rig and the smallest
heap a node runs in."""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import subprocess
import threading
import time
from typing import IO

from bench_setup import (
    BENCH_DIR,
    HEAP,
    HOST,
    PAYLOAD,
    RUN,
    TOPIC,
    Lib,
    last_error,
    micropython_path,
    mp_env,
    run_mp,
)

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
