"""Benchmarks on the emulated Raspberry Pi Pico (stock MicroPython v1.28.0 RPI_PICO on
rp2040js, tools/pico): the 32-bit figures the unix port cannot give. Runs on the host.

    .venv/bin/python tools/bench/b_pico.py [--quick] [--lib DIR]

Prints "R key value" lines (as the device scripts of tools/bench do) and a table:
- heap: gc.mem_free() after gc.collect() after boot, after importing mqttsession (.mpy
  for armv6m in /lib), with a SessionStore, connected, and after 20 QoS 1 publishes;
- the smallest free heap the node runs in: the most ballast (one bytearray allocated
  before the import) with which import, connect with a store, subscribe and 20 QoS 1
  round trips still pass, found by bisection; reported as the free heap left before
  importing;
- code: bytes of .mpy (library and boards/pico); --lib measures another lib/ directory
  (an earlier release's, for a before/after in one run);
- QoS 1 messages per second through the UART bridge (window 1 and 8, 16-byte payloads),
  on the board's clock and on the wall clock, next to the bridge's raw byte rate in both
  directions (host to board on the board's clock only: the bridge buffers what the host
  sends). The emulated CPU runs at about 0.4x a real Pico: wall-clock rates are this
  emulator's, board-clock rates approximate a 125 MHz Pico with an instant host.
Skips with the reason when the emulated Pico cannot run here.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "tools" / "pico"))

import pico_target  # noqa: E402
from b_mem_pico import deploy  # noqa: E402
from picoboard import PicoBoard, PicoError, missing  # noqa: E402

import mpy  # noqa: E402
from board_test import mpremote  # noqa: E402
from harness import Broker  # noqa: E402

_HEAP = """\
import gc
gc.collect()
print('R pico.heap.boot', gc.mem_free())
import mqttsession
from mqttsession import MQTTClient, SessionStore
gc.collect()
print('R pico.heap.import', gc.mem_free())
st = SessionStore('/.mqtt-bench')
gc.collect()
print('R pico.heap.store', gc.mem_free())
c = MQTTClient('bench-pico', {host!r}, {port}, keepalive=30, store=st)
c.connect(clean_session=False)
gc.collect()
print('R pico.heap.connected', gc.mem_free())
for i in range(20):
    c.publish(b'bench/h', b'0123456789abcdef', qos=1)
gc.collect()
print('R pico.heap.published', gc.mem_free())
c.disconnect()
"""

_NODE = """\
import gc
gc.collect()
try:
    ballast = bytearray({ballast})
except MemoryError:
    raise SystemExit
gc.collect()
print('FREE', gc.mem_free())
from mqttsession import MQTTClient, SessionStore
got = []
c = MQTTClient('bench-min', {host!r}, {port}, keepalive=30, store=SessionStore('/.mqtt-min'))
c.set_callback(lambda t, m: got.append(len(m)))
c.connect(clean_session=False)
c.subscribe(b'bench/min', 1)
for i in range(20):
    c.publish(b'bench/min', b'0123456789abcdef', qos=1)
while len(got) < 20:
    c.wait_msg()
c.disconnect()
print('NODE OK')
"""

_RATE_SETUP = """\
import time
from mqttsession import MQTTClient
c = MQTTClient('bench-rate', {host!r}, {port}, keepalive=30, window={window})
c.connect()
"""

_RATE = """\
t0 = time.ticks_ms()
for i in range({n}):
    c.publish(b'bench/r', b'0123456789abcdef', qos=1)
while c._s.pending():
    c.check_msg()
print('BOARD_MS', time.ticks_diff(time.ticks_ms(), t0))
c.disconnect()
"""

_RAW = """\
import socket, time
s = socket.socket()
s.connect(('127.0.0.1', {port}))
buf = bytearray(1024)
n = 0
t0 = time.ticks_ms()
if {up}:
    while n < {n}:
        n += s.write(buf, min(1024, {n} - n))
else:
    while True:
        r = s.readinto(buf)
        if not r:
            break
        n += r
