"""QoS 1 and 2 over TLS through a link that goes half-open or trickles, both clients, a
store on littlefs and a keeper (tests/device/dev_tls_outage.py): the reconnects stall in
the TLS handshake until the link passes again; every message then arrives, each QoS 2
message heard once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness import run_device
from harness_certs import Certs
from oneway import OneWay

pytestmark = pytest.mark.slow  # (coverage, 45 s of a worker: behind --runslow)


@pytest.mark.parametrize("api", ["blocking", "aio"])
@pytest.mark.parametrize("fault", ["stop", "drip"])
def test_tls_outage_loses_nothing(broker_factory: Any, certs: Certs, tmp_path: Path,
                                  api: str, fault: str) -> None:
    b = broker_factory(tls=True)
    with OneWay(b.tls_port) as ow:
        cfg = {"HOST": "127.0.0.1", "PORT": ow.port, "CTL": ow.control_port,
               "CA_DER": certs.ca_der, "API": api, "FAULT": fault, "PREFIX": f"to{api}{fault}",
               "IMAGE": str(tmp_path / "flash.img"), "BLOCKS": 128, "DRIP": 4}
        r = run_device("dev_tls_outage.py", cfg, heap="256k", timeout=150)
    heard = dict(x.split(":") for x in r.value("HEARD").split())
    assert sorted(int(k) for k in heard) == list(range(30)), r.out
    assert all(heard[str(n)] == "1" for n in range(1, 30, 2)), r.out  # QoS 2 once
    assert r.values("DONE")[0][0] == "0", r.out
