"""TLS connects that meet a peer misbehaving in the handshake, both clients
(tests/device/dev_tls_handshake_bounds.py): a listener that accepts TCP and never answers
the ClientHello fails the connect with OSError(ETIMEDOUT) within timeout (the keeper backs
off and tries again, the asyncio loop runs on meanwhile); one that closes, resets or
answers something that is not TLS fails it with OSError; a handshake trickled a few bytes
at a time is made."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from harness import run_device
from harness_certs import Certs
from oneway import OneWay

# (coverage that passed before: behind --runslow, for make test's time)
pytestmark = pytest.mark.slow


@pytest.fixture
def peer(request: pytest.FixtureRequest) -> Iterator[int]:
    # how (the test's parameter): "silent" (accepts, reads, answers nothing), "fin" (reads
    # the ClientHello and closes), "rst" (likewise with a reset), "garbage" (answers text)
    how = request.param
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(8)
    ls.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve(c: socket.socket) -> None:
        c.settimeout(5)
        try:
            c.recv(4096)
            if how == "garbage":
                c.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            if how == "rst":
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        c.close()

    def run() -> None:
        while not stop.is_set():
            try:
                c, _ = ls.accept()
            except OSError:
                continue
            if how == "silent":
                held.append(c)
            else:
                threading.Thread(target=serve, args=(c,), daemon=True).start()

    th = threading.Thread(target=run, daemon=True)
    th.start()
    yield ls.getsockname()[1]
    stop.set()
    th.join(5)
    for c in held:
        c.close()
    ls.close()


def _failed(r: Any, test: str, how: str) -> None:
    want = "OSError:OSError(110," if how == "silent" else "OSError:OSError("
    if test == "plain":
        what, closed = r.values("PLAIN")[0]
        assert what.startswith(want) and closed == "True", r.out
    elif test == "keeper":
        up, tries, last = r.values("KEEPER")[0]
        assert up == "False" and int(tries) >= 2 and last.startswith(want), r.out
    else:
        what, ran = r.values("AIO")[0]
        assert what.startswith(want) and ran == "True", r.out


@pytest.mark.parametrize("peer", ["silent", "fin", "rst", "garbage"], indirect=True)
@pytest.mark.parametrize("test", ["plain", "keeper", "aio"])
def test_tls_peer_that_fails_the_handshake(peer: int, certs: Certs, test: str,
                                           request: pytest.FixtureRequest) -> None:
    how = request.node.callspec.params["peer"]
    cfg = {"HOST": "127.0.0.1", "PORT": peer, "CA_DER": certs.ca_der, "TEST": test}
    r = run_device("dev_tls_handshake_bounds.py", cfg, heap="256k", timeout=60)
    _failed(r, test, how)


@pytest.mark.parametrize("test", ["plain", "keeper", "aio"])
def test_trickled_tls_handshake_is_made(broker_factory: Any, certs: Certs, test: str) -> None:
    b = broker_factory(tls=True)
    with OneWay(b.tls_port) as ow:
        ow.mode["down"] = ("drip", 16, 0.01)
        ow.mode["up"] = ("drip", 16, 0.01)
        cfg = {"HOST": "127.0.0.1", "PORT": ow.port, "CA_DER": certs.ca_der, "TEST": test,
               "STOP_CONNECTED": 1, "RUN_MS": 30000, "TMO": 20}
        r = run_device("dev_tls_handshake_bounds.py", cfg, heap="256k", timeout=90)
    if test == "plain":
        assert r.values("PLAIN")[0] == ["connected", "True"], r.out
    elif test == "keeper":
        assert r.values("KEEPER")[0][:2] == ["True", "0"], r.out
    else:
        assert r.values("AIO")[0] == ["connected", "True"], r.out
