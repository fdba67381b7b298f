"""CPython stand-in for MicroPython's built-in ``micropython`` module.

Only what the pure library modules (packet.py, session.py) use: ``const`` folds
constants at compile time on the device; here it just returns its argument.
"""

from __future__ import annotations

from typing import TypeVar

_T = TypeVar("_T")


def const(value: _T) -> _T:
    return value
