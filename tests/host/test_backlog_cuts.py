"""A backlog of thousands queued offline (QoS 1 and 2 mixed, some retained) drained after
a reboot in a small heap, the library as .mpy (tests/device/dev_backlog_cuts.py), through
link resets and power cuts, at window 1 and 16: every message arrives, no QoS 2 one twice,
new ones published while the backlog drains after it, in order at each QoS; the QoS 2
messages given packet IDs before the reboot (blackholed, or at the broker) first. The api
"aio" cases drain with the asyncio client (tests/device/dev_aio_backlog_cuts.py)."""

from __future__ import annotations

import random
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from faultrig import FaultProxy
from harness import BrokerFactory, Observer, start_device
from vboard import ESP32_PROG

HEAP = "100k"
AIO_HEAP = "128k"  # the asyncio client's drain (the reader, its tasks) takes more
KEEP = (8000, 9000, 10000, 11000, 12000, 14000)  # the heap left free, bytes (keep)
SCRIPT = {"blocking": "dev_backlog_cuts.py", "aio": "dev_aio_backlog_cuts.py"}  # drains
SLOW = pytest.mark.slow


def node(img: Path, phase: str, **kw: Any) -> dict[str, Any]:
    return {"HOST": "127.0.0.1", "VERSION": 4, "PREFIX": "bc", "CID": "bc",
            "IMAGE": str(img), "BLOCKS": 512, "PROG": ESP32_PROG, "MAXB": 1024 * 1024,
            "PHASE": phase, **kw}


def first_order(payloads: list[bytes]) -> list[bytes]:
    return list(dict.fromkeys(payloads))


# (count, window, cuts, seed, pre, blackhole, keep): keep, the node's own data leaves
# about KEEP bytes (one picked per boot) of its 100 KB heap free once connected, in every
# boot but the last (which drains what is left): the drain meets MemoryError, in the
# library's work and out of the application's calls. Those cases
# found a QoS 2 message published twice (CHANGELOG.md, 0.2.24: the strike's code with
# no heap); 0.2.23's soak at 100 KB, which then met MemoryError now and then, reported
# "one message published during the drain lost" in 2 of 24 runs, after a MemoryError out
# of publish() or check_msg(): the assertion it failed read the same for a message lost
# and one that came twice (the two say which now), so it was most likely that one. At
# 100 KB with no ballast the drain no longer meets MemoryError (0.2.24).
@pytest.mark.parametrize(("count", "window", "cuts", "seed", "pre", "blackhole", "keep", "api"),
                         [pytest.param(5000, 16, 6, 1, 0, False, False, "blocking", marks=SLOW),
                          pytest.param(3000, 1, 6, 2, 0, False, False, "blocking", marks=SLOW),
                          pytest.param(3000, 16, 6, 3, 16, False, False, "blocking", marks=SLOW),
                          pytest.param(3000, 16, 6, 4, 16, True, False, "blocking", marks=SLOW),
                          pytest.param(2000, 1, 4, 5, 1, True, False, "blocking", marks=SLOW),
                          pytest.param(3000, 16, 6, 3, 16, False, True, "blocking"),
                          pytest.param(5000, 16, 6, 1, 0, False, True, "blocking", marks=SLOW),
                          pytest.param(3000, 16, 6, 4, 16, True, True, "blocking", marks=SLOW),
                          pytest.param(2000, 1, 4, 5, 1, True, True, "blocking", marks=SLOW),
                          pytest.param(3000, 16, 6, 3, 16, False, True, "aio", marks=SLOW),
                          pytest.param(2000, 1, 4, 5, 1, True, True, "aio", marks=SLOW)])
