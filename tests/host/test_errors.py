"""The texts of rare errors (lib/mqttsession/errors.py, made by packet.err) under CPython.

Each raise site names its error by number and says its text in a comment; the texts
are what the library raised before they moved, and other tests match them.
"""

from __future__ import annotations

import re

import pytest

from pure import PKG_DIR, load
from pure import packet as P

errors = load("errors")
TEXTS = errors._T.split("\n")[:-1]
SITE = re.compile(r"\berr\((\d+)\b.*#\s*(.+)$")
# store._report prints err(k) for the k its callers give: 40 unless they say (its comment)
REPORT = re.compile(r"\b_report\(.*,\s*(\d+)\)\s*#\s*(.+)$")
# texts no site raises any more, kept so that the numbers after them stay: 38, a null
# session's offline publish (it is queued in flash now, tests/host/test_offline_boots.py)
RETIRED = {38}


def sites() -> list[tuple[str, int, int, str]]:
    out = []
    for path in sorted(PKG_DIR.glob("*.py")):
        for ln, line in enumerate(path.read_text().splitlines(), 1):
            m = SITE.search(line) or REPORT.search(line)
            if m:
                out.append((path.name, ln, int(m.group(1)), m.group(2).strip()))
            elif "def _report(" in line and path.name == "store.py":
                out.append((path.name, ln, 40, "mqttsession: store: %s - starting without it"))
    return out


def test_every_site_names_its_text() -> None:
    found = sites()
    used = {n for _, _, n, _ in found}
    assert not used & RETIRED
    assert len(used | RETIRED) >= len(TEXTS) - 2  # check_topic's two: above
    for name, ln, n, said in found:
        assert n < len(TEXTS), f"{name}:{ln}: error {n} does not exist"
        assert TEXTS[n][1:] == said, f"{name}:{ln}: error {n} is {TEXTS[n][1:]!r}"


def test_every_text_has_a_known_type() -> None:
    assert all(t[0] in "VTROMN" and len(t) > 1 for t in TEXTS)


@pytest.mark.parametrize(
    ("n", "args", "kind", "want"),
    [
        (8, (), ValueError, ("topic must be 1 to 65535 bytes",)),
        (13, (b"a/#/b",), ValueError, ("invalid topic filter b'a/#/b'",)),
        (15, (), TypeError, ("msg must be bytes, bytearray, memoryview or str",)),
        (38, (107,), OSError, (107, "null session: connect first")),
        (7, (0x81, 5), P.MQTTException, (0x81, "acknowledgement of 5 bytes")),
        (26, (0x81, 0x42), P.MQTTException, (0x81, "reason code 0x42")),
        (1, (300, 256), ValueError, ("SUBSCRIBE of 300 bytes exceeds buffer of 256",)),
        (43, (), RuntimeError, ("check_msg() and wait_msg() cannot run inside the callback",)),
        (44, (), RuntimeError, ("connect() cannot run inside the callback",)),
    ],
)
def test_made_as_before(n: int, args: tuple[object, ...], kind: type, want: tuple) -> None:
    e = P.err(n, *args)
    assert type(e) is kind
    assert e.args == want


def test_newer_format_and_last() -> None:
    store = load("store")
    e = P.err(34, 3, 2)
    assert type(e) is store.NewerFormat
    assert str(e) == "format 3, newer than this library's 2"
    m = P.err(6, 0x81)
    assert P.MQTTException.last is m and m.args == (0x81, "packet ID 0")


def test_freed_after() -> None:
    import sys

    P.err(0)
    assert "mqttsession.errors" not in sys.modules
