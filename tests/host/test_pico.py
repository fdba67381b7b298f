"""The stock MicroPython firmware on an emulated RP2040 (tools/pico): the library as armv6m
.mpy through mpremote, MQTT over the UART bridge to mosquitto, power cuts inside flash
writes and at random moments. Skipped, with the reason, where the firmware, node or
rp2040js is missing (MQTTS_PICO_DIR locates the firmware; make pico-deps installs the rest).
The emulator keeps one core busy while it runs: this module boots one board and keeps it."""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness import Broker, Observer, devcfg_source

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT / "tools" / "pico"))

import pico_target  # noqa: E402
from picoboard import PicoBoard, missing  # noqa: E402

import board_scenarios  # noqa: E402
import board_target  # noqa: E402
import board_test  # noqa: E402

CUT_SCRIPT = ROOT / "tests" / "device" / "dev_pico_cut.py"
INSPECT = ROOT / "tools" / "inspect_store.py"

pytestmark = pytest.mark.skipif(bool(missing()), reason=f"emulated Pico: {missing()}")


@dataclass
class Pico:
    board: PicoBoard
    runner: board_test.Runner
    broker: Broker
    work: Path


@pytest.fixture(scope="module")
def pico(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pico]:
    work = tmp_path_factory.mktemp("pico")
    board = PicoBoard(work / "flash.img", work / "pico.pty", seed=1234, log=work / "pico.log")
    board.start()
    try:
        pico_target.deploy(board.path)
        target = pico_target.PicoTarget(board)
        runner = board_test.Runner(target, broker.host, broker.port, 60.0, work)
        yield Pico(board, runner, broker, work)
    finally:
        board.close()


@pytest.mark.parametrize("name", ["roundtrip/v4", "roundtrip/v5", "noalloc/v4", "ids",
                                  "lost_session/v5"])
def test_device_scenario_on_emulated_pico(pico: Pico, name: str) -> None:
    """board_test's scenario: QoS 0/1/2 round trips; no allocation on the publish and
    receive paths with the heap locked; the generated client ID survives a hard reset; a
    session the broker lost is rebuilt from flash after the reset."""
    (s,) = board_scenarios.select(board_scenarios.scenarios(), [name])
    o = pico.runner.scenario(s)
    out = "\n".join(r.out for r in o.results)
    assert o.passed, f"{name}: {o.why}\n{out}"


def test_offline_message_survives_power_cut_and_is_resent(pico: Pico) -> None:
    """The broker stops answering: publish returns with the message in flash only. Power
    cut, power on: the resumed session resends it with its packet ID and DUP."""
    cfg = {"HOST": pico.broker.host, "PORT": pico.broker.port, "VERSION": 4, "TEST": "sender",
           "CID": "pico-off", "CUT": "paused", "QOS": 1, "WINDOW": 4, "PREFIX": "pico-off"}
    with Observer(pico.broker.host, pico.broker.port, "pico-off/#", qos=2) as obs:
        pico.board.reset()
        # a fresh store: what a previous run left would be resent too
        code = board_target.RM + "_rm('/.mqtt-test')\n"
        r = _run(pico, cfg, "dev_store.py", until="READY", code=code, then=pico.broker.pause)
        try:
            r.wait("CUT", 30)
            pico.board.cut()
        finally:
            pico.broker.resume()
            r.stop()
        assert "ACCEPTED 0" in r.text(), r.text()
        again = _run(pico, {**cfg, "TEST": "resume"}, "dev_store.py")
        out = again.finish(60)
        assert "PENDING_AT_BOOT 1" in out and out.rstrip().endswith("PASS"), out
        obs.wait_for(1, timeout=20)
    assert set(obs.payloads()) == {b"n0"}  # QoS 1: at least once
    assert re.search(r"Received PUBLISH from pico-off \(d1, q1", pico.broker.log())


def test_flash_persists_across_power_off_and_reads_on_the_host(pico: Pico) -> None:
    """The emulator's flash: a file closed before a power cut is there after power-on,
    and the image file is a littlefs image the host mounts."""
    import littlefs

    write = "f = open('persist.txt', 'w'); f.write('kept over a power cut'); f.close()"
    assert board_target.mpremote(pico.board.path, ["exec", write], 30).rc == 0
    pico.board.off()
    assert pico.board.status()["running"] is False
    pico.board.on()
    r = board_target.mpremote(pico.board.path, ["exec", "print(open('persist.txt').read())"], 30)
    assert r.rc == 0 and "kept over a power cut" in r.out, r.out
    fs = littlefs.LittleFS(block_size=4096, block_count=352, mount=False)
    fs.context.buffer = bytearray(pico.board.image.read_bytes())
    fs.mount()
    with fs.open("persist.txt", "r") as f:
        assert f.read() == "kept over a power cut"


