"""The set-aside list in flash stays readable whatever is set aside (README: the aside
file holds the newest records, at most 64 KB, what the store reads of any file; a payload
too large is kept cut). A message with the longest topic a stored message can have
(65518 bytes) set aside with the client's QoS 2 strikes reason made a file over 65600
bytes: the next boot reported the library's own file as damage and removed it, every
set-aside record lost and the count back to 0. The reason is cut to fit now, the topic
kept whole; the store inspector lists what the library reads back
(tests/device/dev_aside_long_topic.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import inspect_store
from harness import run_device


def test_longest_topic_set_aside_reads_back(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    img = tmp_path / "flash.img"
    r = run_device("dev_aside_long_topic.py", {"IMAGE": str(img)}, heap="1m", timeout=120,
                   workdir=tmp_path)
    assert r.values("ASIDE") == [["2", "1"]], r.out
    rc = inspect_store.main(["--image", str(img), "--block-count", "128", "--json"])
    rep = json.loads(capsys.readouterr().out)
    [s] = [s for st in rep["stores"] for h in st["hosts"] for s in h["sessions"]]
    assert rc == 0 and rep["damaged"] == [] and s["set_aside"] == 2
    [a] = s["aside"]
    assert (a["topic"], a["qos"], a["length"]) == ("t/" + "x" * 65516, 2, 0)
    assert a["reason"].startswith("in flight at 3 closes in a row; the broker")
