"""The benchmark table: turning the measured results into rows, one area at a time."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Row:
    area: str
    what: str
    value: str
    unit: str
    note: str = ""


def fmt(v: float) -> str:
    if v == 0:
        return "0"
    if float(v).is_integer():  # counts, bytes, whole milliseconds
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:,.1f}"
    if abs(v) >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def against(q: float, need: float, at_least: bool, digits: int = 2) -> str:
    """q with enough decimals that, as shown, it sits on the same side of need as it does
    (0.6996 against >= 0.70 shows as 0.6996, never as a failing 0.70)."""
    for d in range(digits, 7):
        r = round(q, d)
        if (r >= need if at_least else r <= need) == (q >= need if at_least else q <= need):
            return f"{q:.{d}f}"
    return repr(q)


class Rows:
    """Builds Bench.rows from Bench.res (a part of Bench, see bench_measure)."""

    def build_rows(self) -> None:
        ms, um = self.ms, self.umqtt
        um_note = um.label if not um.why else ""
        p = self.plan

        # heap
        for form in ("mpy", "py"):
            for store in ("", ".store"):
                lbl = f"mqttsession ({'.mpy' if form == 'mpy' else '.py'}"
                lbl += ", with store)" if store else ")"
                base = f"heap.ms.{form}{store}"
                self.row(
                    "heap",
                    f"{lbl}: after import",
                    f"{base}.import",
                    "bytes",
                    "gc.mem_alloc() after gc.collect(), above the script's baseline",
                )
                c = self.row("heap", f"{lbl}: connected", f"{base}.connected", "bytes")
                i = self.res.get(f"{base}.import")
                self.value_row(
                    "heap",
                    f"{lbl}: connected, without the code (connected - after import)",
                    c - i if c is not None and i is not None else None,
                    "bytes",
                    "the client's own state: what stays when the code is frozen in flash",
                    why=self.res.why(f"{base}.connected"),
                )
                self.row("heap", f"{lbl}: after a publish/receive loop", f"{base}.loop", "bytes")
                self.row(
                    "heap",
                    f"{lbl}: mem_peak() rise over the loop",
                    f"{base}.peak",
                    "bytes",
                    "unix port: counts only explicit frees, so an upper bound",
                )
        for form in ("mpy", "py"):
            ext = ".mpy" if form == "mpy" else ".py"
            if um.why:
                self.value_row(
                    "heap",
                    f"umqtt.simple ({ext}): connected",
                    None,
                    "bytes",
                    why=f"umqtt.simple {um.why}",
                )
            else:
                self.row(
                    "heap",
                    f"umqtt.simple ({ext}): after import",
                    f"heap.umqtt.{form}.import",
                    "bytes",
                    um_note,
                )
                self.row(
                    "heap",
                    f"umqtt.simple ({ext}): connected",
                    f"heap.umqtt.{form}.connected",
                    "bytes",
                    um_note,
                )
        self.quoted("heap", "umqtt.simple: connected", "umqtt.heap", "bytes")
        self.quoted("heap", "mqtt_as: connected", "mqtt_as.heap", "bytes")

        # allocation per message
        def alloc(what: str, key: str, note: str = "") -> None:
            self.row("alloc", f"{what}: allocated", key, "bytes/msg", note)
            self.row(
                "alloc",
                f"{what}: of which left for the collector",
                f"{key}.garbage",
                "bytes/msg",
                "gc.mem_alloc() growth with gc off; the rest are heap frames freed at once",
            )

        for q in (0, 1, 2):
            alloc(
                f"mqttsession: publish QoS {q} (window=1)",
                f"alloc.ms.pub.q{q}",
                "micropython.mem_total() delta / N",
            )
        for q in (1, 2):
            alloc(f"mqttsession with store: publish QoS {q} (window=1)", f"alloc.ms.store.q{q}")
        for form, name in (("cb", "umqtt-form callback"), ("raw", "raw callback")):
            for q in (0, 1, 2):
                alloc(f"mqttsession: receive QoS {q}, {name}", f"alloc.ms.recv.q{q}.{form}")
        if um.why:
            self.value_row(
                "alloc", "umqtt.simple: publish", None, "bytes/msg", why=f"umqtt.simple {um.why}"
            )
        else:
            for q in (0, 1):
                alloc(f"umqtt.simple: publish QoS {q}", f"alloc.umqtt.pub.q{q}", um_note)
            for q in (0, 1):
                alloc(f"umqtt.simple: receive QoS {q}", f"alloc.umqtt.recv.q{q}.cb", um_note)
        self.quoted("alloc", "umqtt.simple: publish QoS 0", "umqtt.alloc.q0", "bytes/msg")
        self.quoted("alloc", "umqtt.simple: publish QoS 1", "umqtt.alloc.q1", "bytes/msg")
        self.quoted("alloc", "mqtt_as: publish QoS 0", "mqtt_as.alloc.q0", "bytes/msg")
        self.quoted("alloc", "mqtt_as: publish QoS 1", "mqtt_as.alloc.q1", "bytes/msg")

        # code size
        for mod, size in sorted(ms.mpy_sizes.items()):
            self.value_row("code", f"mqttsession {mod}", size, "bytes .mpy", "mpy-cross -O2")
        ms_total = float(sum(ms.mpy_sizes.values()))
        self.value_row("code", "mqttsession total", ms_total, "bytes .mpy")
        core_total = float(
            sum(
                v
                for k, v in ms.mpy_sizes.items()
                if not k.endswith(("/store.py", "/aio.py", "/link.py"))
            )
        )
        self.value_row(
            "code",
            "mqttsession without store/aio/link (a node without them)",
            core_total,
            "bytes .mpy",
            "those load only when used",
        )
        if um.why:
            self.value_row("code", "umqtt.simple", None, "bytes .mpy", why=f"umqtt.simple {um.why}")
        else:
            self.value_row(
                "code", "umqtt.simple", float(sum(um.mpy_sizes.values())), "bytes .mpy", um_note
            )
        self.quoted("code", "umqtt.simple", "umqtt.mpy", "bytes .mpy")
        self.quoted("code", "mqtt_as", "mqtt_as.mpy", "bytes .mpy")

        # throughput
        best: dict[int, tuple[int, float]] = {}
        for q in (0, 1, 2):
            for w in p.windows:
                if q == 0 and w > 1:
                    continue
                v = self.row(
                    "speed",
                    f"mqttsession: publish QoS {q}, window={w}",
                    f"tput.ms.pub.q{q}.w{w}",
                    "msg/s",
                    "median of rounds" if p.rounds > 1 else "",
                )
                if v is not None and w > 1 and (q not in best or v > best[q][1]):
                    best[q] = (w, v)
        for q in (1, 2):
            if q in best:
                self.value_row(
                    "speed",
                    f"mqttsession: publish QoS {q}, best window (window={best[q][0]})",
                    best[q][1],
                    "msg/s",
                )
        for q in (1, 2):
            for w in p.store_windows:
                self.row(
                    "speed",
                    f"mqttsession with store (littlefs): publish QoS {q}, window={w}",
                    f"tput.ms.store.q{q}.w{w}",
                    "msg/s",
                )
        for form, name in (("cb", "umqtt-form callback"), ("raw", "raw callback")):
            for q in (0, 1, 2):
                self.row(
                    "speed",
                    f"mqttsession: receive QoS {q}, {name}",
                    f"tput.ms.recv.q{q}.{form}",
                    "msg/s",
                    "fed by a raw publisher in the same process",
                )
        self.row("speed", "floor: QoS 1 stop-and-wait (bare socket)", "floor.q1.w1", "msg/s")
        floor_best: tuple[int, float] | None = None
        for w in sorted({w for w in p.windows if w > 1} | {32}):
            v = self.row("speed", f"floor: QoS 1 window={w}", f"floor.q1.w{w}", "msg/s")
            if v is not None and (floor_best is None or v > floor_best[1]):
                floor_best = (w, v)
        if um.why:
            self.value_row(
                "speed", "umqtt.simple: publish QoS 1", None, "msg/s", why=f"umqtt.simple {um.why}"
            )
        else:
            for q in (0, 1):
                self.row(
                    "speed",
                    f"umqtt.simple: publish QoS {q}",
                    f"tput.umqtt.pub.q{q}.w1",
                    "msg/s",
                    um_note,
                )
            for q in (0, 1):
                self.row(
                    "speed",
                    f"umqtt.simple: receive QoS {q}",
                    f"tput.umqtt.recv.q{q}.cb",
                    "msg/s",
                    um_note,
                )
        self.row("speed", "paho-mqtt (CPython): QoS 1 stop-and-wait", "paho.q1.w1", "msg/s")
        self.row("speed", "paho-mqtt (CPython): QoS 1 window=32", "paho.q1.w32", "msg/s")
        for q in (0, 1, 2):
            self.row(
                "speed",
                f"mosquitto_pub -l: QoS {q}",
                f"mosquitto_pub.q{q}",
                "msg/s",
                "libmosquitto, 20 in flight; includes process start",
            )
        self.row(
            "speed",
            "mosquitto_pub -> mosquitto_sub: QoS 1",
            "mosquitto_sub.q1",
            "msg/s",
            "receive rate of the C client",
        )
        self.quoted("speed", "floor QoS 1 stop-and-wait", "floor.w1", "msg/s")
        self.quoted("speed", "floor QoS 1 windowed", "floor.win", "msg/s")
        self.quoted("speed", "paho-mqtt QoS 1 stop-and-wait", "paho.w1", "msg/s")
        self.quoted("speed", "paho-mqtt QoS 1 windowed", "paho.win", "msg/s")
        self.quoted("speed", "umqtt.simple QoS 1", "umqtt.q1", "msg/s")
        self.quoted("speed", "mqtt_as QoS 1", "mqtt_as.q1", "msg/s")

        # flash
        settings = (
            ("w1_q1", "store, QoS 1, window=1 (acknowledged before return)"),
            ("w1_q2", "store, QoS 2, window=1"),
            ("w16_q1", "store, QoS 1, window=16"),
            ("offline_q1_queued", "store, QoS 1 offline queue: queued"),
            ("offline_q1_delivered", "store, QoS 1 offline queue: delivered on reconnect"),
            ("naive", "naive: one synced append per message (60 B records)"),
        )
        for prog in (32, 256):
            for key, name in settings:
                base = f"flash.p{prog}.{key}"
                self.row(
                    "flash",
                    f"prog {prog}: {name}: erases",
                    f"{base}.erases",
                    "erases/msg",
                    "4 KiB blocks, counting block device",
                )
                self.row("flash", f"prog {prog}: {name}: programs", f"{base}.progs", "progs/msg")
                self.row(
                    "flash", f"prog {prog}: {name}: bytes programmed", f"{base}.bytes", "bytes/msg"
                )
        self.quoted("flash", "naive synced append, prog 32", "naive.p32", "erases/msg")
        self.quoted("flash", "naive synced append, prog 256", "naive.p256", "erases/msg")

        # recovery
        k = p.recover_k
        self.row(
            "recovery",
            f"{k} QoS 1 in flight when the link died (RAM session): link "
            "return to backlog acknowledged",
            "recover.inflight.host",
            "ms",
            "node retries every 5 ms; host clock",
        )
        self.row(
            "recovery",
            "the same, from the node's reconnect",
            "recover.inflight.node",
            "ms",
            "node clock",
        )
        self.row(
            "recovery",
            f"{k} QoS 1 queued offline in the store: link return to backlog acknowledged",
            "recover.offline.host",
            "ms",
        )
        self.row("recovery", "the same, from the node's reconnect", "recover.offline.node", "ms")

        # smallest heap
        for form in ("mpy", "py"):
            ext = ".mpy" if form == "mpy" else ".py"
            self.row(
                "min heap",
                f"mqttsession ({ext}): connect, subscribe, QoS 0/1/2 loop",
                f"minheap.ms.{form}",
                "KB",
                f"-X heapsize bisection, {p.heap_step} KB steps",
            )
            self.row(
                "min heap",
                f"mqttsession ({ext}) with store on littlefs: the same",
                f"minheap.ms.{form}.store",
                "KB",
                "includes the Python block device",
            )
            if um.why:
                self.value_row(
                    "min heap", f"umqtt.simple ({ext})", None, "KB", why=f"umqtt.simple {um.why}"
                )
            else:
                self.row(
                    "min heap",
                    f"umqtt.simple ({ext}): connect, subscribe, QoS 0/1 loop",
                    f"minheap.umqtt.{form}",
                    "KB",
                    um_note,
                )
        self.quoted("min heap", "umqtt.simple", "umqtt.minheap", "KB")
        self.quoted("min heap", "mqtt_as", "mqtt_as.minheap", "KB")

        self.build_targets(ms_total, best, floor_best)
