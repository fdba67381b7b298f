"""Test harness: a test CA and server certificates made with openssl."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

# --------------------------------------------------------------------------------------
# Certificates


@dataclass(frozen=True)
class Certs:
    """A test CA, a server certificate it signed (CN=localhost, SAN localhost and 127.0.0.1)
    and an unrelated CA that must not verify the server. The *_der fields are the CA
    certificates in DER, the only form MicroPython's load_verify_locations(cadata=) takes."""

    dir: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    wrong_ca_cert: Path
    wrong_ca_key: Path
    ca_der: bytes
    wrong_ca_der: bytes


_OPENSSL_CNF = """\
[ca]
default_ca = ca_default

[ca_default]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir
serial = $dir/serial
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
email_in_dn = no

[policy_any]
commonName = supplied

[req]
distinguished_name = dn
prompt = no

[dn]
CN = unused

[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[v3_server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
"""


def _openssl(template: str, cwd: Path, **fields: object) -> None:
    """Run openssl with template split on spaces first, then each word formatted with fields
    (so paths and subjects may contain spaces)."""
    openssl = shutil.which("openssl")
    if not openssl:
        raise RuntimeError("openssl not found: run `make deps` or apt-get install openssl")
    args = [word.format(**fields) for word in template.split()]
    r = subprocess.run(
        [openssl, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{r.stdout}{r.stderr}")


_REQ = "req -new -config {cnf} -key {key} -subj {subj} -out {out}"
_SIGN = (
    "ca -batch -notext -config {cnf} -keyfile {key} -in {csr} -out {out} -extensions {ext}"
    " -startdate {start} -enddate {end}"
)
# Valid from 2000 so that boards whose clock was never set still accept the chain.
_DATES = {"start": "20000101000000Z", "end": "20491231235959Z"}


def _ca_dir(base: Path, name: str) -> Path:
    d = base / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "index.txt").write_text("")
    (d / "serial").write_text(os.urandom(8).hex().upper() + "\n")
    (d / "openssl.cnf").write_text(_OPENSSL_CNF.format(dir=d))
    return d


def _make_ca(base: Path, name: str, cn: str) -> tuple[Path, Path]:
    d = _ca_dir(base, name)
    cnf = d / "openssl.cnf"
    key, csr, crt = d / "ca.key", d / "ca.csr", d / "ca.crt"
    _openssl("genrsa -out {key} 2048", cwd=d, key=key)
    _openssl(_REQ, cwd=d, cnf=cnf, key=key, subj=f"/CN={cn}", out=csr)
    _openssl(_SIGN + " -selfsign", cwd=d, cnf=cnf, key=key, csr=csr, out=crt, ext="v3_ca",
             **_DATES)  # fmt: skip
    return crt, key


def make_certs(base: Path) -> Certs:
    """Generate the test PKI under base with the openssl command line tool."""
    base.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = _make_ca(base, "ca", "mqttsession test CA")
    wrong_cert, wrong_key = _make_ca(base, "wrong_ca", "mqttsession unrelated CA")
    cnf = base / "ca" / "openssl.cnf"
    key, csr, crt = base / "server.key", base / "server.csr", base / "server.crt"
    _openssl("genrsa -out {key} 2048", cwd=base, key=key)
    _openssl(_REQ, cwd=base, cnf=cnf, key=key, subj="/CN=localhost", out=csr)
    _openssl(_SIGN + " -cert {ca}", cwd=base, cnf=cnf, key=ca_key, csr=csr, out=crt,
             ext="v3_server", ca=ca_cert, **_DATES)  # fmt: skip
    return Certs(
        dir=base,
        ca_cert=ca_cert,
        ca_key=ca_key,
        server_cert=crt,
        server_key=key,
        wrong_ca_cert=wrong_cert,
        wrong_ca_key=wrong_key,
        ca_der=ssl.PEM_cert_to_DER_cert(ca_cert.read_text()),
        wrong_ca_der=ssl.PEM_cert_to_DER_cert(wrong_cert.read_text()),
    )
