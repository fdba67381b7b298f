"""A store nothing can escape and no damage can stop: path-like hosts and client IDs,
misshapen stores (directories for files, files for directories, oversized files on a
small heap, a chain of nested directories deeper than a recursion could go), set-aside
messages in flash, queued payloads that the caller changes, and incoming QoS 2 messages
while the flash takes no writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import Broker, Observer, run_device
from test_store import HEAP, cfg


def test_path_like_names_stay_under_the_root(broker: Broker, tmp_path: Path) -> None:
    c = cfg(broker, tmp_path / "flash.img", "paths", BLOCKS=1024)
    r = run_device("dev_store_more.py", c, heap="1m", timeout=240)
    assert "PASS" in r.out


@pytest.mark.parametrize("shape", ["id", "hot", "subs", "aside", "q", "t0", "last", "msgdir",
                                   "sessfile", "hostfile", "bigmsg",
                                   "bigident", "deepdir"])
def test_damage_shapes_never_stop_the_node(broker: Broker, tmp_path: Path, shape: str) -> None:
    big = shape.startswith("big")
    # deepdir: 250 nested directories take two blocks each
    blocks = 400 if big else 640 if shape == "deepdir" else 64
    c = cfg(broker, tmp_path / "flash.img", "damage", SHAPE=shape, BLOCKS=blocks)
    # a 1 MB file on a 200 KB heap: never read whole
    r = run_device("dev_store_more.py", c, heap="200k" if big else HEAP, timeout=120)
    assert "PASS" in r.out
    assert any("mqttsession: store:" in ln for ln in r.lines)
    if shape == "deepdir":
        assert "DELETED" in r.out, r.out


def test_last_session_pointer_unreadable_at_a_boot(broker: Broker, tmp_path: Path) -> None:
    # the flash's EIO on the host's "last" file when a boot loads the session (a reconnect
    # no longer reads it: test_reconnect_files.py): no damage to report, and the pointer
    # is written again rather than the client or its connect failing
    r = run_device("dev_store_more.py", cfg(broker, tmp_path / "flash.img", "last_eio"),
                   heap=HEAP)
    assert r.values("LAST") == [["1", "b'last-eio'"]], r.out


def test_root_that_is_a_file_is_refused_and_kept(broker: Broker, tmp_path: Path) -> None:
    # SessionStore(root=<the application's file>): ValueError naming it; the file is not
    # removed (it was reported as damage and removed, a directory made in its place)
    r = run_device("dev_store_more.py", cfg(broker, tmp_path / "flash.img", "rootfile"),
                   heap=HEAP)
    assert len(r.values("REFUSED")) == 3, r.out


@pytest.mark.parametrize(("limit", "buffer"), [(0, 740), (600, 470), (200, 128)])
def test_damaged_records_in_the_backlog(broker: Broker, tmp_path: Path, limit: int,
                                        buffer: int) -> None:
    # limit: no piece of the heap larger than that for the segment reader from the load
    # on. 600: the second segment (740 bytes) is read in windows of the first one's
    # buffer (470); 200: the load finds no room for the first either, and both are read
    # in windows of 128 bytes. Damage is told from a record running past a window
    r = run_device("dev_store_more.py", cfg(broker, tmp_path / "flash.img", "segdamage",
                                            LIMIT=limit), heap=HEAP)
    assert sum("mqttsession: store:" in ln and "/q/" in ln for ln in r.lines) == 2
    assert int(r.value("BUFFER")) == buffer, r.out


@pytest.mark.parametrize("limit", [0, 1500])
def test_backlog_records_larger_than_a_window(broker: Broker, tmp_path: Path,
                                              limit: int) -> None:
    # records of 22 to 1,282 bytes; limit: no piece of the heap over 1,500 bytes for the
    # segment reader, so the load reads in windows of 128 bytes, grown for each larger
    # record (tests/device/dev_store_more.py, segbig)
    r = run_device("dev_store_more.py", cfg(broker, tmp_path / "flash.img", "segbig",
                                            LIMIT=limit), heap=HEAP)
    most = int(r.value("BUFFER"))
    assert 1282 <= most <= 1500 if limit else most > 1500, r.out


def test_damaged_sizes_in_segment_names(broker: Broker, tmp_path: Path) -> None:
    # a segment's name says 16 MB, another's 16 bytes: each read as the file is, reported
    # once, every message drained in order (tests/device/dev_store_more.py, segname)
    r = run_device("dev_store_more.py", cfg(broker, tmp_path / "flash.img", "segname"),
                   heap=HEAP)
    assert sum(ln.startswith("mqttsession: store:") and "its name says" in ln
               and ln.endswith("- read as it is") for ln in r.lines) == 2, r.out


def test_segments_that_are_not_segments(broker: Broker, tmp_path: Path) -> None:
    # the first bytes of two segments overwritten (the oldest, read at the load, and the
    # third): each reported once as "not a segment"; the rest drains in order
    # (tests/device/dev_store_more.py, segmagic)
    r = run_device("dev_store_more.py", cfg(broker, tmp_path / "flash.img", "segmagic"),
                   heap=HEAP)
    assert sum(ln.startswith("mqttsession: store:") and "not a segment" in ln
               for ln in r.lines) == 2, r.out


def test_window_larger_than_the_ram_ring(broker: Broker, tmp_path: Path) -> None:
    # SessionStore(ram=2) under window=4: the window is the ring, nothing raises
    r = run_device("dev_store_more.py", cfg(broker, tmp_path / "flash.img", "wide_window"),
                   heap=HEAP)
    assert 0 < int(r.values("MOST_IN_FLIGHT")[0][0]) <= 2


def test_set_aside_in_flash(broker: Broker, tmp_path: Path) -> None:
    r = run_device("dev_store_more.py", cfg(broker, tmp_path / "flash.img", "aside"),
                   heap=HEAP)
    assert r.values("ASIDE")[0][0] == "42"


def test_damaged_set_aside_list_is_reported_once(broker: Broker, tmp_path: Path) -> None:
    # read 20 times after the load (client.aside()): still one report in store.errors
    r = run_device("dev_store_more.py", cfg(broker, tmp_path / "flash.img", "aside_damage"),
                   heap=HEAP)
    assert r.values("REPORTS") == [["1"]], r.out


@pytest.mark.parametrize("version", [4, 5])
def test_queued_payload_is_not_the_callers_buffer(broker: Broker, tmp_path: Path,
                                                  version: int) -> None:
    c = cfg(broker, tmp_path / "flash.img", "alias", version)
    with Observer(broker.host, broker.port, f"alias{version}/#", qos=2) as obs:
        run_device("dev_store_more.py", c, heap=HEAP)
        obs.wait_for(2)
    assert sorted(obs.payloads()) == [b"first", b"secnd"]


@pytest.mark.parametrize("take", ["session", "blocking", "plain", "coro", "messages"])
def test_qos2_record_the_store_cannot_make(broker: Broker, tmp_path: Path, take: str) -> None:
    # every flash write fails while a QoS 2 message arrives: not delivered, not answered,
    # the link goes; once the flash writes again the broker's resend delivers it once
    # (the blocking client's callback; the asyncio client's plain callback, coroutine
    # callback and messages()); "session": the record and the release alone
    c = cfg(broker, tmp_path / "flash.img", "rx2fail", TAKE=take, PREFIX=f"rx2fail{take}",
            CID=f"rx2fail{take}")
    r = run_device("dev_rx2_fail.py", c, heap=HEAP, timeout=120)
    if take != "session":
        assert r.value("GOT") == "m0 m1 m2", r.out
        # link.last_error: the store's error (the block device's EIO), not a reset
        assert r.value("LAST") == "5", r.out
