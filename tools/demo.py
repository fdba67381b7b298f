"""The demo: a virtual sensor node rides through link faults and power cuts.

    python tools/demo.py                      # the full scenario, about 75 s
    python tools/demo.py --quick              # a short one, about 25 s
    python tools/demo.py --seconds 120 --json build/demo/summary.json

It builds the library's .mpy files (its own copy, in build/demo/mpy), starts mosquitto with
persistence on a free loopback port, the fault rig (tools/faultrig.py) in front of it, a paho
observer with a persistent session subscribed at QoS 2, and the node (tools/demo_node.py) on
the MicroPython unix port with a littlefs image and an ESP32-sized heap. Then it plays a
scripted scenario: a TCP reset, a silent blackhole (half-open link), Wi-Fi down and up
through the virtual board, a broker restart, a stall, and power cuts (the node killed and
started again on the same image), one while it delivers a backlog and, in the full
scenario, one in the middle of an outage. A status line shows the node's link state and
counters as it goes. At the end the node drains its backlog and the demo prints a report:
published, delivered, lost (must be 0), duplicates at QoS 2 (must be 0) and at QoS 1, the
longest outage ridden through, half-open detection time against the keepalive, time from
link return to backlog delivered and the delivery rate while draining. It writes a
timeline picture (build/demo/timeline.html), the node's output with host timestamps
(node.log), the fault rig's timeline (faultrig.log) and, with --json, a summary for tests.

Exit status: 0 when nothing was lost, no QoS 2 message was delivered twice, the node never
crashed and its backlog drained; 1 otherwise; 2 when the demo itself could not run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(1, str(ROOT / "tests" / "host"))

import demo_timeline  # noqa: E402
import mpy  # noqa: E402
from faultrig import FaultProxy  # noqa: E402
from harness import Broker, micropython_path  # noqa: E402
from vboard import ESP32_FREE_KIB, ESP32_HEAP, ESP32_PROG  # noqa: E402

NODE_SCRIPT = ROOT / "tools" / "demo_node.py"
DEFAULT_OUT = ROOT / "build" / "demo"
MARKER = ".mqttsession-demo"  # marks a directory the demo may empty
HOST = "127.0.0.1"
PREFIX = "demo"
KEEPALIVE = 4  # seconds: short, so a half-open link is found within 1.5 x 4 s
RATE_MS = 100  # one reading every 100 ms
WINDOW = 8
FAULT_KINDS = ("reset", "blackhole", "wifi", "broker", "stall", "power")
FAULT_NAMES = {
    "reset": "TCP reset",
    "blackhole": "silent blackhole (half-open)",
    "wifi": "Wi-Fi down",
    "broker": "broker restart",
    "stall": "stall",
    "power": "power cut",
}


def now() -> float:
    return time.monotonic()


# --------------------------------------------------------------------------------------
# The node process


@dataclass
class Accepted:
    ident: str
    t: float
    qos: int
    n: int
    boot: int


class Node:
    """The MicroPython node process; its output parsed into timestamped events."""

    def __init__(self, out: Path, port: int, t0: float, log: TextIO, mpy_dir: Path) -> None:
        self.out = out
        self.mpy = mpy_dir
        self.workdir = out / "node"
        self.image = out / "flash.img"
        self.wifi = out / "wifi.ctl"
        self.stop_file = self.workdir / "stop"
        self.t0 = t0
        self.log = log
        self.lock = threading.Lock()
        self.proc: subprocess.Popen[bytes] | None = None
        self.reader: threading.Thread | None = None
        self.expected_exit = False
        self.accepted: dict[str, Accepted] = {}
        self.refused: list[tuple[float, str, int]] = []
        self.link: list[tuple[float, bool]] = []  # (t, up)
        self.queue: list[tuple[float, int]] = []  # (t, queued)
        self.boots: list[tuple[float, int, int]] = []  # (t, boot, pending at boot)
        self.kills: list[float] = []
        self.kill_t: float | None = None  # lines read after a kill were printed before it
        self.crashes: list[tuple[float, int | None, str]] = []
        self.status: dict[str, int | str] = {}
        self.sent_total = 0  # accepted in earlier boots, plus the current boot's count
        self.acked_total = 0
        self._boot_sent = 0
        self._boot_acked = 0
        self.node_longest_ms = 0
        self.min_free: int | None = None
        self.skipped_total = 0
        self._boot_skipped = 0
        self.longest_block_ms = 0
        self.heap_after_setup: int | None = None
        self.drained: tuple[float, int, int] | None = None  # (t, pending, ms)
        self.other: list[str] = []
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "democfg.py").write_text(
            "".join(
                f"{k} = {v!r}\n"
                for k, v in {
                    "HOST": HOST,
                    "PORT": port,
                    "RATE_MS": RATE_MS,
                    "KEEPALIVE": KEEPALIVE,
                    "WINDOW": WINDOW,
                    "QUEUE": 300,
                    "STORE_BYTES": 65536,
                    "TIMEOUT": 3,
                    "WIFI_MS": 500,
                    "PREFIX": PREFIX,
                    "STOP_FILE": str(self.stop_file),
                    "DRAIN_MS": 30000,
                }.items()
            )
        )
        self.wifi.write_text("up\n")

    def rel(self) -> float:
        return now() - self.t0

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["MICROPYPATH"] = ":".join(
            [str(self.workdir), ".frozen", str(self.mpy), str(ROOT / "boards" / "unix")]
        )
        env["MQTTS_IMAGE"] = str(self.image)
        env["MQTTS_WIFI"] = str(self.wifi)
        env["MQTTS_PROG"] = str(ESP32_PROG)
        env["MQTTS_BLOCKS"] = "256"
        return env

    def start(self) -> None:
        self.expected_exit = False
        self.kill_t = None
        self.proc = subprocess.Popen(
            [micropython_path(), "-X", f"heapsize={ESP32_HEAP}", str(NODE_SCRIPT)],
            cwd=self.workdir,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self.reader.start()

    def kill(self) -> None:
        """SIGKILL: a power cut. The image stays as flash would."""
        proc = self.proc
        if proc is None:
            return
        self.expected_exit = True
        if proc.poll() is not None:
            return
        t = self.kill_t = self.rel()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if self.reader is not None:
            self.reader.join(5)
        with self.lock:
            self.kills.append(t)
            if self.link and self.link[-1][1]:
                self.link.append((t, False))
            self._end_boot()

    def _end_boot(self) -> None:
        self.sent_total += self._boot_sent
        self.acked_total += self._boot_acked
        self.skipped_total += self._boot_skipped
        self._boot_sent = self._boot_acked = self._boot_skipped = 0

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            t = self.rel()
            if self.kill_t is not None:
                t = min(t, self.kill_t)
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            self.log.write(f"{t:9.3f} {line}\n")
            with self.lock:
                self._parse(t, line)
        self.log.flush()

    def _parse(self, t: float, line: str) -> None:
        w = line.split()
        if not w:
            return
        kind = w[0]
        try:
            if kind == "ACCEPTED":
                ident = w[1]
                self.accepted[ident] = Accepted(
                    ident, t, int(w[2]), int(w[3]), int(ident.split("/")[0])
                )
            elif kind == "STATUS":
                st: dict[str, int | str] = {}
                for item in w[1:]:
                    k, _, v = item.partition("=")
                    st[k] = v if k == "link" else int(v)
                self.status = st
                self.queue.append((t, int(st["queued"])))
                self._boot_sent = int(st["sent"])
                self._boot_acked = int(st["acked"])
                self.node_longest_ms = max(self.node_longest_ms, int(st["longest"]))
                self._boot_skipped = int(st["skipped"])
                self.longest_block_ms = max(self.longest_block_ms, int(st["block"]))
                free = int(st["free"])
                self.min_free = free if self.min_free is None else min(self.min_free, free)
            elif kind == "LINK":
                self.link.append((t, w[1] == "up"))
            elif kind == "BOOT":
                self.boots.append((t, int(w[1]), int(w[3])))
                self.queue.append((t, int(w[3])))
            elif kind == "HEAP":
                self.heap_after_setup = int(w[1])
            elif kind == "REFUSED":
                self.refused.append((t, w[1], int(w[3])))
            elif kind == "DRAINED":
                self.drained = (t, int(w[1]), int(w[2]))
            else:
                self.other.append(line)
        except (IndexError, ValueError, KeyError):
            self.other.append(line)

    def check_crash(self, restart: bool = True) -> str | None:
        """If the node ended on its own (not killed, not drained), say how, and restart it
        as a board's watchdog would."""
        proc = self.proc
        if proc is None or proc.poll() is None or self.expected_exit:
            return None
        if self.reader is not None:
            self.reader.join(5)
        with self.lock:
            if self.drained is not None:
                return None
            tail = "\n".join(self.other[-15:])
            self.crashes.append((self.rel(), proc.returncode, tail))
            self._end_boot()
            if self.link and self.link[-1][1]:
                self.link.append((self.rel(), False))
        if restart:
            self.start()
        return f"node exited with {proc.returncode}{'; restarted' if restart else ''}:\n{tail}"

    def was_up(self, t: float) -> bool:
        """The node's link state at time t (down while powered off)."""
        with self.lock:
            state = False
            for te, up in self.link:
                if te > t:
                    break
                state = up
            return state

    def is_up(self) -> bool:
        with self.lock:
            return bool(self.link) and self.link[-1][1]

    def link_event_after(self, t: float, up: bool) -> float | None:
        with self.lock:
            for te, u in self.link:
                if te >= t and u == up:
                    return te
        return None

    def skipped(self) -> int:
        with self.lock:
            return self.skipped_total + self._boot_skipped

    def totals(self) -> tuple[int, int]:
        with self.lock:
            return self.sent_total + self._boot_sent, self.acked_total + self._boot_acked

    def set_wifi(self, up: bool) -> None:
        self.wifi.write_text("up\n" if up else "down\n")


