"""A format 1 (0.1.0) session migrated by a store whose RAM ring is smaller than the
client's queue (SessionStore(ram=2), queue of 20) keeps the queue's bound: after the
migration the session takes messages up to the queue, not up to the ring, and they all
come back in order after a reboot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MICROPYTHON = Path(sys.executable).parent / "micropython"
V010 = ROOT / "tests" / "fixtures" / "v010"

WRITE_V1 = """\
from mqttsession.store import SessionStore
s = SessionStore("st").get("h", b"cid", 12)
for i in range(10):
    k = s.add(b"t%d" % i, b"m", 1 + i % 2, False)
    s._keep(k)
s.connected()
print("V1", s.pending())
"""

MIGRATE = """\
from mqttsession import SessionStore
st = SessionStore("st", max_bytes=100000, ram=2)
s = st.get("h", b"cid", 20)
print("OPENED", s.cap, s.limit, s.pending(), int(s.full()))
n = 0
while not s.full() and n < 30:
    k = s.add(b"n%d" % n, b"x", 1, False)
    if k == s.cap:
        s._keep(k)  # behind the backlog: into flash, as the client does
    else:
        s.hold(k, s.seq[k])
    n += 1
print("ADDED", n, s.pending())
s = SessionStore("st", max_bytes=100000, ram=2).get("h", b"cid", 20)
s.restart(True)
got = []
while s.live():
    k = s.live()[0]
    if not s.fl[k] & 64:
        s.assign(k)
    got.append(s.top[k].decode())
    if s.fl[k] & 3 == 2:
        s.acked(s.ids[k], True)
    s.acked(s.ids[k], False)
print("DRAINED", " ".join(got))
print("ERRORS", len(st.errors))
"""


def _run(code: str, cwd: Path, lib: Path) -> str:
    script = cwd / "run.py"
    script.write_text(code)
    env = dict(os.environ, MICROPYPATH=f"{lib}:{ROOT / 'boards' / 'unix'}")
    r = subprocess.run([str(MICROPYTHON), "-X", "heapsize=1M", str(script)], cwd=cwd,
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_migration_keeps_the_queue_bound_with_a_smaller_ring(tmp_path: Path) -> None:
    if not MICROPYTHON.is_file():
        pytest.skip("micropython (unix port) not installed next to this interpreter")
    assert "V1 10" in _run(WRITE_V1, tmp_path, V010)
    assert (tmp_path / "st" / "h" / "cid" / "m00000009").is_file()  # format 1 files
    out = _run(MIGRATE, tmp_path, ROOT / "lib")
    assert "OPENED 2 20 10 0" in out, out
    assert "ADDED 10 20" in out, out
    want = " ".join([f"t{i}" for i in range(10)] + [f"n{i}" for i in range(10)])
    assert f"DRAINED {want}\n" in out, out
    assert "ERRORS 0" in out, out
