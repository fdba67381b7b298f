"""The benchmark run: the rows it collects and each measurement (heap, allocation, flash,
throughput, recovery, smallest heap); the table itself is built by bench_rows and
bench_report."""

from __future__ import annotations

import subprocess
import traceback
from collections.abc import Callable, Sequence

from bench_goals import IssueRows
from bench_issues import IssueMeasure
from bench_refs import mosquitto_pub_rate, mosquitto_sub_rate, paho_rate, recovery_ms, smallest_heap
from bench_report import Targets
from bench_rows import Row, Rows, fmt
from bench_setup import (
    AREAS,
    BENCH_DIR,
    CORE_AREAS,
    DEFAULT_AREAS,
    HOST,
    QUOTE_NOTE,
    QUOTED,
    ROOT,
    Broker,
    Plan,
    Results,
    area_label,
    collect,
    pinned,
    this_library,
    umqtt_library,
)

# the keys each area files its results under (Results.why looks up the nearest prefix)
AREA_KEYS = {
    "heap": ("heap",),
    "alloc": ("alloc",),
    "code": (),
    "speed": ("tput", "floor", "paho", "mosquitto_pub", "mosquitto_sub"),
    "flash": ("flash",),
    "recovery": ("recover",),
    "minheap": ("minheap",),
    "aio": ("aio",),
    "budget": ("budget",),
    "backlog": ("backlog",),
    "memory": ("mem",),
    "pico": ("pico",),
    "fleet": ("fleet",),
}