# --------------------------------------------------------------------------------------
# The observer: a paho client with a persistent session, directly on the broker


@dataclass
class Delivery:
    t: float
    ident: str
    qos: int  # of the reading (from its payload)
    rx_qos: int  # as delivered
    dup: bool


class Observer:
    def __init__(self, port: int, t0: float) -> None:
        self.t0 = t0
        self.lock = threading.Lock()
        self.deliveries: list[Delivery] = []
        self.bad: list[str] = []
        self.connects = 0
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"demo-observer-{os.getpid()}",
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        self.client.reconnect_delay_set(1, 2)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.connect(HOST, port, keepalive=10)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            self.stop()
            raise RuntimeError("observer could not subscribe")

    def _on_connect(self, client: mqtt.Client, ud: Any, flags: Any, rc: Any, props: Any) -> None:
        if not rc.is_failure:
            self.connects += 1
            client.subscribe(f"{PREFIX}/#", qos=2)

    def _on_subscribe(self, client: mqtt.Client, ud: Any, mid: int, rcs: Any, props: Any) -> None:
        if not any(rc.is_failure for rc in rcs):
            self._subscribed.set()

    def _on_message(self, client: mqtt.Client, ud: Any, m: mqtt.MQTTMessage) -> None:
        t = now() - self.t0
        w = bytes(m.payload).decode("utf-8", errors="replace").split()
        with self.lock:
            try:
                qos = int(w[3])
                ident = f"{int(w[0])}/{int(w[1])}"
            except (IndexError, ValueError):
                self.bad.append(f"{m.topic} {m.payload!r}")
                return
            if not m.topic.endswith(f"/q{qos}"):
                self.bad.append(f"{m.topic} {m.payload!r}")
            self.deliveries.append(Delivery(t, ident, qos, m.qos, bool(m.dup)))

    def seen(self) -> set[str]:
        with self.lock:
            return {d.ident for d in self.deliveries}

    def count(self) -> int:
        with self.lock:
            return len(self.deliveries)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.client.disconnect()
        self.client.loop_stop()


