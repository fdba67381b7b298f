"""What the demo watches and records: the observer (a paho client with a persistent session on
the broker), the faults played, the live status line, the plan and the summary."""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass, field
from typing import Any, TextIO

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from demo_proc import HOST, KEEPALIVE, PREFIX, now
from vboard import ESP32_FREE_KIB

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
    call_ms: int | None = None  # longest publish()/check_msg() call, fault start to next fault

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
    longest_block_ms: int = 0
    store_reports: list[str] = field(default_factory=list)
    heap_free_after_setup: int | None = None
    heap_free_min: int | None = None
    heap_board_kib: int = ESP32_FREE_KIB
    faults: list[dict[str, Any]] = field(default_factory=list)
    kinds: dict[str, bool] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    timeline: str = ""
