"""The benchmark areas of the later issues, each measured by its own module and filed into
Bench.res: the asyncio client (tools/bench_aio.py), the blocking client's call budget
(tools/bench/b_budget.py), a backlog of thousands in flash (tools/bench/b_backlog.py), the
node's memory per route (tools/bench/b_mem.py), the emulated Pico (tools/bench/b_pico.py)
and a fleet on one broker (tools/bench/b_fleet.py). Their rows and goals: bench_goals."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import frozen_unix
from bench_setup import (
    BENCH_DIR,
    HEAP,
    LIB_DIR,
    MQTT_AS_DIR,
    QUICK,
    ROOT,
    Plan,
    Results,
    collect,
    pinned,
    run_host,
)

if TYPE_CHECKING:
    from bench_setup import Lib

# The library as it was before each rework, measured side by side in the same run:
# the last commit on main before the budget work was merged (no budget_ms at all).
BUDGET_OLD_REV = "3a0f78d"
BUDGET_FAULTS = ("reset", "blackhole", "stall", "broker_restart", "wifi", "silent")
FLEET_JITTERS = ("0", "0.25")  # reconnect jitter of the fleet's runs: none, the keeper's default
AIO_FAULTS = ("reset", "blackhole", "stall", "restart_kept", "restart_lost", "silent", "trickle")


def load(path: Path) -> ModuleType:
    """A host module of tools/ or tools/bench/ by its path (tools/bench is no package)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def library_budget_ms() -> int | None:
    """The blocking client's default budget, read from lib/mqttsession/client.py."""
    m = re.search(
        r"^_BUDGET = const\((\d+)\)", (LIB_DIR / "mqttsession" / "client.py").read_text(), re.M
    )
    return int(m.group(1)) if m else None


def pico_dir() -> str:
    """The emulated Pico's firmware: $MQTTS_PICO_DIR, else ../shared/rp2040-emulator next to
    the repository, else next to the directory holding it (a git worktree)."""
    env = os.environ.get("MQTTS_PICO_DIR")
    if env:
        return env
    for base in (ROOT.parent, ROOT.parent.parent):
        d = base / "shared" / "rp2040-emulator"
        if d.is_dir():
            return str(d)
    return str(ROOT.parent / "shared" / "rp2040-emulator")


