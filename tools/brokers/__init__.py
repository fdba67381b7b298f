"""Brokers for the interop tests and the fleet benchmark, each on a free loopback port.

mosquitto comes from tests/host/harness.py (in memory or with persistence); aedes runs on
node from the npm packages pinned in tools/brokers/package.json (`make interop-deps`
installs them into tools/brokers/node_modules, and where the system's node is older than 20
also Node.js 20 from npm into tools/brokers/node20); amqtt is the PyPI broker pinned in
requirements.txt. All expose what the tests use of harness.Broker: host, port, start(),
stop(), kill(), restart(), close(), running, pid, log(), log_tail().

`python tools/brokers KIND` starts one in the foreground and prints its port.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "host"))

from harness import HOST, Broker, free_port, wait_port  # noqa: E402

AEDES_SCRIPT = HERE / "aedes_server.mjs"
NODE_MODULES = HERE / "node_modules"
NODE20 = HERE / "node20" / "node_modules" / ".bin" / "node"


class BrokerLike(Protocol):
    host: str
    port: int

    def start(self, timeout: float = ...) -> None: ...
    def stop(self, timeout: float = ...) -> None: ...
    def kill(self) -> None: ...
    def restart(self, timeout: float = ...) -> None: ...
    def close(self) -> None: ...
    def log(self) -> str: ...
    def log_tail(self, lines: int = ...) -> str: ...


@dataclass(frozen=True)
class Kind:
    """What a broker kind offers, as measured on this machine (see docs: interop)."""

    name: str
    versions: tuple[int, ...]  # MQTT protocol levels it accepts: 4 (3.1.1), 5 (5.0)
    keeps_sessions_across_restart: bool
    delivers_offline_queue: bool  # QoS 1/2 published while a persistent session is away
    session_present_honest: bool  # SP=1 whenever it still holds the session's state
    grants_subscription_qos: bool = False  # delivers at the subscription's QoS, not the
    # lower of it and the message's ([MQTT-3.8.4-6])
    answers_repeated_pubrel: bool = True  # PUBCOMP for a PUBREL it already completed
    retained_only_to_subscribers: bool = True  # never to a client that did not subscribe
    max_qos: int = 2  # highest QoS it takes and delivers (1: a PUBACK answers QoS 2)
    slow: bool = False  # takes seconds to start: its rows in the matrix need --runslow
    optional: bool = False  # installed only where make may use apt: skipped when missing


KINDS: dict[str, Kind] = {
    "mosquitto": Kind("mosquitto", (4, 5), False, True, True),
    "mosquitto-persist": Kind("mosquitto-persist", (4, 5), True, True, True),
    "aedes": Kind("aedes", (4,), False, True, False),
    "amqtt": Kind("amqtt", (4,), False, True, True, grants_subscription_qos=True,
                  answers_repeated_pubrel=False, retained_only_to_subscribers=False),
    "rabbitmq": Kind("rabbitmq", (4,), True, True, True, max_qos=1, slow=True,
                     optional=True),
}
RABBITMQ = KINDS["rabbitmq"]


class _Process:
    """A broker process started from a command line, listening on 127.0.0.1:port."""

    host = HOST
    label = "broker"

    def __init__(self, workdir: Path | str | None = None, *, start: bool = True) -> None:
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix=f"mqs-{self.label}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log_path = self.workdir / f"{self.label}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._closed = False
        self.prepare()
        if start:
            try:
                self.start()
            except BaseException:
                self.close()
                raise

    def prepare(self) -> None:
        """Writes config files into workdir before the first start."""

    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str] | None:
        return None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 30.0) -> None:
        if self.running:
            return
        if self._closed:
            raise RuntimeError(f"{self.label} was closed")
        with open(self.log_path, "ab") as log:
            log.write(f"--- start {time.strftime('%H:%M:%S')}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=self.env(),
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not wait_port(HOST, self.port, timeout=0.1):
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"{self.label} exited with {self._proc.returncode}:\n{self.log_tail()}"
                )
            if time.monotonic() >= deadline:
                self.kill()
                raise RuntimeError(f"{self.label} not listening on {self.port}:\n{self.log_tail()}")

    def stop(self, timeout: float = 3.0) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # its whole group: node, erlang's children
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        proc = self._proc
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def restart(self, timeout: float = 30.0) -> None:
        self.stop()
        self.start(timeout)

    def close(self) -> None:
        self.stop()
        self._closed = True
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> _Process:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(Exception):
                proc.kill()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 80) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def __repr__(self) -> str:
        return f"<{self.label} {HOST}:{self.port} pid={self.pid} running={self.running}>"


def node_version(node: str) -> str:
    """`node --version` of this node program ("" when it does not run)."""
    try:
        return subprocess.run([node, "--version"], capture_output=True, text=True,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def node_major(version: str) -> int:
    head = version.lstrip("v").split(".")[0]
    return int(head) if head.isdigit() else 0


def aedes_node() -> tuple[str | None, str]:
    """The node program aedes runs on (None when there is none new enough), and why not.
    The system's node when it is 20 or newer, else the Node.js 20 that make interop-deps
    installs from npm into tools/brokers/node20 (Debian bookworm's own nodejs is 18)."""
    system = shutil.which("node")
    v = node_version(system) if system else ""
    if node_major(v) >= 20:
        return system, ""
    if NODE20.is_file() and node_major(node_version(str(NODE20))) >= 20:
        return str(NODE20), ""
    if system is None:
        return None, "node is not installed (make interop-deps installs nodejs and npm)"
    return None, (f"aedes 1.2 needs Node.js 20 or newer; node here is {v or '?'} and "
                  f"{NODE20} is missing (make interop-deps installs it)")


def aedes_missing() -> str | None:
    """Why aedes cannot start here (None when it can)."""
    node, why = aedes_node()
    if node is None:
        return why
    if not (NODE_MODULES / "aedes" / "package.json").is_file():
        return f"aedes is not installed in {NODE_MODULES} (run make interop-deps)"
    return None


class Aedes(_Process):
    """aedes 1.2 on node, in memory (its default persistence): MQTT 3.1.1 only."""

    label = "aedes"

    def command(self) -> list[str]:
        why = aedes_missing()
        if why:
            raise RuntimeError(why)
        return [str(aedes_node()[0]), str(AEDES_SCRIPT), str(self.port)]


def amqtt_missing() -> str | None:
    try:
        import amqtt  # noqa: F401
    except ImportError:
        return "amqtt is not installed (it is pinned in requirements.txt: make venv)"
    return None


class Amqtt(_Process):
    """amqtt (PyPI) in memory: MQTT 3.1.1 only. Clients are accepted without credentials
    but not as anonymous ones, whose sessions amqtt forgets (amqtt_open_auth.py)."""

    label = "amqtt"

    def __init__(self, workdir: Path | str | None = None, *, anonymous: bool = False,
                 start: bool = True) -> None:
        self.anonymous = anonymous  # amqtt's own AnonymousAuthPlugin (allow_anonymous)
        super().__init__(workdir, start=start)

    def env(self) -> dict[str, str]:
        path = os.environ.get("PYTHONPATH")
        return {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{path}" if path else str(HERE)}

    def prepare(self) -> None:
        self.config_path = self.workdir / "amqtt.yaml"
        self.config_path.write_text(
            "listeners:\n"
            "  default:\n"
            "    type: tcp\n"
            f"    bind: {HOST}:{self.port}\n"
            "plugins:\n"
            "  amqtt.plugins.logging_amqtt.EventLoggerPlugin:\n"
            "  amqtt.plugins.logging_amqtt.PacketLoggerPlugin:\n"
            + ("  amqtt.plugins.authentication.AnonymousAuthPlugin:\n"
               "    allow_anonymous: true\n" if self.anonymous
               else "  amqtt_open_auth.OpenAuth:\n")  # anonymous sessions do not persist
        )

    def command(self) -> list[str]:
        why = amqtt_missing()
        if why:
            raise RuntimeError(why)
        return [sys.executable, "-c", "from amqtt.scripts.broker_script import main; main()",
                "-c", str(self.config_path), "-d"]


RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")


def rabbitmq_missing() -> str | None:
    if not RABBITMQ_SERVER.is_file():
        return "rabbitmq-server is not installed (apt-get install -y rabbitmq-server)"
    return None


class RabbitMQ(_Process):
    """RabbitMQ 3.10 with its MQTT plugin (3.1.1), its own node name, ports and files.
    Starts in about 10 s here. Ready means its own log says the node started and a raw
    CONNECT gets a CONNACK: its MQTT listener opens before the rest of its boot, which can
    still fail (a port of its own taken meanwhile by another process) and close it again."""

    label = "rabbitmq"
    tries = 3  # first starts, each on fresh ports: the ports sit unbound for seconds

    def prepare(self) -> None:
        self.dist_port = free_port()
        self.epmd_port = free_port()  # its own Erlang port mapper, stopped in close()
        self.started = False
        (self.workdir / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")
        (self.workdir / "rabbitmq.conf").write_text(
            "listeners.tcp = none\n"  # no AMQP listener: one port fewer to lose
            f"mqtt.listeners.tcp.default = {HOST}:{self.port}\n"
            "mqtt.allow_anonymous = true\n"
            "loopback_users = none\n"
        )

    def env(self) -> dict[str, str]:
        w = str(self.workdir)
        return {
            **os.environ,
            "HOME": w,
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": HOST,
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_BASE": w,
            "RABBITMQ_MNESIA_BASE": f"{w}/mnesia",
            "RABBITMQ_LOG_BASE": f"{w}/log",
            "RABBITMQ_CONFIG_FILE": f"{w}/rabbitmq.conf",
            "RABBITMQ_ENABLED_PLUGINS_FILE": f"{w}/enabled_plugins",
            "RABBITMQ_PID_FILE": f"{w}/rabbitmq.pid",
            "ERL_EPMD_PORT": str(self.epmd_port),
        }

    @property
    def node(self) -> str:
        return f"mqs{self.port}@localhost"

    def node_log(self) -> str:
        try:
            return (self.workdir / "log" / f"{self.node}.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 80) -> str:
        both = self.log().splitlines() + ["--- node log"] + self.node_log().splitlines()
        return "\n".join(both[-lines:])

    def command(self) -> list[str]:
        why = rabbitmq_missing()
        if why:
            raise RuntimeError(why)
        return [str(RABBITMQ_SERVER)]

    def _answers(self) -> bool:
        """True when a raw MQTT 3.1.1 CONNECT gets an accepting CONNACK."""
        from brokers.probe import _raw_connect  # (paho, which probe needs: only here)

        try:
            s, _ = _raw_connect(self, "mqs-ready")
        except (OSError, AssertionError):  # refused, reset, closed, or a refusing CONNACK
            return False
        s.close()
        return True

    def start(self, timeout: float = 60.0) -> None:
        for attempt in range(1 if self.started else self.tries):
            if attempt:  # the last try failed at boot: again on ports it has not lost
                self.kill()
                self._stop_epmd()
                self.port = free_port()
                self.prepare()
            try:
                self._start_once(timeout)
                self.started = True
                return
            except RuntimeError:
                if self.started or attempt + 1 == self.tries:
                    raise

    def _start_once(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        seen = len(self.node_log())  # a restart appends to the log of the start before
        super().start(timeout)
        while not ("Server startup complete" in self.node_log()[seen:] and self._answers()):
            if not self.running:
                raise RuntimeError(f"{self.label} exited during its boot:\n{self.log_tail()}")
            if time.monotonic() >= deadline:
                self.kill()
                raise RuntimeError(f"{self.label} not ready on {self.port}:\n{self.log_tail()}")
            time.sleep(0.2)

    def close(self) -> None:
        super().close()
        self._stop_epmd()

    def _stop_epmd(self) -> None:
        epmd = shutil.which("epmd") or "/usr/lib/erlang/bin/epmd"
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run([epmd, "-port", str(self.epmd_port), "-kill"], timeout=10,
                           capture_output=True)


def missing(kind: str) -> str | None:
    """Why a broker of this kind cannot run on this machine, or None."""
    if kind == "aedes":
        return aedes_missing()
    if kind == "amqtt":
        return amqtt_missing()
    if kind == "rabbitmq":
        return rabbitmq_missing()
    if kind in KINDS:
        return None
    raise ValueError(f"unknown broker kind {kind!r}; one of {', '.join(KINDS)}")


def make(kind: str, workdir: Path | str | None = None, **kw: Any) -> Any:
    """A started broker of this kind. Other keywords go to harness.Broker (mosquitto)."""
    if kind == "mosquitto":
        return Broker(workdir, **kw)
    if kind == "mosquitto-persist":
        return Broker(workdir, persistence=True, **kw)
    if kind == "aedes":
        return Aedes(workdir)
    if kind == "amqtt":
        return Amqtt(workdir)
    if kind == "rabbitmq":
        return RabbitMQ(workdir)
    raise ValueError(f"unknown broker kind {kind!r}; one of {', '.join(KINDS)}")


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in KINDS:
        print(f"usage: python tools/brokers {{{'|'.join(KINDS)}}}", file=sys.stderr)
        return 2
    why = missing(argv[0])
    if why:
        print(f"error: {why}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))  # stop the broker on SIGTERM too
    b = make(argv[0])
    print(f"{argv[0]} on {b.host}:{b.port} (Ctrl-C stops it)", flush=True)
    try:
        while b.running:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        b.close()
    return 0
