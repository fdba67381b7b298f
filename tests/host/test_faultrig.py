"""Tests for tools/faultrig.py: real sockets on 127.0.0.1 only."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from harness_proc import free_port

ROOT = Path(__file__).resolve().parents[2]
FAULTRIG_PATH = ROOT / "tools" / "faultrig.py"
MOSQUITTO = "/usr/sbin/mosquitto"


def _load_faultrig() -> ModuleType:
    if "faultrig" in sys.modules:
        return sys.modules["faultrig"]
    spec = importlib.util.spec_from_file_location("faultrig", FAULTRIG_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["faultrig"] = module
    spec.loader.exec_module(module)
    return module


fr = _load_faultrig()


# -- helpers ---------------------------------------------------------------------------------


class EchoServer:
    """Echoes every byte back; counts connections and what it saw."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = int(self.sock.getsockname()[1])
        self.connections = 0
        self.received = 0
        self.resets = 0
        self._stop = threading.Event()
        self._clients: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            self._clients.append(client)
            t = threading.Thread(target=self._echo, args=(client,), daemon=True)
            self._threads.append(t)
            t.start()

    def _echo(self, client: socket.socket) -> None:
        client.settimeout(0.2)
        while not self._stop.is_set():
            try:
                data = client.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                self.resets += 1
                return
            except OSError:
                return
            if not data:
                client.close()
                return
            self.received += len(data)
            try:
                client.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for t in self._threads:
            t.join(2)
        for c in self._clients:
            c.close()
        self.sock.close()


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


@pytest.fixture
def proxy(echo: EchoServer) -> Iterator[Any]:
    with fr.FaultProxy("127.0.0.1", echo.port) as p:
        yield p


