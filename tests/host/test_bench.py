"""The benchmark tool (tools/bench.py): a quick run of the issue-6 areas yields a complete
table, the allocation measurement works, and each issue's goal is judged from the figures
(fed in here, so these tests take no measurement of their own). No timing assertions: the
machine is shared and noisy."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import bench
from harness import REPO, Broker

NUMBER = re.compile(r"^-?[\d,]+(\.\d+)?$")
NA = re.compile(r"^n/a \(.+\)$")
AREAS = ("heap", "alloc", "code", "speed", "flash", "recovery", "min heap")
OTHER_AREAS = ("aio", "budget", "backlog", "memory", "pico", "fleet")  # not run by the test
# measurements every run must report (a number or an explicit n/a with its reason)
MUST = (
    "mqttsession (.mpy): connected",
    "mqttsession (.mpy, with store): connected",
    "mem_peak() rise over the loop",
    "mqttsession: publish QoS 0 (window=1)",
    "mqttsession: publish QoS 1 (window=1)",
    "mqttsession: publish QoS 2 (window=1)",
    "mqttsession: receive QoS 1, umqtt-form callback",
    "mqttsession: receive QoS 1, raw callback",
    "mqttsession total",
    "mqttsession: publish QoS 1, window=1",
    "mqttsession: publish QoS 1, window=16",
    "mqttsession with store (littlefs): publish QoS 1, window=1",
    "floor: QoS 1 stop-and-wait (bare socket)",
    "floor: QoS 1 window=32",
    "floor: QoS 1 window=16",
    "mqttsession: QoS 1 window=16 / floor window=16",
    "mqttsession with store (littlefs): publish QoS 1, window=16",
    "with store, QoS 1 window=16 / RAM session window=16",
    "paho-mqtt (CPython): QoS 1 stop-and-wait",
    "paho-mqtt (CPython): QoS 1 window=32",
    "mosquitto_pub -l: QoS 1",
    "umqtt.simple",
    "mqtt_as",
    "prog 32: naive: one synced append per message",
    "prog 256: naive: one synced append per message",
    "prog 32: store, QoS 1, window=1 (acknowledged before return): erases",
    "prog 32: store, QoS 1 offline queue: queued: erases",
    "link return to backlog acknowledged",
    "mqttsession (.mpy): connect, subscribe, QoS 0/1/2 loop",
)
TARGETS = (
    "QoS 1 window=1 vs umqtt.simple",
    "QoS 1 window=1 vs the floor",
    "windowed QoS 1 vs the windowed floor",
    "connected heap with a store vs mqtt_as",
    "bytes allocated per steady-state QoS 0 publish",
    "bytes allocated per steady-state QoS 1 publish",
    "total .mpy vs mqtt_as",
    "runs in a 24 KB heap",
    "erases per durable message",
    "flash writes for a message acknowledged before return",
    "issue 13: QoS 1 window=1 vs the stop-and-wait floor",
    "issue 13: QoS 1 window=16 vs the floor at window=16",
)


def tables(text: str) -> list[list[list[str]]]:
    """The markdown tables of text, each as rows of cells (header and rule dropped)."""
    found: list[list[list[str]]] = []
    current: list[list[str]] | None = None
    for line in text.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if current is None:
                current = []
                found.append(current)
                continue  # header
            if all(set(c) <= {"-", ":"} for c in cells):
                continue
            current.append(cells)
        else:
            current = None
    return found


def test_quick_run_reports_every_row(tmp_path: Path) -> None:
    out = tmp_path / "BENCH.md"
    r = subprocess.run(
        [
            sys.executable,
            str(REPO / "tools" / "bench.py"),
            "--quick",
            "--only",
            ",".join(bench.CORE_AREAS),
            "--out",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    text = out.read_text()
    for word in ("uname", "CPU", "micropython", "python", "Date:", "tools/bench.py --quick --only"):
        assert word in text, word
    found = tables(text)
    assert len(found) == 2, "expected the results table and the targets table"
    results, targets = found
    for area, what, value, unit, _note in results:
        if area in OTHER_AREAS:  # left out of this run, and said so
            assert (what, value) == ("not measured in this run", "n/a (not selected)")
            continue
        assert area in AREAS, area
        assert unit, what
        assert NUMBER.match(value) or NA.match(value), f"{what}: {value!r}"
    names = [row[1] for row in results]
    for must in MUST:
        assert any(must in n for n in names), f"no row for {must!r}"
    assert {row[0] for row in results} == set(AREAS) | set(OTHER_AREAS)
    for what, _goal, measured, status in targets:
        assert status in ("met", "not met", "-"), what
        assert (status == "-") == bool(NA.match(measured)), f"{what}: {measured!r}"
    for t in TARGETS:
        assert any(t in row[0] for row in targets), f"no target row for {t!r}"
    # the same tables went to stdout
    assert tables(r.stdout) == found


@pytest.fixture(scope="module")
def nodelay_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    b = Broker(
        tmp_path_factory.mktemp("bench-broker"), verbose=False, extra=["set_tcp_nodelay true"]
    )
    yield b
    b.close()


def test_allocation_per_message_is_measured(nodelay_broker: Broker) -> None:
    # bytes allocated per steady-state QoS 0/1 publish and per receive come out as
    # numbers; whether they reach 0 is for the benchmark table to say
    res = bench.Results()
    bench.RUN.mkdir(parents=True, exist_ok=True)
    try:
        bench.collect(
            res,
            "b_alloc.py",
            {"port": nodelay_broker.port, "lib": "ms", "n": 40},
            [bench.LIB_DIR, bench.BENCH_DIR, bench.BOARD_DIR],
            "alloc.ms",
            timeout=90,
            heap="8m",
        )
    finally:
        shutil.rmtree(bench.RUN, ignore_errors=True)
    assert not res.na, (res.na, res.log)
    for key in (
        "alloc.ms.pub.q0",
        "alloc.ms.pub.q1",
        "alloc.ms.recv.q0.raw",
        "alloc.ms.recv.q1.raw",
        "alloc.ms.recv.q1.cb",
        "alloc.ms.pub.q0.garbage",
        "alloc.ms.recv.q1.raw.garbage",
    ):
        v = res.get(key)
        assert v is not None and 0 <= v < 1e6, (key, v, res.log)


def judged(figures: dict[str, float], na: dict[str, str] | None = None) -> bench.Bench:
    """A Bench that measured nothing itself: figures filed as a run would, then the issue
    areas' rows and goals built from them."""
    b = bench.Bench.__new__(bench.Bench)
    b.plan = bench.QUICK
    b.res = bench.Results()
    b.rows, b.targets, b.extra, b.failed = [], [], {}, {}
    b.areas = bench.AREAS
    for k, v in figures.items():
        b.res.put(k, v)
    for k, why in (na or {}).items():
        b.res.put_na(k, why)
    b.build_issue_rows()
    return b


