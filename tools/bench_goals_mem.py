"""Rows and goals of the areas about memory and flash: a backlog of thousands queued in
flash (issue 13), the node's memory per deployment route (issue 12) and the emulated Pico's
32-bit figures (issue 15). Judged from the figures of the same run, never written in."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from bench_rows import Row, against, fmt

if TYPE_CHECKING:
    from bench_setup import Plan, Results

MEM_CODE_KB = 16  # issue 12: .mpy code the node profile loads
MEM_ROM_KB = 12  # issue 12: heap connected with the code in ROM
MEM_MIN_KB = 40  # issue 12: smallest heap, .mpy, store on littlefs
MQTT_AS_CONNECTED = 30.1 * 1024  # issue 12's figure for mqtt_as connected (.mpy), quoted


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


class MemoryRows:
    """Builds the backlog, memory and pico rows and goals (a part of Bench)."""

    res: Results
    plan: Plan
    rows: list[Row]
    row: Callable[..., float | None]
    value_row: Callable[..., None]
    target: Callable[..., None]
    at_most: Callable[..., None]
    ratio_goal: Callable[..., None]
    plan_for: Callable[[str], Plan]

    def backlog_rows(self) -> None:
        n = self.plan_for("backlog").backlog_n

        def spread(key: str, k: int) -> str:
            # the figures of k runs (key.run0...) whose median is a row
            got = [self.res.get(f"{key}.run{i}") for i in range(k)]
            return " / ".join(fmt(x) for x in got if x is not None) or "none"

        for p in (32, 256):
            b = f"backlog.p{p}"
            for k, what in (
                (320, "the first 320"),
                (1280, "messages 961-1,280"),
                (n, f"the last 320 of {n:,}"),
            ):
                if k <= n:
                    self.row(
                        "backlog",
                        f"prog {p}: time to queue one message offline, mean over {what}",
                        f"{b}.queue_us.at{k}",
                        "us",
                        "littlefs, 4 KiB blocks, counting block device",
                    )
                    self.row(
                        "backlog",
                        f"prog {p}: block reads per queued message, {what}",
                        f"{b}.queue_reads.at{k}",
                        "reads/msg",
                    )
            self.row(
                "backlog",
                f"prog {p}: erases per message queued",
                f"{b}.queued.erases",
                "erases/msg",
            )
            self.row(
                "backlog",
                f"prog {p}: erases per message drained",
                f"{b}.drain.erases",
                "erases/msg",
            )
            self.row(
                "backlog",
                f"prog {p}: erases per durable message (queued + drained)",
                f"{b}.durable.erases",
                "erases/msg",
            )
            self.row(
                "backlog",
                f"prog {p}: one synced append per message",
                f"{b}.naive.erases",
                "erases/msg",
                "the naive design, same geometry",
            )
            self.row(
                "backlog",
                f"prog {p}: boot with {n:,} queued: store and client made",
                f"{b}.boot_ms",
                "ms",
                "after a remount",
            )
            self.row(
                "backlog",
                f"prog {p}: boot with {n:,} queued: heap taken",
                f"{b}.boot_heap",
                "bytes",
                "gc.mem_alloc() growth",
            )
            self.row(
                "backlog", f"prog {p}: pending after that boot", f"{b}.pending_at_boot", "messages"
            )
            self.row(
                "backlog",
                f"prog {p}: drain rate, 10 queued",
                f"{b}.drain_per_s.n10",
                "acks/s",
                "median of 5; broker and client on one CPU; all 10 are in flight before "
                "the first acknowledgement: this times acknowledgements only",
            )
            for k in (10, n):
                self.row(
                    "backlog",
                    f"prog {p}: block reads per drained message, {k:,} queued",
                    f"{b}.drain_reads.n{k}",
                    "reads/msg",
                    "littlefs path lookups: a segment opened and removed per 32 messages",
                )
            self.row(
                "backlog",
                f"prog {p}: drain rate, {n:,} queued",
                f"{b}.drain_per_s.n{n}",
                "acks/s",
                "first to last acknowledgement",
            )
            for k in (10, n):
                self.row(
                    "backlog",
                    f"prog {p}: drain rate, {k:,} queued, first PUBLISH to last acknowledgement",
                    f"{b}.drain_whole_per_s.n{k}",
                    "msg/s",
                    "every message's send and acknowledgement in the span",
                )
            self.row(
                "backlog",
                f"prog {p}: that rate, {n:,} queued vs 10",
                f"{b}.drain_whole_share",
                "ratio",
                "not the issue's measure (first to last acknowledgement)",
            )
            self.row(
                "backlog",
                f"prog {p}: drain rate, {n:,} queued in a RAM queue (no store)",
                f"{b}.drain_ram_per_s.n{n}",
                "acks/s",
                "first to last acknowledgement; same client, window and broker, right after",
            )
            self.row(
                "backlog",
                f"prog {p}: drain rate, {n:,} from flash vs from a RAM queue",
                f"{b}.drain_ram_share",
                "ratio",
                "the store's own share of the drain: its block reads",
            )
            self.ratio_goal(
                "backlog",
                f"issue 13: prog {p}: drain rate of {n:,} queued vs 10",
                f"{b}.drain_per_s.n{n}",
                f"{b}.drain_per_s.n10",
                0.7,
                "acks/s",
            )
            # the same drains with the broker on the other CPU (b_backlog.py apart=1)
            a = f"{b}.apart"
            self.row("backlog", f"prog {p}: drain rate, 10 queued, broker on its own CPU",
                     f"{a}.drain_per_s.n10", "acks/s",
                     f"median of 5 ({spread(f'{a}.drain_per_s.n10', 5)}); broker on the other "
                     "CPU, as a node's broker is on another machine")
            self.row("backlog", f"prog {p}: drain rate, {n:,} queued, broker on its own CPU",
                     f"{a}.drain_per_s.n{n}", "acks/s",
                     f"median of 3 ({spread(f'{a}.drain_per_s.n{n}', 3)}); first to last "
                     "acknowledgement")
            self.row("backlog", f"prog {p}: that rate, {n:,} queued vs 10, broker on its own CPU",
                     f"{a}.drain_share", "ratio",
                     "the issue's measure with both medians; not judged against the goal: "
                     "the 10-queued runs swing too much on two CPUs (see that row)")
            self.row("backlog",
                     f"prog {p}: drain rate, {n:,} queued in a RAM queue, broker on its own CPU",
                     f"{a}.drain_ram_per_s.n{n}", "acks/s", "no store; right after")
            self.row("backlog",
                     f"prog {p}: drain rate, {n:,} from flash vs from a RAM queue, broker on "
                     "its own CPU", f"{a}.drain_ram_share", "ratio",
                     "the store's own share of the drain when the client has its CPU alone")
            q = self.res.get(f"{b}.queue_share")
            runs = [self.res.get(f"{b}.queue_share.run{k}") for k in range(3)]
            self.target(
                f"issue 13: prog {p}: queueing cost at {n:,} queued vs the first 320"
                ", median of 3 runs",
                "<= 1.50",
                q,
                q <= 1.5 if q is not None else None,
                f"{against(q, 1.5, False)} (runs {' / '.join(fmt(x) for x in runs if x)})"
                if q is not None
                else "",
                self.res.why(f"{b}.queue_share"),
                area="backlog",
            )
            need = 16 if p == 32 else 8
            ne, de = self.res.get(f"{b}.naive.erases"), self.res.get(f"{b}.durable.erases")
            q = ratio(ne, de)
            self.target(
                f"issue 13: prog {p}: erases, synced append / backlog of {n:,}",
                f">= {need}x",
                q,
                q >= need if q is not None else None,
                f"{against(q, need, True, 1)}x ({fmt(ne or 0)} vs {fmt(de or 0)} erases/msg)"
                if q is not None
                else "",
                self.res.why(f"{b}.durable.erases"),
                area="backlog",
            )
        for k in (0, n):
            for c, what in (("blocking", "blocking client"), ("aio", "asyncio client")):
                self.row(
                    "backlog",
                    f"prog 32: smallest heap to boot with {k:,} queued, {what}",
                    f"backlog.boot_minheap.{c}.n{k}",
                    "KB",
                    "the peak of loading the store; .mpy, the device script compiled on it",
                    1 / 1024,
                )
        for c, what in (("blocking", "blocking client"), ("aio", "asyncio client")):
            self.row(
                "backlog",
                f"prog 32: smallest heap to queue {n:,} offline, {what}",
                f"backlog.queue_minheap.{c}.n{n}",
                "KB",
                "every one of 3 runs; max_bytes 2 MB (room for 514 segments in the index)",
                1 / 1024,
            )

    def memory_rows(self) -> None:
        kb = 1 / 1024
        g = "memory"
        note = "the node profile: client + store on littlefs + Link"
        self.row(g, ".mpy code the node loads (mpy-cross -O2)", "mem.code", "KB", note, kb)
        self.row(g, "whole library .mpy, -O2", "mem.lib_mpy_o2", "KB", "", kb)
        self.row(g, "whole library .mpy, -O3 (no line numbers)", "mem.lib_mpy_o3", "KB", "", kb)
        for form, name in (
            ("mpy", ".mpy copied"),
            ("rom", "ROMFS (beyond the image)"),
            ("mpy3", ".mpy -O3"),
            ("frozen", "frozen into a unix-port firmware"),
        ):
            for k in ("import", "connected", "loop"):
                if form == "mpy3" and k != "connected":
                    continue
                self.row(g, f"heap {k}, {name}", f"mem.{form}.{k}", "KB", "", kb)
        self.row(g, "heap connected over TLS, .mpy", "mem.mpy.tls.connected", "KB", "", kb)
        self.row(g, "heap connected over TLS, ROMFS", "mem.rom.tls.connected", "KB", "", kb)
        self.row(
            g,
            "smallest heap, .mpy, store on littlefs",
            "mem.mpy.minheap_kb",
            "KB",
            "-X heapsize bisection",
        )
        self.row(g, "smallest heap, ROMFS (image inside the heap)", "mem.rom.minheap_kb", "KB")
        self.row(g, "smallest heap, frozen, store on littlefs", "mem.frozen.minheap_kb", "KB")
        for k, label in (
            ("pub.q0", "QoS 0 publish"),
            ("pub.q1", "QoS 1 publish"),
            ("recv.q0.raw", "QoS 0 raw receive"),
            ("recv.q1.raw", "QoS 1 raw receive"),
        ):
            self.row(g, f"garbage per {label}", f"mem.mpy.{k}.garbage", "bytes/msg")
            self.row(
                g,
                f"allocated per {label} (frames freed on return included)",
                f"mem.mpy.{k}.total",
                "bytes/msg",
            )
        self.row(g, "TLS: garbage per QoS 1 publish", "mem.mpy.tls.pub.q1.garbage", "bytes/msg")
        # mqtt_as: measured in the same run when a clone is in build/bench (b_mem.py
        # --mqtt-as), else issue 12's figure
        mq = self.res.get("mem.mqttas.connected")
        if mq is not None:
            note = "mqtt_as's node: connect, subscribe, QoS 0/1 received back; no store"
            self.row(g, "mqtt_as: .mpy code its node loads", "mem.mqttas.code", "KB", "", kb)
            self.row(g, "mqtt_as: heap after import, .mpy", "mem.mqttas.import", "KB", "", kb)
            self.row(g, "mqtt_as: heap connected, .mpy", "mem.mqttas.connected", "KB", note, kb)
            self.row(g, "mqtt_as: smallest heap, .mpy", "mem.mqttas.minheap_kb", "KB",
                     "-X heapsize bisection")
            for q in (0, 1):
                self.row(g, f"mqtt_as: garbage per QoS {q} publish",
                         f"mem.mqttas.pub.q{q}.garbage", "bytes/msg",
                         "to a topic it is not subscribed to; its tasks' allocations included")
                self.row(g, f"mqtt_as: allocated per QoS {q} publish",
                         f"mem.mqttas.pub.q{q}.total", "bytes/msg")
            ref, how = mq, "measured"
        else:
            self.value_row(
                g,
                "mqtt_as: heap connected (.mpy), quoted from issue 12",
                MQTT_AS_CONNECTED * kb,
                "KB",
                f"not measured ({self.res.why('mem.mqttas')})",
            )
            ref, how = MQTT_AS_CONNECTED, "quoted"
        self.at_most(g, "issue 12: .mpy code the node loads", "mem.code", MEM_CODE_KB, "KB", kb)
        v = self.res.get("mem.mpy.connected")
        self.target(
            f"issue 12: heap connected, .mpy, vs mqtt_as ({how})",
            "<= 1.00",
            v,
            v <= ref if v is not None else None,
            f"{v / ref:.2f} ({fmt(v * kb)} vs {fmt(ref * kb)} KB)" if v is not None else "",
            self.res.why("mem.mpy.connected"),
            area=g,
        )
        self.at_most(
            g,
            "issue 12: heap connected, code in ROMFS",
            "mem.rom.connected",
            MEM_ROM_KB,
            "KB",
            kb,
        )
        self.at_most(
            g,
            "issue 12: smallest heap, .mpy, store on littlefs",
            "mem.mpy.minheap_kb",
            MEM_MIN_KB,
            "KB",
        )
        for k, label in (
            ("pub.q0", "QoS 0 publish"),
            ("pub.q1", "QoS 1 publish"),
            ("recv.q0.raw", "QoS 0 raw receive"),
            ("recv.q1.raw", "QoS 1 raw receive"),
        ):
            self.at_most(
                g, f"issue 12: garbage per {label}", f"mem.mpy.{k}.garbage", 0, "bytes/msg"
            )

    def pico_rows(self) -> None:
        g = "pico"
        note = "stock MicroPython RPI_PICO on rp2040js (32-bit)"
        mem = "the memory benchmark's node profile, as on the unix port (memory area)"
        self.row(g, ".mpy code the node loads (armv6m, -O2)", "pico.mem.code", "KB", mem, 1 / 1024)
        for k, what in (
            ("import", "after import"),
            ("client", "with the client made (store loaded)"),
            ("connected", "connected"),
            ("loop", "after the QoS 0/1/2 loop"),
        ):
            self.row(g, f"node profile: heap {what}, .mpy", f"pico.mem.{k}", "KB", "", 1 / 1024)
        self.row(
            g,
            "node profile: smallest free heap it runs in",
            "pico.mem.min_free",
            "KB",
            "",
            1 / 1024,
        )
        for q in (0, 1):
            self.row(
                g,
                f"node profile: garbage per QoS {q} publish",
                f"pico.mem.pub.q{q}.garbage",
                "bytes/msg",
            )
        for k, what in (
            ("boot", "after boot"),
            ("import", "after importing mqttsession (.mpy)"),
            ("store", "with a SessionStore"),
            ("connected", "connected"),
            ("published", "after 20 QoS 1 publishes"),
        ):
            self.row(g, f"free heap {what}", f"pico.heap.{k}", "bytes", note)
        self.row(
            g,
            "smallest free heap the node runs in (before import)",
            "pico.heap.min_free_before_import",
            "bytes",
            "ballast bisection",
        )
        self.row(g, "library .mpy (armv6m)", "pico.code.lib_mpy", "bytes")
        self.row(g, "board layer .mpy (boards/pico)", "pico.code.board_mpy", "bytes")
        for w in (1, 8):
            self.row(
                g,
                f"QoS 1 window={w}, board's clock",
                f"pico.qos1.w{w}.board_msg_s",
                "msg/s",
                "through the UART bridge",
            )
            self.row(
                g,
                f"QoS 1 window={w}, wall clock",
                f"pico.qos1.w{w}.wall_msg_s",
                "msg/s",
                "the emulator runs at about 0.4x a real Pico",
            )
        n = self.res.get("pico.backlog.n")
        bl = f"{n:,.0f} queued offline" if n else "the backlog"
        clock = "board's clock; no flash timing modelled (a real board adds its erases)"
        for k, what, unit in (
            ("queue_us.first32", "backlog: queueing one message, the first 32", "us"),
            ("queue_us.last32", f"backlog: queueing one message, the last 32 of {bl}", "us"),
            ("ram_queue_us", "backlog: queueing one message in a RAM queue (no store)", "us"),
            ("queued.erases", "backlog: erases per queued message (prog 256)", "erases/msg"),
            ("boot_ms", f"backlog: client made with {bl} (store loaded)", "ms"),
            ("drain_per_s.n10", "backlog: drain of 10 queued, first to last ack", "acks/s"),
            ("drain_per_s", f"backlog: drain of {bl}, first to last ack", "acks/s"),
            ("drain_ram_per_s", f"backlog: drain of {bl} from a RAM queue", "acks/s"),
        ):
            self.row(g, what, f"pico.backlog.{k}", unit, clock)
        for way, what in (("board_to_host", "board to host"), ("host_to_board", "host to board")):
            self.row(
                g, f"bridge raw rate, {what}, board's clock", f"pico.raw.{way}.board_kb_s", "KB/s"
            )
        self.row(
            g,
            "bridge raw rate, board to host, wall clock",
            "pico.raw.board_to_host.wall_kb_s",
            "KB/s",
        )


def node_columns(res: Results, areas: tuple[str, ...]) -> list[str]:
    """The memory benchmark's node profile on the unix port (64-bit) beside the emulated
    Pico (32-bit): one table, for a run that measured either."""
    if "memory" not in areas and "pico" not in areas:
        return []

    def kb(key: str) -> str:
        v = res.get(key)
        return f"{fmt(v / 1024)} KB" if v is not None else f"n/a ({res.why(key)})"

    def b(key: str) -> str:
        v = res.get(key)
        return f"{fmt(v)} B" if v is not None else f"n/a ({res.why(key)})"

    rows = [
        (".mpy code the node loads", kb("mem.code"), kb("pico.mem.code")),
        ("heap after import (.mpy)", kb("mem.mpy.import"), kb("pico.mem.import")),
        ("heap with the client made (store loaded)", kb("mem.mpy.client"), kb("pico.mem.client")),
        ("heap connected", kb("mem.mpy.connected"), kb("pico.mem.connected")),
        ("heap after the QoS 0/1/2 loop", kb("mem.mpy.loop"), kb("pico.mem.loop")),
        ("garbage per QoS 0 publish", b("mem.mpy.pub.q0.garbage"), b("pico.mem.pub.q0.garbage")),
        ("garbage per QoS 1 publish", b("mem.mpy.pub.q1.garbage"), b("pico.mem.pub.q1.garbage")),
    ]
    mh = res.get("mem.mpy.minheap_kb")
    rows.append(
        (
            "smallest heap it runs in (unix: -X heapsize; Pico: free heap left after ballast)",
            f"{fmt(mh)} KB" if mh is not None else f"n/a ({res.why('mem.mpy.minheap_kb')})",
            kb("pico.mem.min_free"),
        )
    )
    out = [
        "## The node profile, 64-bit and 32-bit",
        "",
        "The memory benchmark's node (blocking client + store on littlefs + Link; connect, "
        "subscribe, QoS 0/1/2) with the library copied as .mpy: on the unix port and on the "
        "emulated Pico (stock RPI_PICO firmware, armv6m .mpy), same run.",
        "",
        "| figure | unix port (64-bit) | emulated Pico (32-bit) |",
        "|---|---|---|",
    ]
    out += [f"| {a} | {u} | {p} |" for a, u, p in rows]
    return [*out, ""]