class IssueMeasure:
    """Measurements of the issue areas (a part of Bench, see bench_measure)."""

    plan: Plan
    res: Results
    ms: Lib
    say: Callable[[str], None]
    extra: dict[str, str]
    quick_areas: frozenset[str] = frozenset()

    def plan_for(self, area: str) -> Plan:
        """The run's plan, or its quick counts for an area run quick (--quick-areas)."""
        p = self.plan
        if area not in self.quick_areas or p.quick:
            return p
        return dataclasses.replace(
            p, quick=True, aio_secs=QUICK.aio_secs, backlog_n=QUICK.backlog_n
        )

    def measure_aio(self, port: int) -> None:
        secs = self.plan_for("aio").aio_secs
        self.say(f"asyncio client: faults, {secs} s idle, restart (this and the old client)")
        bench_aio = load(ROOT / "tools" / "bench_aio.py")
        for k, v in bench_aio.rows(secs).items():
            if isinstance(v, str):
                self.res.put_na(k, v.removeprefix("n/a: "))
            else:
                self.res.put(k, float(v))
        self.extra["aio.old_rev"] = bench_aio.OLD_REV

    def measure_budget(self, port: int) -> None:
        self.say(f"budget: longest call per fault (this library and {BUDGET_OLD_REV})")
        b_budget = load(BENCH_DIR / "b_budget.py")
        got = b_budget.measure(BUDGET_OLD_REV, say=self.say)
        for form, tag in (("this", "budget"), (BUDGET_OLD_REV, "budget.old")):
            if form not in got:
                self.res.put_na(tag, "not measured")
                continue
            for k, v in got[form].items():
                if k in BUDGET_FAULTS and v < 0:
                    self.res.put_na(f"{tag}.{k}", "the node reported no call in this fault")
                else:
                    self.res.put(f"{tag}.{k}", float(v))
        self.extra["budget.old_rev"] = BUDGET_OLD_REV
        ms = library_budget_ms()
        if ms is None:
            self.res.put_na("budget.ms", "no _BUDGET in lib/mqttsession/client.py")
        else:
            self.res.put("budget.ms", float(ms))

    def measure_backlog(self, port: int) -> None:
        n = self.plan_for("backlog").backlog_n
        for prog in (32, 256):
            self.say(f"backlog: {n:,} queued offline, prog {prog}")
            args = {"port": port, "prog": prog, "n": n, "img": f"bench-backlog-{prog}.img"}
            # the drain is a lockstep exchange with the broker: both on one CPU
            with pinned([self.broker_pid]):
                collect(
                    self.res,
                    "b_backlog.py",
                    args,
                    self.ms.path("mpy"),
                    f"backlog.p{prog}",
                    timeout=900,
                )
                # right after, the same n drained from a RAM queue (no store): n messages
                # in RAM need a larger heap than the board-sized one
                collect(
                    self.res,
                    "b_backlog.py",
                    {**args, "ram": 1},
                    self.ms.path("mpy"),
                    f"backlog.p{prog}.drain_ram",
                    timeout=300,
                    heap="4m",
                )
            # the drains again with the broker on the other CPU, as a node's broker is on
            # another machine: its work is then no part of the client's time
            with pinned([self.broker_pid], apart=True) as cpu:
                if cpu is None:
                    self.res.put_na(f"backlog.p{prog}.apart", "no second CPU to pin to")
                else:
                    for extra, heap in (({}, HEAP), ({"ram": 1}, "4m")):
                        collect(
                            self.res,
                            "b_backlog.py",
                            {**args, "apart": 1, **extra},
                            self.ms.path("mpy"),
                            f"backlog.p{prog}.apart",
                            timeout=600,
                            heap=heap,
                        )
            for b in (f"backlog.p{prog}", f"backlog.p{prog}.apart"):
                a = self.res.get(f"{b}.drain_per_s.n{n}")
                z = self.res.get(f"{b}.drain_ram_per_s.n{n}")
                if a is not None and z:
                    self.res.put(f"{b}.drain_ram_share", a / z)
                else:
                    self.res.put_na(f"{b}.drain_ram_share", "a drain did not run")
        # what a node needs to boot with the backlog: the smallest heap (the peak of
        # loading the store, not what it keeps), with none queued beside it
        self.say(f"backlog: smallest heap to boot with 0 and {n:,} queued")
        try:
            found = load(BENCH_DIR / "b_boot_heap.py").measure([0, n], LIB_DIR)
        except (RuntimeError, OSError) as e:
            for k in (0, n):  # the keys the backlog rows read, each with the reason
                for c in ("blocking", "aio"):
                    self.res.put_na(f"backlog.boot_minheap.{c}.n{k}", str(e)[:200])
            return
        for (k, aio, _), kib in found.items():
            key = f"backlog.boot_minheap.{'aio' if aio else 'blocking'}.n{k}"
            if kib is None:
                self.res.put_na(key, "does not boot in 512 KiB")
            else:
                self.res.put(key, float(kib * 1024))
        # and to queue them offline in the first place (the segment index grows with them)
        self.say(f"backlog: smallest heap to queue {n:,} offline")
        try:
            qs = load(BENCH_DIR / "b_boot_heap.py").queue_heap([n], LIB_DIR, tries=3)
        except (RuntimeError, OSError) as e:
            for c in ("blocking", "aio"):
                self.res.put_na(f"backlog.queue_minheap.{c}.n{n}", str(e)[:200])
            return
        for (k, aio), kib in qs.items():
            key = f"backlog.queue_minheap.{'aio' if aio else 'blocking'}.n{k}"
            if kib is None:
                self.res.put_na(key, "does not queue them in 512 KiB")
            else:
                self.res.put(key, float(kib * 1024))

    def measure_memory(self, port: int) -> None:
        script = BENCH_DIR / "b_mem.py"
        if not script.exists():
            self.res.put_na("mem", "tools/bench/b_mem.py is not in this tree")
            return
        self.say("memory: the node profile per route (.mpy, ROMFS, TLS), smallest heap")
        argv = ["--quick"] if self.plan_for("memory").quick else []
        fw = frozen_unix.FIRMWARE
        st = frozen_unix.stamp(fw)
        if st.is_file() and st.read_text().strip() == frozen_unix.lib_digest(LIB_DIR):
            argv += ["--frozen", str(fw)]
        else:
            why = "no firmware frozen from this lib/ in build/frozen (tools/frozen_unix.py)"
            self.res.put_na("mem.frozen", why)
        # mqtt_as is on no registry: measured beside the library when a clone is there
        if (MQTT_AS_DIR / "mqtt_as" / "__init__.py").is_file():
            argv += ["--mqtt-as", str(MQTT_AS_DIR)]
        else:
            self.res.put_na("mem.mqttas", f"no mqtt_as clone in {MQTT_AS_DIR.relative_to(ROOT)}")
        run_host(self.res, script, argv, "mem", timeout=1800)

    def measure_pico(self, port: int) -> None:
        self.say("emulated Pico (32-bit)")
        argv = ["--quick"] if self.plan_for("pico").quick else []
        env = {"MQTTS_PICO_DIR": pico_dir()}
        run_host(self.res, BENCH_DIR / "b_pico.py", argv, "pico", timeout=1800, env=env)
        mem = BENCH_DIR / "b_mem_pico.py"  # the memory benchmark's node, 32-bit
        if mem.exists():
            self.say("emulated Pico: the memory benchmark's node profile")
            run_host(self.res, mem, argv, "pico.mem", timeout=1800, env=env)
        else:
            self.res.put_na("pico.mem", "tools/bench/b_mem_pico.py is not in this tree")

    def measure_fleet(self, port: int) -> None:
        script = BENCH_DIR / "b_fleet.py"
        if not script.exists():
            self.res.put_na("fleet", "tools/bench/b_fleet.py is not in this tree")
            return
        p = self.plan
        self.say(f"fleet: {p.fleet_nodes} nodes, {p.fleet_secs} s per jitter setting")
        argv = ["--nodes", str(p.fleet_nodes), "--duration", str(p.fleet_secs)]
        argv += ["--jitter", ",".join(FLEET_JITTERS)]
        run_host(self.res, script, argv, "fleet", timeout=4 * p.fleet_secs + 600)

    broker_pid: int | None
