"""The demo scenario: setting up the broker, the fault rig and the node, playing the faults,
then analysing what was published and delivered."""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TextIO

import demo_timeline
import mpy
from demo_proc import (
    DEFAULT_OUT,
    FAULT_KINDS,
    FAULT_NAMES,
    HOST,
    KEEPALIVE,
    MARKER,
    RATE_MS,
    Node,
    now,
)
from demo_report import fault_table, report_lines
from demo_watch import Fault, Observer, Plan, Status, Summary
from faultrig import FaultProxy
from harness import Broker  # on sys.path from demo_proc
from vboard import ESP32_FREE_KIB, ESP32_HEAP


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
        s.longest_block_ms = node.longest_block_ms
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
            # the node's STATUS lines say the longest call since the previous line: the
            # fault owns those from its start until the next fault (its recovery included)
            calls = [ms for t, ms in node.blocks if f.start <= t < next_fault]
            f.call_ms = max(calls, default=None)
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
