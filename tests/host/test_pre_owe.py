"""Subscriptions owed for a resuming CONNECT (ctl.pre_owe, 0.2.24) when that connect got
no further than a CONNACK refusing it, or than an unreachable broker
(tests/device/dev_pre_owe.py, a scripted broker: tests/host/hostile.py). Only a CONNECT
whose CONNACK never came makes the next Session Present 1 subscribe again (README): a
refusal is a CONNACK (the broker made no session of that CONNECT), and a CONNECT never
sent made none either. Subscribing again sends every retained message once more."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from harness import Broker, run_device
from hostile import CONNECT, SUBSCRIBE, HostileBroker, connack

HEAP = "256k"


def cfg(b: Broker, tmp: Path, api: str, v: int) -> dict[str, Any]:
    return {"HOST": b.host, "PORT": b.port, "VERSION": v, "API": api,
            "PREFIX": f"po-{tmp.name}"[-20:], "IMAGE": str(tmp / "flash.img")}


def subscribed(c: dict[str, Any]) -> None:
    r = run_device("dev_pre_owe.py", {**c, "PHASE": "sub", "SUBS": "a:1,b:1"}, heap=HEAP,
                   timeout=60)
    assert r.value("OWED") == "False", r.out


class Blackhole:
    """A port whose TCP connects never finish: a listener with a full accept queue drops
    every further SYN (a broker host out of reach: the connect times out)."""

    def __enter__(self) -> int:
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(0)
        port = self.ls.getsockname()[1]
        self.fill = []
        for _ in range(2):
            f = socket.socket()
            f.setblocking(False)
            f.connect_ex(("127.0.0.1", port))
            self.fill.append(f)
        return port

    def __exit__(self, *exc: object) -> None:
        for f in self.fill:
            f.close()
        self.ls.close()


@pytest.mark.parametrize("v", [4, 5])
@pytest.mark.parametrize("api", ["blocking", "aio"])
def test_refused_connack_then_present(broker: Broker, tmp_path: Path, api: str,
                                      v: int) -> None:
    # bad credentials (3.1.1: 5; MQTT 5: 0x87), then the broker takes the next CONNECT and
    # has kept the session: nothing to subscribe again
    c = cfg(broker, tmp_path, api, v)
    subscribed(c)
    no = connack(0, 5 if v == 4 else 0x87, v)
    scripts = [[("expect", CONNECT), ("send", no), ("close",)],
               [("expect", CONNECT), ("send", connack(1, 0, v))]]
    with HostileBroker(scripts) as hb:
        r = run_device("dev_pre_owe.py", {**c, "PHASE": "on", "PORT": hb.port}, heap=HEAP,
                       timeout=60)
        # (this broker answers no SUBSCRIBE: one sent times out, and the link goes)
        subs = [x for k in hb.conns for x in k.of_type(SUBSCRIBE)]
        assert subs == [], (subs, r.out)
        assert r.values("PRESENT")[-1:] == [["True"]], r.out
        assert r.value("OWED") == "False", r.out


@pytest.mark.parametrize("api", ["blocking", "aio"])
def test_wake_unreachable_then_present(broker: Broker, tmp_path: Path, api: str) -> None:
    # a wake whose broker is out of reach (its TCP connect times out: no CONNECT went
    # out), then a wake that finds
    # the session kept: nothing to subscribe again, and no owed file left after either
    c = cfg(broker, tmp_path, api, 4)
    subscribed(c)
    with Blackhole() as port:
        r = run_device("dev_pre_owe.py", {**c, "PHASE": "down", "PORT": port}, heap=HEAP,
                       timeout=60)
    assert r.values("CONNFAIL"), r.out
    assert r.value("OWED") == "False", r.out
    with HostileBroker([[("expect", CONNECT), ("send", connack(1, 0, 4))]]) as hb:
        r = run_device("dev_pre_owe.py", {**c, "PHASE": "on", "PORT": hb.port}, heap=HEAP,
                       timeout=60)
        subs = [x for k in hb.conns for x in k.of_type(SUBSCRIBE)]
        assert subs == [], (subs, r.out)
        assert r.values("PRESENT")[-1:] == [["True"]], r.out
        assert r.value("OWED") == "False", r.out
