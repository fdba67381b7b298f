"""Test harness: MQTT from the host side (paho-mqtt 2.x): observers and one-shot publishes."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

# --------------------------------------------------------------------------------------
# MQTT from the host side (paho-mqtt 2.x)


@dataclass(frozen=True)
class Msg:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    dup: bool
    mid: int = 0
    properties: Any = field(default=None, compare=False)


def _paho_version(protocol: int) -> mqtt.MQTTProtocolVersion:
    if protocol in (4, mqtt.MQTTv311):
        return mqtt.MQTTv311
    if protocol in (5, mqtt.MQTTv5):
        return mqtt.MQTTv5
    raise ValueError(f"protocol must be 4 (MQTT 3.1.1) or 5 (MQTT 5.0), not {protocol!r}")


def _paho_client(
    protocol: int, client_id: str, ca: Path | str | None, persistent: bool = False
) -> mqtt.Client:
    kw: dict[str, Any] = {"clean_session": False} if persistent and protocol == 4 else {}
    c = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=_paho_version(protocol), **kw
    )
    if ca is not None:
        c.tls_set(ca_certs=str(ca))
    return c


class Observer:
    """A paho client on a background thread that records every message on topics.

    Subscribes (again on every reconnect) at qos; with protocol 5 it is MQTT 5.0.
    tls_ca: a CA file to connect over TLS (then port is the TLS port)."""

    def __init__(
        self,
        host: str,
        port: int,
        topics: str | Sequence[str] = "#",
        qos: int = 2,
        protocol: int = 4,
        *,
        client_id: str = "",
        tls_ca: Path | str | None = None,
        timeout: float = 5.0,
        persistent: bool = False,
    ) -> None:
        self.topics = [topics] if isinstance(topics, str) else list(topics)
        self.qos = qos
        self.protocol = protocol
        self._msgs: list[Msg] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self._error: str | None = None
        cid = client_id or f"observer-{os.getpid()}-{id(self):x}"
        # persistent (MQTT 3.1.1): the broker queues for it while it reconnects
        self.client = _paho_client(protocol, cid, tls_ca, persistent)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        if not self._subscribed.wait(timeout):
            self.stop()
            raise AssertionError(
                f"observer could not subscribe to {self.topics} on {host}:{port}: "
                f"{self._error or 'timed out'}"
            )

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any = None
    ) -> None:
        if rc.is_failure:
            self._error = f"CONNACK {rc}"
            return
        client.subscribe([(t, self.qos) for t in self.topics])

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, rcs: Any, props: Any = None
    ) -> None:
        bad = [rc for rc in rcs if rc.is_failure]
        if bad:
            self._error = f"SUBACK {bad}"
            return
        self._subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, m: mqtt.MQTTMessage) -> None:
        msg = Msg(
            topic=m.topic,
            payload=bytes(m.payload),
            qos=m.qos,
            retain=bool(m.retain),
            dup=bool(m.dup),
            mid=m.mid,
            properties=getattr(m, "properties", None),
        )
        with self._cond:
            self._msgs.append(msg)
            self._cond.notify_all()

    def expect_resubscribe(self) -> None:
        """Before the broker goes: wait_subscribed() then waits for the next SUBACK."""
        self._subscribed.clear()

    def wait_subscribed(self, timeout: float = 30.0) -> bool:
        return self._subscribed.wait(timeout)

    @property
    def messages(self) -> list[Msg]:
        with self._cond:
            return list(self._msgs)

    def payloads(self, topic: str | None = None) -> list[bytes]:
        return [m.payload for m in self.messages if topic is None or m.topic == topic]

    def clear(self) -> None:
        with self._cond:
            self._msgs.clear()

    def wait_for(self, count: int, timeout: float = 10.0, distinct: bool = False) -> list[Msg]:
        """Wait until at least count messages arrived (distinct: count a topic and payload
        that came twice, a QoS 1 resend, once); return all of them."""
        __tracebackhide__ = True
        deadline = time.monotonic() + timeout

        def have() -> int:
            return len({(m.topic, m.payload) for m in self._msgs}) if distinct else len(self._msgs)

        with self._cond:
            while have() < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    got = "\n".join(repr(m) for m in self._msgs[-20:])
                    raise AssertionError(
                        f"observer got {len(self._msgs)} of {count} messages in {timeout} s; "
                        f"last ones:\n{got}"
                    )
                self._cond.wait(left)
            return list(self._msgs)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> Observer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Publisher:
    """A paho client connected to host:port (waits for CONNACK); publish() waits until the
    broker has each message (for qos > 0, acknowledged). A context manager."""

    def __init__(
        self,
        host: str,
        port: int,
        protocol: int = 4,
        *,
        tls_ca: Path | str | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.timeout = timeout
        self.c = c = _paho_client(protocol, f"pub-{os.getpid()}-{time.monotonic_ns():x}", tls_ca)
        connected = threading.Event()
        refused: list[str] = []

        def on_connect(client: mqtt.Client, userdata: Any, flags: Any, rc: Any,
                       props: Any) -> None:
            if rc.is_failure:
                refused.append(str(rc))
            connected.set()

        c.on_connect = on_connect
        c.connect(host, port, keepalive=30)
        c.loop_start()
        try:
            if not connected.wait(timeout):
                raise AssertionError(f"publish: no CONNACK from {host}:{port} in {timeout} s")
            if refused:
                raise AssertionError(f"publish: {host}:{port} refused the connection: {refused[0]}")
        except AssertionError:
            self.close()
            raise

    def publish(self, topic: str, payload: bytes | str, qos: int = 0,
                retain: bool = False) -> None:
        info = self.c.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(self.timeout)
        if not info.is_published():
            raise AssertionError(f"publish to {topic!r} not completed in {self.timeout} s")

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def publish(
    host: str,
    port: int,
    topic: str,
    payload: bytes | str,
    qos: int = 0,
    retain: bool = False,
    protocol: int = 4,
    *,
    tls_ca: Path | str | None = None,
    timeout: float = 5.0,
) -> None:
    """Publish one message from paho and wait until the broker has it (for qos > 0, acked)."""
    with Publisher(host, port, protocol, tls_ca=tls_ca, timeout=timeout) as p:
        p.publish(topic, payload, qos, retain)
