"""Incoming QoS 2 messages exactly once across a power cut at every block write
(tests/device/dev_rx2_cuts.py), both clients and every way they hand messages over,
MQTT 3.1.1 and 5, against a scripted broker that completes QoS 2 as a broker does: the
first connection sends m1 m2 m3; the PUBREL comes on each PUBREC ("now") or only on the
next connection ("later"); a later connection with the session kept sends PUBREL for
each one PUBREC'd and the PUBLISH again with DUP for each one not, then "end". After
the cut the node reboots on the same image and takes messages until "end". Each message
is delivered once; a cut while one is being delivered may lose that one (README: a
reset during the callback loses that one), never any other."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import run_device, start_device
from hostile import (
    CONNECT,
    PINGREQ,
    PUBCOMP,
    PUBREC,
    PUBREL,
    Conn,
    SerialBroker,
    _Reader,
    ack,
    connack,
    publish,
)

TOPIC = b"rx2/cmd"
FIRST = [(1, b"m1"), (2, b"m2"), (3, b"m3")]


class Broker(SerialBroker):
    def __init__(self, version: int, pubrel: str):
        self.version = version
        self.pubrel = pubrel
        self.pending: dict[int, tuple[bytes, str]] = {}
        self.sent_first = False
        self.sent_end = False
        self.final = False  # "end" goes out on the next connection (the node rebooted)
        self.dup_ok = True  # every resend carried DUP
        super().__init__()

    def _conn(self, s: socket.socket) -> None:
        conn = Conn(len(self.conns))
        self.conns.append(conn)
        r = _Reader(s, conn)
        p = r.next(time.monotonic() + 15)
        if p is None or p[0] & 0xF0 != CONNECT:
            return
        clean = bool(p[1][7] & 2)
        v = self.version
        if clean:
            self.pending.clear()
        later = self.sent_first
        out = [connack(0 if clean or not later else 1, version=v)]
        for pid, (m, state) in sorted(self.pending.items()):
            out.append(ack(PUBREL | 2, pid) if state == "rec" else
                       publish(TOPIC, m, 2, pid, version=v, flags=8))
        new = [] if later else FIRST
        if self.final and not self.sent_end:
            new = new + [(4, b"end")]
            self.sent_end = True
        self.sent_first = True
        for pid, m in new:
            self.pending[pid] = (m, "sent")
            out.append(publish(TOPIC, m, 2, pid, version=v))
        s.sendall(b"".join(out))
        while not self._stop.is_set():
            p = r.next(time.monotonic() + 0.2)
            if p is None:
                if conn.closed_by_client:
                    return
                continue
            t, pid = p[0] & 0xF0, int.from_bytes(p[1][:2], "big")
            if t == PUBREC and pid in self.pending:
                self.pending[pid] = (self.pending[pid][0], "rec")
                if self.pubrel == "now" or later:
                    s.sendall(ack(PUBREL | 2, pid))
            elif t == PUBCOMP and pid in self.pending:
                del self.pending[pid]
            elif t == PINGREQ:
                s.sendall(b"\xd0\x00")


@pytest.fixture
def brokers() -> Iterator[list[Broker]]:
    made: list[Broker] = []
    yield made
    for b in made:
        b.close()


def _gots(out: str) -> list[str]:
    return [ln.split(" ", 1)[1] for ln in out.splitlines() if ln.startswith("GOT ")]


def _cut_run(cfg: dict, timeout: float = 60) -> tuple[bool, str]:
    # (whether the power was cut, the output)
    with start_device("dev_rx2_cuts.py", cfg, heap="256k") as p:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            out = p.output()
            if "\nCUT" in "\n" + out:
                p.kill()
                return True, p.output()
            if p.poll() is not None:
                time.sleep(0.2)
                return False, p.output()
            time.sleep(0.05)
        p.kill()
        raise AssertionError("no cut and no end:\n" + p.output())


# (take, PUBREL timing, MQTT version): each way of taking messages, each version and
# each PUBREL timing at least once, each case about 40 s
CASES = [("blocking", "now", 4), ("raw", "later", 5), ("plain", "now", 5),
         ("coro", "later", 4), ("messages", "now", 4), ("messages", "later", 5)]


@pytest.mark.slow  # (about 80 cut runs a case, 40-50 s each: behind --runslow)
@pytest.mark.parametrize(("take", "pubrel", "version"), CASES)
def test_a_cut_at_every_block_write_delivers_each_qos2_message_once(
        brokers: list[Broker], tmp_path: Path, take: str, pubrel: str, version: int) -> None:
    def cfg(n: int, b: Broker, at: str = "before", stop: str = "m3") -> dict:
        return {"HOST": "127.0.0.1", "PORT": b.port, "VERSION": version, "TAKE": take,
                "IMAGE": str(tmp_path / "flash.img"), "CUT": n, "AT": at, "STOP": stop}

    b = Broker(version, pubrel)
    brokers.append(b)
    (tmp_path / "flash.img").unlink(missing_ok=True)
    total = int(run_device("dev_rx2_cuts.py", cfg(-1, b), heap="256k", timeout=60)
                .value("WRITES"))
    bad = []
    for at in ("before", "after"):
        for n in range(total + 1):
            (tmp_path / "flash.img").unlink(missing_ok=True)
            b = Broker(version, pubrel)
            brokers.append(b)
            cut, out1 = _cut_run(cfg(n, b, at))
            if not cut:
                continue
            b.final = True
            r = run_device("dev_rx2_cuts.py", cfg(-1, b, stop="end"), heap="256k",
                           timeout=60, check=False)
            got = _gots(out1) + _gots(r.out)
            counts = {m: got.count(m) for m in ("m1", "m2", "m3", "end")}
            twice = [m for m, k in counts.items() if k > 1]
            lost = [m for m, k in counts.items() if k == 0]
            if twice or len(lost) > 1 or "end" in lost or "PASS" not in r.out:
                bad.append((at, n, counts, out1[-600:], r.out[-600:]))
    assert not bad, "\n".join(map(repr, bad[:3])) + f"\n({len(bad)} bad of {total} cut points)"
