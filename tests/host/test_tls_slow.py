"""Output over TLS behind a slow link, both clients (tests/device/dev_tls_slow.py): what the
socket does not take at once waits and goes out as it drains. A TLS write the socket did
not take has its record made already: it must be made again with the same length, or the
bytes added meanwhile are counted as sent and never are (the broker then reads a stream
out of step: messages garbled, lost, QoS 1 never acknowledged). Every message arrives whole
and in order, except QoS 0 the blocking client dropped and counted in lost0."""

from __future__ import annotations

import socket
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


def test_aio_tasks_publishing_behind_a_slow_link_keep_it(broker_factory: Any) -> None:
    # 16 asyncio tasks publish 2 QoS 0 messages of 4 KB each at once over a link of 25 KB/s
    # (timeout 2 s): they wait for the socket in turn, each longer than timeout, while
    # the link keeps taking output; it is not declared dead and nothing is lost (before,
    # a publish timed its wait from its own start and ended the link)
    b = broker_factory()
    with FaultProxy(b.host, b.port, max_buffer=2048) as p, \
            Observer(b.host, b.port, "tasks/#", qos=1) as obs:
        p.throttle(25000)
        assert p._listener is not None  # a small receive buffer, as a node's broker link
        p._listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        cfg = {"HOST": b.host, "PORT": p.port, "TEST": "tasks", "PREFIX": "tasks"}
        r = run_device("dev_tls_slow.py", cfg, heap="256k", timeout=180)
        obs.wait_for(32, timeout=30)
    assert "PASS" in r.out, r.out
    assert (r.value("LOST0"), r.value("OUTAGES")) == ("0", "0"), r.out
    got = obs.payloads("tasks/q0")
    assert sorted(x.split(b" ")[0] for x in got) == sorted(b"t%d-%d" % (j, i)
                                                          for j in range(16) for i in range(2))
