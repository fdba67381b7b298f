"""The scenarios tools/board_test.py runs: which device script, with which devcfg settings
per phase (a reboot between phases), and the host-side checks over what the phases
printed; and the broker side of a scenario whose session the broker drops between
phases."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from board_target import SetupError

# Scenarios


@dataclass
class PhaseResult:
    rc: int
    out: str
    timed_out: bool = False

    @property
    def passed(self) -> bool:
        last = [ln.strip() for ln in self.out.splitlines() if ln.strip()]
        return self.rc == 0 and not self.timed_out and bool(last) and last[-1] == "PASS"

    def error(self) -> str:
        """The last exception line of a traceback in the output, or ""."""
        for line in reversed(self.out.splitlines()):
            m = re.match(r"(\w+(Error|Exception|Interrupt|Exit))\b:?(.*)", line.strip())
            if m:
                return line.strip()[:120]
        return ""

    def values(self, prefix: str) -> list[str]:
        return [
            ln[len(prefix) :].strip()
            for ln in self.out.splitlines()
            if ln.startswith(prefix + " ") or ln == prefix
        ]


# A check over all phases' results: None when it holds, else what went wrong.
Check = Callable[[Sequence[PhaseResult]], str | None]


def same_value(prefix: str) -> Check:
    """The single `prefix ...` line of every phase says the same."""

    def check(results: Sequence[PhaseResult]) -> str | None:
        seen = [r.values(prefix) for r in results]
        if any(len(v) != 1 for v in seen):
            return f"expected one {prefix} line per phase, got {seen}"
        if len({v[0] for v in seen}) != 1:
            return f"{prefix} differs across the reboot: {[v[0] for v in seen]}"
        return None

    return check


def printed(text: str) -> Check:
    def check(results: Sequence[PhaseResult]) -> str | None:
        if any(text in r.out for r in results):
            return None
        return f"the device did not print {text!r}"

    return check


@dataclass(frozen=True)
class Scenario:
    """One device test: script, devcfg settings per phase (the board reboots between
    phases), host-side checks over the results."""

    name: str  # unique: roundtrip/v4, corrupt/msg-truncate, ids
    base: str  # the devcfg.TEST name: what --only matches besides the full name
    script: str
    version: int
    phases: tuple[Mapping[str, Any], ...] = ({},)
    checks: tuple[Check, ...] = ()
    forget_between: bool = False  # the broker drops the session (CID) between phases
    timeout: float | None = None  # per phase; None: --timeout
    # Skipped, unless named with --only, when the free heap after boot is below this.
    needs_free: int = 0
    needs_why: str = ""

    @property
    def store(self) -> bool:
        return self.script.startswith("dev_store")


CORE = ("roundtrip", "window", "retained", "overlap", "bad_input", "pids", "noalloc", "keepalive")
CORRUPT = (("msg", "truncate"), ("ident", "flip"), ("hot", "random"))
# bad_input builds a 70,000-byte client ID ("x" * 70000) to check that one above 65,535 is
# refused: one 70,001-byte block on top of the library and the compiled script. On the
# unix port it passes from 180k of heap (about 166 KB free after boot), not with the Pico
# W-sized 164k (151 KB free).
BAD_INPUT_FREE = 160 * 1024
BAD_INPUT_WHY = "allocates a 70,000-byte client ID"


def scenarios() -> list[Scenario]:
    out = [
        Scenario(
            f"{t}/v{v}",
            t,
            "dev_core.py",
            v,
            needs_free=BAD_INPUT_FREE if t == "bad_input" else 0,
            needs_why=BAD_INPUT_WHY if t == "bad_input" else "",
        )
        for t in CORE
        for v in (4, 5)
    ]
    out.append(
        Scenario(
            "ids", "ids", "dev_store.py", 4, ({"PHASE": 1}, {"PHASE": 2}), (same_value("GEN"),)
        )
    )
    out += [
        Scenario(
            f"corrupt/{damage}-{how}",
            "corrupt",
            "dev_store.py",
            4,
            ({"DAMAGE": damage, "HOW": how},),
            (printed("mqttsession: store:"),),
        )
        for damage, how in CORRUPT
    ]
    out.append(
        Scenario(
            "null/v5", "null", "dev_store.py", 5, ({"PHASE": 1}, {"PHASE": 2}),
            (same_value("ASSIGNED"),),
        )
    )
    out += [
        Scenario(
            f"lost_session/v{v}",
            "lost_session",
            "dev_store_lost.py",
            v,
            ({"PHASE": 1, "CID": f"bt-ls{v}"}, {"PHASE": 2, "CID": f"bt-ls{v}"}),
            (lambda rs: None if len(rs[-1].values("GOT")) == 3 else "expected 3 GOT lines",),
            forget_between=True,
        )
        for v in (4, 5)
    ]
    return out


def only_names(only: Sequence[str]) -> list[str]:
    """--only values (repeated, comma-separated) as a list of names."""
    return [n.strip() for item in only for n in item.split(",") if n.strip()]


def select(all_: Sequence[Scenario], only: Sequence[str]) -> list[Scenario]:
    """The scenarios named in only (full names or base names, comma-separated); all
    when only is empty. Raises SetupError for a name that matches nothing."""
    names = only_names(only)
    if not names:
        return list(all_)
    unknown = [n for n in names if not any(n in (s.name, s.base) for s in all_)]
    if unknown:
        known = ", ".join(dict.fromkeys(s.base for s in all_))
        raise SetupError(f"no scenario named {', '.join(unknown)}; known: {known} (see --list)")
    return [s for s in all_ if s.name in names or s.base in names]


@dataclass
class Outcome:
    scenario: Scenario
    passed: bool
    seconds: float
    results: list[PhaseResult] = field(default_factory=list)
    why: str = ""
    skipped: bool = False

    @property
    def status(self) -> str:
        return "SKIP" if self.skipped else "PASS" if self.passed else "FAIL"


def forget_session(
    host: str, port: int, client_id: str, version: int, timeout: float = 10.0
) -> None:
    """Make the broker drop client_id's session: connect with a clean session, leave."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    proto = mqtt.MQTTv5 if version == 5 else mqtt.MQTTv311
    kw: dict[str, Any] = {} if version == 5 else {"clean_session": True}
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=proto, **kw)
    done = threading.Event()
    refused: list[str] = []

    def on_connect(client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            refused.append(str(rc))
        done.set()

    c.on_connect = on_connect
    if version == 5:
        c.connect(host, port, keepalive=30, clean_start=True)
    else:
        c.connect(host, port, keepalive=30)
    c.loop_start()
    try:
        if not done.wait(timeout):
            raise OSError(f"no CONNACK from {host}:{port} within {timeout:.0f} s")
        if refused:
            raise OSError(f"{host}:{port} refused {client_id}: {refused[0]}")
    finally:
        c.disconnect()
        c.loop_stop()
