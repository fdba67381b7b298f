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

from harness import Broker, Observer, Publisher, run_device, start_device

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
        start = CUTS * BOOT_SPAN
        r = run_device(script, {**c, "START": start, "COUNT": 20}, heap=HEAP,
                       timeout=180)
        assert r.value("DRAINED") == "0"
        took += numbers(r.out, "A")
        tried.update(range(start, start + 20))
        want = set(took)
        deadline = time.monotonic() + 60
        while not want <= {int(m) for m in obs.payloads()} and time.monotonic() < deadline:
            time.sleep(0.1)
        got = [int(m) for m in obs.payloads()]
    assert len(took) > CUTS * 1 + 20
    missing = sorted(want - set(got))
    assert not missing, f"accepted but never delivered: {missing[:20]}"
    twice = sorted(n for n in set(got) if n % 2 and got.count(n) > 1)
    assert not twice, f"QoS 2 delivered twice: {twice[:20]}"
    assert set(got) <= tried, sorted(set(got) - tried)[:20]


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
