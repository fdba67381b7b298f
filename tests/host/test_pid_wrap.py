"""Packet-ID wraparound (65535 -> 1) and the asyncio client's outgoing flow across resumes
(tests/device/dev_pid_wrap.py), at a broker that acknowledges by itself ("auto" step) and
checks that no packet ID still in use is taken by a new message."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from harness import run_device
from hostile import CONNECT, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, HostileBroker, ack, connack


class AutoBroker(HostileBroker):
    """("auto", seconds, close_after, release_after): acknowledges every PUBLISH and
    PUBREL for up to seconds, except a PUBCOMP for an ID in self.hold (sent once
    release_after PUBLISHes came on this connection); returns (closes) at the
    close_after-th PUBLISH, unacknowledged. Across connections it tracks the IDs the
    client holds (sent, not yet completed by this broker) and records in self.bad a new
    PUBLISH (no DUP) with one of them, and in self.got every payload received as new
    (QoS 2 once per ID until PUBREL, as a broker delivers)."""

    def __init__(self, *a: Any, hold: set[int] = frozenset(), **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.hold = set(hold)
        self.use: dict[int, bytes] = {}  # ID -> payload the client holds it for
        self.q2: set[int] = set()  # QoS 2 IDs received, PUBREL not yet
        self.got: list[bytes] = []
        self.bad: list[str] = []

    def _step(self, s: Any, r: Any, conn: Any, step: Any) -> bool:
        if step[0] != "auto":
            return super()._step(s, r, conn, step)
        _, secs, close_after, release_after = step
        end = time.monotonic() + secs
        n = 0
        while True:
            p = r.next(end)
            if p is None:
                return True
            first, body = p
            t = first & 0xF0
            if t == PUBLISH:
                n += 1
                q = first >> 1 & 3
                nt = int.from_bytes(body[:2], "big")
                pid = int.from_bytes(body[2 + nt : 4 + nt], "big")
                msg = body[4 + nt :]
                dup = first & 8
                if pid in self.use and (not dup or self.use[pid] != msg):
                    self.bad.append(f"conn {conn.index}: ID {pid} reused for {msg!r} "
                                    f"(held for {self.use[pid]!r}, dup={bool(dup)})")
                self.use[pid] = msg
                if q == 1 or pid not in self.q2:
                    self.got.append(msg)
                if q == 2:
                    self.q2.add(pid)  # received: a resend is a duplicate until PUBREL
                if close_after and n >= close_after:
                    return False
                if q == 1:
                    s.sendall(ack(PUBACK, pid))
                    self.use.pop(pid, None)
                else:
                    s.sendall(ack(PUBREC, pid))
            elif t == PUBREL:
                pid = int.from_bytes(body[:2], "big")
                self.q2.discard(pid)
                if pid not in self.hold:
                    s.sendall(ack(PUBCOMP, pid))
                    self.use.pop(pid, None)
            if release_after and n >= release_after and self.hold:
                for pid in sorted(self.hold):
                    s.sendall(ack(PUBCOMP, pid))
                    self.use.pop(pid, None)
                self.hold.clear()


def run(test: str, scripts: list[Any], b: AutoBroker, tmp_path: Path, **kw: Any) -> Any:
    cfg = {"HOST": b.host, "PORT": b.port, "VERSION": 4, "TEST": test,
           "IMAGE": str(tmp_path / "flash.img"), "BLOCKS": 64, **kw}
    r = run_device("dev_pid_wrap.py", cfg, heap="256k", timeout=90, check=False)
    print("\n".join(r.lines))
    return r


def pids(b: AutoBroker, i: int) -> list[tuple[int, int]]:
    out = []
    for f, body in b.conns[i].packets:
        if f & 0xF0 == PUBLISH:
            nt = int.from_bytes(body[:2], "big")
            out.append((int.from_bytes(body[2 + nt : 4 + nt], "big"), f & 8))
    return out


@pytest.mark.parametrize("kind", ["sync", "aio"])
def test_wrap_with_a_held_qos2_id_a_backlog_and_a_reboot(tmp_path: Path, kind: str) -> None:
    # run 1: A (QoS 2) gets ID 1 and is released, its PUBCOMP withheld; the last ID is set
    # to 65532; B.. go out through the wrap at window 2 (ID 1 must be skipped); the broker
    # closes at the 5th PUBLISH; more are published offline (a backlog in flash beyond
    # ram=4); the node "reboots" (a new process). Run 2: Session Present 1; PUBCOMP 1
    # comes after 3 PUBLISHes; everything completes, each message once, no ID reused
    first = [("expect", CONNECT), ("send", connack()), ("auto", 30, 6, 0)]
    second = [("expect", CONNECT), ("send", connack(1)), ("auto", 40, 0, 3)]
    with AutoBroker([first, second], hold={1}) as b:
        r1 = run("wrap1", [], b, tmp_path, KIND=kind)
        assert r1.passed, r1.lines
        r2 = run("wrap2", [], b, tmp_path, KIND=kind)
        for i in range(len(b.conns)):
            print(i, pids(b, i))
        print(b.got, b.bad, b.errors)
        assert r2.passed, r2.lines
        assert not b.bad
        names = [m for m in b.got]
        want = [b"A"] + [b"m%d" % i for i in range(12)]
        assert sorted(set(names)) == sorted(want), names
        # QoS 2 messages (odd i) once at the broker
        for i in range(1, 12, 2):
            assert names.count(b"m%d" % i) == 1, names


def test_aio_lowered_receive_maximum_with_a_newer_release_and_concurrent_tasks(
        tmp_path: Path) -> None:
    # as test_outflow_resume's quota_rel, for the asyncio client with a keeper: three tasks
    # publish A, B (QoS 1), C (QoS 2) at once; only C is received, the broker closes; the
    # resume lowers Receive Maximum to 1; A and C's PUBREL go again, B waits for room
    from hostile_cases import ack as ack5
    from hostile_cases import connack as connack5
    from hostile_cases import p16, props

    v = 5
    first = [("expect", CONNECT), ("send", connack5(v)),
             ("expect", PUBLISH), ("expect", PUBLISH), ("expect", PUBLISH),
             ("send", ack5(PUBREC, 3)), ("expect", PUBREL), ("close",)]
    second = [("expect", CONNECT), ("send", connack5(v, 1, prop=props(p16(0x21, 1)))),
              ("expect", PUBLISH), ("expect", PUBREL),
              ("send", ack5(PUBACK, 1) + ack5(PUBCOMP, 3)),
              ("expect", PUBLISH), ("send", ack5(PUBACK, 2))]
    with AutoBroker([first, second]) as b:
        r = run("quota_rel", [], b, tmp_path, KIND="aio", VERSION=5, BACKOFF=100)
        for c in b.conns:
            print(c.index, [(hex(f), body[:8].hex()) for f, body in c.packets])
        assert r.passed, r.lines
        assert not b.errors
        assert [p[-1:] for p in b.conns[1].of_type(PUBLISH)] == [b"A", b"B"]


@pytest.mark.parametrize("window", [1, 3])
def test_aio_concurrent_tasks_across_a_drop_and_resume_through_the_wrap(
        tmp_path: Path, window: int) -> None:
    # three tasks publish 4 messages each (QoS 1 and 2) at window 1 or 3 with a keeper;
    # A (QoS 2, ID 1) is released and its PUBCOMP withheld; the last ID is set to 65532;
    # the broker closes at the 5th PUBLISH (unacknowledged) and the keeper resumes
    # (Session Present 1); PUBCOMP 1 comes after 3 PUBLISHes: all accepted, all complete,
    # QoS 2 once, no ID in use reused, per-task order kept
    first = [("expect", CONNECT), ("send", connack()), ("auto", 30, 5, 0)]
    second = [("expect", CONNECT), ("send", connack(1)), ("auto", 40, 0, 3)]
    # (at window 1 a withheld PUBCOMP leaves no room: the client takes the link for dead)
    with AutoBroker([first, second], hold={1} if window > 1 else set()) as b:
        r = run("crowd", [], b, tmp_path, KIND="aio", BACKOFF=100, WINDOW=window)
        for i in range(len(b.conns)):
            print(i, pids(b, i))
        print(b.got, b.bad, b.errors)
        assert r.passed, r.lines
        assert not b.bad
        want = [b"A"] + [b"m%d" % i for i in range(12)]
        assert sorted(set(b.got)) == sorted(want), b.got
        for i in range(1, 12, 2):
            assert b.got.count(b"m%d" % i) == 1, b.got
        first_seen = [m for k, m in enumerate(b.got) if m not in b.got[:k]]
        for j in range(3):
            mine = [m for m in first_seen if m in [b"m%d" % i for i in range(j, 12, 3)]]
            assert mine == [b"m%d" % i for i in range(j, 12, 3)], first_seen


@pytest.mark.parametrize("v", [4, 5])
def test_aio_stale_and_crossed_acknowledgements_after_a_resume(tmp_path: Path, v: int) -> None:
    # as test_outflow_resume's stale_acks, for the asyncio client with a keeper, A and B
    # published by two tasks at once at window 1
    from hostile_cases import ack as ack5
    from hostile_cases import connack as connack5

    first = [("expect", CONNECT), ("send", connack5(v)),
             ("expect", PUBLISH), ("send", ack5(PUBACK, 1)),
             ("expect", PUBLISH), ("send", ack5(PUBREC, 2)), ("expect", PUBREL), ("close",)]
    second = [("expect", CONNECT), ("send", connack5(v, 1)), ("expect", PUBREL),
              ("send", ack5(PUBACK, 1) + ack5(PUBCOMP, 1) + ack5(PUBREC, 1) + ack5(PUBACK, 2)),
              ("expect", PUBLISH),
              ("send", ack5(PUBACK, 2) + ack5(PUBCOMP, 3) + ack5(PUBREC, 3)),
              ("expect", PUBREL), ("send", ack5(PUBCOMP, 3))]
    with AutoBroker([first, second]) as b:
        r = run("stale_acks", [], b, tmp_path, KIND="aio", VERSION=v, BACKOFF=100)
        for c in b.conns:
            print(c.index, [(hex(f), body[:8].hex()) for f, body in c.packets])
        assert r.passed, r.lines
        assert not b.errors
        assert [p[-1:] for p in b.conns[0].of_type(PUBLISH)] == [b"A", b"B"]
        pubs = b.conns[1].of_type(PUBLISH)
        assert len(pubs) == 1 and pubs[0].endswith(b"C"), pubs
