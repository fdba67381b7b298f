"""Broker behaviour seen by clients other than ours: paho-mqtt and raw MQTT 3.1.1 packets.

The interop tests run these beside the node to show that a shortfall is the broker's.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from harness import Observer, publish


def _paho(version: int, cid: str, clean: bool) -> mqtt.Client:
    if version == 5:
        return mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv5)
    return mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv311,
                       clean_session=clean)


def _connect(c: mqtt.Client, b: Any, version: int, clean: bool, timeout: float) -> Any:
    """Connects and waits for CONNACK; returns (reason code, flags) or None."""
    got: list[Any] = []
    ev = threading.Event()

    def on_connect(client: mqtt.Client, ud: Any, flags: Any, rc: Any, props: Any) -> None:
        got.append((rc, flags))
        ev.set()

    c.on_connect = on_connect
    kw: dict[str, Any] = {}
    if version == 5:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        kw = {"clean_start": clean, "properties": props}
    c.connect(b.host, b.port, keepalive=30, **kw)
    c.loop_start()
    ev.wait(timeout)
    return got[0] if got else None


def offline_queue(b: Any, version: int, topic: str, timeout: float = 5.0,
                  linger: float = 1.5, away: Callable[[str], None] | None = None,
                  ) -> tuple[bool, list[bytes]]:
    """paho subscribes at QoS 1 in a persistent session, goes away (away(client ID) runs
    then), two messages are published, paho comes back: (Session Present, payloads it
    then received)."""
    cid = f"paho-oq-{os.getpid()}-{time.monotonic_ns():x}"
    c = _paho(version, cid, clean=False)
    subscribed = threading.Event()
    c.on_subscribe = lambda *a: subscribed.set()
    if _connect(c, b, version, False, timeout) is None:
        raise AssertionError(f"paho: no CONNACK from {b!r}")
    c.subscribe(topic, 1)
    if not subscribed.wait(timeout):
        raise AssertionError(f"paho: no SUBACK from {b!r}")
    c.disconnect()
    c.loop_stop()
    if away is not None:
        away(cid)
    for i in range(2):
        publish(b.host, b.port, topic, f"away{i}", qos=1, protocol=version)
    got: list[bytes] = []
    c2 = _paho(version, cid, clean=False)
    c2.on_message = lambda cl, ud, m: got.append(bytes(m.payload))
    ack = _connect(c2, b, version, False, timeout)
    time.sleep(linger)
    c2.disconnect()
    c2.loop_stop()
    if ack is None:
        raise AssertionError(f"paho: no CONNACK on reconnect to {b!r}")
    return bool(ack[1].session_present), got


def connect_code(b: Any, version: int, timeout: float = 5.0) -> int:
    """The CONNACK code paho gets (0 accepted), or -1 when it got no CONNACK it could read."""
    c = _paho(version, f"paho-cc-{os.getpid()}-{time.monotonic_ns():x}", clean=True)
    try:
        ack = _connect(c, b, version, True, timeout)
    finally:
        c.disconnect()
        c.loop_stop()
    return -1 if ack is None else int(ack[0].value)


# -- raw MQTT 3.1.1, for what no client library lets one do (withhold a PUBREL)


def _str(s: str) -> bytes:
    e = s.encode()
    return struct.pack("!H", len(e)) + e


def _packet(first: int, body: bytes) -> bytes:
    n, rl = len(body), bytearray()
    while True:
        n, d = n // 128, n % 128
        rl.append(d | (0x80 if n else 0))
        if not n:
            return bytes([first]) + bytes(rl) + body


def _read(s: socket.socket) -> tuple[int, bytes]:
    def exact(n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            buf += chunk
        return buf

    first = exact(1)[0]
    n = shift = 0
    while True:
        d = exact(1)[0]
        n |= (d & 0x7F) << shift
        shift += 7
        if not d & 0x80:
            return first, exact(n)


def _raw_connect(b: Any, cid: str) -> tuple[socket.socket, int]:
    s = socket.create_connection((b.host, b.port), timeout=5)
    s.sendall(_packet(0x10, _str("MQTT") + bytes([4, 0x00]) + struct.pack("!H", 30) + _str(cid)))
    first, body = _read(s)
    if first != 0x20 or body[1] != 0:
        raise AssertionError(f"raw CONNECT refused: {first:#x} {body!r}")
    return s, body[0] & 1


def qos2_state_after_reconnect(b: Any, topic: str, resend_id: int) -> tuple[int, int]:
    """A raw 3.1.1 client in a persistent session sends a QoS 2 PUBLISH (ID 7), gets PUBREC,
    and drops the link before PUBREL. Back again it sends the message once more with
    packet ID resend_id and completes it. Returns (Session Present of the second CONNACK,
    how many times a subscriber got the message)."""
    cid = f"raw-q2-{os.getpid()}-{time.monotonic_ns():x}"
    payload = b"once"

    def pub(pid: int, dup: bool) -> bytes:
        return _packet(0x34 | (8 if dup else 0), _str(topic) + struct.pack("!H", pid) + payload)

    with Observer(b.host, b.port, topic, qos=2) as obs:
        s, _ = _raw_connect(b, cid)
        s.sendall(pub(7, False))
        first, _ = _read(s)
        if first != 0x50:
            raise AssertionError(f"expected PUBREC, got {first:#x}")
        s.close()
        time.sleep(0.3)
        s, present = _raw_connect(b, cid)
        s.sendall(pub(resend_id, resend_id == 7))
        first, _ = _read(s)
        if first != 0x50:
            raise AssertionError(f"expected PUBREC, got {first:#x}")
        s.sendall(_packet(0x62, struct.pack("!H", resend_id)))
        first, _ = _read(s)
        s.sendall(b"\xe0\x00")
        s.close()
        time.sleep(0.8)
        return present, len(obs.payloads(topic))


def pubrel_twice(b: Any, topic: str, wait: float = 2.0) -> tuple[bool, bool]:
    """A raw 3.1.1 client completes a QoS 2 PUBLISH, then sends the same PUBREL again (as a
    client does after losing the PUBCOMP). Returns (first PUBREL answered, second answered)."""
    s, _ = _raw_connect(b, f"raw-rel-{os.getpid()}-{time.monotonic_ns():x}")
    answered = []
    try:
        s.sendall(_packet(0x34, _str(topic) + struct.pack("!H", 9) + b"x"))
        if _read(s)[0] != 0x50:
            raise AssertionError("expected PUBREC")
        for _ in range(2):
            s.sendall(_packet(0x62, struct.pack("!H", 9)))
            s.settimeout(wait)
            try:
                answered.append(_read(s)[0] == 0x70)
            except TimeoutError:
                answered.append(False)
        s.sendall(b"\xe0\x00")
    finally:
        s.close()
    return answered[0], answered[1]


def qos2_answer(b: Any, topic: str) -> int:
    """The packet type a broker answers a raw QoS 2 PUBLISH with (0x50 PUBREC per spec)."""
    s, _ = _raw_connect(b, f"raw-q2a-{os.getpid()}-{time.monotonic_ns():x}")
    try:
        s.sendall(_packet(0x34, _str(topic) + struct.pack("!H", 5) + b"x"))
        return _read(s)[0] & 0xF0
    finally:
        s.close()


def v5_connect_answer(b: Any, session_expiry: int | None, wait: float = 2.0) -> bytes | None:
    """What a broker answers to a raw MQTT 5 CONNECT, with or without a Session Expiry
    Interval property: the bytes it sent before closing or going quiet for wait seconds
    (None: nothing at all)."""
    props = b"" if session_expiry is None else b"\x11" + struct.pack("!I", session_expiry)
    body = (_str("MQTT") + bytes([5, 0x02]) + struct.pack("!H", 30) + bytes([len(props)])
            + props + _str(f"raw-v5-{os.getpid()}"))
    s = socket.create_connection((b.host, b.port), timeout=wait)
    got = b""
    try:
        s.sendall(_packet(0x10, body))
        while True:
            chunk = s.recv(256)
            if not chunk:
                break
            got += chunk
    except (TimeoutError, ConnectionError):
        pass
    finally:
        s.close()
    return got or None


def unsolicited_retained(b: Any, topic: str, linger: float = 1.0) -> list[bytes]:
    """A retained message is set and a paho subscriber takes it and leaves; then a new paho
    client connects and subscribes to nothing. Returns the payloads it got anyway."""
    publish(b.host, b.port, topic, b"kept", qos=1, retain=True)
    with Observer(b.host, b.port, topic, qos=1) as obs:
        obs.wait_for(1)
    got: list[bytes] = []
    c = _paho(4, f"paho-by-{os.getpid()}-{time.monotonic_ns():x}", clean=True)
    c.on_message = lambda cl, ud, m: got.append(bytes(m.payload))
    try:
        if _connect(c, b, 4, True, 5.0) is None:
            raise AssertionError(f"paho: no CONNACK from {b!r}")
        time.sleep(linger)
    finally:
        c.disconnect()
        c.loop_stop()
        publish(b.host, b.port, topic, b"", qos=1, retain=True)  # clear it again
    return got
