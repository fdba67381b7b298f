"""The asyncio client booting offline with the default connect() (clean_session=True)
and a keeper, as the mqtt_as table of the README has it (tests/device/dev_aio_clean_offline.py):
what the application subscribes and publishes after that connect() returned None belongs
to the new session: once the keeper has made the clean start, the subscription takes
commands and the queued message reaches the broker (before: the clean start gave both up,
the message counted in dropped, the subscription gone from the session)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from faultrig import FaultProxy
from harness import Broker, Observer, publish, start_device


@pytest.mark.parametrize("store", [0, 1])
def test_aio_clean_connect_offline_keeps_what_came_after(rig: tuple[Broker, FaultProxy],
                                                         tmp_path: Path, store: int) -> None:
    b, p = rig
    pre = f"aco-{tmp_path.name}"
    cfg = {"HOST": b.host, "PORT": p.port, "VERSION": 4, "STORE": store, "PREFIX": pre,
           "IMAGE": str(tmp_path / "flash.img"), "CID": f"aco-{tmp_path.name}"[-23:]}
    p.refuse()
    with Observer(b.host, b.port, f"{pre}/r", qos=1) as obs:
        dev = start_device("dev_aio_clean_offline.py", cfg, heap="256k")
        try:
            dev.wait_for("OFFLINE", timeout=30)
            p.forward()
            dev.wait_for("UP", timeout=60)
            # connected is not subscribed yet: the SUBACK of the subscription made on
            # connect may still be on its way, and a command published before the broker
            # had it is not for this session. Sent again until one arrives (the device
            # takes the first and stops)
            deadline = time.monotonic() + 60
            while "GOT" not in dev.output() and time.monotonic() < deadline:
                publish(b.host, b.port, f"{pre}/cmd", "hello", qos=1)
                time.sleep(1.0)
            r = dev.result(timeout=60)
        finally:
            dev.close()
        assert r.passed, r.out
        assert [v[0] for v in r.values("GOT")] == ["hello"], r.out
        assert [m.payload for m in obs.wait_for(1)] == [b"offline"], r.out