@pytest.fixture
def clients() -> Iterator[Callable[..., socket.socket]]:
    """Factory of client sockets, all closed at teardown."""
    made: list[socket.socket] = []

    def connect(port: int, timeout: float = 2.0) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        made.append(sock)
        return sock

    yield connect
    for sock in made:
        sock.close()


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(65536, n - len(buf)))
        if not chunk:
            raise EOFError(f"EOF after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def echo_roundtrip(sock: socket.socket, payload: bytes) -> bytes:
    """Send in a thread while reading, so large payloads cannot deadlock."""

    def send() -> None:
        try:
            sock.sendall(payload)
        except OSError:
            pass  # the reader reports the failure

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        return recv_exact(sock, len(payload))
    finally:
        sender.join(5)


def wait_until(cond: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def events(p: Any, prefix: str) -> list[str]:
    return [e.event for e in p.timeline() if e.event.startswith(prefix)]


# -- pass ------------------------------------------------------------------------------------


def test_pass_small_and_100k_both_ways(proxy: Any, clients: Callable[..., socket.socket]) -> None:
    sock = clients(proxy.port)
    assert echo_roundtrip(sock, b"hello") == b"hello"
    payload = os.urandom(100 * 1024)
    assert echo_roundtrip(sock, payload) == payload
    stats = proxy.stats()
    assert stats["bytes_up"] == stats["bytes_down"] == len(payload) + 5
    assert stats["accepted"] == 1 and stats["active"] == 1


def test_many_short_connections(
    proxy: Any, echo: EchoServer, clients: Callable[..., socket.socket]
) -> None:
    for i in range(60):
        sock = clients(proxy.port)
        msg = f"conn {i}".encode()
        assert echo_roundtrip(sock, msg) == msg
        sock.close()
    assert wait_until(lambda: proxy.stats()["active"] == 0)
    stats = proxy.stats()
    assert stats["accepted"] == 60 and stats["closed"] == 60
    assert echo.connections == 60
    assert len(events(proxy, "connect #")) == 60


def test_half_close_is_forwarded(proxy: Any, clients: Callable[..., socket.socket]) -> None:
    sock = clients(proxy.port)
    sock.sendall(b"last words")
    sock.shutdown(socket.SHUT_WR)
    # The echo server answers, sees EOF and closes; the proxy passes both on.
    assert recv_exact(sock, 10) == b"last words"
    assert sock.recv(10) == b""
    assert wait_until(lambda: proxy.stats()["active"] == 0)


# -- reset -----------------------------------------------------------------------------------


def test_reset_aborts_both_sides_promptly(
    proxy: Any, echo: EchoServer, clients: Callable[..., socket.socket]
) -> None:
    socks = [clients(proxy.port) for _ in range(3)]
    for s in socks:
        assert echo_roundtrip(s, b"ping") == b"ping"
    assert proxy.reset() == 3
    for s in socks:
        s.settimeout(30.0)  # a reset arrives at once; a missing one raises TimeoutError
        try:
            data = s.recv(10)
        except ConnectionResetError:
            data = b""
        assert data == b""
    assert wait_until(lambda: echo.resets == 3)
    assert proxy.mode == "pass"
    # New connections are still accepted and forwarded.
    assert echo_roundtrip(clients(proxy.port), b"again") == b"again"
    assert events(proxy, "reset") == ["reset 3"]


def test_reset_from_upstream_is_passed_on(
    clients: Callable[..., socket.socket],
) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(2.0)
    try:
        with fr.FaultProxy("127.0.0.1", server.getsockname()[1]) as p:
            sock = clients(p.port)
            upstream, _ = server.accept()
            fr._abort(upstream)
            with pytest.raises(ConnectionResetError):
                sock.recv(10)
            # Depending on timing the proxy sees the RST as a failed or a broken connection.
            assert events(p, "abort #1 by upstream") or events(p, "upstream-fail #1")
    finally:
        server.close()


# -- blackhole -------------------------------------------------------------------------------


def test_blackhole_is_silent_and_new_connections_recover(
    proxy: Any, echo: EchoServer, clients: Callable[..., socket.socket]
) -> None:
    old = clients(proxy.port, timeout=0.4)
    assert echo_roundtrip(old, b"before") == b"before"
    proxy.blackhole()
    received_before = echo.received
    old.sendall(b"lost")
    with pytest.raises(TimeoutError):
        old.recv(10)
    # Still open: no error pending and writes still succeed.
    assert old.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
    old.sendall(b"still lost")
    # A connection made during the blackhole is accepted but goes nowhere.
    during = clients(proxy.port, timeout=0.3)
    during.sendall(b"nobody hears")
    with pytest.raises(TimeoutError):
        during.recv(10)
    assert echo.received == received_before
    assert echo.connections == 1
    stats = proxy.stats()
    assert stats["dropped_up"] >= len(b"lost") + len(b"still lost") + len(b"nobody hears")

    proxy.forward()
    fresh = clients(proxy.port)
    assert echo_roundtrip(fresh, b"after") == b"after"
    # A connection that went through the blackhole stays dead, but is not reset.
    old.sendall(b"x")
    with pytest.raises(TimeoutError):
        old.recv(10)
    assert old.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0


# -- refuse / down ---------------------------------------------------------------------------


def test_refuse_and_down(proxy: Any, clients: Callable[..., socket.socket]) -> None:
    existing = clients(proxy.port)
    assert echo_roundtrip(existing, b"up") == b"up"
    proxy.refuse()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=2.0).close()
    # Refuse touches only new connections.
    assert echo_roundtrip(existing, b"still up") == b"still up"

    proxy.down()
    existing.settimeout(2.0)
    with pytest.raises((ConnectionResetError, EOFError)):
        recv_exact(existing, 1)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=2.0).close()

    proxy.forward()
    assert echo_roundtrip(clients(proxy.port), b"back") == b"back"
    assert events(proxy, "mode") == ["mode pass", "mode refuse", "mode down", "mode pass"]


def test_refuse_fallback_resets_new_connections(
    proxy: Any, echo: EchoServer, clients: Callable[..., socket.socket]
) -> None:
    # Where the kernel cannot stop a listening socket in place, refuse accepts and resets.
    proxy._kernel_refuse = False
    proxy.refuse()
    with pytest.raises((ConnectionResetError, EOFError)):
        # The reset can even overtake the end of connect().
        recv_exact(clients(proxy.port), 1)
    assert wait_until(lambda: proxy.stats()["refused"] == 1)
    assert echo.connections == 0
    proxy.forward()
    assert echo_roundtrip(clients(proxy.port), b"back") == b"back"


# -- stall -----------------------------------------------------------------------------------


def test_stall_holds_then_delivers_in_order(
    proxy: Any, echo: EchoServer, clients: Callable[..., socket.socket]
) -> None:
    sock = clients(proxy.port, timeout=0.3)
    assert echo_roundtrip(sock, b"warm") == b"warm"
    proxy.stall()
    parts = [f"part-{i:03d};".encode() for i in range(50)] + [os.urandom(50_000)]
    for part in parts:
        sock.sendall(part)
    with pytest.raises(TimeoutError):
        sock.recv(10)
    assert echo.received == 4
    assert wait_until(lambda: proxy.stats()["held_up"] == sum(map(len, parts)))
    proxy.forward()
    sock.settimeout(3.0)
    assert recv_exact(sock, sum(map(len, parts))) == b"".join(parts)