def test_backlog_drains_through_resets_and_cuts(
    mpy_lib: Path, broker_factory: BrokerFactory, tmp_path: Path, count: int, window: int,
    cuts: int, seed: int, pre: int, blackhole: bool, keep: bool, api: str,
) -> None:
    rng = random.Random(seed)
    # no bound on what mosquitto has in flight to the observer: at its bound (20) it
    # queues the rest and, as a slot frees, may send a message that came later before the
    # ones queued (seen here, in a run that met thousands of MemoryErrors: the node's
    # order at the broker was right); its documentation promises order only at 1
    broker = broker_factory(extra=["max_queued_messages 0", "max_inflight_messages 0"],
                            verbose=False)
    img = tmp_path / "flash.img"
    wd = tmp_path / "wd"
    wd.mkdir()
    shutil.copytree(mpy_lib / "mqttsession", wd / "mqttsession")
    outs = []
    with FaultProxy(broker.host, broker.port) as fp, \
            Observer(broker.host, broker.port, "bc/#", qos=2) as obs:
        qc = node(img, "queue", COUNT=count, WINDOW=window, PORT=fp.port, PRE=pre)
        if not pre:
            fp.refuse()  # offline from the start
        with start_device("dev_backlog_cuts.py", qc, heap="1m", workdir=wd) as p:
            if pre:
                p.wait_for("CONNECTED", timeout=60)
                if blackhole:
                    fp.blackhole()
                (wd / "ready").touch()
                p.wait_for("PRE", timeout=60)
                fp.refuse()
                fp.reset()
                (wd / "go").touch()
            r = p.result(timeout=600)
        fp.forward()
        assert count <= int(r.value("QUEUED")) <= count + pre, r.out[-2000:]
        cfg = node(img, "drain", COUNT=count, WINDOW=window, PORT=fp.port, NEW=20)
        for boot in range(cuts + 1):
            # the heap left free: from a range, as the band where the drain goes on
            # and meets MemoryError moves with the library's use of the heap
            bal = rng.choice(KEEP) if keep and boot < cuts else 0
            with start_device(SCRIPT[api], {**cfg, "BOOTNO": boot, "KEEP": bal},
                              heap=HEAP if api == "blocking" else AIO_HEAP, workdir=wd) as p:
                p.wait_for("BOOT", timeout=120)
                if boot < cuts:
                    t_end = time.monotonic() + rng.uniform(0.2, 1.0)
                    while time.monotonic() < t_end and p.poll() is None:
                        time.sleep(rng.uniform(0.05, 0.3))
                        fp.reset()
                    p.kill()
                    outs.append(p.output())
                else:
                    res = p.result(timeout=300, check=False)
                    outs.append(res.out)
        time.sleep(2)
        msgs = obs.messages
    for i, o in enumerate(outs):
        (tmp_path / f"out{i}.txt").write_text(o)
    last = outs[-1]
    print(last[-3000:])
    errs = [ln for o in outs for ln in o.splitlines() if ln.startswith("E ")]
    assert "DRAINED 0" in last, last[-3000:]
    pays = [m.payload for m in msgs]
    got = set(pays)
    want = {b"b%d" % i for i in range(count)} | {b"p%d" % i for i in range(pre)}
    missing = want - got
    assert not missing, f"{len(missing)} lost, e.g. {sorted(missing)[:5]}"
    # accepted new ones (A lines, whole ones) all arrive
    acc = {ln.split()[1].encode() for o in outs for ln in o.split("\n")[:-1]
           if ln.startswith("A ")}
    assert not acc - got, ("accepted and lost", sorted(acc - got)[:5])
    q2 = [m.payload for m in msgs if m.qos == 2]
    dup2 = {x for x in q2 if q2.count(x) > 1}
    assert not dup2, ("QoS 2 twice", sorted(dup2)[:10])
    # in order at each QoS (mosquitto forwards a QoS 2 message at PUBREL, later than a
    # QoS 1 one sent after it)
    for q in (1, 2):
        seen = first_order([m.payload for m in msgs if m.qos == q])
        order = [int(x[1:]) for x in seen if x.startswith(b"b")]
        # the QoS 2 messages sent before the reboot first, new ones after the backlog
        kinds = [x[:1] for x in seen]
        assert kinds == sorted(kinds, key=b"pbn".index), (q, kinds[:20])
        bad = [o for i, o in enumerate(order[1:]) if o < order[i]]
        assert not bad, (q, bad[:10])
    ctx = [o.splitlines()[max(0, i - 3):i + 2] for o in outs
           for i, ln in enumerate(o.splitlines()) if ln.startswith("E ")]
    # (a MemoryError out of check_msg() where a backlog segment is read after a PUBACK,
    # qseg.read, is seen at times in this heap; the drain goes on: printed, not asserted)
    print("exceptions", ctx[:5])
    print("errors", errs[:20],
          [ln for o in outs for ln in o.splitlines() if ln.startswith(("BOOT", "DRAINED"))])