# --------------------------------------------------------------------------------------
# Faults and the live status line


@dataclass
class Fault:
    kind: str
    label: str
    start: float
    end: float | None = None  # network (or power) back
    note: str = ""
    # filled in by the analysis
    detect_s: float | None = None  # fault start -> node saw the link down
    reconnect_s: float | None = None  # fault end -> node's link up
    backlog: int = 0  # readings accepted before the link returned, delivered after the cut
    drain_s: float | None = None  # link up -> backlog delivered
    drain_rate: float | None = None  # deliveries per second during that drain
    rode_through: bool = False  # the node never lost the link
    inside: bool = False  # happened during another fault (measured as part of that one)
    already_down: bool = False  # the link was down when it began
    drain_cut: bool = False  # a power cut ended its drain on purpose (not measured)

    @property
    def happened(self) -> bool:
        return self.end is not None


class Status:
    """The live status line: in place on a terminal, a plain line every few seconds else."""

    def __init__(self, stream: TextIO, quiet: bool = False) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.quiet = quiet
        self.last_plain = -10.0
        self.shown = False

    def say(self, t: float, text: str) -> None:
        if self.tty and self.shown:
            self.stream.write("\r\x1b[K")
        self.stream.write(f"[{t:6.1f}s] {text}\n")
        self.stream.flush()
        self.shown = False

    def update(self, t: float, text: str) -> None:
        if self.quiet:
            return
        if self.tty:
            self.stream.write(f"\r\x1b[K{text}")
            self.stream.flush()
            self.shown = True
        elif t - self.last_plain >= 3.0:
            self.stream.write(text + "\n")
            self.stream.flush()
            self.last_plain = t

    def done(self) -> None:
        if self.tty and self.shown:
            self.stream.write("\n")
            self.stream.flush()
            self.shown = False


# --------------------------------------------------------------------------------------
# The demo


