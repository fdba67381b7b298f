"""End-to-end fuzzing of the incoming path: hypothesis makes broker byte streams (valid-ish
packets, mutated, truncated, random bytes) that a scripted broker sends after the client's
CONNECT, and the unix-port client of each front end takes them with a store holding
messages queued offline. Whatever arrives, only MQTTException or OSError reaches the
application, no call blocks past its timeout, and no stored message is lost or written
outside the store root.

Each hypothesis example is a batch of streams run in one device process per front end, so
`make test` stays within seconds; --runslow runs many more batches."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from hostile_cases import (
    CONNECT,
    SEEDED,
    TIMEOUT,
    Entry,
    Run,
    ack,
    connack,
    p8,
    p16,
    p32,
    pkt,
    ppair,
    props,
    pstr,
    publish,
    run_cases,
    u16,
)

FRONTS = ["sync", "aio"]
BATCH = 12  # streams per device process
CALL_BOUND_MS = (TIMEOUT + 3) * 1000  # generous: CI shares its CPUs
GAP_BOUND_MS = 750

# Packet IDs the broker's acknowledgements use: never 1-15 (the client's own IDs for the
# stored messages) even after one byte of mutation, so a stored message leaves the store
# only if the client loses it.
pids = st.integers(0x10, 0xFF).flatmap(lambda lo: st.integers(0x10, 0xFF).map(
    lambda hi: hi << 8 | lo))
topics = st.sampled_from([b"t/a", b"t/\xff", b"t/\x00", b"", b"t/+", b"#", b"t/\xed\xa0\x80",
                          b"a" * 200, b"t/\xc3\xa9"])
prop_items = st.sampled_from([
    p8(0x01, 1), p32(0x02, 60), pstr(0x03, "text/plain"), pstr(0x08, "r/t"), p16(0x23, 1),
    pstr(0x1F, b"\xff"), ppair("k", "v"), b"\x0b\x05", p8(0x7F, 0), p16(0x21, 0),
    pstr(0x12, "id"), pstr(0x12, ".."), p32(0x27, 64), p16(0x13, 1),
])


@st.composite
def prop_block(draw: Any) -> bytes:
    return props(*draw(st.lists(prop_items, max_size=3)))


@st.composite
def good_packet(draw: Any, v: int) -> bytes:
    kind = draw(st.sampled_from(["pub", "pub", "ack", "sub", "ping", "disc", "auth", "other"]))
    if kind == "pub":
        qos = draw(st.sampled_from([0, 1, 2, 3]))
        return publish(v, draw(topics), draw(st.binary(max_size=40)), qos, draw(pids),
                       draw(prop_block()) if v == 5 else None,
                       draw(st.sampled_from([0, 0, 1, 8])))
    if kind == "ack":
        first = draw(st.sampled_from([0x40, 0x50, 0x62, 0x70, 0x60, 0x41]))
        rc = draw(st.sampled_from([None, 0, 0x10, 0x80, 0x92]))
        return ack(first, draw(pids), v, rc, draw(prop_block()) if v == 5 and rc else None)
    if kind == "sub":
        first = draw(st.sampled_from([0x90, 0xB0]))
        return pkt(first, u16(draw(pids)) + (draw(prop_block()) if v == 5 else b"")
                   + draw(st.binary(max_size=3)))
    if kind == "ping":
        return draw(st.sampled_from([b"\xd0\x00", b"\xd0\x01\x00", b"\xc0\x00"]))
    if kind == "disc":
        return pkt(0xE0, draw(st.sampled_from([b"", b"\x8e", b"\x9c"])) +
                   (draw(prop_block()) if v == 5 else b""))
    if kind == "auth":
        return pkt(0xF0, b"\x18" + draw(prop_block()))
    return bytes([draw(st.integers(0, 255))]) + draw(st.binary(max_size=6))


@st.composite
def mutated(draw: Any, data: bytes) -> bytes:
    how = draw(st.sampled_from(["keep", "keep", "flip", "cut", "insert", "length"]))
    if not data or how == "keep":
        return data
    i = draw(st.integers(0, len(data) - 1))
    if how == "flip":
        return data[:i] + bytes([draw(st.integers(0, 255))]) + data[i + 1 :]
    if how == "cut":
        return data[:i]
    if how == "insert":
        return data[:i] + draw(st.binary(min_size=1, max_size=4)) + data[i:]
    # a different remaining length, up to a huge one
    return data[:1] + draw(st.sampled_from([b"\x00", b"\x7f", b"\xff\x7f", b"\xff\xff\xff\x7f",
                                            b"\xff\xff\xff\xff\x7f"])) + data[2:]


@st.composite
def stream(draw: Any) -> tuple[int, list[tuple[Any, ...]], bool]:
    """(version, broker steps after CONNECT, whether the broker closes at the end)."""
    v = draw(st.sampled_from([4, 5]))
    ca = connack(v, draw(st.sampled_from([0, 0, 1])), 0,
                 draw(prop_block()) if v == 5 else None)
    if draw(st.integers(0, 9)) == 0:
        ca = draw(mutated(ca))
    parts = []
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.integers(0, 5)) == 0:
            parts.append(draw(st.binary(min_size=1, max_size=32)))
        else:
            parts.append(draw(mutated(draw(good_packet(v)))))
    steps: list[tuple[Any, ...]] = [("expect", CONNECT), ("send", ca + b"".join(parts))]
    close = draw(st.booleans())
    if close:
        steps.append(("close",))
    return v, steps, close


def judge(r: dict[str, Any] | None, front: str) -> list[str]:
    if r is None:
        return ["no result"]
    if "broken" in r:
        return [f"the device script {r['broken']}: {r['tail']}"]
    errs = []
    for op, e in r["exc"].items():
        if e is not None and e["t"] not in ("MQTTException", "OSError"):
            errs.append(f"{op}: {e['t']} {e['msg']!r} reached the application")
    for op, ms in r["ms"].items():
        if ms > CALL_BOUND_MS:
            errs.append(f"{op}: a call blocked {ms} ms")
    if front == "aio" and r.get("gap", 0) > GAP_BOUND_MS:
        errs.append(f"the asyncio loop stalled {r['gap']} ms")
    want = {f"{h}|{c}": n for h, c, n in SEEDED} | {"127.0.0.1|hc": 2}
    if r["stored"] != want:
        errs.append(f"stored messages {r['stored']}, expected {want}")
    if r["outside"] or r["escaped"]:
        errs.append(f"written outside the store root: {r['outside'] + r['escaped']}")
    return errs


def run_batch(batch: list[tuple[int, list[tuple[Any, ...]], bool]], base: Path) -> None:
    todo = [Entry(i, f"fuzz{i}", v, steps, ("connect", "check"), "own", 400)
            for i, (v, steps, _) in enumerate(batch)]
    runs: dict[str, Run] = {}
    errors: list[BaseException] = []

    def go(front: str) -> None:
        try:
            runs[front] = run_cases(front, todo, base / front, warm=[])
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=go, args=(f,)) for f in FRONTS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    bad = []
    for front in FRONTS:
        for e in todo:
            errs = judge(runs[front].results.get(e.i), front)
            if errs:
                bad.append(f"{front} v{e.v} stream {e.steps[1][1]!r} close={batch[e.i][2]}: "
                           + "; ".join(errs))
    assert not bad, "\n".join(bad)


_dirs = iter(range(1_000_000))


def _base(tmp: pytest.TempPathFactory) -> Path:
    return tmp.mktemp(f"fuzz{next(_dirs)}")


# No shrinking: each try is two device processes; a failure reports its whole batch, and
# the example database replays it first next time.
FAST = settings(max_examples=3, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


@FAST
@given(st.lists(stream(), min_size=BATCH, max_size=BATCH))
def test_generated_broker_streams(tmp_path_factory: pytest.TempPathFactory,
                                  batch: list[Any]) -> None:
    run_batch(batch, _base(tmp_path_factory))


@pytest.mark.slow
@settings(FAST, max_examples=40)
@given(st.lists(stream(), min_size=BATCH, max_size=BATCH))
def test_generated_broker_streams_long(tmp_path_factory: pytest.TempPathFactory,
                                       batch: list[Any]) -> None:
    run_batch(batch, _base(tmp_path_factory))
