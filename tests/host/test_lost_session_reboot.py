"""A node whose broker lost its session and that is reset right after the CONNACK saying so
(Session Present 0), before its subscriptions are made again
(tests/device/dev_lost_session_reboot.py). That connect made the broker a new session, so
the next boot hears Session Present 1 and makes only what is owed: up to 0.2.20 that was
the changes made offline, and the subscriptions the broker had lost were never made again
(nothing published to them arrived). Every subscription is owed, in flash, from such a
CONNACK until its SUBACK."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from faultrig import FaultProxy
from harness import Broker, Observer, publish, run_device, start_device

HEAP = "256k"


def cfg(b: Broker, p: FaultProxy, tmp: Path, api: str, cid: Any, **kw: Any) -> dict[str, Any]:
    return {"HOST": b.host, "PORT": p.port, "VERSION": 4, "TEST": "lost",
            "PREFIX": f"ls-{tmp.name}"[-20:], "IMAGE": str(tmp / "flash.img"), "CID": cid,
            "API": api, **kw}


def expected(boots: int, n: int = 2) -> list[bytes]:
    return [f"b{k}-q{q}-{i}".encode() for k in range(boots) for q in (1, 2) for i in range(n)]


def finish(b: Broker, c: dict[str, Any], obs: Observer, boots: int) -> Any:
    pre = c["PREFIX"]
    dev = start_device("dev_lost_session_reboot.py", {"PHASE": "on", **c}, heap=HEAP)
    try:
        dev.wait_for("UP", timeout=60)
        for t in ("a", "b", "c"):
            publish(b.host, b.port, f"{pre}/{t}", f"to-{t}", qos=2)
        publish(b.host, b.port, f"{pre}/end", "end", qos=1)
        r = dev.result(timeout=60)
    finally:
        dev.close()
    exp = expected(boots, c.get("N", 2))
    obs.wait_for(len(exp), timeout=30, distinct=True)
    time.sleep(0.5)
    return r


@pytest.mark.parametrize("api", ["blocking", "aio"])
def test_lost_session_then_reboot_after_connack(broker_factory: Any, tmp_path: Path,
                                                api: str) -> None:
    # subscribed (a, end), the broker restarted without them, a boot offline subscribing
    # to c, then a reset right after the CONNACK (Session Present 0), before the
    # subscriptions are made again: the next boot's connect gets Session Present 1
    b = broker_factory()
    with FaultProxy(b.host, b.port) as p:
        c = cfg(b, p, tmp_path, api, None)
        r = run_device("dev_lost_session_reboot.py", {**c, "PHASE": "sub", "SUBS": "a:1,end:1"},
                       heap=HEAP, timeout=60)
        assert r.value("PRESENT") == "False", r.out
        p.refuse()
        b.restart()
        with Observer(b.host, b.port, f"{c['PREFIX']}/data", qos=2) as obs:
            off = {**c, "PHASE": "off", "BOOT": 0, "SUBS": "c:1"}
            run_device("dev_lost_session_reboot.py", off, heap=HEAP, timeout=60)
            p.forward()
            dev = start_device("dev_lost_session_reboot.py", {**c, "PHASE": "killack"}, heap=HEAP)
            try:
                dev.wait_for("CUT", timeout=30)
                out = dev.output()
                dev.kill()
            finally:
                dev.close()
            assert "session present 0" in out, out
            r = finish(b, c, obs, 1)
            assert r.values("PRESENT") == [["True"]], r.out
            assert r.values("PENDING")[-1] == ["0"], r.out
            got = sorted(t.rsplit("/", 1)[1] for t, m in r.values("GOT"))
            assert got == ["a", "c", "end"], r.out


def lost_then(b: Broker, p: FaultProxy, c: dict[str, Any]) -> None:
    # subscribed (a, end), then the broker restarted without the session
    r = run_device("dev_lost_session_reboot.py", {**c, "PHASE": "sub", "SUBS": "a:1,end:1"},
                   heap=HEAP, timeout=60)
    assert r.value("PRESENT") == "False", r.out
    b.restart()


@pytest.mark.parametrize("api", ["blocking", "aio"])
def test_lost_session_then_reboot_before_connack(broker_factory: Any, tmp_path: Path,
                                                 api: str) -> None:
    # the broker lost the session; a reset after the CONNECT went out, before its CONNACK
    # (Session Present 0) was taken: that CONNECT made the broker a new, empty session, so
    # the next boot hears Session Present 1. The node cannot tell that from a session the
    # broker kept: its subscriptions must be made again all the same, else they are lost
    # for good
    b = broker_factory()
    with FaultProxy(b.host, b.port) as p:
        c = cfg(b, p, tmp_path, api, None, N=0, RUN_MS=8000)
        lost_then(b, p, c)
        with Observer(b.host, b.port, f"{c['PREFIX']}/data", qos=2) as obs:
            dev = start_device("dev_lost_session_reboot.py", {**c, "PHASE": "killconn"},
                               heap=HEAP)
            try:
                dev.wait_for("CUT", timeout=30)
                out = dev.output()
                dev.kill()
            finally:
                dev.close()
            assert "CONNACK 0" in out, out
            r = finish(b, c, obs, 0)
            assert r.values("PRESENT") == [["True"]], r.out
            got = sorted(t.rsplit("/", 1)[1] for t, m in r.values("GOT"))
            assert got == ["a", "end"], r.out


@pytest.mark.parametrize("api", ["blocking", "aio"])
def test_lost_session_then_connack_lost_with_the_link(broker_factory: Any, tmp_path: Path,
                                                      api: str) -> None:
    # as above without a reset: the link goes between CONNECT and CONNACK (Session
    # Present 0), and the connect made again in the same process hears Session Present 1
    b = broker_factory()
    with FaultProxy(b.host, b.port) as p:
        c = cfg(b, p, tmp_path, api, None, N=0, RUN_MS=8000)
        lost_then(b, p, c)
        with Observer(b.host, b.port, f"{c['PREFIX']}/data", qos=2) as obs:
            r = finish(b, {**c, "PHASE": "dropack"}, obs, 0)
            assert "CONNACK 0" in r.out, r.out
            assert r.values("PRESENT") == [["True"]], r.out
            got = sorted(t.rsplit("/", 1)[1] for t, m in r.values("GOT"))
            assert got == ["a", "end"], r.out
