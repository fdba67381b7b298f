"""lib/mqttsession/session.py under CPython: packet IDs, the ring of outgoing messages,
incoming QoS 2 state.

Slots are put on the wire the way core.Core._send_slot does it: a packet ID from
assign() the first time (PID flag), then the SENT flag.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from pure import load
from pure import session as S

Session = S.Session
SENT: int = S._SENT
REL: int = S._REL
RETAIN: int = S._RETAIN
PID: int = S._PID


def send(s: Any, k: int) -> int:
    """What the client does to slot k when it (re)sends it; returns the packet ID."""
    if not s.fl[k] & PID:
        s.assign(k)
    s.fl[k] |= SENT
    return int(s.ids[k])


def live(s: Any) -> list[int]:
    """Ring slots of the messages not yet completed, oldest first."""
    return [k for k in (s.slot(i) for i in range(s.n)) if s.fl[k]]


def topics(s: Any) -> list[bytes]:
    return [s.top[k] for k in live(s)]


def fill(s: Any, count: int, qos: int = 1, prefix: str = "m") -> list[int]:
    return [s.add(f"{prefix}{i}".encode(), b"x", qos, False) for i in range(count)]


def snapshot(s: Any) -> tuple[Any, ...]:
    return (bytes(s.ids), bytes(s.fl), list(s.seq), list(s.top), list(s.msg), s.head, s.n,
            list(s.rx2), dict(s.subs), s.pid)


# --------------------------------------------------------------------------------------
# Packet IDs


def test_capacity_bounds() -> None:
    for cap in (0, -1, 65536):
        with pytest.raises(ValueError):
            Session(capacity=cap)
    assert Session(capacity=1).cap == 1
    assert Session(capacity=65535).cap == 65535


def test_pids_start_at_1_and_wrap_from_65535_to_1() -> None:
    s = Session()
    assert [s.next_pid() for _ in range(3)] == [1, 2, 3]
    s.pid = 65534
    assert [s.next_pid() for _ in range(3)] == [65535, 1, 2]


def test_pids_never_0_over_a_full_cycle() -> None:
    s = Session()
    seen = [s.next_pid() for _ in range(65535 * 2)]
    assert 0 not in seen
    assert sorted(set(seen)) == list(range(1, 65536))
    assert seen[65534] == 65535 and seen[65535] == 1


def test_pids_skip_ids_in_flight() -> None:
    s = Session(capacity=8)
    ks = fill(s, 4)
    assert [send(s, k) for k in ks[:3]] == [1, 2, 3]
    s.pid = 0  # as if the counter came round again
    assert s.next_pid() == 4
    # across the wrap: 65535 and 1 in flight
    s = Session(capacity=8)
    s.pid = 65534
    ks = fill(s, 3)
    assert [send(s, k) for k in ks[:2]] == [65535, 1]
    s.pid = 65534
    assert s.next_pid() == 2
    s.pid = 65533
    assert s.next_pid() == 65534
    assert s.next_pid() == 2


def test_pid_of_completed_or_unsent_message_is_free() -> None:
    s = Session(capacity=4)
    k0, k1 = fill(s, 2)
    assert send(s, k0) == 1
    assert s.acked(1, False) == k0
    s.pid = 0
    assert s.next_pid() == 1  # completed: free again
    s.ids[k1] = 2  # a stale ID on a slot that holds none
    assert s.find(2) == -1
    s.pid = 1
    assert s.next_pid() == 2


def test_pid_in_flight_is_never_reused_under_load() -> None:
    s = Session(capacity=5)
    s.pid = 65530
    inflight: list[int] = []
    for rnd in range(40):
        while not s.full():
            k = s.add(b"t", bytes([rnd]), 1, False)
            pid = send(s, k)
            assert pid != 0 and pid not in inflight
            inflight.append(pid)
        # complete every other one, newest first, so holes form
        for pid in inflight[::2][::-1]:
            k = s.find(pid)
            assert k >= 0 and s.acked(pid, False) == k
            inflight.remove(pid)


def test_find() -> None:
    s = Session(capacity=3)
    ks = fill(s, 3)
    pids = [send(s, k) for k in ks]
    for k, p in zip(ks, pids, strict=True):
        assert s.find(p) == k
    assert s.find(0) == -1
    assert s.find(99) == -1


# --------------------------------------------------------------------------------------
# The ring


def test_add_sets_slot_fields() -> None:
    s = Session(capacity=3)
    k = s.add(b"a/b", b"payload", 2, True)
    assert s.fl[k] == 2 | RETAIN
    assert s.ids[k] == 0 and not s.fl[k] & (SENT | PID | REL)
    assert (s.top[k], s.msg[k]) == (b"a/b", b"payload")
    k2 = s.add(b"c", b"", 1, False)
    assert s.fl[k2] == 1
    assert s.seq[k2] == (s.seq[k] + 1) & 0xFFFFFFF
    assert s.pending() == 2 and s.nin == 0


def test_seq_wraps_at_28_bits() -> None:
    s = Session(capacity=3)
    s.nseq = 0xFFFFFFF
    k0, k1 = fill(s, 2)
    assert (s.seq[k0], s.seq[k1]) == (0xFFFFFFF, 0)


def test_full_and_overflow() -> None:
    s = Session(capacity=3)
    fill(s, 3)
    assert s.full()
    with pytest.raises(OSError) as e:
        s.add(b"t", b"m", 1, False)
    assert e.value.args[0] == 105
    assert s.pending() == 3


def test_order_kept_across_out_of_order_acks() -> None:
    s = Session(capacity=6)
    ks = fill(s, 5)
    pids = [send(s, k) for k in ks]
    assert s.acked(pids[2], False) == ks[2]  # a hole in the middle
    assert s.acked(pids[4], False) == ks[4]  # a hole at the tail
    assert topics(s) == [b"m0", b"m1", b"m3"]
    assert s.pending() == 3 and s.nin == 3
    assert s.fl[s.head] and s.head == ks[0]
    assert s.acked(pids[0], False) == ks[0]
    assert topics(s) == [b"m1", b"m3"]
    assert s.head == ks[1]
    assert s.acked(pids[1], False) == ks[1]  # the hole behind it goes too
    assert s.head == ks[3] and topics(s) == [b"m3"]
    k = s.add(b"new", b"x", 1, False)
    assert topics(s) == [b"m3", b"new"] and live(s)[-1] == k
    assert s.acked(pids[3], False) == ks[3]
    assert topics(s) == [b"new"] and s.n == 1 and s.head == k
    assert s.acked(pids[3], False) == -1  # already completed


def test_holes_do_not_block_adding() -> None:
    # a ring whose only free room is holes behind an unacknowledged head
    s = Session(capacity=4)
    ks = fill(s, 4)
    pids = [send(s, k) for k in ks]
    for p in pids[1:3]:
        s.acked(p, False)
    assert s.pending() == 2
    assert not s.full()
    s.add(b"n0", b"x", 1, False)
    s.add(b"n1", b"x", 1, False)
    assert topics(s) == [b"m0", b"m3", b"n0", b"n1"]
    assert s.full()
    assert [s.find(p) >= 0 for p in pids] == [True, False, False, True]
    assert s.acked(pids[3], False) >= 0 and s.acked(pids[0], False) >= 0
    assert topics(s) == [b"n0", b"n1"]


def test_ring_wraps_around_its_capacity() -> None:
    s = Session(capacity=3)
    order: list[bytes] = []
    heads = set()
    for i in range(20):
        t = b"w%d" % i
        s.add(t, b"x", 1, False)
        order.append(t)
        if s.full():
            pid = send(s, live(s)[0])
            assert s.acked(pid, False) >= 0
            order.pop(0)
        heads.add(s.head)
        assert topics(s) == order
    assert heads == {0, 1, 2}


def test_qos2_flow() -> None:
    s = Session(capacity=4)
    k = s.add(b"q2", b"x", 2, False)
    pid = send(s, k)
    assert s.acked(pid, False) == -1  # PUBACK for QoS 2 / PUBCOMP before PUBREC
    assert s.fl[k] & REL == 0
    assert s.acked(pid, True) == k  # PUBREC
    assert s.fl[k] & REL
    assert s.acked(pid, True) == k  # repeated PUBREC: same answer, still released
    assert s.fl[k] & REL and s.pending() == 1 and s.nin == 1
    assert send(s, k) == pid  # PUBREL keeps the packet ID
    assert s.acked(pid, False) == k  # PUBCOMP
    assert s.pending() == 0 and s.n == 0
    assert s.top[k] is None and s.msg[k] is None
    assert s.acked(pid, False) == -1 and s.acked(pid, True) == -1


def test_pubrec_for_qos1_is_ignored() -> None:
    s = Session(capacity=2)
    k = s.add(b"q1", b"x", 1, False)
    pid = send(s, k)
    assert s.acked(pid, True) == -1
    assert not s.fl[k] & REL
    assert s.acked(pid, False) == k


def test_ack_for_unsent_message_is_ignored() -> None:
    s = Session(capacity=2)
    k = s.add(b"q1", b"x", 1, False)
    s.ids[k] = 5  # a leftover ID without the PID flag means nothing
    assert s.acked(5, False) == -1 and s.acked(0, False) == -1
    assert s.pending() == 1


def test_inflight_counts_slots_holding_ids() -> None:
    s = Session(capacity=4)
    ks = fill(s, 3)
    assert s.nin == 0
    send(s, ks[0])
    s.assign(ks[1])  # an ID given before the first write (QoS 2 kept in flash first)
    assert s.nin == 2
    assert s.fl[ks[1]] & SENT == 0


def test_pop_tail_takes_back_the_last_add() -> None:
    s = Session(capacity=3)
    fill(s, 2)
    before = topics(s)
    k = s.add(b"last", b"x", 2, False)
    s.assign(k)
    pid = int(s.ids[k])
    s.pop_tail()
    assert topics(s) == before
    assert s.find(pid) == -1
    assert s.top[k] is None and s.fl[k] == 0


def rel_mix(cap: int, head: int) -> tuple[Any, list[int], list[int]]:
    """A ring (starting at slot head) with: m0 QoS1 sent, m1 QoS2 released, m2 unsent,
    m3 QoS2 sent, m4 acked (a hole), m5 QoS2 released, m6 QoS1 sent."""
    s = Session(capacity=cap)
    for _ in range(head):
        k = s.add(b"old", b"x", 1, False)
        s.acked(send(s, k), False)
    assert s.head == head % cap and s.n == 0
    ks = [s.add(b"m%d" % i, b"x", 2 if i in (1, 3, 5) else 1, i == 6) for i in range(7)]
    pids = [send(s, k) if i != 2 else 0 for i, k in enumerate(ks)]
    s.acked(pids[1], True)
    s.acked(pids[5], True)
    s.acked(pids[4], False)
    return s, ks, pids


@pytest.mark.parametrize("head", [0, 3, 6, 7])
def test_restart_without_session_drops_releases_keeps_ids(head: int) -> None:
    s, ks, pids = rel_mix(8, head)
    s.rx2_add(17)
    epoch = getattr(s, "epoch", 0)
    s.restart(False)
    assert topics(s) == [b"m0", b"m2", b"m3", b"m6"]
    assert s.pending() == 4 and s.n == 4 and s.nin == 0
    for k in live(s):
        assert s.fl[k] & (SENT | PID | REL) == 0
    # each keeps the packet ID it had (m2 was never sent: none)
    assert [s.ids[k] for k in live(s)] == [pids[0], 0, pids[3], pids[6]]
    assert [s.fl[k] & 3 for k in live(s)] == [1, 1, 2, 1]
    assert s.fl[live(s)[-1]] & RETAIN
    assert [s.seq[k] for k in live(s)] == sorted(s.seq[k] for k in live(s))
    for p in pids:
        assert s.find(p) == -1
    assert s.rx2 == []
    if hasattr(s, "epoch"):
        assert s.epoch == (epoch + 1) & 0xFFFF
    # slots outside the ring hold nothing
    inside = set(s.slot(i) for i in range(s.n))
    for k in range(s.cap):
        if k not in inside:
            assert s.fl[k] == 0 and s.top[k] is None and s.msg[k] is None
    # a new ID never collides with a kept one
    s.pid = pids[3] - 1
    assert s.next_pid() not in (pids[0], pids[3], pids[6])
    # and the messages go out again as new ones (no DUP), in order, with their old IDs
    new = [send(s, k) for k in live(s)]
    assert 0 not in new and len(set(new)) == 4
    assert new[0] == pids[0] and new[2] == pids[3] and new[3] == pids[6]


def test_payload_is_copied_when_queued() -> None:
    # a bytearray changed after publish returned: the queued message keeps what was sent
    s = Session(capacity=4)
    buf = bytearray(b"first")
    top = bytearray(b"t/1")
    k1 = s.add(top, buf, 1, False)
    buf[:] = b"secnd"
    top[:] = b"t/2"
    k2 = s.add(top, memoryview(buf), 1, False)
    buf[:] = b"third"
    assert (s.top[k1], s.msg[k1]) == (b"t/1", b"first")
    assert (s.top[k2], s.msg[k2]) == (b"t/2", b"secnd")
    b = b"bytes"
    assert s.msg[s.add(b"t", b, 1, False)] is b  # immutable: kept as is, no copy


def test_next_pid_does_not_scan_the_ring() -> None:
    # a full ring of 4,000 in flight, sliding over 3 wraps of the ID space: allocating
    # an ID reads no slot while the counters prove it free
    s = Session(capacity=4000)
    for _ in range(4000):
        send(s, s.add(b"t", b"x", 1, False))
    oldest = 1
    calls = 0
    find = s.find

    def counted(pid: int, m: int = PID) -> int:
        nonlocal calls
        calls += 1
        return int(find(pid, m))

    s.find = counted
    for i in range(200000):
        assert s.acked(oldest, False) >= 0
        oldest = oldest % 65535 + 1
        assert send(s, s.add(b"t", b"x", 1, False)) == (4000 + i) % 65535 + 1
    assert calls == 0
    s.clear()
    s.pid = 0
    for _ in range(4000):
        send(s, s.add(b"t", b"x", 1, False))
    # an ID still in flight when the counter comes round is skipped (the ring is read then)
    s.pid = 0
    assert s.next_pid() == 4001 and calls > 0


def test_set_aside_in_ram() -> None:
    A = load("aside")  # the rare paths' module, where setting aside lives
    s = Session(capacity=4)
    assert A.records(s) == []  # none yet
    k = s.add(b"t/p", b"poison", 2, True)
    s.assign(k)
    s.add(b"t/ok", b"fine", 1, False)
    A.set_aside(s, k, "closed 3 times")
    assert s.pending() == 1 and s.nin == 0 and s.naside == 1
    assert A.records(s) == [(b"t/p", b"poison", 2, True, "closed 3 times")]
    s.pid = 0
    assert s.next_pid() == 1  # its packet ID is free again
    for i in range(12):
        A.set_aside(s, s.add(b"t", b"%d" % i, 1, False), 0x97)
    assert s.naside == 13 and len(A.records(s)) == 8  # bounded: the newest kept
    assert A.records(s)[-1] == (b"t", b"11", 1, False, 0x97)


@pytest.mark.parametrize("head", [0, 5])
def test_restart_with_session_keeps_everything(head: int) -> None:
    s, ks, pids = rel_mix(8, head)
    s.rx2_add(17)
    s.sub(b"a/#", 1)
    before = snapshot(s)
    s.restart(True)
    assert snapshot(s) == before
    assert s.find(pids[1]) == ks[1] and s.fl[ks[1]] & REL


def test_restart_drops_everything_released() -> None:
    s = Session(capacity=3)
    ks = fill(s, 3, qos=2)
    for k in ks:
        s.acked(send(s, k), True)
    s.restart(False)
    assert s.n == 0 and s.pending() == 0 and not s.full()
    assert all(t is None for t in s.top)


def test_clear() -> None:
    s, _, pids = rel_mix(8, 5)
    s.rx2_add(3)
    s.sub(b"a", 1)
    pid = s.pid
    s.clear()
    assert s.n == 0 and s.pending() == 0 and s.nin == 0
    assert s.subs == {} and s.rx2 == []
    assert all(f == 0 for f in s.fl) and all(t is None for t in s.top + s.msg)
    assert all(s.find(p) == -1 for p in pids)
    assert s.pid == pid  # IDs keep counting
    assert s.add(b"t", b"m", 1, False) >= 0


# --------------------------------------------------------------------------------------
# Incoming QoS 2


def test_rx2_add_and_del() -> None:
    s = Session()
    assert s.rx2_add(5) is True
    assert s.rx2_add(5) is False  # a redelivery: do not deliver again
    assert s.rx2_add(6) is True
    s.rx2_del(5)
    assert s.rx2 == [6]
    s.rx2_del(5)  # unknown: nothing happens
    s.rx2_del(1234)
    assert s.rx2 == [6]
    assert s.rx2_add(5) is True  # after PUBREL the ID may come back as a new message


def test_rx2_is_bounded() -> None:
    # by what the hot state records (a count byte): 255
    s = Session()
    for p in range(1, 256):
        assert s.rx2_add(p)
    assert len(s.rx2) == 255
    assert s.rx2_add(256)
    assert len(s.rx2) == 255 and s.rx2[0] == 1 and s.rx2[-1] == 256
    assert s.rx2_add(1) is False  # the oldest are kept: resends come oldest first
    assert s.rx2_add(255) is True  # the newest was forgotten
    # a resend of all of them, in order, is delivered again only beyond the bound
    assert [p for p in range(1, 257) if s.rx2_add(p)] == [256]


def test_subs() -> None:
    s = Session()
    s.sub(b"a", 1)
    s.sub(b"a", 2)
    s.sub(b"b/#", 0)
    assert s.subs == {b"a": 2, b"b/#": 0}
    s.unsub(b"a")
    s.unsub(b"zzz")
    assert s.subs == {b"b/#": 0}


# --------------------------------------------------------------------------------------
# Persistence hooks: what the flash store is told


class Recording(Session):
    def __init__(self, *a: Any, **kw: Any) -> None:
        self.calls: list[tuple[str, Any]] = []
        super().__init__(*a, **kw)

    def _keep(self, k: int) -> None:
        # as the flash store's session: a kept message has a copy in flash
        self.calls.append(("keep", self.top[k]))
        self.fl[k] |= S._DISK

    def _forget(self, k: int) -> None:
        self.calls.append(("forget", self.top[k]))

    def assign(self, k: int) -> None:
        # as the flash store's session: its QoS 2 packet IDs are saved here
        super().assign(k)
        self.calls.append(("assigned", self.top[k]))


def test_hooks() -> None:
    s = Recording(capacity=4)
    k1 = s.add(b"q1", b"x", 1, False)
    k2 = s.add(b"q2", b"x", 2, False)
    p1, p2 = send(s, k1), send(s, k2)
    send(s, k1)  # a resend assigns nothing
    assert s.calls == [("assigned", b"q1"), ("assigned", b"q2")]
    s.calls.clear()
    s.acked(p2, True)
    s.acked(p2, True)
    assert s.calls == [("keep", b"q2")]  # once, at the first PUBREC
    s.calls.clear()
    s.acked(p1, False)  # no copy in flash: nothing to forget
    assert s.calls == []
    k3 = s.add(b"q3", b"x", 1, False)
    p3 = send(s, k3)
    s._keep(k3)  # its acknowledgement is late: made durable
    s.calls.clear()
    s.acked(p3, False)
    s.acked(p2, False)
    assert s.calls == [("forget", b"q3"), ("forget", b"q2")]
    s.calls.clear()
    s.acked(p1, False)  # unknown: no hook
    assert s.calls == []


# --------------------------------------------------------------------------------------
# The ring against a plain model under random operations


@dataclass
class Msg:
    topic: bytes
    payload: bytes
    qos: int
    retain: bool
    seq: int
    pid: int = 0  # 0: no packet ID held
    keep: int = 0  # the ID it held before the broker lost the session: sent again with it
    sent: bool = False
    rel: bool = False


class RingMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.s: Any = None
        self.q: list[Msg] = []
        self.last = 0
        self.nseq = 0
        self.rx2: list[int] = []
        self.epoch = 0
        self.made = 0

    @initialize(cap=st.integers(1, 6), start=st.sampled_from([0, 1, 65530]) | st.integers(0, 65535))
    def init(self, cap: int, start: int) -> None:
        self.s = Session(b"c", "h", cap)
        self.s.pid = self.last = start
        self.epoch = getattr(self.s, "epoch", 0)

    # model helpers
    def next_pid(self) -> int:
        used = {m.pid or m.keep for m in self.q if m.pid or m.keep}
        p = self.last
        while True:
            p = p % 65535 + 1
            if p not in used:
                self.last = p
                return p

    def slots(self) -> list[int]:
        return live(self.s)

    def held(self) -> list[int]:
        return [i for i, m in enumerate(self.q) if m.pid]

    # rules
    @rule(qos=st.integers(1, 2), retain=st.booleans())
    def add(self, qos: int, retain: bool) -> None:
        topic = b"t%d" % self.made
        payload = bytes([self.made & 0xFF])
        self.made += 1
        if len(self.q) == self.s.cap:
            assert self.s.full()
            with pytest.raises(OSError):
                self.s.add(topic, payload, qos, retain)
            return
        assert not self.s.full()
        k = self.s.add(topic, payload, qos, retain)
        assert self.s.seq[k] == self.nseq
        self.q.append(Msg(topic, payload, qos, retain, self.nseq))
        self.nseq = (self.nseq + 1) & 0xFFFFFFF
        assert self.slots()[-1] == k

    @precondition(lambda self: len(self.q) < self.s.cap)
    @rule(assign=st.booleans())
    def add_then_take_back(self, assign: bool) -> None:
        k = self.s.add(b"gone", b"", 2, False)
        self.nseq = (self.nseq + 1) & 0xFFFFFFF
        if assign:
            self.s.assign(k)
            self.next_pid()
        self.s.pop_tail()

    @precondition(lambda self: self.q)
    @rule(i=st.integers(0, 5))
    def send(self, i: int) -> None:
        i %= len(self.q)
        m = self.q[i]
        k = self.slots()[i]
        if not m.pid:
            m.pid = m.keep or self.next_pid()
            m.keep = 0
        assert send(self.s, k) == m.pid
        m.sent = True

    @precondition(lambda self: any(m.pid for m in self.q))
    @rule(i=st.integers(0, 5), rel=st.booleans())
    def ack(self, i: int, rel: bool) -> None:
        # PUBACK / PUBCOMP (rel False) or PUBREC (rel True) for a message holding an ID
        held = self.held()
        j = held[i % len(held)]
        m = self.q[j]
        k = self.slots()[j]
        r = self.s.acked(m.pid, rel)
        if rel:
            if m.qos != 2:
                assert r == -1
            else:
                assert r == k
                m.rel = True
        elif (m.qos == 2) != m.rel:
            assert r == -1
        else:
            assert r == k
            del self.q[j]

    @rule(pid=st.integers(0, 65535))
    def ack_unknown(self, pid: int) -> None:
        if any(pid in (m.pid, m.keep) for m in self.q):
            return
        assert self.s.acked(pid, False) == -1
        assert self.s.acked(pid, True) == -1

    @rule()
    def subscribe_pid(self) -> None:
        # SUBSCRIBE/UNSUBSCRIBE take IDs from the same space
        assert self.s.next_pid() == self.next_pid()

    @precondition(lambda self: any(not m.pid for m in self.q))
    @rule()
    def pump(self) -> None:
        # send everything still waiting, oldest first, as the client's _pump does
        for i, m in enumerate(self.q):
            if not m.pid:
                self.send(i)

    @rule(pid=st.sampled_from([65533, 65534, 65535]) | st.integers(0, 65535))
    def jump(self, pid: int) -> None:
        self.s.pid = self.last = pid

    @precondition(lambda self: any(m.pid for m in self.q))
    @rule(i=st.integers(0, 5), back=st.integers(1, 3))
    def rewind(self, i: int, back: int) -> None:
        # the counter comes round to just before IDs still in flight
        held = self.held()
        p = self.q[held[i % len(held)]].pid
        self.s.pid = self.last = (p - back) % 65535

    @rule(resumed=st.booleans(), go=st.integers(0, 2))
    def restart(self, resumed: bool, go: int) -> None:
        if go:
            return
        self.s.restart(resumed)
        if resumed:
            return
        self.q = [m for m in self.q if not m.rel]
        for m in self.q:
            m.keep = m.pid or m.keep
            m.pid = 0
            m.sent = False
        self.rx2 = []
        self.epoch = (self.epoch + 1) & 0xFFFF

    @rule(go=st.integers(0, 7))
    def clear(self, go: int) -> None:
        if go:
            return
        self.s.clear()
        self.q = []
        self.rx2 = []

    @rule(pid=st.integers(1, 80), add=st.integers(0, 3))
    def rx2(self, pid: int, add: int) -> None:
        # incoming QoS 2: PUBLISH (add) or PUBREL (delete), more PUBLISH than PUBREL
        if not add:
            self.s.rx2_del(pid)
            if pid in self.rx2:
                self.rx2.remove(pid)
            return
        new = pid not in self.rx2
        assert self.s.rx2_add(pid) is new
        if new:
            if len(self.rx2) >= 64:
                self.rx2.pop(0)
            self.rx2.append(pid)

    # invariants
    @invariant()
    def matches_model(self) -> None:
        s = self.s
        if s is None:
            return
        slots = self.slots()
        assert len(slots) == len(self.q) == s.pending()
        assert 0 <= s.n <= s.cap and 0 <= s.head < s.cap
        assert s.n >= len(slots)
        if s.n:
            assert s.fl[s.head], "the oldest slot is a hole"
        assert s.full() == (len(self.q) == s.cap)
        assert s.nin == len(self.held())
        assert s.pid == self.last
        assert s.nseq == self.nseq
        assert s.rx2 == self.rx2
        if hasattr(s, "epoch"):
            assert s.epoch == self.epoch
        for k, m in zip(slots, self.q, strict=True):
            f = s.fl[k]
            assert f & 3 == m.qos
            assert bool(f & RETAIN) == m.retain
            assert bool(f & SENT) == m.sent
            assert bool(f & REL) == m.rel
            assert bool(f & PID) == bool(m.pid)
            if m.pid:
                assert s.ids[k] == m.pid
                assert s.find(m.pid) == k
            if m.keep:
                assert s.ids[k] == m.keep and s.find(m.keep) == -1
            assert s.seq[k] == m.seq
            assert (s.top[k], s.msg[k]) == (m.topic, m.payload)
        pids = [m.pid or m.keep for m in self.q if m.pid or m.keep]
        assert 0 not in pids and len(set(pids)) == len(pids)
        # the allocator's counters hold exactly the IDs held or kept
        assert sum(s._use) == len(pids)
        ring = {s.slot(i) for i in range(s.n)}
        for k in range(s.cap):
            if k not in ring or not s.fl[k]:
                assert s.fl[k] == 0 and s.top[k] is None and s.msg[k] is None


RingMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=60, deadline=None
)
test_ring_model = RingMachine.TestCase


def test_drop_gives_up_a_qos2_message_in_flight() -> None:
    # a stored QoS 2 message that a new broker refuses as too large is given up
    s = S.Session(b"id", "h", 4)
    k = s.add(b"t", b"x" * 10, 2, False)
    s.assign(k)
    assert s.pending() == 1 and s.nin == 1
    s.drop(k)
    assert s.pending() == 0 and s.nin == 0
    k2 = s.add(b"t", b"y", 1, False)
    assert s.pending() == 1 and s.fl[k2] & 3 == 1