@dataclass
class Plan:
    """Hold times (seconds) of the scenario's steps."""

    gap: float
    settle: float
    blackhole_extra: float
    wifi: float
    broker: float
    stall: float
    power: float
    power_wifi: float  # the outage whose drain the power cut interrupts
    outage_power: bool  # a second power cut in the middle of a Wi-Fi outage

    @staticmethod
    def make(seconds: float, quick: bool) -> Plan:
        # busy: the faults' hold times plus the node's usual reconnect after each
        if quick:
            # the stall is shorter than the keepalive: the node rides through it
            p = Plan(gap=0, settle=1.5, blackhole_extra=0.0, wifi=2.5, broker=2.0, stall=2.5,
                     power=1.0, power_wifi=1.5, outage_power=False)
            busy = 6.0 + (2.5 + 1.0) + (2.0 + 1.0) + 2.5 + (1.5 + 0.5 + 1.0 + 0.5)
            steps, least = 6, 0.5
        else:
            # the stall outlasts 1.5 x keepalive: the node drops it and reconnects; after the
            # blackhole the node's first reconnect runs into it and times out
            p = Plan(gap=0, settle=3.0, blackhole_extra=1.0, wifi=6.0, broker=4.0, stall=8.0,
                     power=2.0, power_wifi=3.0, outage_power=True)
            busy = (7.0 + 3.0) + (6.0 + 2.0) + (4.0 + 1.0) + (8.0 + 1.0) + (3.0 + 1.0 + 2.0 + 0.5)
            busy += 8.5
            steps, least = 7, 1.0
        p.gap = max(least, (seconds - p.settle - busy) / steps)
        return p


@dataclass
class Summary:
    ok: bool = False
    seconds: float = 0.0
    published: int = 0
    published_q1: int = 0
    published_q2: int = 0
    refused: int = 0
    delivered: int = 0
    delivered_unaccepted: int = 0
    lost: int = 0
    lost_ids: list[str] = field(default_factory=list)
    duplicates_q1: int = 0
    duplicates_q2: int = 0
    order_violations: int = 0
    reused_numbers: int = 0
    boots: int = 0
    power_cuts: int = 0
    crashes: int = 0
    drained: bool = False
    pending_at_end: int | None = None
    longest_outage_s: float = 0.0
    longest_outage_node_s: float = 0.0
    keepalive_s: int = KEEPALIVE
    halfopen_detect_s: float | None = None
    halfopen_ratio: float | None = None
    link_return_to_delivered_s: float | None = None
    drain_rate_per_s: float | None = None
    drain_backlog: int = 0
    drain_fault: str = ""
    drain_reconnect_s: float | None = None
    skipped: int = 0
    longest_block_s: float = 0.0
    store_reports: list[str] = field(default_factory=list)
    heap_free_after_setup: int | None = None
    heap_free_min: int | None = None
    heap_board_kib: int = ESP32_FREE_KIB
    faults: list[dict[str, Any]] = field(default_factory=list)
    kinds: dict[str, bool] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    timeline: str = ""


