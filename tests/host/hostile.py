"""A scriptable hostile MQTT broker on loopback, for tests of what the client does when the
broker misbehaves: sends too slowly, too much, garbage, or nothing at all.

Each accepted connection runs one script: a list of steps, plain data.

    ("send", data)               write bytes at once
    ("trickle", data, interval)  write one byte, then wait interval seconds, per byte
    ("expect", packet_type)      read the client's packets until one of this type (high
                                 nibble, e.g. CONNECT) arrives; a miss is recorded in errors
    ("reply", packet_type, data) write data with the packet ID of the last received packet of
                                 packet_type spliced in at offset 2 (e.g. a SUBACK)
    ("sleep", seconds)           do nothing for a while (nothing read, nothing written)
    ("close",)                   close the connection

Connection k runs scripts[k], the last script for any later connection. After its last step
a connection stays open and keeps recording what the client sends until the client closes
or the broker stops. Everything the client sends is recorded per connection as
(first byte, body) pairs in `conns[k].packets`.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

CONNECT = 0x10
CONNACK = 0x20
PUBLISH = 0x30
PUBACK = 0x40
PUBREC = 0x50
PUBREL = 0x60
PUBCOMP = 0x70
SUBSCRIBE = 0x80
SUBACK = 0x90
UNSUBSCRIBE = 0xA0
UNSUBACK = 0xB0
PINGREQ = 0xC0
PINGRESP = 0xD0
DISCONNECT = 0xE0

Step = tuple[Any, ...]
Script = Sequence[Step]

EXPECT_TIMEOUT = 15.0  # how long an "expect" step waits for the client


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + varint(len(body)) + body


def connack(present: int = 0, code: int = 0, version: int = 4, props: bytes = b"") -> bytes:
    body = bytes([present, code])
    if version == 5:
        body += varint(len(props)) + props
    return packet(CONNACK, body)


def publish(
    topic: bytes, payload: bytes, qos: int = 0, pid: int = 0, version: int = 4, flags: int = 0
) -> bytes:
    body = len(topic).to_bytes(2, "big") + topic
    if qos:
        body += pid.to_bytes(2, "big")
    if version == 5:
        body += b"\x00"
    return packet(PUBLISH | qos << 1 | flags, body + payload)


def ack(first: int, pid: int) -> bytes:
    return bytes([first, 2]) + pid.to_bytes(2, "big")


@dataclass
class Conn:
    index: int
    packets: list[tuple[int, bytes]] = field(default_factory=list)
    closed_by_client: bool = False

    def of_type(self, ptype: int) -> list[bytes]:
        """Bodies of the packets of this type (high nibble) the client sent."""
        return [b for f, b in self.packets if f & 0xF0 == ptype]

    def pids(self, ptype: int) -> list[int]:
        return [int.from_bytes(b[:2], "big") for b in self.of_type(ptype)]


class _Reader:
    """Assembles the client's packets from a socket with a receive timeout."""

    def __init__(self, sock: socket.socket, conn: Conn) -> None:
        self.sock = sock
        self.conn = conn
        self.buf = bytearray()

    def _take(self) -> tuple[int, bytes] | None:
        b = self.buf
        if len(b) < 2:
            return None
        n = shift = 0
        i = 1
        while True:
            if i >= len(b) or i > 4:
                return None
            n |= (b[i] & 0x7F) << shift
            shift += 7
            i += 1
            if not b[i - 1] & 0x80:
                break
        if len(b) < i + n:
            return None
        p = (b[0], bytes(b[i : i + n]))
        del b[: i + n]
        self.conn.packets.append(p)
        if p[0] == DISCONNECT:
            # the client ends the connection: closed once the script is done, as brokers
            # close on DISCONNECT (the client waits for that close)
            self.conn.closed_by_client = True
        return p

    def next(self, deadline: float) -> tuple[int, bytes] | None:
        """The next whole packet, or None at the deadline or when the client closed."""
        while True:
            p = self._take()
            if p is not None:
                return p
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(min(left, 0.2))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                self.conn.closed_by_client = True
                return None
            if not data:
                self.conn.closed_by_client = True
                return None
            self.buf += data


class SerialBroker:
    """A broker with state across connections (a session), for tests that script it in
    Python: listens on a free 127.0.0.1 port and serves one connection at a time, in
    order, with `_conn(sock)` (each subclass's own), until close()."""

    def __init__(self) -> None:
        self.conns: list[Conn] = []
        self._stop = threading.Event()
        self._ls = socket.create_server(("127.0.0.1", 0))
        self._ls.settimeout(0.1)
        self.port = int(self._ls.getsockname()[1])
        self._t = threading.Thread(target=self._serve, daemon=True)
        self._t.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                s, _ = self._ls.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with s:
                self._conn(s)

    def _conn(self, s: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._stop.set()
        self._ls.close()
        self._t.join(5)


class HostileBroker:
    """Listens on a free 127.0.0.1 port; each connection runs its script in a thread."""

    def __init__(self, scripts: Sequence[Script], host: str = "127.0.0.1") -> None:
        if not scripts:
            raise ValueError("at least one script")
        self.scripts = list(scripts)
        self.host = host
        self.conns: list[Conn] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lsock = socket.create_server((host, 0))
        self._lsock.settimeout(0.1)
        self.port = int(self._lsock.getsockname()[1])
        self._socks: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                s, _ = self._lsock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn = Conn(len(self.conns))
            self.conns.append(conn)
            self._socks.append(s)
            script = self.scripts[min(conn.index, len(self.scripts) - 1)]
            t = threading.Thread(target=self._serve, args=(s, conn, script), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, s: socket.socket, conn: Conn, script: Script) -> None:
        r = _Reader(s, conn)
        try:
            for step in script:
                if self._stop.is_set() or not self._step(s, r, conn, step):
                    return
            while not self._stop.is_set() and not conn.closed_by_client:
                r.next(time.monotonic() + 0.2)  # keep recording until either side ends
        except OSError as e:
            self.errors.append(f"connection {conn.index}: {e!r}")
        finally:
            s.close()

    def _step(self, s: socket.socket, r: _Reader, conn: Conn, step: Step) -> bool:
        kind = step[0]
        if kind == "send":
            s.sendall(step[1])
        elif kind == "trickle":
            for i, b in enumerate(step[1]):
                if i and self._stop.wait(step[2]):
                    return False
                s.sendall(bytes([b]))
        elif kind == "expect":
            deadline = time.monotonic() + EXPECT_TIMEOUT
            while True:
                p = r.next(deadline)
                if p is None:
                    self.errors.append(f"connection {conn.index}: no packet 0x{step[1]:02x}")
                    return False
                if p[0] & 0xF0 == step[1]:
                    break
        elif kind == "reply":
            pids = conn.pids(step[1])
            if not pids:
                self.errors.append(f"connection {conn.index}: nothing to reply to")
                return False
            data = bytearray(step[2])
            data[2:4] = pids[-1].to_bytes(2, "big")
            s.sendall(data)
        elif kind == "sleep":
            if self._stop.wait(step[1]):
                return False
        elif kind == "close":
            return False
        else:
            raise ValueError(f"unknown step {step!r}")
        return True

    def close(self) -> None:
        self._stop.set()
        self._lsock.close()
        self._accepter.join(2)
        for s in self._socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self._threads:
            t.join(2)

    def __enter__(self) -> HostileBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