class Bench(IssueMeasure, IssueRows, Rows, Targets):
    def __init__(
        self,
        plan: Plan,
        fetch: bool,
        say: Callable[[str], None],
        areas: Sequence[str] = DEFAULT_AREAS,
    ) -> None:
        unknown = sorted(set(areas) - set(AREAS))
        if unknown:
            raise ValueError(f"unknown area(s) {', '.join(unknown)}: known are {', '.join(AREAS)}")
        self.areas = tuple(a for a in AREAS if a in areas)
        self.failed: dict[str, str] = {}  # area -> why it did not finish
        self.broker_pid: int | None = None
        self.plan = plan
        self.fetch = fetch
        self.say = say
        self.res = Results()
        self.rows: list[Row] = []
        self.targets: list[Row] = []
        self.ms = this_library()
        self.umqtt = umqtt_library(fetch)
        self.extra: dict[str, str] = {}

    # -- helpers for rows

    def row(
        self, area: str, what: str, key: str, unit: str, note: str = "", scale: float = 1.0
    ) -> float | None:
        v = self.res.get(key)
        if v is None:
            self.rows.append(Row(area, what, f"n/a ({self.res.why(key)})", unit, note))
            return None
        self.rows.append(Row(area, what, fmt(v * scale), unit, note))
        return v * scale

    def value_row(
        self, area: str, what: str, v: float | None, unit: str, note: str = "", why: str = ""
    ) -> None:
        shown = fmt(v) if v is not None else f"n/a ({why or 'not measured'})"
        self.rows.append(Row(area, what, shown, unit, note))

    def quoted(self, area: str, what: str, key: str, unit: str) -> None:
        self.rows.append(
            Row(area, f"{what} (quoted, not measured here)", fmt(QUOTED[key]), unit, QUOTE_NOTE)
        )

    def target(
        self,
        name: str,
        goal: str,
        measured: float | None,
        ok: bool | None,
        shown: str,
        why: str = "",
        area: str = "",
    ) -> None:
        if measured is None or ok is None:
            self.targets.append(Row(area, name, f"n/a ({why or 'not measured'})", goal, "-"))
        else:
            self.targets.append(Row(area, name, shown, goal, "met" if ok else "not met"))

    # -- measurements

    def run(self) -> None:
        steps: dict[str, Callable[[int], None]] = {
            "heap": self.measure_heap,
            "alloc": self.measure_alloc,
            "flash": self.measure_flash,
            "speed": self.measure_throughput,
            "recovery": self.measure_recovery,
            "minheap": self.measure_min_heap,
            "backlog": self.measure_backlog,
            "aio": self.measure_aio,
            "budget": self.measure_budget,
            "memory": self.measure_memory,
            "pico": self.measure_pico,
            "fleet": self.measure_fleet,
        }
        extra = ["set_tcp_nodelay true"]
        with Broker(verbose=False, extra=extra) as broker:
            port = broker.port
            self.broker_pid = broker.pid
            self.say(f"broker on {HOST}:{port}; areas: {', '.join(self.areas)}")
            for area in self.areas:
                if area in steps:
                    self.step(area, steps[area], port)
        for area in AREAS:
            if area not in self.areas:
                for k in AREA_KEYS[area]:
                    self.res.put_na(k, "not measured in this run")
        if any(a in CORE_AREAS for a in self.areas):
            self.build_rows()
        self.build_issue_rows()
        self.keep_selected()

    def step(self, area: str, measure: Callable[[int], None], port: int) -> None:
        """One area; an area that breaks is marked n/a with its error, and the run goes on."""
        try:
            measure(port)
        except Exception as e:  # noqa: BLE001  (any failure of one area ends only that area)
            why = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            self.failed[area] = why
            self.res.log.append(f"area {area} failed:\n{traceback.format_exc()}")
            self.say(f"{area} failed: {why}")
            for k in AREA_KEYS[area]:
                self.res.put_na(k, f"failed: {why}")

    def keep_selected(self) -> None:
        """Rows and goals of the areas measured; one row for each area left out."""
        shown = {area_label(a) for a in self.areas}
        self.rows = [r for r in self.rows if r.area in shown]
        self.targets = [t for t in self.targets if t.area in shown]
        for a in AREAS:
            if a not in self.areas:
                self.rows.append(
                    Row(area_label(a), "not measured in this run", "n/a (not selected)", "-")
                )

    def measure_heap(self, port: int) -> None:
        self.say("heap")
        for lib in (self.ms, self.umqtt):
            if lib.why:
                continue
            for form in ("mpy", "py"):
                for store in (0, 1) if lib.name == "ms" else (0,):
                    args = {
                        "port": port,
                        "lib": lib.name,
                        "store": store,
                        "form": form,
                        "img": "bench-heap.img",
                    }
                    collect(
                        self.res,
                        "b_heap.py",
                        args,
                        lib.path(form),
                        f"heap.{lib.name}.{form}{'.store' if store else ''}",
                    )

    def measure_alloc(self, port: int) -> None:
        self.say("allocation per message")
        for lib in (self.ms, self.umqtt):
            if lib.why:
                continue
            args = {
                "port": port,
                "lib": lib.name,
                "n": self.plan.alloc_n,
                "store": 1 if lib.name == "ms" else 0,
                "img": "bench-alloc.img",
            }
            # a large heap: the garbage figures run with the collector off
            collect(self.res, "b_alloc.py", args, lib.path("mpy"), f"alloc.{lib.name}", heap="8m")

    def measure_flash(self, port: int) -> None:
        self.say("flash wear")
        for prog in (32, 256):
            args = {"port": port, "prog": prog, "n": self.plan.flash_n, "img": "bench-flash.img"}
            collect(
                self.res, "b_flash.py", args, self.ms.path("mpy"), f"flash.p{prog}", timeout=300
            )

    def measure_throughput(self, port: int) -> None:
        # lockstep exchanges between two processes: broker and clients on one CPU
        with pinned([self.broker_pid]) as cpu:
            self.extra["pinned_cpu"] = "" if cpu is None else str(cpu)
            self._throughput(port)

    def _throughput(self, port: int) -> None:
        p = self.plan
        ws = ",".join(str(w) for w in p.windows)
        floor_ws = sorted({w for w in p.windows if w > 1} | {32})
        for r in range(p.rounds):
            self.say(f"throughput, round {r + 1} of {p.rounds}")
            common = {"port": port, "n": p.n, "budget_ms": p.budget_ms}
            collect(
                self.res,
                "b_speed.py",
                {**common, "lib": "ms", "windows": ws},
                self.ms.path("mpy"),
                "tput.ms",
            )
            sw = ",".join(str(w) for w in p.store_windows)
            collect(
                self.res,
                "b_speed.py",
                {
                    **common,
                    "lib": "ms",
                    "windows": sw,
                    "qos": "1,2",
                    "recv": "",
                    "plain": 0,
                    "store": 1,
                    "img": "bench-speed.img",
                },
                self.ms.path("mpy"),
                "tput.ms.store",
                timeout=300,
            )
            for w in floor_ws:
                collect(self.res, "b_floor.py", {**common, "window": w}, [BENCH_DIR], "floor")
            if not self.umqtt.why:
                collect(
                    self.res,
                    "b_speed.py",
                    {
                        **common,
                        "lib": "umqtt",
                        "windows": "1",
                        "n": 200,
                        "budget_ms": 2 * p.budget_ms,
                    },
                    self.umqtt.path("mpy"),
                    "tput.umqtt",
                )
            for w in (1, 32):
                try:
                    self.res.put(
                        f"paho.q1.w{w}", paho_rate(port, w, p.paho_sw if w == 1 else p.paho_win)
                    )
                except (RuntimeError, OSError) as e:
                    self.res.put_na(f"paho.q1.w{w}", str(e))
            for q in (0, 1, 2):
                try:
                    self.res.put(f"mosquitto_pub.q{q}", mosquitto_pub_rate(port, q, p.cli_n))
                except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                    self.res.put_na(f"mosquitto_pub.q{q}", str(e))
            try:
                self.res.put("mosquitto_sub.q1", mosquitto_sub_rate(port, 1, p.cli_n))
            except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                self.res.put_na("mosquitto_sub.q1", str(e))

    def measure_recovery(self, port: int) -> None:
        self.say("recovery")
        if not (ROOT / "tools" / "faultrig.py").exists():
            for m in ("inflight", "offline"):
                self.res.put_na(f"recover.{m}", "n/a until the fault rig lands")
            return
        for mode in ("inflight", "offline"):
            for _ in range(self.plan.recover_runs):
                try:
                    host_ms, node_ms = recovery_ms(port, self.ms, mode, self.plan.recover_k)
                except LookupError as e:
                    self.res.put_na(f"recover.{mode}", str(e))
                    break
                except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                    self.res.put_na(f"recover.{mode}", f"failed: {e}")
                    break
                self.res.put(f"recover.{mode}.host", host_ms)
                self.res.put(f"recover.{mode}.node", node_ms)

    def measure_min_heap(self, port: int) -> None:
        self.say("smallest heap")
        step = self.plan.heap_step
        for lib in (self.ms, self.umqtt):
            if lib.why:
                continue
            for form in ("mpy", "py"):
                stores = (False, True) if lib.name == "ms" else (False,)
                for store in stores:
                    key = f"minheap.{lib.name}.{form}{'.store' if store else ''}"
                    kb, why = smallest_heap(port, lib, form, step, store)
                    if kb is None:
                        self.res.put_na(key, why)
                    else:
                        self.res.put(key, kb)

    # -- the table
