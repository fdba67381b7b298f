"""A deep-sleeping node (tests/device/dev_wakes.py: a new process per wake on one littlefs
image) through wakes with the broker up, down, or restarted without persistence (its
session lost) in between, and power cuts at random moments of a wake (seeded). Every
reading whose publish() returned arrives, no QoS 2 command arrives twice, and the
subscription made on the first wake still takes commands at the end."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

import pytest

from harness import BrokerFactory, Observer, publish, run_device, start_device

HEAP = "256k"
WAKES = 16


# one seed and the keeper in the default run; the others with --runslow (WAKE_SEEDS: more)
CASES = [pytest.param(int(s), k, marks=() if (s, k) == ("1", 1) else pytest.mark.slow)
         for s in os.environ.get("WAKE_SEEDS", "1 2 3").split() for k in (0, 1)]


def _restart(b: Any, obs: Observer) -> None:
    # session lost; the observer back and subscribed before the node wakes
    obs.expect_resubscribe()
    b.restart()
    assert obs.wait_subscribed(30), "observer resubscribed"


@pytest.mark.parametrize(("seed", "link"), CASES)
def test_wakes_through_session_loss_and_cuts(broker_factory: BrokerFactory, tmp_path: Path,
                                             seed: int, link: int) -> None:
    rnd = random.Random(seed * 10 + link)
    b = broker_factory()
    pre = f"wk-{tmp_path.name}"[-20:]
    base = {"HOST": b.host, "PORT": b.port, "VERSION": 4, "PREFIX": pre, "LINK": link,
            "IMAGE": str(tmp_path / "flash.img"), "CID": f"wk-{tmp_path.name}"[-23:]}
    outs: list[str] = []
    with Observer(b.host, b.port, f"{pre}/+", qos=2, persistent=True) as obs:
        r = run_device("dev_wakes.py", {**base, "WAKE": 0}, heap=HEAP, timeout=60)
        outs.append(r.out)
        for w in range(1, WAKES):
            ev = rnd.choice(["up", "up", "restart", "down", "cut", "cut"])
            if ev == "restart":
                _restart(b, obs)
            if ev == "down":
                obs.expect_resubscribe()
                b.stop()
            if rnd.random() < 0.5 and ev != "down":
                publish(b.host, b.port, f"{pre}/cmd", f"c{w}", qos=2)
            outs.append(f"WAKE {w} {ev}")
            cfg = {**base, "WAKE": w, "END": rnd.choice(["disconnect", "stop"]),
                   "CHECK_MS": rnd.choice([100, 300, 600])}
            dev = start_device("dev_wakes.py", cfg, heap=HEAP)
            try:
                if ev == "cut":
                    time.sleep(rnd.uniform(0.05, 1.0))
                    dev.kill()
                else:
                    dev.wait_for("READY", timeout=60)
                    if rnd.random() < 0.5 and ev != "down":
                        publish(b.host, b.port, f"{pre}/cmd", f"d{w}", qos=2)
                    dev.wait(timeout=60)
                outs.append(dev.output())
            finally:
                dev.close()
            if ev == "down":
                b.start()
                assert obs.wait_subscribed(30), "observer resubscribed"
        dev = start_device("dev_wakes.py", {**base, "WAKE": WAKES, "FINAL": 1}, heap=HEAP)
        try:
            dev.wait_for("UP", timeout=60)
            time.sleep(0.3)
            publish(b.host, b.port, f"{pre}/cmd", "final", qos=2)
            r = dev.result(timeout=60, check=False)
        finally:
            dev.close()
        outs.append(r.out)
        out = "\n".join(outs)
        accepted = {int(ln.split()[1]) for ln in out.splitlines() if ln.startswith("ACCEPTED ")}
        deadline = time.monotonic() + 30
        while True:
            got = [int(m.payload) for m in obs.messages if m.topic[-3:] in ("/r1", "/r2")]
            if accepted <= set(got) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert r.passed, out
    missing = sorted(accepted - set(got))
    assert not missing, f"lost {missing}\n{out}"
    q2 = [g for g in got if g % 10 == 2]
    assert len(q2) == len(set(q2)), f"QoS 2 readings twice: {q2}"
    cmds = [ln.split()[2] for ln in out.splitlines() if ln.startswith("GOT ")]
    assert len(cmds) == len(set(cmds)), f"QoS 2 commands twice: {cmds}\n{out}"