def status(b: bench.Bench, name: str) -> tuple[str, str]:
    hits = [(t.note, t.value) for t in b.targets if t.what == name]
    assert len(hits) == 1, (name, [t.what for t in b.targets])
    return hits[0]


def test_issue_goals_follow_the_figures() -> None:
    from bench_goals import aio_backoff_ms

    n = bench.QUICK.backlog_n
    good = {
        "aio.gap.reset": 4.0,
        "aio.gap.trickle": 20.0,
        "aio.restart.return_to_command_ms": 10.0,
        "budget.ms": 200.0,
        "budget.stall": 250.0,
        "backlog.p32.drain_per_s.n10": 1000.0,
        f"backlog.p32.drain_per_s.n{n}": 700.0,
        "backlog.p32.queue_share": 1.5,  # the median of three runs
        "backlog.p32.queue_share.run0": 1.4,
        "backlog.p32.queue_share.run1": 1.5,
        "backlog.p32.queue_share.run2": 1.9,
        "backlog.p32.naive.erases": 1.6,
        "backlog.p32.durable.erases": 0.1,
        "mem.code": 16 * 1024.0,
        "mem.mpy.pub.q1.garbage": 0.0,
        "fleet.j0.lost": 0.0,
        "tput.ms.pub.q1.w16": 50.0,
        "floor.q1.w16": 100.0,
    }
    b = judged(good)
    for name in (
        "issue 10: ticker gap during connection reset",
        "issue 10: ticker gap during broker link trickling 10 bytes/s",
        "issue 10: session-losing broker restart: link return to first command",
        "issue 16: longest call during broker stalls 1.5 s",
        f"issue 13: prog 32: drain rate of {n:,} queued vs 10",
        f"issue 13: prog 32: queueing cost at {n:,} queued vs the first 320, median of 3 runs",
        f"issue 13: prog 32: erases, synced append / backlog of {n:,}",
        "issue 12: .mpy code the node loads",
        "issue 12: garbage per QoS 1 publish",
        "issue 11: fleet (jitter 0): messages lost",
        "issue 13: QoS 1 window=16 vs the floor at window=16",
    ):
        assert status(b, name)[0] == "met", (name, status(b, name))
    worse = {
        **good,
        "aio.gap.reset": 21.0,  # one past each goal
        "aio.restart.return_to_command_ms": (aio_backoff_ms() or 0) + 1.0,
        "budget.stall": 251.0,
        f"backlog.p32.drain_per_s.n{n}": 690.0,
        "backlog.p32.queue_share": 1.51,
        "backlog.p32.durable.erases": 0.101,
        "mem.code": 16 * 1024.0 + 1,
        "mem.mpy.pub.q1.garbage": 16.0,
        "fleet.j0.lost": 1.0,
    }
    b = judged(worse)
    for name in (
        "issue 10: ticker gap during connection reset",
        "issue 10: session-losing broker restart: link return to first command",
        "issue 16: longest call during broker stalls 1.5 s",
        f"issue 13: prog 32: drain rate of {n:,} queued vs 10",
        f"issue 13: prog 32: queueing cost at {n:,} queued vs the first 320, median of 3 runs",
        f"issue 13: prog 32: erases, synced append / backlog of {n:,}",
        "issue 12: .mpy code the node loads",
        "issue 12: garbage per QoS 1 publish",
        "issue 11: fleet (jitter 0): messages lost",
    ):
        assert status(b, name)[0] == "not met", (name, status(b, name))


