"""Subscriptions made again after a broker lost the session (CONNACK Session Present 0),
answered by a scripted broker (tests/host/hostile.py) with refusals, codes that do not fit
and unknown packet IDs (tests/device/dev_resub_suback.py), both clients. A refusal takes
that filter out of the session (README: sent again it would be refused again); nothing
crashes, and the connection the client keeps holds the rest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness import Broker, run_device
from hostile import CONNACK, CONNECT, PUBACK, SUBACK, SUBSCRIBE, HostileBroker, connack, publish

HEAP = "256k"


def suback(codes: bytes, first: int = SUBACK) -> bytes:
    return bytes((first, 2 + len(codes))) + b"\x00\x00" + codes


OK = suback(b"\x01")
ANSWERS = {
    "refused_middle": ([OK, suback(b"\x80"), OK], ["a", "c"]),
    # a protocol error: the blocking client closes the link (the keeper tries again, and
    # this broker does the same again), the asyncio client takes the first code; the
    # subscriptions are kept either way
    "two_codes_middle": ([OK, suback(b"\x01\x01"), OK], ["a", "b", "c"]),
    "unknown_pid_first": ([bytes((SUBACK, 3, 0x7F, 0x7E, 1)), OK, OK, OK], ["a", "b", "c"]),
}


@pytest.mark.parametrize("case", sorted(ANSWERS))
@pytest.mark.parametrize("api", ["blocking", "aio"])
def test_resubscribe_answers(broker: Broker, tmp_path: Path, api: str, case: str) -> None:
    c = {"HOST": broker.host, "PORT": broker.port, "VERSION": 4, "API": api,
         "PREFIX": f"rs-{tmp_path.name}"[-20:], "IMAGE": str(tmp_path / "flash.img")}
    r = run_device("dev_resub_suback.py", {**c, "PHASE": "sub", "SUBS": "a:1,b:1,c:1"},
                   heap=HEAP, timeout=60)
    answers, left = ANSWERS[case]
    steps: list[Any] = [("expect", CONNECT), ("send", bytes((CONNACK, 2, 0, 0)))]
    for a in answers:
        if a[2:4] == b"\x00\x00":
            steps += [("expect", SUBSCRIBE), ("reply", SUBSCRIBE, a)]
        else:
            steps += [("send", a)]
    with HostileBroker([steps]) as hb:
        r = run_device("dev_resub_suback.py", {**c, "PHASE": "on", "PORT": hb.port},
                       heap=HEAP, timeout=60)
        subs = [t.rsplit("/", 1)[1] for t, q in eval(" ".join(r.values("SUBS")[-1]))]
        assert subs == left, r.out
        if case != "two_codes_middle":
            assert r.values("UPNOW")[-1] == ["True"], r.out
            assert not hb.errors, (hb.errors, r.out)


def test_callback_raising_during_resubscribe_is_no_strike(broker: Broker, tmp_path: Path) -> None:
    """The blocking callback's own OSError closes the link (README: the client cannot tell
    it from its own). A message arriving while a subscription made again awaits its SUBACK
    makes that close: it is the node's doing, no strike against the subscription (as none
    against a message in flight). Before, three such closes in a row gave b up as refused
    (subs.struck), a subscription the broker never refused."""
    c = {"HOST": broker.host, "PORT": broker.port, "VERSION": 4, "API": "blocking",
         "PREFIX": f"rc-{tmp_path.name}"[-20:], "IMAGE": str(tmp_path / "flash.img")}
    run_device("dev_resub_suback.py", {**c, "PHASE": "sub", "SUBS": "a:1,b:1"}, heap=HEAP,
               timeout=60)
    msg = publish(b"x/y", b"raise", qos=1, pid=7)
    closing = [("expect", CONNECT), ("send", connack(0)),
               ("expect", SUBSCRIBE), ("reply", SUBSCRIBE, OK),
               ("expect", SUBSCRIBE), ("send", msg), ("expect", PUBACK)]
    answering = [("expect", CONNECT), ("send", connack(0)),
                 ("expect", SUBSCRIBE), ("reply", SUBSCRIBE, OK),
                 ("expect", SUBSCRIBE), ("reply", SUBSCRIBE, OK)]
    with HostileBroker([closing] * 4 + [answering]) as hb:
        r = run_device("dev_resub_suback.py", {**c, "PHASE": "on", "PORT": hb.port,
                                               "CBRAISE": 1, "MS": 8000},
                       heap=HEAP, timeout=90)
        assert len(hb.conns) >= 5, r.out  # four closes, then the answers
        assert r.out.count("CALLBACK") >= 4, r.out
    assert "subscription refused" not in r.out, r.out
    subs = [t.rsplit("/", 1)[1] for t, q in eval(" ".join(r.values("SUBS")[-1]))]
    assert subs == ["a", "b"], r.out
    assert r.values("UPNOW")[-1] == ["True"], r.out