class Demo:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out: Path = args.out
        self.mpy = self.out / "mpy"
        self.plan = Plan.make(args.seconds, args.quick)
        self.status = Status(sys.stdout, quiet=args.no_status)
        self.faults: list[Fault] = []
        self.current: Fault | None = None
        self.t0 = now()
        self.deadline = self.t0 + args.seconds * 2 + 120  # a bound on the whole run
        self.broker: Broker | None = None
        self.proxy: FaultProxy | None = None
        self.observer: Observer | None = None
        self.node: Node | None = None
        self.log: TextIO | None = None
        self.problems: list[str] = []
        self.finishing = False  # the node was asked to drain and end
        self._last_tick = 0.0

    def rel(self) -> float:
        return now() - self.t0

    # -- set-up and tear-down

    def setup(self) -> None:
        if self.out.exists() and any(self.out.iterdir()):
            if self.out != DEFAULT_OUT and not (self.out / MARKER).exists():
                raise RuntimeError(f"{self.out} is not empty and not a demo directory; "
                                   "give --out a new or empty directory")
            shutil.rmtree(self.out)
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / MARKER).write_text("made by tools/demo.py; removed by its next run\n")
        # the node's own copy: a rebuild of build/mpy during the run cannot change the
        # library under a node that boots again after a power cut
        rows = mpy.compile_all(out=self.mpy, lib=self.args.lib)
        say = self.status.say
        say(0, f"built {len(rows)} .mpy files from {self.args.lib} into {self.mpy}")
        self.broker = Broker(self.out / "broker", persistence=True, verbose=False)
        self.proxy = FaultProxy(HOST, self.broker.port).start()
        say(0, f"mosquitto (persistence) on {HOST}:{self.broker.port}, "
               f"fault rig on {HOST}:{self.proxy.port}")
        self.t0 = now()
        self.observer = Observer(self.broker.port, self.t0)
        self.log = open(self.out / "node.log", "w", encoding="utf-8")
        self.node = Node(self.out, self.proxy.port, self.t0, self.log, self.mpy)
        self.node.start()
        say(self.rel(), f"node started: MicroPython unix port, heap {ESP32_HEAP} (ESP32: "
                        f"{ESP32_FREE_KIB} KiB free), littlefs image {self.node.image.name}, "
                        f"keepalive {KEEPALIVE} s, a reading every {RATE_MS} ms")

    def teardown(self) -> None:
        self.status.done()
        if self.node is not None:
            self.node.kill()
        if self.observer is not None:
            self.observer.stop()
        if self.proxy is not None:
            self.proxy.stop()
        if self.broker is not None:
            self.broker.close()
        if self.log is not None:
            self.log.close()

    # -- waiting, with the status line refreshed

    def wait(self, seconds: float, until: Callable[[], bool] | None = None) -> bool:
        """Wait up to seconds (True as soon as until() holds); keep the status fresh."""
        end = now() + seconds
        while True:
            if until is not None and until():
                return True
            t = now()
            if t >= end:
                return until is None
            if t > self.deadline:
                raise RuntimeError("the demo overran its time bound")
            if t - self._last_tick >= 0.1:
                self.tick()
                self._last_tick = t
            time.sleep(min(0.1 if until is None else 0.01, end - t))

    def tick(self) -> None:
        node = self.node
        assert node is not None and self.observer is not None
        crash = node.check_crash(restart=not self.finishing)
        if crash:
            self.problems.append(crash)
            self.status.say(self.rel(), "PROBLEM: " + crash)
        sent, acked = node.totals()
        st = node.status
        link = "up  " if node.is_up() else "DOWN"
        if not node.running:
            link = "OFF "
        fault = "-"
        if self.current is not None:
            fault = f"{self.current.label} ({self.rel() - self.current.start:.1f} s)"
        self.status.update(
            self.rel(),
            f"{self.rel():6.1f}s  link {link}  queued {st.get('queued', 0):>4}  "
            f"sent {sent:>5}  acked {acked:>5}  delivered {len(self.observer.seen()):>5}  "
            f"fault: {fault}",
        )

    def settle(self) -> None:
        """Between faults: the node's link up again (bounded), then the plan's gap."""
        node = self.node
        assert node is not None
        if not self.wait(20, node.is_up):
            self.problems.append(f"the node's link was not up again 20 s after a fault "
                                 f"(at {self.rel():.1f} s)")
        self.wait(self.plan.gap)

    def begin(self, kind: str, note: str = "") -> Fault:
        f = Fault(kind, FAULT_NAMES[kind], self.rel(), note=note)
        self.faults.append(f)
        self.current = f
        self.status.say(f.start, f"{f.label}{': ' + note if note else ''}")
        return f

    def end(self, f: Fault, text: str = "") -> None:
        f.end = self.rel()
        self.current = None
        if text:
            self.status.say(f.end, text)

    # -- the scenario

    def run(self) -> None:
        p = self.plan
        node, proxy, broker = self.node, self.proxy, self.broker
        assert node is not None and proxy is not None and broker is not None
        if not self.wait(15, node.is_up):
            self.problems.append("the node did not connect within 15 s")
        self.wait(p.settle + p.gap)

        f = self.begin("reset", "RST to both sides of the connection")
        proxy.reset()
        self.end(f)
        self.settle()

        f = self.begin("blackhole", "packets vanish, no reset: the node must notice by itself")
        proxy.blackhole()
        seen = self.wait(3 * KEEPALIVE, lambda: node.link_event_after(f.start, False) is not None)
        down = node.link_event_after(f.start, False)
        if seen and down is not None:
            self.status.say(down, f"node detected the half-open link after {down - f.start:.1f}"
                                  f" s (keepalive {KEEPALIVE} s)")
        self.wait(p.blackhole_extra)
        proxy.forward()
        self.end(f, "blackhole over")
        self.settle()

        f = self.begin("wifi", f"access point gone for {p.wifi:g} s")
        node.set_wifi(False)
        proxy.down()  # the TCP connection dies with the Wi-Fi
        self.wait(p.wifi)
        node.set_wifi(True)
        proxy.forward()
        self.end(f, "Wi-Fi back")
        self.settle()

        f = self.begin("broker", f"mosquitto stopped for {p.broker:g} s (its persistence kept)")
        broker.stop()
        self.wait(p.broker)
        broker.start()
        self.end(f, "broker back")
        self.settle()

        f = self.begin("stall", f"bytes held for {p.stall:g} s, then delivered")
        proxy.stall()
        self.wait(p.stall)
        proxy.forward()
        self.end(f, "stall over")
        self.settle()

        # a power cut while the node delivers a backlog: acknowledgements, QoS 2 releases
        # and flash writes in full swing
        f = self.begin("wifi", f"access point gone for {p.power_wifi:g} s")
        f.drain_cut = True
        node.set_wifi(False)
        proxy.down()
        self.wait(p.power_wifi)
        node.set_wifi(True)
        proxy.forward()
        self.end(f, "Wi-Fi back")
        self.wait(10, lambda: node.link_event_after(f.end, True) is not None)
        g = self.begin("power", f"SIGKILL while the backlog drains, off for {p.power:g} s")
        node.kill()
        self.wait(p.power)
        node.start()
        self.end(g, "node booted on the same image")
        self.settle()

        if p.outage_power:
            f = self.begin("wifi", "access point gone; the node loses power during the outage")
            node.set_wifi(False)
            proxy.down()
            self.wait(2.0)
            g = self.begin("power", "SIGKILL with a backlog in flash, off for 1.5 s")
            g.inside = True
            node.kill()
            self.wait(1.5)
            node.start()
            self.end(g, "node booted with the Wi-Fi still down")
            self.current = f
            self.wait(4.0)
            node.set_wifi(True)
            proxy.forward()
            self.end(f, "Wi-Fi back")
            self.settle()

    def finish(self) -> None:
        node, obs = self.node, self.observer
        assert node is not None and obs is not None
        self.status.say(self.rel(), "end of the scenario: the node stops reading and drains")
        self.finishing = True
        node.stop_file.write_text("stop\n")
        ended = self.wait(40, lambda: node.proc is not None and node.proc.poll() is not None)
        if not ended:
            self.problems.append("the node did not end within 40 s of the stop request")
        crash = node.check_crash(restart=False)
        if crash:
            self.problems.append(crash)
        node.expected_exit = True
        want = set(node.accepted)
        self.wait(10, lambda: want <= obs.seen())
        self.wait(0.5)  # late duplicates, if any, arrive now
        self.status.done()

    # -- analysis

    def analyse(self) -> Summary:
        node, obs, proxy = self.node, self.observer, self.proxy
        assert node is not None and obs is not None and proxy is not None
        s = Summary()
        s.seconds = round(self.rel(), 1)
        acc = node.accepted
        dels = sorted(obs.deliveries, key=lambda d: d.t)
        first: dict[str, float] = {}
        count: dict[str, int] = {}
        qos_of: dict[str, int] = {}
        for d in dels:
            first.setdefault(d.ident, d.t)
            count[d.ident] = count.get(d.ident, 0) + 1
            qos_of[d.ident] = d.qos
        s.published = len(acc)
        s.published_q1 = sum(1 for a in acc.values() if a.qos == 1)
        s.published_q2 = s.published - s.published_q1
        s.refused = len(node.refused)
        s.delivered = len(first)
        s.delivered_unaccepted = len(set(first) - set(acc))
        lost = sorted(set(acc) - set(first), key=lambda i: acc[i].t)
        s.lost = len(lost)
        s.lost_ids = lost[:50]
        s.duplicates_q1 = sum(c - 1 for i, c in count.items() if qos_of[i] == 1)
        s.duplicates_q2 = sum(c - 1 for i, c in count.items() if qos_of[i] == 2)
        # per QoS level, first arrivals must come in (boot, seq) order
        for q in (1, 2):
            prev: tuple[int, int] | None = None
            for i in sorted((i for i in first if qos_of[i] == q), key=lambda i: first[i]):
                b, _, n = i.partition("/")
                key = (int(b), int(n))
                if prev is not None and key < prev:
                    s.order_violations += 1
                prev = key if prev is None else max(prev, key)
        numbers = [a.n for a in acc.values()]
        s.reused_numbers = len(numbers) - len(set(numbers))
        s.boots = len(node.boots)
        s.power_cuts = sum(1 for f in self.faults if f.kind == "power" and f.happened)
        s.crashes = len(node.crashes)
        s.drained = node.drained is not None and node.drained[1] == 0
        s.pending_at_end = node.drained[1] if node.drained else None
        s.heap_free_after_setup = node.heap_after_setup
        s.skipped = node.skipped()
        s.store_reports = [ln for ln in node.other if ln.startswith("mqttsession:")]
        s.longest_block_s = round(node.longest_block_ms / 1000, 2)
        s.heap_free_min = node.min_free
        s.longest_outage_node_s = round(node.node_longest_ms / 1000, 2)

        # outages as the host saw them: link down (or power off) until the next link up
        outages: list[tuple[float, float]] = []
        down_at: float | None = None
        for t, up in node.link:
            if not up and down_at is None:
                down_at = t
            elif up and down_at is not None:
                outages.append((down_at, t))
                down_at = None
        s.longest_outage_s = round(max((b - a for a, b in outages), default=0.0), 2)

        # per fault: detection, reconnect, backlog and its drain
        for f in self.faults:
            if f.end is None:
                continue
            later = [g.start for g in self.faults if g.start > f.end]
            next_fault = min(later, default=1e9)
            if f.kind == "power":
                down: float | None = f.start
            elif not node.was_up(f.start):
                f.already_down = True
                down = f.start
            else:
                down = node.link_event_after(f.start, False)
                if down is not None and down > min(f.end + KEEPALIVE * 2, next_fault):
                    down = None
            if down is None:
                f.rode_through = True
                back: float | None = f.end
            else:
                if not f.already_down and f.kind != "power":
                    f.detect_s = round(down - f.start, 2)
                back = node.link_event_after(max(f.end, down), True)
            if back is None or back > next_fault or f.inside:
                continue
            if not f.rode_through:
                f.reconnect_s = round(back - f.end, 2)
            if f.drain_cut:
                continue
            # the backlog: readings accepted before the link came back and first
            # delivered after the fault began
            backlog = [i for i, a in acc.items() if a.t <= back and first.get(i, 1e9) > f.start]
            f.backlog = len(backlog)
            if backlog and all(i in first for i in backlog):
                done = max(first[i] for i in backlog)
                f.drain_s = round(max(0.0, done - back), 3)
                n = sum(1 for d in dels if back <= d.t <= done)
                if done - back > 0.05:
                    f.drain_rate = round(n / (done - back), 1)
        bh = [f for f in self.faults if f.kind == "blackhole" and f.detect_s is not None]
        if bh:
            s.halfopen_detect_s = bh[0].detect_s
            s.halfopen_ratio = round(bh[0].detect_s / KEEPALIVE, 2) if bh[0].detect_s else None
        # the headline drain: the largest backlog of a fault that left the observer alone
        # (a broker restart disconnects the observer too, and its reconnect adds to the time)
        big = max(
            (f for f in self.faults if f.drain_s is not None and f.kind != "broker"),
            key=lambda f: f.backlog,
            default=None,
        )
        if big is not None:
            s.link_return_to_delivered_s = big.drain_s
            s.drain_rate_per_s = big.drain_rate
            s.drain_backlog = big.backlog
            s.drain_fault = f"{big.label} of {(big.end or big.start) - big.start:.1f} s"
            s.drain_reconnect_s = big.reconnect_s
        s.faults = [asdict(f) | {"happened": f.happened} for f in self.faults]
        s.kinds = {k: any(f.kind == k and f.happened for f in self.faults) for k in FAULT_KINDS}

        problems = list(self.problems)
        if s.lost:
            problems.append(f"{s.lost} accepted readings never delivered: {', '.join(lost[:10])}")
        if s.duplicates_q2:
            problems.append(f"{s.duplicates_q2} QoS 2 readings delivered more than once")
        if s.crashes:
            problems.append(f"the node crashed {s.crashes} time(s)")
        if not s.drained:
            problems.append(f"the node did not drain its backlog (pending {s.pending_at_end})")
        if obs.bad:
            problems.append(f"{len(obs.bad)} malformed deliveries, e.g. {obs.bad[0]}")
        if not all(s.kinds.values()):
            problems.append("faults not played: " + ", ".join(k for k, v in s.kinds.items()
                                                               if not v))
        s.problems = problems
        s.ok = not (s.lost or s.duplicates_q2 or s.crashes or not s.drained or obs.bad
                    or self.problems)
        page = self.out / "timeline.html"
        demo_timeline.write(
            page,
            demo_timeline.Data(
                seconds=self.rel(),
                faults=[(f.label, f.kind, f.start, f.end if f.end is not None else f.start)
                        for f in self.faults],
                kills=list(node.kills),
                boots=[t for t, _, _ in node.boots],
                link=list(node.link),
                queue=list(node.queue),
                accepted=[(a.t, a.qos) for a in acc.values()],
                delivered=[(d.t, d.qos, count[d.ident] > 1 and first[d.ident] != d.t)
                           for d in dels],
                keepalive=KEEPALIVE,
                stopped=node.drained[0] if node.drained else None,
            ),
            report_lines(s),
            fault_table(s),
        )
        s.timeline = str(page)
        with open(self.out / "faultrig.log", "w", encoding="utf-8") as fh:
            for ev in proxy.timeline():
                fh.write(f"{ev.t - self.t0:9.3f} {ev.event}\n")
        return s


