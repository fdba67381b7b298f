"""Output over TLS behind a slow link, both clients (tests/device/dev_tls_slow.py): what the
socket does not take at once waits and goes out as it drains. A TLS write the socket did
not take has its record made already: it must be made again with the same length, or the
bytes added meanwhile are counted as sent and never are (the broker then reads a stream
out of step: messages garbled, lost, QoS 1 never acknowledged). Every message arrives whole
and in order, except QoS 0 the blocking client dropped and counted in lost0."""

from __future__ import annotations

from typing import Any

import pytest

from faultrig import FaultProxy
from harness import Observer, run_device


@pytest.mark.parametrize("front", ["blocking", "aio"])
def test_tls_output_behind_a_slow_link_arrives_whole(broker_factory: Any, certs: Any,
                                                    front: str) -> None:
    b = broker_factory(tls=True)
    prefix = f"tlsslow{front}"
    # 20 KB/s, and little read ahead: the node's socket fills and stays full a while
    with FaultProxy(b.host, b.tls_port, max_buffer=2048) as p, \
            Observer(b.host, b.port, f"{prefix}/#", qos=1) as obs:
        p.throttle(20000)
        cfg = {"HOST": b.host, "PORT": p.port, "CA_DER": certs.ca_der, "FRONT": front,
               "PREFIX": prefix}
        r = run_device("dev_tls_slow.py", cfg, heap="256k", timeout=180)
        obs.wait_for(20 + 20 - int(r.value("LOST0")), timeout=30, distinct=True)
    assert "PASS" in r.out, r.out
    assert r.value("OUTAGES") == "0", r.out
    want = [b"m-%03d " % i + b"v" * 2000 for i in range(20)]
    q1 = obs.payloads(f"{prefix}/q1")
    q0 = obs.payloads(f"{prefix}/q0")
    assert q1 == want, [x[:8] for x in q1]  # whole, in order, once (no reconnect)
    assert len(q0) == 20 - int(r.value("LOST0")), (len(q0), r.value("LOST0"))
    assert all(x in want for x in q0) and q0 == sorted(q0), [x[:8] for x in q0]
