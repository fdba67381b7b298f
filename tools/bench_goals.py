"""Rows and goals of the issue areas (asyncio client, call budget, backlog, memory, the
emulated Pico, the fleet) and of issue 13's throughput: every goal is met or not met from
the figures of the same run, never written in."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from bench_goals_mem import MemoryRows, ratio
from bench_issues import AIO_FAULTS, BUDGET_FAULTS, FLEET_JITTERS
from bench_rows import Row, against, fmt
from bench_setup import BENCH_DIR

if TYPE_CHECKING:
    from bench_setup import Plan, Results

AIO_GAP_MS = 20  # issue 10: the loop never stalls longer than this during a fault
AIO_LABELS = {
    "base": "no fault (baseline)",
    "reset": "connection reset",
    "blackhole": "half-open link (blackhole 4 s)",
    "stall": "broker stalls 1.5 s",
    "restart_kept": "broker restart keeping sessions",
    "restart_lost": "broker restart losing sessions",
    "silent": "a second client connects into a silent listener",
    "trickle": "broker link trickling 10 bytes/s",
}
BUDGET_LABELS = {
    "reset": "connection reset",
    "blackhole": "half-open link (blackhole 2.5 s)",
    "stall": "broker stalls 1.5 s",
    "broker_restart": "broker restart",
    "wifi": "Wi-Fi gone 1.5 s",
    "silent": "reconnect into a silent listener 3.5 s",
}


def aio_backoff_ms() -> int | None:
    """The longest backoff step of the asyncio benchmark's Link (tools/bench/b_aio.py)."""
    m = re.search(r"Link\(min_ms=\d+, max_ms=(\d+)\)", (BENCH_DIR / "b_aio.py").read_text())
    return int(m.group(1)) if m else None