# --------------------------------------------------------------------------------------
# The report


def _s(v: float | None, unit: str = "s") -> str:
    return "n/a" if v is None else f"{v:g} {unit}".rstrip()


def report_lines(s: Summary) -> list[str]:
    lines = [
        f"messages published (publish returned)  {s.published}  "
        f"(QoS 1: {s.published_q1}, QoS 2: {s.published_q2})",
        f"delivered (seen by the observer)       {s.delivered}",
        f"lost (published, never delivered)      {s.lost}",
        f"duplicates at QoS 2                    {s.duplicates_q2}",
        f"duplicates at QoS 1 (allowed)          {s.duplicates_q1}",
        f"order kept per QoS level               "
        f"{'yes' if not s.order_violations else f'no: {s.order_violations} out of order'}",
        f"longest outage ridden through          {s.longest_outage_s:g} s "
        f"(node's own count, power cuts apart: {s.longest_outage_node_s:g} s)",
        f"half-open detection                    {_s(s.halfopen_detect_s)} with keepalive "
        f"{s.keepalive_s} s ({_s(s.halfopen_ratio, 'x')} keepalive; bound 1.5 x)",
        f"link return to backlog delivered       {_s(s.link_return_to_delivered_s)} "
        f"({s.drain_backlog} readings queued in a {s.drain_fault}; the link was up "
        f"{_s(s.drain_reconnect_s)} after the network returned)",
        f"delivery rate while draining           {_s(s.drain_rate_per_s, 'msg/s')}",
        f"power cuts / boots                     {s.power_cuts} / {s.boots}",
    ]
    if s.delivered_unaccepted:
        lines.append(f"delivered, publish cut short by power  {s.delivered_unaccepted} "
                     "(not counted as published)")
    if s.reused_numbers:
        lines.append(f"reading numbers reused after a cut     {s.reused_numbers} "
                     "(new boot number, so no false duplicate)")
    lines.append(f"readings not taken, loop blocked       {s.skipped} (longest publish() or "
                 f"check_msg() call: {s.longest_block_s:g} s)")
    if s.store_reports:
        lines.append(f"store reports at boot                  {len(s.store_reports)} "
                     f"(e.g. {s.store_reports[0]})")
    if s.refused:
        lines.append(f"refused by publish (queue full)        {s.refused}")
    if s.heap_free_after_setup is not None:
        lines.append(f"node heap free                         {s.heap_free_after_setup} bytes "
                     f"after setup, {s.heap_free_min} at least (ESP32-sized heap)")
    return lines


