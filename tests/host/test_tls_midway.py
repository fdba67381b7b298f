"""disconnect() and ping() on the blocking client while its keeper is in the middle of a TLS
connect (tests/device/dev_tls_midway.py). Both wrote onto the half-made socket, where
MicroPython runs the handshake: a certificate the client refuses escaped them as a raw
ValueError, and disconnect() left the socket open. disconnect() closes the attempt now,
and ping() steps the connect (within the budget) and raises OSError(ENOTCONN) while it is
not made; the refusal is a link failure, as the README says of every refused certificate."""

from __future__ import annotations

from typing import Any

import pytest

from harness import run_device
from harness_certs import Certs


@pytest.mark.parametrize("wrong", [1, 0])
def test_calls_during_a_keepers_tls_connect(broker_factory: Any, certs: Certs,
                                            wrong: int) -> None:
    b = broker_factory(tls=True)
    cfg = {"HOST": "127.0.0.1", "PORT": b.tls_port, "WRONG": wrong,
           "CA_DER": certs.wrong_ca_der if wrong else certs.ca_der}
    r = run_device("dev_tls_midway.py", cfg, heap="256k", timeout=120)
    for call in ("disconnect", "ping"):
        _cs, res, closed, last = r.values(f"MID {call}")[0]
        assert res == "returned" or res.startswith("OSError"), (call, r.out)
        if call == "disconnect":
            assert closed == "True", r.out  # no socket left open
        if wrong and call == "ping":
            assert last.startswith("OSError"), r.out  # the refusal: a link failure
    if not wrong:
        assert r.values("AFTER")[0] == ["True", "0"], r.out
