"""RabbitMQ's MQTT plugin has no QoS 2: it answers a QoS 2 PUBLISH with PUBACK. The client
completes such a message on that PUBACK (at-least-once for it) and counts it. One RabbitMQ
node (about 10 s to start here) serves the module. Debian's rabbitmq-server, which
`make interop-deps` installs with apt; where it is not installed these skip with that
reason."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import brokers
from brokers.probe import connect_code, qos2_answer, v5_connect_answer
from harness import Observer, publish, run_device


@pytest.fixture(scope="module")
def rabbit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    why = brokers.missing("rabbitmq")
    if why:
        pytest.skip(why)
    b = brokers.make("rabbitmq", tmp_path_factory.mktemp("rabbitmq"))
    yield b
    b.close()


@pytest.mark.parametrize("store", [False, True], ids=["nostore", "store"])
def test_qos2_answered_with_puback_completes(rabbit: Any, tmp_path: Path, store: bool) -> None:
    b = rabbit
    p = f"io/rabbit{int(store)}"
    assert qos2_answer(b, f"{p}/raw") == 0x40  # the broker, to any client: PUBACK
    publish(b.host, b.port, f"{p}/paho", b"x", qos=2)  # paho takes it as completion
    c = {"HOST": b.host, "PORT": b.port, "VERSION": 4, "TEST": "qos2_downgrade",
         "PREFIX": p, "CID": f"io-rabbit-{int(store)}", "TIMEOUT": 3,
         "IMAGE": str(tmp_path / "flash.img") if store else ""}
    with Observer(b.host, b.port, f"{p}/dg", qos=1) as obs:
        r = run_device("dev_interop.py", c, heap="256k", timeout=60)
        obs.wait_for(4)
    assert r.values("OSERROR") == []
    assert r.value("PENDING") == "0"
    assert r.value("DOWNGRADED") == "3"
    assert sorted(obs.payloads()) == [b"after", b"d0", b"d1", b"d2"]


def test_mqtt5_connect_gets_no_answer(rabbit: Any, tmp_path: Path) -> None:
    """RabbitMQ 3.10 speaks MQTT 3.1.1 only and closes an MQTT 5 connection without a
    CONNACK: the node's connect raises OSError(104) at once (not 110 at its timeout);
    paho and a raw CONNECT get no CONNACK either."""
    b = rabbit
    c = {"HOST": b.host, "PORT": b.port, "VERSION": 5, "TEST": "v5_refused",
         "PREFIX": "io/rabbit5", "CID": "io-rabbit-v5", "TIMEOUT": 5, "IMAGE": ""}
    r = run_device("dev_interop.py", c, heap="256k", timeout=60)
    assert connect_code(b, 5) == -1
    assert v5_connect_answer(b, None) is None
    assert r.values("OSERROR") == [["104"]], r.out


@pytest.mark.slow  # two RabbitMQ boots, 20 to 40 s: with --runslow
def test_start_outlives_its_port_taken_during_boot(tmp_path: Path) -> None:
    """Another process takes the MQTT port in the seconds RabbitMQ boots (another test's
    server on a port picked like ours): the node fails its boot and exits. The start sees
    that, not the other server accepting on the port, and boots again on fresh ports."""
    why = brokers.missing("rabbitmq")
    if why:
        pytest.skip(why)
    b = brokers.RabbitMQ(tmp_path / "rabbitmq", start=False)
    taken = b.port
    with socket.socket() as other:
        other.bind(("127.0.0.1", taken))
        other.listen(4)  # accepts, never answers
        try:
            b.start()
            assert b.port != taken
            assert connect_code(b, 4) == 0
        finally:
            b.close()