print('BOARD_MS', time.ticks_diff(time.ticks_ms(), t0), n)
s.close()
"""


def out(key: str, value: float | str) -> None:
    print(f"R {key} {value}", flush=True)


def _exec(board: PicoBoard, code: str, timeout: float = 120.0) -> str:
    r = mpremote(board.path, ["exec", code], timeout)
    if r.rc != 0:
        raise PicoError(f"the board's run failed:\n{r.out.strip()}")
    return r.out


def _value(text: str, key: str) -> int:
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] == key:
            return int(parts[1])
    raise PicoError(f"no {key} in:\n{text}")


def heap(board: PicoBoard, broker: Broker) -> None:
    board.reset()
    text = _exec(board, _HEAP.format(host=broker.host, port=broker.port))
    for line in text.splitlines():
        if line.startswith("R "):
            print(line, flush=True)


def smallest(board: PicoBoard, broker: Broker, step: int) -> None:
    """Bisect the ballast: the most with which the node still runs."""
    board.reset()
    boot = _value(_exec(board, "import gc; gc.collect(); print('FREE', gc.mem_free())"), "FREE")
    lo, hi = 0, boot  # the node runs with ballast lo, not with hi
    free_at_lo = boot
    while hi - lo > step:
        mid = (lo + hi) // 2
        board.reset()
        r = mpremote(board.path, ["exec", _NODE.format(ballast=mid, host=broker.host,
                                                       port=broker.port)], 90.0)
        if r.rc == 0 and "NODE OK" in r.out:
            lo = mid
            free_at_lo = _value(r.out, "FREE")
        else:
            hi = mid
    out("pico.heap.min_free_before_import", free_at_lo)
    out("pico.heap.min_ballast", lo)


def code_size(sizes: dict[str, int], work: Path) -> None:
    out("pico.code.lib_mpy", sum(sizes.values()))
    out("pico.code.board_mpy", sum(p.stat().st_size for p in pico_target.board_mpy(work)))


def qos1_rate(board: PicoBoard, broker: Broker, n: int) -> None:
    for window in (1, 8):
        board.reset()
        _exec(board, _RATE_SETUP.format(host=broker.host, port=broker.port, window=window))
        t0 = time.monotonic()
        text = _exec(board, _RATE.format(n=n))
        wall = time.monotonic() - t0
        ms = max(1, _value(text, "BOARD_MS"))
        out(f"pico.qos1.w{window}.board_msg_s", round(n * 1000 / ms))
        out(f"pico.qos1.w{window}.wall_msg_s", round(n / wall))


def raw_rate(board: PicoBoard, n: int) -> None:
    for up in (True, False):
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        port = srv.getsockname()[1]
        seen: dict[str, float] = {}

        def serve(srv: socket.socket = srv, up: bool = up, seen: dict[str, float] = seen) -> None:
            conn, _ = srv.accept()
            with conn:
                t0 = time.monotonic()
                if up:
                    got = 0
                    while chunk := conn.recv(65536):
                        got += len(chunk)
                    seen["bytes"] = got
                    seen["wall"] = time.monotonic() - t0
                else:
                    # the bridge takes these at once: only the board's clock times them
                    conn.sendall(bytes(n))

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        board.reset()
        text = _exec(board, _RAW.format(port=port, up=up, n=n))
        t.join(30)
        srv.close()
        ms = max(1, _value(text, "BOARD_MS"))
        way = "board_to_host" if up else "host_to_board"
        out(f"pico.raw.{way}.board_kb_s", round(n / ms * 1000 / 1024, 1))
        if seen.get("wall"):
            out(f"pico.raw.{way}.wall_kb_s", round(n / seen["wall"] / 1024, 1))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small counts, coarse bisection")
    p.add_argument("--lib", type=Path, default=mpy.LIB, help="the lib/ directory to measure")
    a = p.parse_args(argv)
    why = missing()
    if why:
        print(f"NA pico {why}")
        return 0
    work = Path(tempfile.mkdtemp(prefix="mqs-bench-pico-"))
    broker = Broker(work / "broker")
    board = PicoBoard(work / "flash.img", work / "pico.pty", log=work / "pico.log")
    try:
        board.start()
        code_size(deploy(board, a.lib.resolve(), work), work / "board")
        heap(board, broker)
        qos1_rate(board, broker, 50 if a.quick else 300)
        raw_rate(board, 16384 if a.quick else 131072)
        smallest(board, broker, 16384 if a.quick else 2048)
    except PicoError as e:
        print(f"NA pico {e}")
        return 1
    finally:
        board.close()
        broker.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
