"""MQTT 5 Session Expiry across a node's boots, with a real mosquitto and a store:

- a node away longer than its expiry comes back to Session Present 0: what it published
  offline goes out, its subscription is made again, nothing is given up;
- a node that changes its expiry between boots;
- disconnect() at expiry 0 (the broker drops the session at the DISCONNECT), then a boot
  with stored messages.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from harness import Observer, run_device, start_device

HEAP = "256k"


def boot(b: Any, tmp_path: Path, api: str, phase: int, **cfg: Any) -> Any:
    c = {"HOST": b.host, "PORT": b.port, "TEST": api, "IMAGE": str(tmp_path / "flash.img"),
         "CID": f"sx-{api}", "PHASE": phase, **cfg}
    return run_device("dev_session_expiry.py", c, heap=HEAP, timeout=90, workdir=tmp_path)


@pytest.mark.slow  # (coverage that passed before: behind --runslow, for make test's time)
@pytest.mark.parametrize("api", ["blocking", "aio"])
def test_away_longer_than_expiry(broker_factory: Any, tmp_path: Path, api: str) -> None:
    b = broker_factory()
    with Observer(b.host, b.port, "sx/out/#") as o:
        r = boot(b, tmp_path, api, 1, EXPIRY=1, SUB=1, N=2)
        assert r.value("PRESENT") in ("False", "0"), r.out
        time.sleep(2.5)  # the broker drops the session
        r = boot(b, tmp_path, api, 2, EXPIRY=1, N=4, ECHO=1)
        assert r.value("PRESENT") in ("False", "0"), r.out
        assert r.value("PENDING") == "0", r.out
        assert r.value("DROPPED") == "0", r.out
        assert r.value("SUBS") == f"sx/in/sx-{api}", r.out
        assert r.value("RX") == "echo-2", r.out  # the subscription made again, once
        assert r.value("STORED_EXPIRY") == "1", r.out
        o.wait_for(6, timeout=30)
        time.sleep(0.5)
    assert sorted(m.payload for m in o.messages) == [
        b"1-0", b"1-1", b"2-0", b"2-1", b"2-2", b"2-3"]


@pytest.mark.slow  # (coverage that passed before: behind --runslow, for make test's time)
@pytest.mark.parametrize("api", ["blocking", "aio"])
@pytest.mark.parametrize("first,then", [(0, 60), (60, 0), (0, 0xFFFFFFFF), (0xFFFFFFFF, 0)])
def test_expiry_changed_between_boots(broker_factory: Any, tmp_path: Path, api: str,
                                      first: int, then: int) -> None:
    b = broker_factory()
    with Observer(b.host, b.port, "sx/out/#") as o:
        r = boot(b, tmp_path, api, 1, EXPIRY=first, SUB=1)
        r = boot(b, tmp_path, api, 2, EXPIRY=then, N=3, ECHO=1)
        assert r.value("PRESENT") in (("False", "0") if first == 0 else ("True", "1")), r.out
        assert r.value("PENDING") == "0", r.out
        assert r.value("RX") == "echo-2", r.out
        assert r.value("STORED_EXPIRY") == str(then), r.out
        r = boot(b, tmp_path, api, 3, EXPIRY=then, N=1, ECHO=1, LEAVE=1)
        assert r.value("PRESENT") in (("False", "0") if then == 0 else ("True", "1")), r.out
        assert r.value("RX") == "echo-3", r.out
        o.wait_for(4, timeout=30)
        time.sleep(0.5)
    assert sorted(m.payload for m in o.messages) == [b"2-0", b"2-1", b"2-2", b"3-0"]


@pytest.mark.slow  # (coverage that passed before: behind --runslow, for make test's time)
@pytest.mark.parametrize("api", ["blocking", "aio"])
def test_disconnect_at_expiry_zero_then_stored_messages(broker_factory: Any, tmp_path: Path,
                                                        api: str) -> None:
    b = broker_factory()
    with Observer(b.host, b.port, "sx/out/#") as o:
        boot(b, tmp_path, api, 1, EXPIRY=0, SUB=1, LEAVE=1)
        r = boot(b, tmp_path, api, 2, EXPIRY=0, N=3, ECHO=1, LEAVE=1)
        assert r.value("PRESENT") in ("False", "0"), r.out
        assert r.value("PENDING") == "0", r.out
        assert r.value("DROPPED") == "0", r.out
        assert r.value("RX") == "echo-2", r.out
        o.wait_for(3, timeout=30)
        time.sleep(0.5)
    assert sorted(m.payload for m in o.messages) == [b"2-0", b"2-1", b"2-2"]


@pytest.mark.slow  # (coverage that passed before: behind --runslow, for make test's time)
@pytest.mark.parametrize("api", ["blocking", "aio"])
def test_end_session_then_stored_messages(broker_factory: Any, tmp_path: Path,
                                          api: str) -> None:
    b = broker_factory()
    with Observer(b.host, b.port, "sx/out/#") as o:
        boot(b, tmp_path, api, 1, SUB=1, N=2, END=1)
        # (no subscription is left: the echo is waited for 3 s, not the usual 30)
        r = boot(b, tmp_path, api, 2, N=3, ECHO=1, ECHO_MS=3000, LEAVE=1)
        assert r.value("PRESENT") in ("False", "0"), r.out
        assert r.value("PENDING") == "0", r.out
        assert r.value("DROPPED") == "0", r.out
        assert r.value("SUBS") == "", r.out  # ended with the session
        assert r.value("RX") == "", r.out
        o.wait_for(5, timeout=30)
        time.sleep(0.5)
    assert sorted(m.payload for m in o.messages) == [b"1-0", b"1-1", b"2-0", b"2-1", b"2-2"]


@pytest.mark.slow  # (coverage that passed before: behind --runslow, for make test's time)
@pytest.mark.parametrize("api", ["blocking", "aio"])
@pytest.mark.parametrize("expiry,away", [(60, 0.5), (1, 3.0)])
def test_broker_restarted_while_away(broker_factory: Any, tmp_path: Path, api: str,
                                     expiry: int, away: float) -> None:
    b = broker_factory(persistence=True)
    with Observer(b.host, b.port, "sx/out/#", persistent=True, client_id=f"obs-{api}") as o:
        boot(b, tmp_path, api, 1, EXPIRY=expiry, SUB=1, N=2)
        b.stop()
        time.sleep(away)
        b.start()
        r = boot(b, tmp_path, api, 2, EXPIRY=expiry, N=3, ECHO=1, LEAVE=1)
        assert r.value("PENDING") == "0", r.out
        assert r.value("DROPPED") == "0", r.out
        assert r.value("RX") == "echo-2", r.out
        o.wait_for(5, timeout=30, distinct=True)
        time.sleep(0.5)
    assert sorted({m.payload for m in o.messages}) == [b"1-0", b"1-1", b"2-0", b"2-1", b"2-2"]


def test_end_session_on_a_connection_the_broker_closed(broker_factory: Any,
                                                        tmp_path: Path) -> None:
    """disconnect(end_session=True) on MQTT 5 while the broker had closed the connection
    (it restarted, keeping its sessions) and the node had not read anything since: the
    DISCONNECT with Session Expiry 0 reached no broker, so the session is to be ended with
    a clean connect, as offline. Else the broker keeps it (its subscription too) while the
    store forgets it: the next boot hears Session Present 1 and messages on a filter the
    node no longer knows."""
    b = broker_factory(persistence=True)
    c = {"HOST": b.host, "PORT": b.port, "TEST": "stale", "IMAGE": str(tmp_path / "flash.img"),
         "CID": "sx-stale"}
    with start_device("dev_session_expiry.py", {**c, "PHASE": 1}, heap=HEAP,
                      workdir=tmp_path) as dev:
        dev.wait_for("READY", timeout=60)
        b.restart()
        (tmp_path / "go").write_text("")
        r = dev.result(timeout=60)
    assert r.value("END") == "OK", r.out
    assert r.value("SUBS") == "", r.out
    r = boot(b, tmp_path, "stale", 2, CID="sx-stale")
    assert r.value("PRESENT") in ("False", "0"), r.out
    assert r.value("SUBS") == "", r.out
    assert r.value("RX") == "", r.out


@pytest.mark.parametrize("link", [None, True])
@pytest.mark.parametrize("api", ["stale", "stale_aio"])
def test_end_session_on_a_silent_connection(rig: Any, tmp_path: Path, api: str,
                                            link: bool | None) -> None:
    """disconnect(end_session=True) on MQTT 5 over a connection that went silent (half
    open: nothing reaches the broker, nothing comes back): the broker cannot be told, so
    the error is raised and nothing is forgotten (README: "It needs the broker reachable").
    Forgotten, the broker kept the session with its subscription while the store had
    none: the next boot heard Session Present 1 and messages on a filter the node no
    longer knew."""
    b, proxy = rig
    c = {"HOST": b.host, "PORT": proxy.port, "TEST": api, "TIMEOUT": 3, "LINK": link,
         "IMAGE": str(tmp_path / "flash.img"), "CID": f"sx-{api}"}
    with start_device("dev_session_expiry.py", {**c, "PHASE": 1}, heap=HEAP,
                      workdir=tmp_path) as dev:
        dev.wait_for("READY", timeout=60)
        proxy.blackhole()
        (tmp_path / "go").write_text("")
        r = dev.result(timeout=90)
    assert r.value("END").split()[0] == "OSError", r.out
    assert r.value("SUBS") == f"sx/in/sx-{api}", r.out  # kept with the session
    proxy.forward()
    r = boot(b, tmp_path, api, 2, CID=f"sx-{api}", PORT=proxy.port)
    assert r.value("PRESENT") in ("True", "1"), r.out
    assert r.value("SUBS") == f"sx/in/sx-{api}", r.out
    assert r.value("RX") == "echo", r.out