class IssueRows(MemoryRows):
    """Builds the issue areas' rows and goals (a part of Bench, see bench_measure)."""

    res: Results
    plan: Plan
    rows: list[Row]
    extra: dict[str, str]
    row: Callable[..., float | None]
    value_row: Callable[..., None]
    target: Callable[..., None]
    plan_for: Callable[[str], Plan]

    def at_most(
        self,
        area: str,
        name: str,
        key: str,
        limit: float,
        unit: str,
        scale: float = 1.0,
        why: str = "",
    ) -> None:
        """A goal that a figure (times scale) stays at or below limit."""
        v = self.res.get(key)
        v = v * scale if v is not None else None
        self.target(
            name,
            f"<= {fmt(limit)} {unit}{why}",
            v,
            v <= limit if v is not None else None,
            f"{fmt(v)} {unit}" if v is not None else "",
            self.res.why(key),
            area=area,
        )

    def ratio_goal(self, area: str, name: str, num: str, den: str, need: float, unit: str) -> None:
        """A goal that num / den reaches need (>= need)."""
        a, b = self.res.get(num), self.res.get(den)
        q = ratio(a, b)
        self.target(
            name,
            f">= {need:.2f}",
            q,
            q >= need if q is not None else None,
            f"{against(q, need, True)} ({fmt(a or 0)} vs {fmt(b or 0)} {unit})"
            if q is not None
            else "",
            self.res.why(num if a is None else den),
            area=area,
        )

    def build_issue_rows(self) -> None:
        self.speed_rows()
        self.aio_rows()
        self.budget_rows()
        self.backlog_rows()
        self.memory_rows()
        self.pico_rows()
        self.fleet_rows()

    def speed_rows(self) -> None:
        r = self.res
        for what, num, den in (
            ("QoS 1 window=1 / stop-and-wait floor", "tput.ms.pub.q1.w1", "floor.q1.w1"),
            ("QoS 1 window=16 / floor window=16", "tput.ms.pub.q1.w16", "floor.q1.w16"),
            (
                "with store, QoS 1 window=16 / RAM session window=16",
                "tput.ms.store.q1.w16",
                "tput.ms.pub.q1.w16",
            ),
        ):
            q = ratio(r.get(num), r.get(den))
            self.value_row(
                "speed",
                f"mqttsession: {what}",
                q,
                "ratio",
                "same run, broker and client on one CPU",
                r.why(num),
            )
        self.ratio_goal(
            "speed",
            "issue 13: QoS 1 window=1 vs the stop-and-wait floor",
            "tput.ms.pub.q1.w1",
            "floor.q1.w1",
            0.5,
            "msg/s",
        )
        self.ratio_goal(
            "speed",
            "issue 13: QoS 1 window=16 vs the floor at window=16",
            "tput.ms.pub.q1.w16",
            "floor.q1.w16",
            0.5,
            "msg/s",
        )

    def aio_rows(self) -> None:
        old = self.extra.get("aio.old_rev", "the old client")
        for f in ("base", *AIO_FAULTS):
            for tag, who in (("aio", "asyncio client"), ("aio.old", f"old client ({old})")):
                self.row(
                    "aio",
                    f"{who}: largest 10 ms-ticker gap, {AIO_LABELS[f]}",
                    f"{tag}.gap.{f}",
                    "ms",
                    "same event loop as the client",
                )
        for tag, who in (("aio", "asyncio client"), ("aio.old", f"old client ({old})")):
            secs = self.plan_for("aio").aio_secs
            self.row(
                "aio",
                f"{who}: idle wake-ups of the event loop",
                f"{tag}.idle.wakeups_min",
                "/min",
                f"connected, keepalive 60, {secs} s idle",
            )
            self.row(
                "aio", f"{who}: idle CPU time", f"{tag}.idle.cpu_s", "s", f"over {secs} s idle"
            )
            self.row(
                "aio", f"{who}: idle voluntary context switches", f"{tag}.idle.ctxsw_min", "/min"
            )
            self.row(
                "aio",
                f"{who}: session-losing broker restart: link return to first command",
                f"{tag}.restart.return_to_command_ms",
                "ms",
                "commands published every 20 ms from the broker's return",
            )
        self.row(
            "aio",
            "asyncio client: the same, from its CONNACK",
            "aio.restart.connack_to_command_ms",
            "ms",
            "node clock",
        )
        for f in AIO_FAULTS:
            self.at_most(
                "aio",
                f"issue 10: ticker gap during {AIO_LABELS[f]}",
                f"aio.gap.{f}",
                AIO_GAP_MS,
                "ms",
            )
        step = aio_backoff_ms()
        name = "issue 10: session-losing broker restart: link return to first command"
        if step is None:
            why = "no Link(max_ms=...) in tools/bench/b_aio.py"
            self.target(name, "<= one backoff step", None, None, "", why, area="aio")
        else:
            self.at_most(
                "aio",
                name,
                "aio.restart.return_to_command_ms",
                step,
                "ms",
                why=f" (one backoff step: the benchmark's Link max_ms {step})",
            )

    def budget_rows(self) -> None:
        old = self.extra.get("budget.old_rev", "before the budget")
        budget = self.res.get("budget.ms")
        self.row(
            "budget",
            "blocking client's default budget_ms",
            "budget.ms",
            "ms",
            "lib/mqttsession/client.py _BUDGET",
        )
        for f in BUDGET_FAULTS:
            self.row(
                "budget",
                f"longest call during {BUDGET_LABELS[f]}",
                f"budget.{f}",
                "ms",
                "publish() or check_msg(), a reading every 100 ms, store, keeper",
            )
            self.row("budget", f"the same, library at {old}", f"budget.old.{f}", "ms")
        self.row("budget", "readings not taken (whole run)", "budget.skipped", "readings")
        self.row("budget", f"the same, library at {old}", "budget.old.skipped", "readings")
        for f in BUDGET_FAULTS:
            key = f"budget.{f}"
            if budget is None:
                self.target(
                    f"issue 16: longest call during {BUDGET_LABELS[f]}",
                    "<= budget + 50 ms",
                    None,
                    None,
                    "",
                    self.res.why("budget.ms"),
                    area="budget",
                )
                continue
            self.at_most(
                "budget",
                f"issue 16: longest call during {BUDGET_LABELS[f]}",
                key,
                budget + 50,
                "ms",
                why=f" (budget {fmt(budget)} + 50)",
            )

    def fleet_rows(self) -> None:
        g = "fleet"
        p = self.plan
        for tag in (f"j{j}" for j in FLEET_JITTERS):
            b = f"fleet.{tag}"
            j = f"jitter {tag[1:]}"
            self.row(
                g,
                f"{j}: nodes",
                f"{b}.nodes",
                "nodes",
                f"{p.fleet_secs} s, 2 broker restarts, random power cuts",
            )
            for k, unit in (
                ("accepted", "msgs"),
                ("delivered", "msgs"),
                ("lost", "msgs"),
                ("qos2_duplicates", "msgs"),
                ("qos1_duplicates", "msgs"),
                ("power_cuts", "cuts"),
                ("node_errors", "lines"),
            ):
                self.row(g, f"{j}: {k.replace('_', ' ')}", f"{b}.{k}", unit)
            for r in (1, 2):
                for k, what, unit in (
                    ("reconnected", "nodes back (before the next restart, at most 30 s)", "nodes"),
                    ("peak_connects_1s", "peak connects in any 1 s", "connects"),
                    ("peak_connects_100ms", "peak connects in any 100 ms", "connects"),
                    ("all_back_s", "last node back after", "s"),
                ):
                    self.row(g, f"{j}: broker restart {r}: {what}", f"{b}.restart{r}.{k}", unit)
            self.at_most(g, f"issue 11: fleet ({j}): messages lost", f"{b}.lost", 0, "msgs")
            self.at_most(
                g, f"issue 11: fleet ({j}): QoS 2 duplicates", f"{b}.qos2_duplicates", 0, "msgs"
            )