# -- throttle --------------------------------------------------------------------------------


def test_throttle_limits_rate(proxy: Any, clients: Callable[..., socket.socket]) -> None:
    sock = clients(proxy.port, timeout=5.0)
    proxy.throttle(10_000)
    payload = os.urandom(20_000)
    t0 = time.monotonic()
    assert echo_roundtrip(sock, payload) == payload
    assert time.monotonic() - t0 > 1.0
    assert events(proxy, "mode throttle") == ["mode throttle 10000"]
    proxy.forward()
    assert echo_roundtrip(sock, b"fast again") == b"fast again"


def test_set_mode_validates(proxy: Any) -> None:
    with pytest.raises(ValueError):
        proxy.set_mode("flaky")
    with pytest.raises(ValueError):
        proxy.set_mode("throttle")
    with pytest.raises(ValueError):
        proxy.set_mode("pass", 100)


# -- scheduled cuts --------------------------------------------------------------------------


def test_random_cuts_timeline(
    proxy: Any, echo: EchoServer, clients: Callable[..., socket.socket]
) -> None:
    sched = proxy.schedule_random_cuts(
        seed=7, count=6, min_up=0.05, max_up=0.15, min_down=0.05, max_down=0.1
    )
    # A small reconnecting client keeps traffic going through the cuts (bounded).
    ok = 0
    deadline = time.monotonic() + 5.0
    for _ in range(400):
        if sched.done or time.monotonic() > deadline:
            break
        try:
            sock = clients(proxy.port, timeout=0.05)
            if echo_roundtrip(sock, b"tick") == b"tick":
                ok += 1
        except (OSError, EOFError):
            time.sleep(0.01)
    assert sched.join(5.0)
    cuts = events(proxy, "cut ")
    restores = events(proxy, "restore ")
    assert len(cuts) == 6 and len(restores) == 6
    assert [c.kind for c in sched.cuts] == [c.split()[-1] for c in cuts]
    assert set(c.kind for c in sched.cuts) <= {"reset", "blackhole", "refuse"}
    assert proxy.mode == "pass"
    assert ok > 0
    # The same seed replays the same kinds.
    replay = fr.CutSchedule(proxy, 7, 6, 0, 0, 0, 0)
    replay.start()
    assert replay.join(5.0)
    assert [c.kind for c in replay.cuts] == [c.kind for c in sched.cuts]
    times = [e.t for e in proxy.timeline()]
    assert times == sorted(times)
    assert "cut 1/6" in fr.format_timeline(proxy.timeline(), proxy.started_at)


def test_script_parse_and_play(proxy: Any) -> None:
    steps = fr.parse_script("pass:0.05, blackhole:0.05,reset,throttle=5000:0.05,pass")
    assert steps[2] == fr.Step("reset", None, 0.0)
    assert steps[3] == fr.Step("throttle", 5000.0, 0.05)
    assert fr.play_script(proxy, steps)
    assert events(proxy, "mode") == [
        "mode pass",
        "mode pass",
        "mode blackhole",
        "mode throttle 5000",
        "mode pass",
    ]
    assert events(proxy, "reset") == ["reset 0"]
    for bad in ("bogus:1", "pass=5:1", "throttle:1", "pass:-1"):
        with pytest.raises(ValueError):
            fr.parse_script(bad)


# -- control channel -------------------------------------------------------------------------


def test_control_channel(proxy: Any, clients: Callable[..., socket.socket]) -> None:
    quit_called = threading.Event()
    with fr.ControlServer(proxy, on_quit=quit_called.set) as ctl:
        assert fr.send_control(ctl.port, "ping") == "ok pong"
        assert fr.send_control(ctl.port, "mode blackhole") == "ok mode blackhole"
        assert proxy.mode == "blackhole"
        assert fr.send_control(ctl.port, "mode pass") == "ok mode pass"
        assert fr.send_control(ctl.port, "throttle 50000") == "ok mode throttle"
        assert proxy.rate == 50000
        assert fr.send_control(ctl.port, "mode pass") == "ok mode pass"
        sock = clients(proxy.port)
        assert echo_roundtrip(sock, b"ctl") == b"ctl"
        assert fr.send_control(ctl.port, "reset") == "ok reset 1"
        reply = fr.send_control(ctl.port, "stats")
        assert reply.startswith("ok ")
        stats = json.loads(reply[3:])
        assert stats["accepted"] == 1 and stats["resets"] == 1 and stats["bytes_up"] == 3
        timeline = json.loads(fr.send_control(ctl.port, "timeline 2")[3:])
        assert [e[1] for e in timeline] == [f"connect #1 from {sock.getsockname()[1]}", "reset 1"]
        assert fr.send_control(ctl.port, "mode nope").startswith("error")
        assert fr.send_control(ctl.port, "frobnicate").startswith("error unknown")
        # Several commands on one connection.
        with socket.create_connection(("127.0.0.1", ctl.port), timeout=2) as c:
            c.sendall(b"mark phase-2\nping\n")
            with c.makefile("rb") as f:
                assert f.readline() == b"ok\n" and f.readline() == b"ok pong\n"
        assert events(proxy, "phase-2") == ["phase-2"]
        assert fr.send_control(ctl.port, "quit") == "ok bye"
        assert quit_called.wait(5)  # called just after the reply went out


