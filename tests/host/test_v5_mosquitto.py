"""MQTT 5 against a real mosquitto with its limits set:

- a broker's Maximum Packet Size (mosquitto `max_packet_size`) that a stored
  subscription's SUBSCRIBE passes (made at a broker without that limit): mosquitto closes
  the connection on such a packet ("disconnected due to oversize packet"), so sent again
  at every connect it would keep the node from ever staying connected. It is refused
  like a subscription the broker does not take (0x95), dropped from the session, and the
  other subscriptions are made; online, `subscribe`/`unsubscribe` of such a filter raise
  `MQTTException(0x95)` and nothing is sent (the connection stays up);
- a fresh store meeting a session mosquitto kept for its client ID ([MQTT-3.2.2-4]): the
  clean start the client makes keeps what the node published offline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness import Observer, run_device

HEAP = "256k"
LONG = "ok/" + "x" * 80  # a SUBSCRIBE of 90 bytes
MORE = "ok/" + "y" * 80


@pytest.mark.parametrize("api", ["blocking", "aio"])
def test_subscription_larger_than_maximum_packet_size(broker_factory: Any, tmp_path: Path,
                                                       api: str) -> None:
    b = broker_factory()
    c = {"HOST": b.host, "PORT": b.port, "TEST": api, "IMAGE": str(tmp_path / "flash.img"),
         "SUBS": f"ok/a 1;{LONG} 1;ok/b 2", "CID": f"mp-{api}"}
    run_device("dev_v5_mosq.py", {**c, "PHASE": 1}, heap=HEAP, timeout=60,
               workdir=tmp_path)
    # the broker comes back with a Maximum Packet Size, and without the session
    b.config_path.write_text(b.config_path.read_text() + "max_packet_size 60\n")
    b.restart()
    r = run_device("dev_v5_mosq.py", {**c, "PHASE": 2, "LINK": True, "MORE": MORE},
                   heap=HEAP, timeout=90, workdir=tmp_path)
    assert r.values("UP")[0] == ["True"], r.out
    assert r.value("OUTAGES") == "0", r.out
    assert r.value("SUBS") == "ok/a,ok/b", r.out
    assert r.values("SUB")[-1] == ["MQTTException", str(0x95)], r.out
    assert r.values("UNSUB")[-1] == ["MQTTException", str(0x95)], r.out
    assert r.values("UP")[-1] == ["True"], r.out
    if api == "aio":
        assert r.values("ERROR") == [["MQTTException", str(0x95)]], r.out
    assert "oversize" not in b.log(), b.log_tail()


@pytest.mark.parametrize("api", ["fresh", "fresh_aio"])
def test_fresh_store_keeps_what_it_published_offline(broker_factory: Any, tmp_path: Path,
                                                      api: str) -> None:
    """A node with a fresh store (new, or its flash erased) whose client ID mosquitto still
    holds a session for: Session Present 1 without local state makes the client close and
    start clean ([MQTT-3.2.2-4]). The messages it published offline before that first
    connect were never sent anywhere and the application never asked for a clean start:
    they are delivered, not given up (they were, counted in `dropped`)."""
    b = broker_factory()
    c = {"HOST": b.host, "PORT": b.port, "N": 4, "CID": f"fr-{api}", "LINK": True}
    run_device("dev_v5_mosq.py", {**c, "TEST": "fresh", "PHASE": 0,
                                  "IMAGE": str(tmp_path / "old.img")}, heap=HEAP, timeout=60)
    with Observer(b.host, b.port, "ok/#") as o:
        r = run_device("dev_v5_mosq.py", {**c, "TEST": api, "PHASE": 1,
                                          "IMAGE": str(tmp_path / "new.img")},
                       heap=HEAP, timeout=60)
        assert r.value("QUEUED") == "4", r.out
        assert r.value("PENDING") == "0", r.out
        assert r.value("DROPPED") == "0", r.out
        got = o.wait_for(4, timeout=30, distinct=True)
    assert sorted(m.payload for m in got) == [b"0", b"1", b"2", b"3"]