def fault_table(s: Summary) -> list[str]:
    out = [f"{'t':>6}  {'fault':<30} {'held':>5} {'detect':>7} {'back':>6} "
           f"{'backlog':>7} {'drain':>6} {'msg/s':>6}"]
    for f in s.faults:
        held = (f["end"] - f["start"]) if f["end"] is not None else 0.0
        detect = "rode" if f["rode_through"] else _n(f["detect_s"])
        if f["already_down"]:
            detect = "was down"
        elif f["kind"] == "power":
            detect = "cut"
        if f["inside"]:
            detect = "inside"
        out.append(
            f"{f['start']:6.1f}  {f['label']:<30} {held:5.1f} {detect:>7} "
            f"{_n(f['reconnect_s']):>6} "
            + (f"{'(cut short by the power cut)':>21}" if f["drain_cut"] else
               f"{f['backlog']:>7} {_n(f['drain_s']):>6} {_n(f['drain_rate']):>6}")
        )
    return out


def _n(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)


def print_report(s: Summary) -> None:
    print()
    print("Faults (seconds; detect: fault start to link down; back: network back to link up;")
    print("        drain: link up to backlog delivered)")
    for line in fault_table(s):
        print("  " + line)
    print()
    print("Report")
    for line in report_lines(s):
        print("  " + line)
    print()
    print(f"timeline picture: {s.timeline}")
    if s.problems:
        print("FAILED:")
        for p in s.problems:
            print("  - " + p)
    else:
        print("PASS: nothing lost, no QoS 2 duplicates")


