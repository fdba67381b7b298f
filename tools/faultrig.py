"""Fault rig: a scriptable TCP proxy on loopback that breaks the link on demand.

Put it between a device (a MicroPython process) and a broker::

    with FaultProxy("127.0.0.1", broker_port) as proxy:
        connect_device_to(proxy.port)
        proxy.set_mode("blackhole")   # or proxy.blackhole()
        ...
        proxy.forward()               # back to "pass"
        print(format_timeline(proxy.timeline(), proxy.started_at))

Modes (``set_mode``), each switchable at any time:

``pass``
    Forward bytes immediately, both ways (TCP_NODELAY on both legs).
``blackhole``
    A half-open link. Every existing connection is blackholed for good: bytes, FIN and
    resets from either side are swallowed, so the device sees silence, never a reset.
    New connections are accepted but the proxy does not connect upstream, so the broker
    sees nothing. A user-space proxy cannot hold back TCP acknowledgements, so the dropped
    bytes are lost rather than retransmitted later: a blackholed connection keeps dropping
    after the mode returns to ``pass``, and only new connections recover. That is what a
    device meets when its keepalive gives up on a dead link and it reconnects.
``refuse``
    New connections are refused by the kernel (ECONNREFUSED, as when the broker is down):
    the listening socket stops listening but keeps its port. Existing connections go on.
    Where the kernel cannot do that, the proxy accepts and resets at once instead.
``down``
    ``refuse`` plus a reset of every existing connection (Wi-Fi or broker gone).
``stall``
    Hold bytes, forward nothing (FIN included), until the mode leaves ``stall``; then
    deliver what was held, in order. Up to ``max_buffer`` bytes per direction and
    connection are read ahead; beyond that TCP flow control stalls the sender.
``throttle``
    Forward at ``rate`` bytes per second in each direction (one token bucket per direction,
    shared by all connections, with a burst of 0.1 s).

``reset()`` (also ``set_mode("reset")``) is an action, not a mode: it aborts every current
connection on both legs at once with an RST (SO_LINGER 0) and leaves the mode unchanged.

An RST from one side of a forwarded connection is passed on to the other side as an RST.
If the upstream connect fails, the device's connection is reset.

Everything runs in one background thread around ``selectors``. Every public method is
thread-safe and returns once the change is in effect. ``timeline()`` returns ``Event``
entries ``(t, event)`` with ``t`` from ``time.monotonic()`` and ``event`` a short string whose
first word is one of: mode, connect, close, abort, reset, upstream-fail, refused, cut, restore.

Command line (exits when the script ends or after ``--max-seconds``)::

    python tools/faultrig.py --listen 0 --target 127.0.0.1:1883 \\
        --script "pass:2,blackhole:5,pass:3,reset,pass:10" --control 0

A script is a comma-separated list of ``MODE[=RATE][:SECONDS]`` steps; ``reset`` is an
action. The control channel is a line protocol on a second loopback port; see
``ControlServer``.

The pieces: faultrig_conn.py (modes, timeline entries, per-connection forwarding),
faultrig_proxy.py (FaultProxy), faultrig_control.py (cut schedules, scripts, the control
channel). Every name is importable from here as before.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from faultrig_conn import (  # noqa: E402
    _CALL_TIMEOUT,
    _CHUNK,
    _READ,
    _TIMELINE_MAX,
    _WRITE,
    CUT_KINDS,
    MODES,
    Cut,
    Event,
    Step,
    _abort,
    _Bucket,
    _Command,
    _Conn,
    _nodelay,
    _Pump,
)
from faultrig_control import (  # noqa: E402
    ControlServer,
    CutSchedule,
    format_timeline,
    parse_script,
    play_script,
    send_control,
)
from faultrig_proxy import (  # noqa: E402
    FaultProxy,
)

__all__ = [
    "MODES",
    "CUT_KINDS",
    "_READ",
    "_WRITE",
    "_CHUNK",
    "_CALL_TIMEOUT",
    "_TIMELINE_MAX",
    "Event",
    "Cut",
    "Step",
    "_abort",
    "_nodelay",
    "_Bucket",
    "_Conn",
    "_Command",
    "_Pump",
    "FaultProxy",
    "CutSchedule",
    "parse_script",
    "play_script",
    "format_timeline",
    "ControlServer",
    "send_control",
]


# -- command line ------------------------------------------------------------------------------


def _host_port(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        return default_host, int(text)
    return host.strip("[]") or default_host, int(port)


def _range(text: str) -> tuple[float, float]:
    low, _, high = text.partition(":")
    return float(low), float(high or low)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="TCP fault proxy on loopback: reset, blackhole, refuse, stall, throttle."
    )
    parser.add_argument("--listen", default="0", help="[HOST:]PORT to listen on (0 = free port)")
    parser.add_argument("--target", required=True, help="HOST:PORT to forward to")
    parser.add_argument(
        "--script", default="", help='steps like "pass:2,blackhole:5,reset,throttle=8000:3"'
    )
    parser.add_argument("--control", type=int, help="loopback port for the control channel")
    parser.add_argument("--cuts", type=int, default=0, help="number of random cuts")
    parser.add_argument("--seed", default="0", help="seed for --cuts")
    parser.add_argument("--up", default="1:5", help="MIN:MAX seconds up between cuts")
    parser.add_argument("--down", default="1:5", help="MIN:MAX seconds per cut")
    parser.add_argument("--kinds", default="reset,blackhole,refuse", help="cut kinds")
    parser.add_argument(
        "--max-seconds", type=float, default=3600.0, help="exit after this long at most"
    )
    args = parser.parse_args(argv)

    try:
        steps = parse_script(args.script)
        listen_host, listen_port = _host_port(args.listen)
        target_host, target_port = _host_port(args.target)
        up, down = _range(args.up), _range(args.down)
    except ValueError as exc:
        parser.error(str(exc))

    out_lock = threading.Lock()
    t0 = time.monotonic()

    def say(text: str) -> None:
        with out_lock:
            print(text, flush=True)

    # Events wait until the address lines are out, so a wrapper can read those first.
    pending: list[Event] | None = []

    def show(ev: Event) -> None:
        with out_lock:
            if pending is not None:
                pending.append(ev)
                return
            print(f"{ev.t - t0:9.3f} {ev.event}", flush=True)

    finished = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: finished.set())
    proxy = FaultProxy(target_host, target_port, listen_host, listen_port, on_event=show)
    control: ControlServer | None = None
    with proxy:
        say(f"listening {listen_host}:{proxy.port} -> {target_host}:{target_port}")
        if args.control is not None:
            control = ControlServer(proxy, port=args.control, on_quit=finished.set).start()
            say(f"control 127.0.0.1:{control.port}")
        with out_lock:
            for ev in pending or []:
                print(f"{ev.t - t0:9.3f} {ev.event}", flush=True)
            pending = None
        try:
            sched = None
            if args.cuts:
                seed = int(args.seed) if args.seed.lstrip("-").isdigit() else args.seed
                sched = proxy.schedule_random_cuts(
                    seed, args.cuts, *up, *down, kinds=args.kinds.split(",")
                )
            deadline = threading.Timer(args.max_seconds, finished.set)
            deadline.daemon = True
            deadline.start()
            if steps:
                play_script(proxy, steps, finished)
            elif sched is not None:
                while not finished.is_set() and not sched.done:
                    finished.wait(0.1)
            else:
                finished.wait()
            deadline.cancel()
        except KeyboardInterrupt:
            pass
        finally:
            if control is not None:
                control.stop()
        say("stats " + json.dumps(proxy.stats()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
