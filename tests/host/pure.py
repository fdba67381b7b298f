"""The library's pure modules (wire format and RAM session), loaded under CPython.

``lib/mqttsession/packet.py`` and ``session.py`` import ``micropython.const``; the shim in
``tests/host/mpshim`` provides it. The modules are loaded from their files so the
package ``__init__`` (which pulls in the socket-level client) never runs here.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

HOST_DIR = Path(__file__).resolve().parent
REPO = HOST_DIR.parents[1]
LIB_DIR = REPO / "lib"
SHIM_DIR = HOST_DIR / "mpshim"
PKG_DIR = LIB_DIR / "mqttsession"

for _p in (SHIM_DIR, LIB_DIR):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))


def load(name: str) -> ModuleType:
    """mqttsession.<name> from its file, registered under its package name."""
    full = "mqttsession." + name
    mod = sys.modules.get(full)
    if mod is not None:
        return mod
    spec = importlib.util.spec_from_file_location(full, PKG_DIR / (name + ".py"))
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[full] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        del sys.modules[full]
        raise
    return mod


packet = load("packet")
session = load("session")

__all__ = ["load", "packet", "session"]