def test_a_goal_without_its_figure_says_why() -> None:
    b = judged({}, {"aio": "b_aio.py failed: no READY line", "budget": "not measured in this run"})
    assert status(b, "issue 10: ticker gap during connection reset") == (
        "-",
        "n/a (b_aio.py failed: no READY line)",
    )
    assert status(b, "issue 16: longest call during broker stalls 1.5 s") == (
        "-",
        "n/a (not measured in this run)",
    )
    assert status(b, "issue 12: .mpy code the node loads")[0] == "-"
    for row in b.rows:
        assert NUMBER.match(row.value) or NA.match(row.value), row


def test_an_area_that_breaks_is_marked_and_the_run_goes_on() -> None:
    b = bench.Bench.__new__(bench.Bench)
    b.res, b.failed = bench.Results(), {}
    b.say = lambda _msg: None

    def broken(port: int) -> None:
        raise RuntimeError("no READY line\nmore detail")

    b.step("aio", broken, 0)
    b.step("budget", lambda port: b.res.put("budget.ms", float(port)), 200)
    assert b.failed == {"aio": "RuntimeError: no READY line"}
    assert b.res.why("aio.gap.reset") == "failed: RuntimeError: no READY line"
    assert b.res.get("budget.ms") == 200


def test_host_script_results_and_failures_are_filed(tmp_path: Path) -> None:
    ok = tmp_path / "ok.py"
    ok.write_text("print('R demo.a 1.5')\nprint('NA demo.b no board here')\nprint('noise')\n")
    bad = tmp_path / "bad.py"
    bad.write_text("raise SystemExit('ValueError: broken on purpose')\n")
    res = bench.Results()
    assert bench.run_host(res, ok, [], "demo", timeout=60) == 0
    assert res.get("demo.a") == 1.5 and res.why("demo.b") == "no board here"
    assert bench.run_host(res, bad, [], "other", timeout=60) == 1
    assert res.why("other.x") == "bad.py failed: ValueError: broken on purpose"


def test_only_names_known_areas() -> None:
    with pytest.raises(SystemExit) as e:
        bench.main(["--only", "speed,nosuch"])
    assert e.value.code == 2


def test_pinned_puts_this_process_on_one_cpu_and_restores_it() -> None:
    before = os.sched_getaffinity(0)
    with bench.pinned([]) as cpu:
        assert cpu is not None and os.sched_getaffinity(0) == {cpu}
    assert os.sched_getaffinity(0) == before


def test_pinned_apart_puts_the_others_on_another_cpu_or_says_it_cannot() -> None:
    # the backlog's drains with the broker on its own CPU: this process on one CPU, the
    # broker (here a sleeping child) on another, both restored after; with one CPU
    # allowed, None (the rows then say why) and nothing changed
    before = os.sched_getaffinity(0)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        theirs = os.sched_getaffinity(child.pid)
        if len(before) >= 2:
            with bench.pinned([child.pid], apart=True) as cpu:
                assert cpu is not None and os.sched_getaffinity(0) == {cpu}
                other = os.sched_getaffinity(child.pid)
                assert len(other) == 1 and other != {cpu}
            assert os.sched_getaffinity(0) == before
            assert os.sched_getaffinity(child.pid) == theirs
        one = {min(before)}
        os.sched_setaffinity(0, one)
        try:
            with bench.pinned([child.pid], apart=True) as cpu:
                assert cpu is None
                assert os.sched_getaffinity(0) == one
                assert os.sched_getaffinity(child.pid) == theirs
        finally:
            os.sched_setaffinity(0, before)
    finally:
        child.kill()
        child.wait()