_AIO = """\
import asyncio
from mqttsession.aio import MQTTClient
got = []
async def main():
    c = MQTTClient('pico-aio', {host!r}, {port}, keepalive=30)
    c.set_callback(lambda t, m: got.append(m))
    await c.connect()
    await c.subscribe(b'pico-aio/t', 2)
    for q in (0, 1, 2):
        await c.publish(b'pico-aio/t', b'q%d' % q, qos=q)
    for _ in range(500):
        if len(got) >= 3:
            break
        await asyncio.sleep_ms(10)
    print('GOT', b','.join(sorted(got)).decode())
    await c.disconnect()
asyncio.run(main())
"""


def test_asyncio_client_on_emulated_pico(pico: Pico) -> None:
    """The asyncio front end over the UART socket: QoS 0/1/2 back through a subscription."""
    pico.board.reset()
    code = _AIO.format(host=pico.broker.host, port=pico.broker.port)
    r = board_target.mpremote(pico.board.path, ["exec", code], 60)
    assert r.rc == 0 and "GOT q0,q1,q2" in r.out, r.out


_SOCKET = """\
import select, socket
addr = ('127.0.0.1', {port})
b = bytearray(4)
s = socket.socket()
try:
    s.connect(('127.0.0.1', {dead}))
except OSError as e:
    print('REFUSED', e.args[0])
s.close()
s = socket.socket()
try:
    s.connect(('10.0.0.1', 1883))
except OSError as e:
    print('UNREACHABLE', e.args[0])
s.close()
s = socket.socket()
s.setblocking(False)
try:
    s.connect(addr)
except OSError as e:
    print('NONBLOCKING', e.args[0])
p = select.poll()
p.register(s, select.POLLOUT)
print('POLLOUT', p.poll(5000)[0][1] & select.POLLOUT)
print('NOTHING', s.readinto(b))
s.write(b'\\x10\\x0e\\x00\\x04MQTT\\x04\\x02\\x00\\x1e\\x00\\x02nb')
p.modify(s, select.POLLIN)
p.poll(5000)
n = s.readinto(b)
print('CONNACK', bytes(b[:n]).hex())
s.write(b'\\xf0\\x00')  # a reserved packet type: the broker closes
p.poll(5000)
print('EOF', s.readinto(b))
try:
    s.write(b'x')
except OSError as e:
    print('WRITE', e.args[0])
s.close()
s = socket.socket()
s.settimeout(0.5)
s.connect(addr)
try:
    s.readinto(b)
except OSError as e:
    print('TIMEOUT', e.args[0])
s.close()
"""


def test_socket_over_uart(pico: Pico) -> None:
    """boards/pico/socket.py through the bridge: refused and unreachable connects,
    non-blocking connect (EINPROGRESS, then POLLOUT), readinto None when nothing is
    there, a whole MQTT CONNECT/CONNACK, end of stream when the broker closes, a write
    after it refused, a read timing out."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]  # nothing listens here once closed
    pico.board.reset()
    code = _SOCKET.format(port=pico.broker.port, dead=dead)
    r = board_target.mpremote(pico.board.path, ["exec", code], 60)
    want = ["REFUSED 111", "UNREACHABLE 101", "NONBLOCKING 115", "POLLOUT 4", "NOTHING None",
            "CONNACK 20020000", "EOF 0", "WRITE 104", "TIMEOUT 110"]
    got = [ln.strip() for ln in r.out.splitlines() if ln.strip()]
    assert r.rc == 0 and got == want, r.out


@dataclass
class CutRun:
    """The power-cut run's record across reboots."""

    done: list[int] = field(default_factory=list)  # publish(i) returned
    loads: int = 0  # runs whose store loaded
    cuts: list[dict[str, object]] = field(default_factory=list)  # the emulator's cut events
    cut_mid_run: int = 0  # cuts that came before the run finished


def _cut_cfg(pico: Pico, start: int, count: int) -> dict[str, object]:
    return {"HOST": pico.broker.host, "PORT": pico.broker.port, "VERSION": 4,
            "PREFIX": "pico-cut", "CID": "pico-cut", "START": start, "COUNT": count,
            "WINDOW": 4}


def _cut_once(pico: Pico, rec: CutRun, how: str, count: int, rng: random.Random) -> None:
    """One run of dev_pico_cut.py ended by a power cut: in the next flash program or
    erase (how="program"/"erase"), or at a random moment (how="random")."""
    # each run publishes numbers of its own: a message whose publish was under way at the
    # cut may still be in flash and sent later; publishing it again would be a new message
    start = 1000 * (rec.loads + 1)
    after = pico.board.boots + 1  # the power-on after the cut
    r = _run(pico, _cut_cfg(pico, start, count), CUT_SCRIPT.name, until="LOADED")
    if how in ("program", "erase"):  # armed now: copying devcfg.py writes flash too
        pico.board.arm(how, rng.randint(1, 12), "r")
    else:
        # 300 messages take the board over 1.6 s of its own clock (CPU-bound at window 4,
        # whatever the host's load): a cut in the first 1.2 s comes before the end
        pico.board.arm_time(50, 1200)
    try:
        ev = pico.board.wait(lambda e: e["event"] == "cut", 60)
    finally:
        r.stop()
    assert ev["during"] == ("time" if how == "random" else how), ev
    rec.cuts.append(ev)
    rec.cut_mid_run += "PASS" not in r.text()
    pico.board.wait_usb(boot=after)
    rec.loads += 1
    rec.done += [int(v) for v in re.findall(r"^DONE (\d+)", r.text(), re.M)]
    _inspect(pico)