# -- command line ----------------------------------------------------------------------------


def _spawn_cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(FAULTRIG_PATH), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_cli_script(echo: EchoServer, clients: Callable[..., socket.socket]) -> None:
    proc = _spawn_cli(
        "--listen",
        "0",
        "--target",
        f"127.0.0.1:{echo.port}",
        "--script",
        "pass:0.6,blackhole:0.2,reset,pass:0.2",
        "--max-seconds",
        "10",
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("listening 127.0.0.1:")
        port = int(first.split()[1].rsplit(":", 1)[1])
        assert echo_roundtrip(clients(port), b"via cli") == b"via cli"
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "mode blackhole" in out and "reset 1" in out
    assert out.rstrip().splitlines()[-1].startswith("stats {")


def test_cli_control_quit(echo: EchoServer) -> None:
    proc = _spawn_cli("--target", f"127.0.0.1:{echo.port}", "--control", "0", "--max-seconds", "10")
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("listening ")
        control_line = proc.stdout.readline()
        assert control_line.startswith("control 127.0.0.1:")
        ctl_port = int(control_line.rsplit(":", 1)[1])
        assert fr.send_control(ctl_port, "mode stall") == "ok mode stall"
        assert fr.send_control(ctl_port, "quit") == "ok bye"
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "mode stall" in out


def test_cli_max_seconds(echo: EchoServer) -> None:
    t0 = time.monotonic()
    proc = _spawn_cli("--target", f"127.0.0.1:{echo.port}", "--max-seconds", "0.3")
    try:
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert time.monotonic() - t0 < 8
    assert "stats" in out


# -- a real broker ---------------------------------------------------------------------------


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[int]:
    if not os.path.exists(MOSQUITTO) and shutil.which("mosquitto") is None:
        pytest.skip("mosquitto not installed")
    exe = MOSQUITTO if os.path.exists(MOSQUITTO) else str(shutil.which("mosquitto"))
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    with open(tmp_path / "mosquitto.log", "w") as log:
        proc = subprocess.Popen([exe, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    try:

        def up() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return True
            except OSError:
                return False

        if not wait_until(up, 5.0):
            pytest.fail("mosquitto did not start: " + (tmp_path / "mosquitto.log").read_text())
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_mqtt_through_proxy_with_reset(mosquitto: int) -> None:
    mqtt = pytest.importorskip("paho.mqtt.client")
    with fr.FaultProxy("127.0.0.1", mosquitto) as p:
        connected = threading.Event()
        disconnected = threading.Event()
        got: list[bytes] = []
        got_event = threading.Event()

        def on_connect(client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
            client.subscribe("faultrig/#", qos=1)
            connected.set()

        def on_disconnect(client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
            disconnected.set()

        def on_message(client: Any, userdata: Any, msg: Any) -> None:
            got.append(msg.payload)
            got_event.set()

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="faultrig-test")
        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.on_message = on_message
        client.reconnect_delay_set(min_delay=1, max_delay=1)
        client.connect("127.0.0.1", p.port, keepalive=10)
        client.loop_start()
        try:
            assert connected.wait(5)
            time.sleep(0.1)  # let SUBACK arrive
            payload = os.urandom(100 * 1024)
            client.publish("faultrig/big", payload, qos=1).wait_for_publish(5)
            assert got_event.wait(5) and got == [payload]
            assert p.stats()["bytes_down"] > len(payload)

            connected.clear()
            got_event.clear()
            assert p.reset() == 1
            assert disconnected.wait(3)
            # paho reconnects on its own (loop_start) once the delay has passed.
            assert connected.wait(5)
            time.sleep(0.1)
            client.publish("faultrig/small", b"after reset", qos=1).wait_for_publish(5)
            assert got_event.wait(5) and got[-1] == b"after reset"
            assert p.stats()["accepted"] == 2
        finally:
            client.disconnect()
            client.loop_stop()