# --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=None,
                   help="length of the scenario (default 75, or 20 with --quick)")
    p.add_argument("--quick", action="store_true", help="a short scenario (about 25 s)")
    p.add_argument("--json", type=Path, help="write a JSON summary here")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help="working directory, removed first (default build/demo)")
    p.add_argument("--no-status", action="store_true", help="no live status line")
    p.add_argument("--lib", type=Path, default=mpy.LIB,
                   help="the directory holding the mqttsession package (default lib)")
    a = p.parse_args(argv)
    if a.seconds is None:
        a.seconds = 20.0 if a.quick else 75.0
    a.seconds = min(max(a.seconds, 10.0), 600.0)
    a.out = a.out.resolve()
    a.lib = a.lib.resolve()
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    demo = Demo(args)
    interrupted = False

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        demo.setup()
        demo.run()
        demo.finish()
    except KeyboardInterrupt:
        interrupted = True
        demo.problems.append("interrupted")
    except Exception as e:  # the demo itself failed: say so, clean up, exit 2
        demo.teardown()
        print(f"demo: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    summary = None
    try:
        if demo.node is not None and demo.observer is not None:
            summary = demo.analyse()
    except Exception as e:  # a report that cannot be made is the demo's failure
        print(f"demo: analysis failed: {type(e).__name__}: {e}", file=sys.stderr)
    finally:
        demo.teardown()
    if summary is None:
        return 2
    print_report(summary)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(asdict(summary), indent=2) + "\n")
    if interrupted:
        return 2
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