def _inspect(pico: Pico) -> None:
    # the flash as the cut left it is a littlefs image the store inspector reads
    img = pico.work / "cut.img"
    img.write_bytes(pico.board.image.read_bytes())
    p = subprocess.run(
        [sys.executable, str(INSPECT), "--image", str(img), "--block-count", "352",
         "--root", "/.mqtt-cut"],
        capture_output=True, text=True, timeout=60,
    )
    assert p.returncode in (0, 1) and "pico-cut" in p.stdout, p.stdout + p.stderr


def _finish(pico: Pico, rec: CutRun, obs: Observer) -> None:
    start = 1000 * (rec.loads + 1)
    out = _run(pico, _cut_cfg(pico, start, 4), CUT_SCRIPT.name).finish(90)
    assert out.rstrip().endswith("PASS") and "PENDING 0" in out, out
    rec.done += [int(v) for v in re.findall(r"^DONE (\d+)", out, re.M)]
    want = {b"m%d" % i for i in rec.done}
    deadline = time.monotonic() + 20
    while not want <= set(obs.payloads()) and time.monotonic() < deadline:
        time.sleep(0.2)
    got = obs.payloads()
    lost = sorted(want - set(got))
    assert not lost, f"publish returned, never delivered: {lost}"
    twice = sorted({p for p in got if got.count(p) > 1 and int(p[1:]) & 1})
    if twice:
        (pico.work / "broker-full.log").write_text(pico.broker.log())
    assert not twice, f"QoS 2 delivered more than once: {twice}; cuts {rec.cuts}; " \
        f"broker log in {pico.work / 'broker-full.log'}"


def _fresh_cut_store(pico: Pico) -> None:
    pico.board.reset()
    rm = board_target.RM + "_rm('/.mqtt-cut')\n"
    r = board_target.mpremote(pico.board.path, ["exec", rm], 30)
    assert r.rc == 0, r.out


def test_power_cuts_inside_flash_write_and_at_random(pico: Pico) -> None:
    """A cut inside a flash program, one at a random moment: every message whose publish
    returned reaches the broker, no QoS 2 message twice, the store loads each time."""
    rng = random.Random(15)
    _fresh_cut_store(pico)
    rec = CutRun()
    with Observer(pico.broker.host, pico.broker.port, "pico-cut/#", qos=2) as obs:
        for how, count in (("program", 40), ("random", 300)):
            _cut_once(pico, rec, how, count, rng)
        _finish(pico, rec, obs)
    assert rec.loads == 2 and rec.done and rec.cut_mid_run == 2, rec


@pytest.mark.slow
def test_power_cut_sweep(pico: Pico) -> None:
    """The long run: 24 cuts, inside erases, programs and at random moments."""
    rng = random.Random(1515)
    _fresh_cut_store(pico)
    rec = CutRun()
    with Observer(pico.broker.host, pico.broker.port, "pico-cut/#", qos=2) as obs:
        for i in range(24):
            how = ("program", "erase", "random")[i % 3]
            # a cut in the n-th erase (n up to 12) needs a run that erases that often: 30
            # messages make about 61 programs but only 4 erases, 300 about 50 erases
            _cut_once(pico, rec, how, 30 if how == "program" else 300, rng)
        _finish(pico, rec, obs)
    assert rec.loads == 24


# --------------------------------------------------------------------------------------
# mpremote runs that a power cut may interrupt


class _Run:
    def __init__(self, pico: Pico, args: list[str]) -> None:
        self.log = pico.work / "run.out"
        self._f = open(self.log, "w")
        self.proc = subprocess.Popen(
            [pico_target.deploy_tool.mpremote_tool(), "connect", pico.board.path, "resume",
             *args],
            stdin=subprocess.DEVNULL, stdout=self._f, stderr=subprocess.STDOUT,
            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, line: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(rf"^{line}", self.text(), re.M):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no {line!r} from the board:\n{self.text()}")

    def finish(self, timeout: float) -> str:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"the board's run did not end:\n{self.text()}") from None
        self._f.close()
        return self.text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(5)
        self._f.close()


def _run(pico: Pico, cfg: dict[str, object], script: str, until: str = "", code: str = "",
         then: object = None) -> _Run:
    """mpremote run of tests/device/script with devcfg; waits for the line until."""
    path = pico.work / "devcfg.py"
    path.write_text(devcfg_source(cfg), encoding="utf-8")
    args = ["cp", str(path), ":devcfg.py", "+"]
    if code:
        args += ["exec", code, "+"]
    args += ["run", str(ROOT / "tests" / "device" / script)]
    r = _Run(pico, args)
    if until:
        r.wait(until, 60)
    if callable(then):
        then()
    return r
