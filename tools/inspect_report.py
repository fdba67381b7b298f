"""What tools/inspect_store.py reports of a store: its sessions, their messages and the
damage found, as data (--json) and as text."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import inspect_store_v2 as v2
from inspect_format import NEWER_ASIDE

PREVIEW = 32  # payload bytes shown
VERSIONS = {3: "3.1", 4: "3.1.1", 5: "5"}
NEVER = 0xFFFFFFFF


def preview(b: bytes, n: int = PREVIEW) -> str:
    s = "".join(chr(c) if 32 <= c < 127 else "." for c in b[:n])
    return s + "..." if len(b) > n else s


@dataclass
class Problem:
    path: str
    reason: str


@dataclass
class Message:
    file: str
    seq: int
    qos: int
    retain: bool
    pid: int | None  # the ID it is resent with; None: goes out as a new message
    released: bool  # QoS 2 after PUBREC: only PUBREL is (re)sent
    stored_pid: int
    stored_epoch: int
    topic: str
    length: int
    preview: str


@dataclass
class Release:
    seq: int
    pid: int
    released: bool


@dataclass
class Subscription:
    filter: str
    qos: int | None  # None: an unsubscribe (in SessionReport.owed)


@dataclass
class SessionReport:
    dir: str
    path: str
    null: bool = False
    last: bool = False
    client_id: str | None = None
    host: str | None = None
    version: int | None = None
    expiry: int | None = None
    hot_state: str = "missing"  # ok, missing or damaged
    last_pid: int = 0
    epoch: int = 0
    next_seq: int = 0
    rx2: list[int] = field(default_factory=list)
    releases: list[Release] = field(default_factory=list)
    subscriptions: list[Subscription] = field(default_factory=list)
    # changes made offline, not yet at the broker: the client makes them on its next connect
    owed: list[Subscription] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    damaged: list[Problem] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    format: int | None = None  # store format of the session's files
    watermark: int | None = None  # format 2: every message below it is complete
    set_aside: int = 0  # format 2: messages ever set aside
    aside: list[v2.Aside] = field(default_factory=list)  # the set-aside records kept
    notes: list[str] = field(default_factory=list)


@dataclass
class HostReport:
    dir: str
    path: str
    host: str | None = None
    last: str | None = None  # client ID of the session used last
    sessions: list[SessionReport] = field(default_factory=list)
    damaged: list[Problem] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    # <session>.t: a delete() the power cut interrupted (migrate.delete renames the
    # directory, then removes it); never loaded, removed by the next get() or delete()
    # of that client ID. Listed in leftovers too
    deleting: list[str] = field(default_factory=list)


@dataclass
class StoreReport:
    root: str
    hosts: list[HostReport] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


@dataclass
class Report:
    source: str
    stores: list[StoreReport] = field(default_factory=list)

    def _parts(self) -> list[HostReport | SessionReport]:
        # every host and session, each host before its sessions
        return [x for st in self.stores for h in st.hosts for x in (h, *h.sessions)]

    def damaged(self) -> list[Problem]:
        return [p for x in self._parts() for p in x.damaged]

    def leftovers(self) -> list[str]:
        return [p for x in self._parts() for p in x.leftovers]

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["damaged"] = [asdict(p) for p in self.damaged()]
        d["leftovers"] = self.leftovers()
        d["ok"] = not d["damaged"]
        return d

def _expiry(s: int | None, version: int | None = None) -> str:
    if s is None:
        return "?"
    if version in (3, 4):
        # MQTT 3.1.1 has no expiry: a session made with clean_session=False lasts at the
        # broker until the next clean connect (or the broker's own limit)
        return "kept by the broker until a clean connect (MQTT 3.1.1 has no expiry)"
    if s == 0:
        return "0 s: ends when the connection closes"
    return "never (0xffffffff)" if s == NEVER else f"{s} s"


def _version(v: int | None) -> str:
    if v is None:
        return "?"
    return f"MQTT {VERSIONS[v]} ({v})" if v in VERSIONS else f"unknown ({v})"


def format_text(rep: Report) -> str:
    out: list[str] = []
    w = out.append
    for st in rep.stores:
        fm = sorted({s.format for h in st.hosts for s in h.sessions if s.format})
        w(f"Session store {st.root} in {rep.source}: format "
          f"{', '.join(map(str, fm)) or '-'}")
        if not st.hosts:
            w("  (no sessions)")
        for p in st.unknown:
            w(f"  ? unexpected file {p}")
        for h in st.hosts:
            w("")
            last = h.last if h.last is not None else "-"
            w(f"host {h.host or '?'}  (directory {h.dir}, last client ID: {last})")
            for p in h.leftovers:
                if p in h.deleting:
                    w(f"  leftover of an interrupted delete(): {p} (never loaded; removed "
                      "by the next get() or delete() of its client ID)")
                else:
                    w(f"  leftover of an interrupted write: {p}")
            for p in h.unknown:
                w(f"  ? unexpected entry {p}")
            for pr in h.damaged:
                w(f"  DAMAGED {pr.path}: {pr.reason}")
            for s in h.sessions:
                _session_text(s, w)
    dmg = rep.damaged()
    left = rep.leftovers()
    w("")
    if dmg:
        w(f"{len(dmg)} damaged file(s):")
        for pr in dmg:
            w(f"  {pr.path}: {pr.reason}")
    else:
        w("No damaged files.")
    if left:
        w(f"{len(left)} leftover(s) of interrupted atomic writes or deletes (ignored by the "
          "device).")
    return "\n".join(out)


def _session_text(s: SessionReport, w: Callable[[str], None]) -> None:
    tags = [t for t, on in (("last used", s.last), ("null session, awaiting its client ID",
                                                    s.null)) if on]
    w(f"  session {s.dir}" + (f"  [{', '.join(tags)}]" if tags else ""))
    if NEWER_ASIDE.search(s.dir):
        for n in s.notes:  # its files are of a format this tool does not read
            w(f"    note: {n}")
        return
    cid = s.client_id if s.client_id is not None else "(none yet)" if s.null else "?"
    w(f"    client ID       {cid}")
    w(f"    host            {s.host if s.host is not None else '?'}")
    w(f"    protocol        {_version(s.version)}")
    w(f"    store format    {s.format if s.format is not None else '?'}")
    w(f"    session expiry  {_expiry(s.expiry, s.version)}")
    hot = {"ok": "", "missing": "  (no hot state file yet)",
           "damaged": "  (hot state damaged: the device starts from these)"}[s.hot_state]
    w(f"    last packet ID  {s.last_pid}, epoch {s.epoch}, next sequence {s.next_seq}{hot}")
    w(f"    incoming QoS 2  {', '.join(map(str, s.rx2)) or '-'}")
    rel = ", ".join(f"seq {r.seq}: pid {r.pid}" + (" released" if r.released else "")
                    for r in s.releases)
    w(f"    QoS 2 out       {rel or '-'}")
    w(f"    subscriptions   {len(s.subscriptions)}")
    for sub in s.subscriptions:
        w(f"      QoS {sub.qos}  {sub.filter}")
    if s.owed:
        w(f"    owed            {len(s.owed)}  (changed offline: made on the next connect)")
        for sub in s.owed:
            w(f"      unsubscribe  {sub.filter}" if sub.qos is None
              else f"      QoS {sub.qos}  {sub.filter}")
    w(f"    pending         {len(s.messages)}")
    if s.messages:
        w("      seq       qos retain pid   bytes  topic / payload")
        for m in s.messages:
            pid = "-" if m.pid is None else str(m.pid) + ("r" if m.released else "")
            w(f"      {m.seq:<9} {m.qos:<3} {'yes' if m.retain else 'no':<6} {pid:<5} "
              f"{m.length:<6} {m.topic}  {m.preview!r}")
    if s.format == 2:
        w(f"    set aside       {s.set_aside} ever, {len(s.aside)} kept")
        for a in s.aside:
            w(f"      QoS {a.qos} {'retain ' if a.retain else ''}{a.topic}  {a.preview!r}"
              f" ({a.length} bytes): {a.reason}")
    for n in s.notes:
        w(f"    note: {n}")
    for pr in s.damaged:
        w(f"    DAMAGED {pr.path.rsplit('/', 1)[-1]}: {pr.reason}")
    for p in s.leftovers:
        w(f"    leftover of an interrupted write: {p.rsplit('/', 1)[-1]}")
    for p in s.unknown:
        w(f"    ? unexpected entry {p.rsplit('/', 1)[-1]}")


# --------------------------------------------------------------------------------------