def test_drains_with_the_broker_apart_are_rows_not_goals() -> None:
    # b_backlog.py apart=1's figures: rows with every run's figure, the ratio shown, and
    # no goal judged from them (the one-CPU goal row stays the only drain goal: with no
    # one-CPU figures it is not met, though these would meet it)
    n = bench.QUICK.backlog_n
    a = "backlog.p32.apart"
    figures = {f"{a}.drain_per_s.n10": 40000.0, f"{a}.drain_per_s.n{n}": 30000.0,
               f"{a}.drain_share": 0.75, f"{a}.drain_ram_per_s.n{n}": 80000.0,
               f"{a}.drain_ram_share": 0.325}
    figures.update({f"{a}.drain_per_s.n10.run{k}": 30000.0 + 2500 * k for k in range(5)})
    figures.update({f"{a}.drain_per_s.n{n}.run{k}": 29000.0 + 1000 * k for k in range(3)})
    b = judged(figures)
    rows = {r.what: r for r in b.rows if "broker on its own CPU" in r.what}
    r10 = rows["prog 32: drain rate, 10 queued, broker on its own CPU"]
    assert r10.value == "40,000" and "30,000 / 32,500 / 35,000 / 37,500 / 40,000" in r10.note
    rn = rows[f"prog 32: drain rate, {n:,} queued, broker on its own CPU"]
    assert rn.value == "30,000" and "29,000 / 30,000 / 31,000" in rn.note
    assert rows[f"prog 32: that rate, {n:,} queued vs 10, broker on its own CPU"].value == "0.750"
    assert not [t.what for t in b.targets if "own CPU" in t.what]
    assert status(b, f"issue 13: prog 32: drain rate of {n:,} queued vs 10")[0] != "met"


def test_quick_areas_take_quick_counts_in_a_full_run() -> None:
    b = bench.Bench.__new__(bench.Bench)
    b.plan = bench.FULL
    b.quick_areas = frozenset({"aio", "backlog"})
    assert b.plan_for("aio").aio_secs == bench.QUICK.aio_secs
    assert b.plan_for("backlog").backlog_n == bench.QUICK.backlog_n
    assert b.plan_for("backlog").quick and not b.plan_for("pico").quick
    assert b.plan_for("budget") == bench.FULL


def test_a_ratio_is_shown_on_the_side_of_its_goal_it_is_on() -> None:
    from bench_rows import against

    assert against(0.6996, 0.7, True) == "0.6996"  # not met: never shown as 0.70
    assert against(0.71, 0.7, True) == "0.71"
    assert against(1.5004, 1.5, False) == "1.5004"
    assert against(15.96, 16, True, 1) == "15.96"


def test_node_profile_columns_unix_and_pico() -> None:
    from bench_goals_mem import node_columns

    res = bench.Results()
    res.put("mem.mpy.connected", 2048.0)
    res.put_na("pico", "no micropython-v1.28.0-RPI_PICO.uf2 in /nowhere")
    assert node_columns(res, ("speed",)) == []
    text = "\n".join(node_columns(res, ("memory", "pico")))
    (table,) = tables(text)
    row = next(r for r in table if r[0] == "heap connected")
    assert row == [
        "heap connected",
        "2 KB",
        "n/a (no micropython-v1.28.0-RPI_PICO.uf2 in /nowhere)",
    ]


def test_frozen_firmware_tool_and_stale_firmware(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # tools/frozen_unix.py without a MicroPython source tree, or with a directory that is
    # none, stops with a clear error; the memory benchmark refuses a firmware frozen from
    # another library than the one it measures (it would report that library's heap)
    import frozen_unix

    sys.path.insert(0, str(REPO / "tools" / "bench"))
    import b_mem

    monkeypatch.delenv("MQTTS_MPY_SRC", raising=False)
    assert frozen_unix.main([]) == 2
    assert "no MicroPython source tree" in capsys.readouterr().err
    assert frozen_unix.main(["--mpy-src", str(tmp_path), "--out", str(tmp_path / "o")]) == 1
    assert "is not a MicroPython source tree" in capsys.readouterr().err
    lib = tmp_path / "lib"
    shutil.copytree(REPO / "lib" / "mqttsession", lib / "mqttsession")
    fw = tmp_path / "micropython"
    fw.write_bytes(b"")
    frozen_unix.stamp(fw).write_text(frozen_unix.lib_digest(lib) + "\n")
    with (lib / "mqttsession" / "link.py").open("a") as f:
        f.write("# changed after the build\n")
    with pytest.raises(SystemExit) as e:
        b_mem.main(["--frozen", str(fw), "--lib", str(lib)])
    assert e.value.code == 2
    assert "not frozen from" in capsys.readouterr().err
    frozen_unix.stamp(fw).unlink()
    with pytest.raises(SystemExit):
        b_mem.main(["--frozen", str(tmp_path / "none")])
    assert "no such firmware" in capsys.readouterr().err
