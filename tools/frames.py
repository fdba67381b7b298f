"""List each function's VM frame size in .mpy files, and which frames spill to the heap.

MicroPython puts a bytecode function's frame (locals plus value stack plus exception
stack) on the C stack only when it is at most 11 machine words; a larger frame is
allocated on the heap for every call and freed on return. That does not fail with the
heap locked (it falls back to the C stack), but it shows in micropython.mem_total() and
costs time: keep the hot path's frames small.

    python tools/frames.py build/mpy/mqttsession/*.mpy [--all]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

ON_STACK_WORDS = 11  # py/objfun.c: VM_MAX_STATE_ON_STACK = 11 * sizeof(mp_uint_t)
EXC_STACK_WORDS = 3  # mp_exc_stack_t: handler, value stack pointer, previous exception


@dataclass
class Frame:
    module: str
    name: str
    n_state: int
    n_exc: int
    n_args: int

    @property
    def words(self) -> int:
        return self.n_state + self.n_exc * EXC_STACK_WORDS

    @property
    def spills(self) -> bool:
        return self.words > ON_STACK_WORDS


class Reader:
    def __init__(self, data: bytes) -> None:
        self.d = data
        self.i = 0

    def byte(self) -> int:
        b = self.d[self.i]
        self.i += 1
        return b

    def uint(self) -> int:
        n = 0
        while True:
            b = self.byte()
            n = (n << 7) | (b & 0x7F)
            if not b & 0x80:
                return n

    def take(self, n: int) -> bytes:
        b = self.d[self.i : self.i + n]
        self.i += n
        return b


def _signature(code: bytes) -> tuple[int, int, int, int]:
    # MP_BC_PRELUDE_SIG_DECODE: returns (n_state, n_exc_stack, n_pos_args, bytes used)
    i = 0
    z = code[i]
    i += 1
    s = (z >> 3) & 0xF
    e = (z >> 2) & 1
    a = z & 3
    n = 0
    while z & 0x80:
        z = code[i]
        i += 1
        s |= (z & 0x30) << (2 * n)
        e |= (z & 0x02) << n
        a |= (z & 0x4) << n
        n += 1
    return s + 1, e, a, i


def _size(code: bytes, i: int) -> int:
    # MP_BC_PRELUDE_SIZE_DECODE: skips n_info/n_cell, returns the offset of the code info
    z = code[i]
    i += 1
    while z & 0x80:
        z = code[i]
        i += 1
    return i


def _name_index(code: bytes, i: int) -> int:
    n = 0
    while True:
        b = code[i]
        i += 1
        n = (n << 7) | (b & 0x7F)
        if not b & 0x80:
            return n


# py/persistentcode.h: MP_PERSISTENT_OBJ_*
_ELLIPSIS = 4
_STR = 5
_BYTES = 6
_TUPLE = 10


def _skip_obj(r: Reader) -> None:
    t = r.byte()
    if t <= _ELLIPSIS:
        return
    n = r.uint()
    if t == _TUPLE:
        for _ in range(n):
            _skip_obj(r)
        return
    r.take(n)
    if t in (_STR, _BYTES):
        r.take(1)  # NUL terminator


def parse(path: Path) -> list[Frame]:
    r = Reader(path.read_bytes())
    if r.take(2) != b"M\x06":
        raise ValueError(f"{path}: not an mpy v6 file")
    r.take(2)
    n_qstr = r.uint()
    n_obj = r.uint()
    qstrs: list[str] = []
    for _ in range(n_qstr):
        ln = r.uint()
        if ln & 1:
            qstrs.append(f"<static {ln >> 1}>")
            continue
        qstrs.append(r.take(ln >> 1).decode("utf-8", "replace"))
        r.take(1)
    for _ in range(n_obj):
        _skip_obj(r)
    frames: list[Frame] = []

    def raw_code() -> None:
        kind_len = r.uint()
        kind = kind_len & 3
        has_children = (kind_len >> 2) & 1
        code = r.take(kind_len >> 3)
        if kind == 0:  # bytecode
            n_state, n_exc, n_args, i = _signature(code)
            qi = _name_index(code, _size(code, i))
            name = qstrs[qi] if qi < len(qstrs) else f"<q{qi}>"
            frames.append(Frame(path.stem, name, n_state, n_exc, n_args))
        if has_children:
            for _ in range(r.uint()):
                raw_code()

    raw_code()
    return frames


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--all", action="store_true", help="list frames that fit on the stack too")
    args = ap.parse_args(argv)
    spilled = 0
    print(f"{'module':10} {'function':22} {'words':>5}  (limit {ON_STACK_WORDS})")
    for f in args.files:
        for fr in parse(f):
            spilled += fr.spills
            if fr.spills or args.all:
                mark = "heap" if fr.spills else ""
                print(f"{fr.module:10} {fr.name:22} {fr.words:5}  {mark}")
    print(f"{spilled} frames spill to the heap")
    return 0


if __name__ == "__main__":
    sys.exit(main())
