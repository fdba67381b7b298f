"""Both clients with a store through power cuts at random moments (seeded): publishing
QoS 1 and 2 at window 8, every message whose publish() returned arrives, no QoS 2 message
arrives twice, and nothing arrives that was never published; taking commands, each QoS 1
one is taken at least once and each QoS 2 one at most once. The cut points depend on how
fast the node runs; what is asserted holds at any of them. The blocking client's script
is tests/device/dev_cuts.py, the asyncio client's dev_aio_cuts.py."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest

from faultrig import FaultProxy
from harness import Broker, BrokerFactory, Observer, Publisher, run_device, start_device

HEAP = "256k"
CUTS = 6
BOOT_SPAN = 100000  # each boot numbers its messages from boot * BOOT_SPAN


SEEDS = [1, 2]
AIO = "dev_aio_cuts.py"
BLOCKING = "dev_cuts.py"


def numbers(out: str, tag: str) -> list[int]:
    # the numbers of the lines "<tag> <n>"; whole lines only: a cut may end the output
    # inside one
    return [int(ln.split()[1]) for ln in out.split("\n")[:-1] if ln.startswith(tag + " ")]


def node(broker: Broker, tmp_path: Path, tag: str, **kw: Any) -> dict[str, Any]:
    # the device's settings: client ID and topic prefix tag, a littlefs image of its own
    return {"HOST": broker.host, "PORT": broker.port, "VERSION": 4, "PREFIX": tag, "CID": tag,
            "IMAGE": str(tmp_path / "flash.img"), "BLOCKS": 128, **kw}


@pytest.mark.parametrize("script", [AIO, BLOCKING])
@pytest.mark.parametrize("seed", SEEDS)
def test_power_cuts_lose_nothing(broker: Broker, tmp_path: Path, seed: int, script: str) -> None:
    rng = random.Random(seed)
    tag = f"cut{seed}{'a' if script == AIO else 'b'}"
    c = node(broker, tmp_path, tag)
    took: list[int] = []
    tried: set[int] = set()  # every number a boot may have started to publish
    with Observer(broker.host, broker.port, f"{tag}/#", qos=2) as obs:
        for boot in range(CUTS):
            start = boot * BOOT_SPAN
            with start_device(script, {**c, "START": start}, heap=HEAP) as p:
                p.wait_for("BOOT", timeout=60)
                # cut after a random number of accepted messages, a random moment later
                k = rng.randint(1, 80)
                p.wait_for(f"A {start + k - 1}", timeout=120)
                time.sleep(rng.random() * 0.05)
                p.kill()
            got = numbers(p.output(), "A")  # all of it: closing waited for the reader
            took += got
            tried.update(range(start, start + len(got) + 1))
        last_boot(script, c, obs, took, tried, 180)
    assert len(took) > CUTS * 1 + 20


def last_boot(script: str, c: dict[str, Any], obs: Observer, took: list[int],
              tried: set[int], timeout: float) -> None:
    # a last boot publishes 20 more and waits until every message is acknowledged; then
    # every message whose publish() returned (took) has arrived, none at QoS 2 twice, and
    # none that no boot may have started to publish (tried)
    start = CUTS * BOOT_SPAN
    r = run_device(script, {**c, "START": start, "COUNT": 20}, heap=HEAP, timeout=timeout)
    assert r.value("DRAINED") == "0"
    took += numbers(r.out, "A")
    tried.update(range(start, start + 20))
    want = set(took)
    deadline = time.monotonic() + 60
    while not want <= {int(m) for m in obs.payloads()} and time.monotonic() < deadline:
        time.sleep(0.1)
    got = [int(m) for m in obs.payloads()]
    missing = sorted(want - set(got))
    assert not missing, f"accepted but never delivered: {missing[:20]} of {len(missing)}"
    twice = sorted(n for n in set(got) if n % 2 and got.count(n) > 1)
    assert not twice, f"QoS 2 delivered twice: {twice[:20]}"
    assert set(got) <= tried, sorted(set(got) - tried)[:20]


@pytest.mark.parametrize("script", [AIO, BLOCKING])
@pytest.mark.parametrize("seed", SEEDS)
def test_power_cuts_with_a_backlog_in_flash(broker_factory: BrokerFactory, tmp_path: Path,
                                            seed: int, script: str) -> None:
    # both clients with a keeper, SessionStore(ram=8) and a queue of 300, behind a
    # fault proxy: each boot the link goes down a while (the queue grows past the RAM
    # ring into flash segments, up to full), and the node is cut while offline or while
    # that backlog drains after the link returns. Every message whose publish() returned
    # arrives, none at QoS 2 twice. (mosquitto gives up what it queues for a subscriber
    # beyond 1,000 messages unless told not to: the observer may lag behind the drain)
    rng = random.Random(seed)
    tag = f"cutq{seed}{'a' if script == AIO else 'b'}"
    broker = broker_factory(extra=["max_queued_messages 0"], verbose=False)
    took: list[int] = []
    tried: set[int] = set()
    backlog: list[int] = []  # what each boot found pending
    with FaultProxy(broker.host, broker.port) as px, \
            Observer(broker.host, broker.port, f"{tag}/#", qos=2) as obs:
        c = node(broker, tmp_path, tag, PORT=px.port, KEEP=1, RAM=8, QUEUE=300, BLOCKS=256)
        for boot in range(CUTS):
            start = boot * BOOT_SPAN
            with start_device(script, {**c, "START": start}, heap=HEAP) as p:
                p.wait_for("BOOT", timeout=60)
                p.wait_for(f"A {start + rng.randint(0, 39)}", timeout=120)
                px.set_mode("down")
                try:
                    time.sleep(0.3 + rng.random() * 2)
                    if rng.random() < 0.5:
                        p.kill()  # offline
                finally:
                    px.set_mode("pass")
                time.sleep(rng.random() * 0.3)
                p.kill()  # draining, or offline still (the kill above)
            backlog += numbers(p.output(), "BOOT")
            got = numbers(p.output(), "A")
            took += got
            tried.update(range(start, start + len(got) + 1))
        last_boot(script, c, obs, took, tried, 300)
    assert max(backlog) > 8, backlog  # a boot began with messages in flash beyond the ring


@pytest.mark.parametrize("aio", [True, False])
def test_in_flight_beyond_the_ring_goes_out_on_the_next_connection(
        broker_factory: BrokerFactory, tmp_path: Path, aio: bool) -> None:
    # a cut with 12 QoS 2 messages in flight under SessionStore(ram=16) (a stalled link
    # holds them); the next boot has ram=4, so 8 of them wait in flash beyond the ring
    # and come into it as it drains, after the connection's resend of what is in it.
    # Each goes out on that connection: every message arrives once, nothing stays
    # pending, and no second connection was needed (the blocking client, without a
    # keeper, would raise at its timeout)
    broker = broker_factory(verbose=False)
    tag = f"inflight{'a' if aio else 'b'}"
    with (FaultProxy(broker.host, broker.port) as px,
          Observer(broker.host, broker.port, f"{tag}/#", qos=2) as obs):
        c = node(broker, tmp_path, tag, PORT=px.port, AIO=int(aio), COUNT=12,
                 GO=str(tmp_path / "go"))
        with start_device("dev_resend.py", {**c, "BOOT": 1}, heap=HEAP) as p:
            p.wait_for("UP", timeout=60)
            px.set_mode("stall")
            (tmp_path / "go").touch()
            p.wait_for("SENT", timeout=60)
            p.kill()
        px.set_mode("pass")
        r = run_device("dev_resend.py", {**c, "BOOT": 2}, heap=HEAP, timeout=120)
        assert r.value("PENDING") == "0", r.out
        deadline = time.monotonic() + 60
        while len(obs.payloads()) < 12 and time.monotonic() < deadline:
            time.sleep(0.1)
        got = sorted(int(m) for m in obs.payloads())
    assert got == list(range(12))
    assert broker.log_path.read_text().count(f" as {tag} ") == 2  # one per boot


@pytest.mark.parametrize("take", ["messages", "coro", "late", "blocking"])
@pytest.mark.parametrize("qos", [1, 2])
@pytest.mark.parametrize("seed", SEEDS)
def test_commands_through_power_cuts(broker: Broker, tmp_path: Path, seed: int, qos: int,
                                     take: str) -> None:
    # commands at QoS 1/2 while the node is cut at random moments, taken by the asyncio
    # client through messages() (called after connect(), as the README's example does), a
    # coroutine callback, or a plain callback set a while after connect(), or by the
    # blocking client's callback: each QoS 1 one taken at least once, each QoS 2 one at
    # most once and all but at most one per cut (the one whose record was made when the
    # cut came before the application printed it)
    rng = random.Random(seed)
    tag = f"rx{seed}{qos}{take}"
    script = BLOCKING if take == "blocking" else AIO
    c = node(broker, tmp_path, tag, RECV=qos, TAKE=take)
    run_device(script, {**c, "SUB": 1}, heap=HEAP, timeout=60)  # subscribes
    taken: list[int] = []
    sent = 0
    with Publisher(broker.host, broker.port) as pub:
        for _ in range(CUTS):
            with start_device(script, c, heap=HEAP) as p:
                p.wait_for("BOOT", timeout=60)
                for _ in range(rng.randint(5, 60)):
                    pub.publish(f"{tag}/cmd", b"%07d" % sent, qos=qos)
                    sent += 1
                time.sleep(rng.random() * 0.05)
                p.kill()
            taken += numbers(p.output(), "R")
        pub.publish(f"{tag}/cmd", b"END", qos=qos)
    taken += numbers(run_device(script, c, heap=HEAP, timeout=120).out, "R")
    missing = sorted(set(range(sent)) - set(taken))
    assert set(taken) <= set(range(sent))
    if qos == 1:
        assert not missing, missing
        return
    assert len(taken) == len(set(taken)), sorted(x for x in taken if taken.count(x) > 1)
    assert len(missing) <= CUTS, missing
