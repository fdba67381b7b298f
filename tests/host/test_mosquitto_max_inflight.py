"""mosquitto's `max_inflight_messages` against a node's window of QoS 1/2 messages.

MQTT 5: mosquitto announces it as Receive Maximum and the node keeps its window within
it: every message arrives once, for both clients. MQTT 3.1.1 has no way to announce it:
mosquitto 2.0 answers a QoS 2 PUBLISH past its quota with a PUBREC (its reason code 0x97
cannot be sent in 3.1.1), takes the PUBREL and drops the message. paho does the same,
so the broker, not the client, loses it: with 3.1.1 the window must stay within the
broker's max_inflight_messages for QoS 2 (README, Brokers)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from harness import Observer, _paho_client, run_device

HEAP = "256k"
N = 6


def settle(o: Observer, wait: float = 10) -> None:
    # every message the broker delivers arrives within wait (the publisher has had all its
    # acknowledgements by then); fewer than N is the result, not a timeout
    deadline = time.monotonic() + wait
    while len(o.messages) < N and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)


def run(b: Any, api: str, version: int, qos: int, window: int) -> tuple[list[bytes], Any]:
    with Observer(b.host, b.port, "t/#", qos=2) as o:
        r = run_device("dev_mosquitto_max_inflight.py",
                       {"HOST": b.host, "PORT": b.port, "TEST": api, "VERSION": version,
                        "QOS": qos, "N": N, "WINDOW": window, "CID": f"mi-{api}-{version}"},
                       heap=HEAP, timeout=90)
        settle(o)
        return sorted(m.payload for m in o.messages), r


@pytest.mark.parametrize("api", ["blocking", "aio"])
@pytest.mark.parametrize("qos", [1, 2])
@pytest.mark.parametrize("inflight", [1, 2])
def test_mqtt5_window_kept_within_max_inflight(broker_factory: Any, api: str, qos: int,
                                               inflight: int) -> None:
    b = broker_factory(extra=[f"max_inflight_messages {inflight}"])
    got, r = run(b, api, 5, qos, 8)
    assert got == [b"%d" % i for i in range(N)], (got, r.out, b.log_tail())
    assert "rc151" not in b.log(), b.log_tail()


@pytest.mark.parametrize("api", ["blocking", "aio"])
@pytest.mark.parametrize("inflight", [1, 2])
def test_mqtt311_qos2_window_within_max_inflight(broker_factory: Any, api: str,
                                                 inflight: int) -> None:
    b = broker_factory(extra=[f"max_inflight_messages {inflight}"])
    got, r = run(b, api, 4, 2, inflight)
    assert got == [b"%d" % i for i in range(N)], (got, r.out, b.log_tail())


@pytest.mark.parametrize("api", ["blocking", "aio"])
def test_mqtt311_qos1_window_above_max_inflight(broker_factory: Any, api: str) -> None:
    b = broker_factory(extra=["max_inflight_messages 1"])
    got, r = run(b, api, 4, 1, 8)
    assert got == [b"%d" % i for i in range(N)], (got, r.out, b.log_tail())


@pytest.mark.slow  # (20 s waiting to show what mosquitto never delivers: behind --runslow)
def test_mqtt311_qos2_past_max_inflight_dropped_by_mosquitto(broker_factory: Any) -> None:
    """The shortfall, with the node and with paho: QoS 2 messages past mosquitto's quota
    are PUBREC'd (rc151 in its log), released and never delivered."""
    b = broker_factory(extra=["max_inflight_messages 1"])
    got, r = run(b, "blocking", 4, 2, 8)
    assert 1 <= len(got) < N and "rc151" in b.log(), (got, r.out, b.log_tail())
    assert "DROPPED 0" in r.out, r.out  # the node counts them delivered: it cannot know
    with Observer(b.host, b.port, "p/#", qos=2) as o:
        c = _paho_client(4, "paho-mi", None)
        c.max_inflight_messages_set(8)
        done = threading.Event()
        n = [0]

        def on_publish(*_: Any) -> None:
            n[0] += 1
            if n[0] == N:
                done.set()

        c.on_publish = on_publish
        c.connect(b.host, b.port)
        c.loop_start()
        try:
            for i in range(N):
                c.publish("p/m", b"%d" % i, qos=2)
            assert done.wait(30), n
        finally:
            c.disconnect()
            c.loop_stop()
        settle(o)
        assert 1 <= len(o.messages) < N, o.messages
