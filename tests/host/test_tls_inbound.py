"""Messages near max_packet heard over TLS, both clients (tests/device/dev_tls_inbound.py):
every one is handled as it arrives, also the part of a TLS record the TLS layer holds after
a read took less than the record."""

from __future__ import annotations

from typing import Any

import paho.mqtt.publish as publish
import pytest

from harness import start_device
from harness_certs import Certs


@pytest.mark.parametrize("api", ["blocking", "aio"])
@pytest.mark.parametrize("size", [300, 900])
def test_tls_messages_near_max_packet_all_heard(broker_factory: Any, certs: Certs, api: str,
                                                size: int) -> None:
    b = broker_factory(tls=True)
    prefix = f"in{api}{size}"
    cfg = {"HOST": "127.0.0.1", "PORT": b.tls_port, "CA_DER": certs.ca_der, "API": api,
           "PREFIX": prefix, "N": 20}
    dev = start_device("dev_tls_inbound.py", cfg, heap="256k")
    try:
        dev.wait_for("READY", timeout=60)
        msgs = [{"topic": f"{prefix}/big", "payload": b"%03d" % i + b"x" * size, "qos": 1}
                for i in range(20)]
        publish.multiple(msgs, hostname="127.0.0.1", port=b.port)
        dev.wait(90)
    finally:
        dev.kill()
    out = dev.output()
    assert [ln for ln in out.splitlines() if ln.startswith("HEARD")] == ["HEARD 20"], out
