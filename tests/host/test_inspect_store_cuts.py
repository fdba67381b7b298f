"""tools/inspect_store.py on the stores a power cut leaves (tests/device/dev_store_cut_shapes.py):
a cut after every block write of a step, each image read by the inspector before the
library loads it, and the two compared: the same pending messages in the same order per
session, and the same damage (none, where the library reports none). Steps: a session's
first get() and message (its directory made before its identity), an MQTT 5 null session
with a backlog assigned the ID of a stored session (renamed, then its identity written),
a large message behind the tail's small ones (the tail sealed first, a segment of its
own, multi-block segments) on a named and on a null session, that store drained, and
the load that mends segments whose seq ranges overlap. And the images one damaged byte
in any block the filesystem uses leaves (tests/device/dev_store_flips.py, RAW): littlefs
drops a directory's newer entries at damage to its metadata, and the inspector lists
what the library then loads and reports what it reports."""

from __future__ import annotations

import json
from ast import literal_eval
from pathlib import Path

import pytest

import inspect_store
from harness import run_device


def _device(out: str) -> tuple[dict[int, dict[str, list[int]]], dict[int, list[str]]]:
    """Per cut: the seqs each session sends, in order, and the paths the library reported."""
    sent: dict[int, dict[str, list[int]]] = {}
    reported: dict[int, list[str]] = {}
    for ln in out.splitlines():
        if ln.startswith("LOADED "):
            _, n, cid, seqs = ln.split(" ", 3)
            sent.setdefault(int(n), {})[cid] = literal_eval(seqs)
        elif ln.startswith("REPORTED "):
            _, n, path = ln.split(" ", 2)
            reported.setdefault(int(n), []).append(path)
    return sent, reported


SLOW = pytest.mark.slow  # (12-15 s each, passed before the inspector's fix: --runslow)


@pytest.mark.parametrize(("mode", "prog"), [
    ("first", 32), ("first", 256), ("adopt", 32), ("adopt", 256), ("mend", 32),
    pytest.param("big", 256, marks=SLOW), pytest.param("null", 256, marks=SLOW),
    ("drain", 32)])
def test_cut_stores_report_what_the_library_loads(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], mode: str, prog: int) -> None:
    blocks = 128 if prog == 32 else 64
    img = tmp_path / "flash.img"
    c = {"IMAGE": str(img), "MODE": mode, "PROG": prog, "BLOCKS": blocks}
    r = run_device("dev_store_cut_shapes.py", c, heap="1m", timeout=600, workdir=tmp_path)
    writes = int(r.values("WRITES")[0][0])
    sent, reported = _device(r.out)
    assert writes > 0 and sorted(sent) == list(range(writes + 1)), r.out
    wrong = []
    for n in range(writes + 1):
        rc = inspect_store.main(["--image", f"{img}.{n}", "--block-count", str(blocks),
                                 "--json"])
        rep = json.loads(capsys.readouterr().out)
        listed = {s["client_id"] or s["dir"]: [m["seq"] for m in s["messages"]]
                  for st in rep["stores"] for h in st["hosts"] for s in h["sessions"]}
        # a session the library made only now, loading it, holds nothing
        loaded = {cid: seqs for cid, seqs in sent[n].items() if seqs or cid in listed}
        damaged = [d["path"] for d in rep["damaged"]]
        if listed != loaded or damaged != reported.get(n, []) or rc != (1 if damaged else 0):
            wrong.append((n, loaded, reported.get(n), listed, rep["damaged"]))
        Path(f"{img}.{n}").unlink()
    assert not wrong, wrong[:3]
    if mode in ("first", "adopt"):
        # a cut there is no damage: a session directory without its identity yet is one
        # being made, or the adopted one ("last" still names the ID of the one moved
        # aside), not one that lost its files (resume.load)
        assert not reported, reported


def test_damaged_bytes_report_what_the_library_loads(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    img = tmp_path / "flash.img"
    c = {"IMAGE": str(img), "STRIDE": 97, "RAW": 1, "SAVE": 1}
    r = run_device("dev_store_flips.py", c, heap="1m", timeout=300, workdir=tmp_path)
    pristine = Path(f"{img}.pristine").read_bytes()
    loaded: dict[int, list[int]] = {}
    reported: dict[int, list[str]] = {}
    for ln in r.out.splitlines():
        if ln.startswith("LOADED "):
            _, o, seqs = ln.split(" ", 2)
            loaded[int(o)] = literal_eval(seqs)
        elif ln.startswith("REPORTED "):
            _, o, path = ln.split(" ", 2)
            reported.setdefault(int(o), []).append(path)
    assert len(loaded) > 400, r.out
    wrong = []
    one = tmp_path / "one.img"
    for o, seqs in loaded.items():
        b = bytearray(pristine)
        b[o] ^= 0xFF
        one.write_bytes(b)
        rc = inspect_store.main(["--image", str(one), "--block-count", "64", "--json"])
        out = capsys.readouterr().out
        if not out:  # the store's directory gone from the root: nothing to list
            if seqs or rc != 2:
                wrong.append((o, seqs, rc))
            continue
        rep = json.loads(out)
        listed = [[m["seq"] for m in s["messages"]] for st in rep["stores"]
                  for h in st["hosts"] for s in h["sessions"]]
        damaged = sorted(d["path"] for d in rep["damaged"])
        lib = sorted(reported.get(o, []))
        if listed not in ([seqs], [] if not seqs else [seqs]) or damaged != lib:
            wrong.append((o, seqs, lib, listed, damaged))
    for w in wrong:
        print("WRONG", w)
    assert not wrong, wrong[:3]
