"""A certificate the client refuses (another CA, another host name, expired): the failed
connect closes its TCP socket (tests/device/dev_tls_refused_closes.py), and with the right
broker at the same address afterwards the keeper, which went on trying after each refusal,
delivers the QoS 1 and 2 messages queued in the store meanwhile, QoS 2 once, both clients
(tests/device/dev_tls_refused_then_right.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from harness import run_device, start_device
from harness_broker import Broker
from harness_certs import _SIGN, Certs, _openssl
from oneway import OneWay


def _server_cert(tmp: Path, certs: Certs, why: str) -> Certs:
    # a server certificate the client refuses, for why
    cnf = certs.dir / ("wrong_ca" if why == "ca" else "ca") / "openssl.cnf"
    ca_cert, ca_key = (certs.wrong_ca_cert, certs.wrong_ca_key) if why == "ca" else \
        (certs.ca_cert, certs.ca_key)
    key, csr, crt = tmp / "s.key", tmp / "s.csr", tmp / "s.crt"
    cn = "other.example" if why == "name" else "localhost"
    ext = tmp / "ext.cnf"
    san = "DNS:other.example" if why == "name" else "DNS:localhost,IP:127.0.0.1"
    ext.write_text(cnf.read_text().replace("subjectAltName = DNS:localhost,IP:127.0.0.1",
                                           f"subjectAltName = {san}"))
    dates = {"start": "20000101000000Z",
             "end": "20010101000000Z" if why == "expired" else "20491231235959Z"}
    _openssl("genrsa -out {key} 2048", cwd=tmp, key=key)
    _openssl("req -new -config {cnf} -key {key} -subj {subj} -out {out}", cwd=tmp, cnf=ext,
             key=key, subj=f"/CN={cn}", out=csr)
    _openssl(_SIGN + " -cert {ca}", cwd=tmp, cnf=ext, key=ca_key, csr=csr, out=crt,
             ext="v3_server", ca=ca_cert, **dates)
    return dataclasses.replace(certs, server_cert=crt, server_key=key)


@pytest.mark.parametrize("api", ["blocking", "aio"])
@pytest.mark.parametrize("why", ["ca", "name", "expired"])
def test_refused_certificate_then_the_right_broker(broker_factory: Any, certs: Certs,
                                                   tmp_path: Path, api: str, why: str) -> None:
    good = broker_factory(tls=True)
    bad = Broker(tmp_path / "bad", tls=_server_cert(tmp_path, certs, why))
    try:
        with OneWay(bad.tls_port) as ow:
            cfg = {"HOST": "127.0.0.1", "PORT": ow.port, "CA_DER": certs.ca_der, "API": api,
                   "PREFIX": f"right{api}{why}", "IMAGE": str(tmp_path / "flash.img"),
                   "BLOCKS": 128}
            dev = start_device("dev_tls_refused_then_right.py", cfg, heap="256k")
            try:
                dev.wait_for("REFUSED", timeout=60)
                ow.target = ("127.0.0.1", good.tls_port)
                (dev.workdir / "GO").write_text("")
                rc = dev.wait(120)
            finally:
                dev.kill()
            out = dev.output()
    finally:
        bad.stop()
    assert rc == 0 and "PASS" in out, out
    refused = [ln.split() for ln in out.splitlines() if ln.startswith("REFUSED")][0]
    assert int(refused[1]) >= 3 and refused[2] == "False" and refused[3].startswith("OSError"), out
    done = [ln.split() for ln in out.splitlines() if ln.startswith("DONE")][0]
    assert done[1:] == ["True", "0"], out
    heard = dict(x.split(":") for x in
                 [ln for ln in out.splitlines() if ln.startswith("HEARD")][0].split()[1:])
    assert sorted(int(k) for k in heard) == list(range(6)), out
    assert all(heard[str(n)] == "1" for n in (1, 3, 5)), out  # QoS 2 once


@pytest.mark.parametrize("why", ["ca", "name", "expired", "plain"])
def test_failed_tls_handshake_closes_the_socket(broker_factory: Any, certs: Certs,
                                                tmp_path: Path, why: str) -> None:
    # "plain": the broker's port without TLS (the broker closes on the ClientHello)
    if why == "plain":
        b = broker_factory()
        port = b.port
    else:
        b = Broker(tmp_path / "bad", tls=_server_cert(tmp_path, certs, why))
        port = b.tls_port
    try:
        cfg = {"HOST": "127.0.0.1", "PORT": port, "CA_DER": certs.ca_der}
        r = run_device("dev_tls_refused_closes.py", cfg, heap="1m", timeout=90)
    finally:
        if why != "plain":
            b.stop()
    for front in ("blocking", "keeper", "aio"):
        left, what = r.values(f"LEFT {front}")[0]
        assert "OSError" in what, r.out
        assert left == "0", r.out  # no socket left open
