"""The client core on the unix port against a real mosquitto, for MQTT 3.1.1 and 5.0."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path
from typing import Any

import pytest

from harness import Broker, Certs, Observer, publish, run_device, start_device

VERSIONS = [4, 5]
# the test script itself is compiled on the device: larger than the library's own needs
HEAP = "256k"


def cfg(broker: Broker, test: str, version: int, **kw: Any) -> dict[str, Any]:
    return {
        "HOST": broker.host,
        "PORT": broker.port,
        "VERSION": version,
        "TEST": test,
        "PREFIX": f"{test}{version}",
        **kw,
    }


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    "test", ["roundtrip", "window", "retained", "overlap", "bad_input", "pids", "empty_id"]
)
def test_scenario(broker: Broker, test: str, version: int) -> None:
    run_device("dev_core.py", cfg(broker, test, version), heap=HEAP)


@pytest.mark.parametrize("version", VERSIONS)
def test_node_publishes_reach_paho(broker: Broker, version: int) -> None:
    # an independent client sees each QoS exactly once with the right flags
    with Observer(broker.host, broker.port, f"roundtrip{version}/rt/#", qos=2) as obs:
        run_device("dev_core.py", cfg(broker, "roundtrip", version), heap=HEAP)
        msgs = obs.wait_for(5)
    got = sorted((m.topic, m.payload, m.qos) for m in msgs)
    t = f"roundtrip{version}/rt/"
    assert got == [
        (t + "b", b"ba", 1),
        (t + "b", b"mv", 2),
        (t + "q0", b"m0", 0),
        (t + "q1", b"m1", 1),
        (t + "q2", b"m2", 2),
    ]


@pytest.mark.parametrize("version", VERSIONS)
def test_sizes_at_length_boundaries(broker: Broker, version: int) -> None:
    run_device("dev_core.py", cfg(broker, "sizes", version), heap="1m", timeout=90)


@pytest.mark.parametrize("version", VERSIONS)
def test_last_will_on_abrupt_end(broker: Broker, version: int) -> None:
    with Observer(broker.host, broker.port, f"will{version}/will", qos=1) as obs:
        dev = start_device("dev_core.py", cfg(broker, "will", version), heap=HEAP)
        try:
            dev.wait_for("READY", timeout=20)
            assert obs.messages == []
            dev.kill()
            msgs = obs.wait_for(1, timeout=10)
        finally:
            dev.close()
    assert msgs[0].payload == b"node died"


@pytest.mark.parametrize("version", VERSIONS)
def test_keepalive_pings(broker: Broker, version: int) -> None:
    run_device("dev_core.py", cfg(broker, "keepalive", version), heap=HEAP)


@pytest.mark.parametrize("version", VERSIONS)
def test_broker_keepalive_timeout(broker: Broker, version: int) -> None:
    r = run_device("dev_core.py", cfg(broker, "broker_timeout", version), heap=HEAP)
    assert r.values("CLOSED")


@pytest.mark.parametrize("version", VERSIONS)
def test_offline_persistent_session(broker: Broker, version: int) -> None:
    c = cfg(broker, "persist_setup", version, CID=f"persist-{version}")
    run_device("dev_core.py", c, heap=HEAP)
    p = c["PREFIX"]
    for i in range(3):
        publish(broker.host, broker.port, f"{p}/ps/1", f"one{i}", qos=1, protocol=version)
        publish(broker.host, broker.port, f"{p}/ps/2", f"two{i}", qos=2, protocol=version)
    r = run_device("dev_core.py", {**c, "TEST": "persist_resume", "COUNT": 6}, heap=HEAP)
    got = sorted(tuple(v) for v in r.values("GOT"))
    want = sorted(
        [(f"{p}/ps/1", f"one{i}") for i in range(3)] + [(f"{p}/ps/2", f"two{i}") for i in range(3)]
    )
    assert got == want


@pytest.mark.parametrize("version", VERSIONS)
def test_oversized_incoming_refused(broker: Broker, version: int) -> None:
    c = cfg(broker, "oversized", version)
    dev = start_device("dev_core.py", c, heap=HEAP)
    try:
        dev.wait_for("READY", timeout=20)
        p = c["PREFIX"]
        publish(broker.host, broker.port, f"{p}/big", b"B" * 1000, qos=1, protocol=version)
        publish(broker.host, broker.port, f"{p}/big", b"small", qos=1, protocol=version)
        r = dev.result(timeout=30)
    finally:
        dev.close()
    if version == 4:
        assert r.values("REFUSED") == [["149"]]
    else:
        # MQTT 5: our Maximum Packet Size keeps the broker from sending it at all
        assert r.values("REFUSED") == []


@pytest.mark.parametrize("version", VERSIONS)
def test_oversized_long_topic_acknowledged_once(broker: Broker, version: int) -> None:
    # topics longer than max_packet (64): the packet ID lies beyond the bytes the client
    # holds; unacknowledged, the persistent session would get them again at each reconnect
    c = cfg(broker, "oversized_long", version, LONG=84)
    dev = start_device("dev_core.py", c, heap=HEAP)
    try:
        dev.wait_for("READY", timeout=20)
        p = c["PREFIX"]
        t = f"{p}/{'L' * 84}"
        publish(broker.host, broker.port, t, b"1" * 100, qos=1, protocol=version)
        publish(broker.host, broker.port, t, b"2" * 100, qos=2, protocol=version)
        publish(broker.host, broker.port, f"{p}/mark", b"after", qos=1, protocol=version)
        r = dev.result(timeout=60)
    finally:
        dev.close()
    if version == 4:
        assert r.values("REFUSED") == [["149"], ["149"]]
    else:
        # MQTT 5: our Maximum Packet Size keeps the broker from sending them (the scripted
        # broker's pub_oversized_long_* cases cover the client's side)
        assert r.values("REFUSED") == []


@pytest.mark.parametrize("version", VERSIONS)
def test_callback_that_raises_never_stops_the_flow(broker: Broker, version: int) -> None:
    # 31 messages to a callback that raises on 30: more than mosquitto's 20 in flight
    run_device("dev_core.py", cfg(broker, "cb_raises", version), heap=HEAP)


def test_receive_maximum_and_packet_size(broker_factory: Any) -> None:
    b = broker_factory(extra=["max_inflight_messages 2", "max_packet_size 1000"])
    run_device("dev_core.py", cfg(b, "limits5", 5, RECEIVE_MAX=2, MAX_PACKET=1000), heap=HEAP)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("window", [1, 4])
def test_steady_state_allocates_nothing(broker: Broker, version: int, window: int) -> None:
    run_device("dev_core.py", cfg(broker, "noalloc", version, WINDOW=window), heap=HEAP)


@pytest.mark.parametrize("version", VERSIONS)
def test_packets_in_pieces_allocate_nothing(broker: Broker, version: int) -> None:
    # every packet arrives a few bytes at a time: the partial-packet path allocates nothing
    run_device("dev_core.py", cfg(broker, "split", version), heap=HEAP)


def _tls_cfg(broker: Broker, version: int, der: bytes, name: str, fail: bool) -> dict[str, Any]:
    return cfg(
        broker,
        "tls",
        version,
        TLS_PORT=broker.tls_port,
        CA_DER=der,
        SERVER_NAME=name,
        EXPECT_FAIL=fail,
    )


@pytest.fixture(scope="module")
def tls_broker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, certs: Certs
) -> Any:
    b = Broker(tmp_path_factory.mktemp("tls"), tls=certs)
    yield b
    b.stop()


@pytest.mark.parametrize("version", VERSIONS)
def test_tls_verified(tls_broker: Broker, certs: Certs, version: int) -> None:
    run_device(
        "dev_core.py", _tls_cfg(tls_broker, version, certs.ca_der, "127.0.0.1", False), heap=HEAP
    )


def test_tls_wrong_ca_refused(tls_broker: Broker, certs: Certs) -> None:
    r = run_device(
        "dev_core.py", _tls_cfg(tls_broker, 4, certs.wrong_ca_der, "127.0.0.1", True), heap=HEAP
    )
    assert r.values("TLS_REFUSED")


def test_tls_wrong_host_name_refused(tmp_path: Path, certs: Certs) -> None:
    # a server certificate for another name, signed by the trusted CA
    key, csr, crt = tmp_path / "o.key", tmp_path / "o.csr", tmp_path / "o.crt"
    ext = tmp_path / "ext.cnf"
    ext.write_text("subjectAltName=DNS:other.example\n")
    run = ["openssl"]
    subprocess.run(
        [
            *run,
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-subj",
            "/CN=other.example",
            "-out",
            str(csr),
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *run,
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(certs.ca_cert),
            "-CAkey",
            str(certs.ca_key),
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            str(ext),
            "-out",
            str(crt),
        ],
        check=True,
        capture_output=True,
    )
    b = Broker(tmp_path / "b", tls=dataclasses.replace(certs, server_cert=crt, server_key=key))
    try:
        r = run_device("dev_core.py", _tls_cfg(b, 4, certs.ca_der, "127.0.0.1", True), heap=HEAP)
    finally:
        b.stop()
    assert r.values("TLS_REFUSED")
