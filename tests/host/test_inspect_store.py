"""tools/inspect_store.py on a store written by lib/mqttsession on the MicroPython unix port:
read from the littlefs image and from a directory copied out of it, checked against what
the device itself loads, and with damaged files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from ast import literal_eval
from pathlib import Path
from typing import Any

import littlefs
import pytest
from littlefs.context import UserContext

import inspect_format
import inspect_report
import inspect_store

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "inspect_store.py"
MICROPYTHON = Path(sys.executable).parent / "micropython"
BLOCK = 4096

# Builds the store, then loads every session again as get() does after a reboot and
# prints what the device ended up with ("LOADED" lines), for the tool to agree with.
BUILD = """\
import blockdev
blockdev.mount("flash.img", "/flash", block_count=64, prog_size=32)
from mqttsession import SessionStore

store = SessionStore("/flash/.mqtt")
s = store.get("broker.local", "node-1")
s.version = 5
s.expiry = 3600
s.connected()
s.sub(b"a/#", 1)
s.sub(b"b/+/c", 2)
k = s.add(b"t/x", b"payload", 1, False); s._keep(k)
k = s.add(b"t/bin", b"\\x00\\x01bin" + b"z" * 60, 1, True); s.assign(k); s._keep(k)
k = s.add(b"t/q2", b"two", 2, False); s.assign(k); s._keep(k)
k = s.add(b"t/rel", b"released", 2, False); s.assign(k); s._keep(k)
s.acked(s.ids[k], True)
s.rx2_add(9)
s.rx2_add(12)
with open("/flash/.mqtt/broker.local/node-1/u.t", "wb") as f:
    f.write(b"MQu")  # an atomic replace cut short

# the broker lost the session: the ID kept with the message is void (epoch 1)
e = store.get("broker.local", "node-2")
k = e.add(b"old", b"x", 1, False); e.assign(k); e._keep(k)
e.restart(False)

o = store.get("a host name that is not plain", b"\\xffid")
k = o.add(b"q", b"", 1, False); o._keep(k)
store.null_session("other.host")
k = o.add(b"t/aside", b"poison", 1, False); o._keep(k)
from mqttsession.aside import set_aside
set_aside(o, k, "refused")

store = SessionStore("/flash/.mqtt")
for h, c in (("broker.local", "node-1"), ("broker.local", "node-2"),
             ("a host name that is not plain", b"\\xffid")):
    s = store.get(h, c)
    # (flag 8, sent: the ID the broker may know, with which it goes out again; 16 released)
    live = [(s.seq[k], s.ids[k] if s.fl[k] & 8 else None, bool(s.fl[k] & 16))
            for k in s.live()]
    print("LOADED", repr(c), repr(live), s.pid, s.epoch, s.nseq, repr(s.rx2))
print("ERRORS", len(store.errors))
"""


def _run_micropython(code: str, cwd: Path, heap: str = "256k") -> str:
    if not MICROPYTHON.is_file():
        pytest.skip("micropython (unix port) not installed next to this interpreter")
    script = cwd / "build_store.py"
    script.write_text(code)
    env = dict(os.environ, MICROPYPATH=f".frozen:{ROOT / 'lib'}:{ROOT / 'boards' / 'unix'}")
    r = subprocess.run([str(MICROPYTHON), "-X", f"heapsize={heap}", str(script)], cwd=cwd,
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    d = tmp_path_factory.mktemp("store")
    out = _run_micropython(BUILD, d)
    return d / "flash.img", out


@pytest.fixture
def image(built: tuple[Path, str], tmp_path: Path) -> Path:
    p = tmp_path / "flash.img"
    shutil.copyfile(built[0], p)
    return p


def _open(img: Path) -> littlefs.LittleFS:
    data = bytearray(img.read_bytes())
    fs = littlefs.LittleFS(context=UserContext(buffer=data), block_size=BLOCK,
                           block_count=len(data) // BLOCK, prog_size=32, read_size=32,
                           mount=False)
    fs.mount()
    return fs


def _save(fs: littlefs.LittleFS, img: Path) -> None:
    img.write_bytes(bytes(fs.context.buffer))


def _extract(img: Path, dest: Path) -> Path:
    """The whole image as a directory tree, as mpremote cp -r leaves it."""
    fs = _open(img)
    for top, _dirs, files in fs.walk("/"):
        d = dest / top.strip("/")
        d.mkdir(parents=True, exist_ok=True)
        for n in files:
            with fs.open(f"{top.rstrip('/')}/{n}", "rb") as f:
                (d / n).write_bytes(f.read())
    return dest


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    rc = inspect_store.main([*args, "--json"])
    return rc, json.loads(capsys.readouterr().out)


def sessions(rep: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["client_id"] or s["dir"]: s for st in rep["stores"] for h in st["hosts"]
            for s in h["sessions"]}


Loaded = tuple[list[tuple[int, int | None, bool]], int, int, int, list[int]]


def loaded(out: str) -> dict[str, Loaded]:
    """The device's view: client ID -> (messages, last pid, epoch, next sequence, rx2)."""
    res = {}
    for line in out.splitlines():
        if line.startswith("LOADED "):
            cid, rest = line[7:].split(" ", 1)
            live, rest = rest.split("] ", 1)
            pid, epoch, nseq, rx2 = rest.split(" ", 3)
            c = literal_eval(cid)
            key = c if isinstance(c, str) else c.decode("utf-8", "backslashreplace")
            res[key] = (literal_eval(live + "]"), int(pid), int(epoch), int(nseq),
                        literal_eval(rx2))
    return res


def check_node1(s: dict[str, Any]) -> None:
    assert s["host"] == "broker.local" and s["client_id"] == "node-1" and s["last"] is False
    assert (s["version"], s["expiry"]) == (5, 3600)
    assert s["subscriptions"] == [{"filter": "a/#", "qos": 1}, {"filter": "b/+/c", "qos": 2}]
    assert s["rx2"] == [9, 12] and s["epoch"] == 0 and s["last_pid"] == 3
    assert s["releases"] == [{"seq": 3, "pid": 3, "released": True}]
    msgs = [(m["seq"], m["qos"], m["retain"], m["pid"], m["released"], m["topic"], m["length"],
             m["preview"]) for m in s["messages"]]
    assert msgs == [
        (0, 1, False, None, False, "t/x", 7, "payload"),
        (1, 1, True, 1, False, "t/bin", 65, "..bin" + "z" * 27 + "..."),
        (2, 2, False, 2, False, "t/q2", 3, "two"),
        (3, 2, False, 3, True, "t/rel", 8, "released"),
    ]


def test_image_report_matches_device(built: tuple[Path, str], image: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    rc, rep = run_json(capsys, "--image", str(image))
    assert rc == 0 and rep["ok"] and rep["damaged"] == []
    assert [st["root"] for st in rep["stores"]] == ["/.mqtt"]
    hosts = {h["dir"]: h for h in rep["stores"][0]["hosts"]}
    assert set(hosts) == {"broker.local", inspect_format.key(b"a host name that is not plain"),
                          inspect_format.key(b"other.host")}
    assert hosts["broker.local"]["last"] == "node-2"
    ss = sessions(rep)
    check_node1(ss["node-1"])
    assert ss["node-2"]["last"] is True and ss["node-2"]["epoch"] == 1
    # the stored ID predates the broker's loss of the session: it goes out as new
    [m] = ss["node-2"]["messages"]
    assert (m["stored_pid"], m["stored_epoch"], m["pid"]) == (1, 0, None)
    odd = ss["\\xffid"]
    assert odd["host"] == "a host name that is not plain" and odd["last"] is True
    assert [(m["topic"], m["length"], m["pid"]) for m in odd["messages"]] == [("q", 0, None)]
    null = ss["~null"]
    assert null["null"] and null["client_id"] is None and null["damaged"] == []
    assert rep["leftovers"] == ["/.mqtt/broker.local/node-1/u.t"]

    # the device loads the same packet IDs, releases and incoming QoS 2 state
    dev = loaded(built[1])
    assert "ERRORS 0" in built[1] and len(dev) == 3
    for cid, (live, pid, epoch, nseq, rx2) in dev.items():
        s = ss[cid]
        assert [(m["seq"], m["pid"], m["released"]) for m in s["messages"]] == live
        assert (s["last_pid"], s["epoch"], s["next_seq"], s["rx2"]) == (pid, epoch, nseq, rx2)


def test_directory_copy(image: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree = _extract(image, tmp_path / "copy")
    # the copied store itself, and the directory holding it
    for d in (tree / ".mqtt", tree):
        rc, rep = run_json(capsys, "--dir", str(d))
        assert rc == 0, rep
        check_node1(sessions(rep)["node-1"])
        assert rep["leftovers"][0].endswith("/broker.local/node-1/u.t")


def test_root_found_or_given(image: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fs = _open(image)
    fs.rename("/.mqtt", "/.mqtt-test")
    fs.mkdir("/lib")
    with fs.open("/lib/x.py", "w") as f:
        f.write("x = 1\n")
    _save(fs, image)
    for extra in ([], ["--root", "/.mqtt-test"]):
        rc, rep = run_json(capsys, "--image", str(image), *extra)
        assert rc == 0 and [st["root"] for st in rep["stores"]] == ["/.mqtt-test"]
        check_node1(sessions(rep)["node-1"])
    assert inspect_store.main(["--image", str(image), "--root", "/.mqtt"]) == 2


def test_damaged_message_reported_rest_listed(image: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    fs = _open(image)
    path = "/.mqtt/broker.local/node-1/t1/0"
    with fs.open(path, "rb") as f:
        data = bytearray(f.read())
    data[-6] ^= 0x55  # a payload byte: the record's checksum no longer matches
    with fs.open(path, "wb") as f:
        f.write(inspect_format.pack(b"t", bytes(data[4:-4]), 2))
    with fs.open("/.mqtt/broker.local/node-2/hot", "wb") as f:
        f.write(b"MQs\x02\x00")  # hot state cut short
    bad_name = "/.mqtt/broker.local/node-1/q/xyz00001"
    with fs.open(bad_name, "wb") as f:
        f.write(b"MQg\x02")
    _save(fs, image)

    rc, rep = run_json(capsys, "--image", str(image))
    assert rc == 1 and not rep["ok"]
    assert rep["damaged"] == [
        {"path": bad_name, "reason": "not a segment"},
        {"path": path, "reason": "bad record at offset 0"},
        {"path": "/.mqtt/broker.local/node-2/hot", "reason": "too short (5 bytes)"},
    ]
    ss = sessions(rep)
    n1 = ss["node-1"]
    assert [m["seq"] for m in n1["messages"]] == [0, 2, 3]
    assert [d["path"] for d in n1["damaged"]] == [bad_name, path]
    assert n1["subscriptions"][0] == {"filter": "a/#", "qos": 1}
    # without its hot state the device starts at epoch 0, where the old ID counts again
    n2 = ss["node-2"]
    assert n2["hot_state"] == "damaged" and n2["messages"][0]["pid"] == 1
    assert "\\xffid" in ss and "~null" in ss

    # the text report names the file and the reason too, and still lists the others
    assert inspect_store.main(["--image", str(image)]) == 1
    out = capsys.readouterr().out
    assert f"{path}: bad record at offset 0" in out and "t/q2" in out and "node-2" in out

    # the device agrees (README: a damaged hot assumes epoch 0): node-2's message goes
    # out again with the packet ID its record holds, as a resend
    out = _run_micropython(LOAD_NODE2, image.parent)
    assert "NODE2 [(1, True)] 0 []" in out, out


LOAD_NODE2 = """\
import blockdev
blockdev.mount("flash.img", "/flash", block_count=64, prog_size=32)
from mqttsession import SessionStore

s = SessionStore("/flash/.mqtt").get("broker.local", "node-2")
print("NODE2", [(s.ids[k], bool(s.fl[k] & 8)) for k in s.live()], s.epoch, s.rx2)
"""


# Loads the sessions of a damaged image as a node would and prints what the library
# reported as damage (the path of each report).
LOAD_DAMAGED = """\
import blockdev
blockdev.mount("flash.img", "/flash", block_count=64, prog_size=32)
from mqttsession import SessionStore

store = SessionStore("/flash/.mqtt")
store.get("broker.local")
for c in ("node-1", "node-2"):
    store.get("broker.local", c)
for e in store.errors:
    print("REPORTED", e.split(": ", 1)[0].rstrip("/"))
"""


def test_misshapen_entries_are_damage(image: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a directory where a file belongs (hot, last, a tail message) or a file where a
    # directory belongs (q): damage, as the library reports it, not an unexpected entry
    fs = _open(image)
    n1, n2 = "/.mqtt/broker.local/node-1", "/.mqtt/broker.local/node-2"
    for d in (f"{n1}/hot", "/.mqtt/broker.local/last", f"{n1}/t1/0"):
        fs.remove(d)
        fs.mkdir(d)
        with fs.open(f"{d}/junk", "wb") as f:
            f.write(b"j")
    for n in fs.listdir(f"{n2}/q"):
        fs.remove(f"{n2}/q/{n}")
    fs.rmdir(f"{n2}/q")
    with fs.open(f"{n2}/q", "wb") as f:
        f.write(b"not a directory")
    _save(fs, image)
    damaged = {f"{n1}/hot", "/.mqtt/broker.local/last", f"{n1}/t1/0", f"{n2}/q"}

    rc, rep = run_json(capsys, "--image", str(image))
    assert rc == 1 and not rep["ok"]
    assert {d["path"] for d in rep["damaged"]} == damaged, rep["damaged"]
    assert {d["reason"] for d in rep["damaged"]} == {inspect_format.NOT_A_FILE,
                                                     inspect_format.NOT_A_DIR}
    ss = sessions(rep)
    assert ss["node-1"]["hot_state"] == "damaged" and ss["node-1"]["unknown"] == []
    assert [m["seq"] for m in ss["node-1"]["messages"]] == [0, 2, 3]
    assert not any(s["dir"] == "last" for s in ss.values())
    assert inspect_store.main(["--image", str(image)]) == 1
    out = capsys.readouterr().out
    assert "No damaged files" not in out and "unexpected entry" not in out
    assert f"{n1}/hot: {inspect_format.NOT_A_FILE}" in out

    # the library, loading the same image, reports the same entries
    out = _run_micropython(LOAD_DAMAGED, image.parent)
    reported = {ln.split(" ", 1)[1].removeprefix("/flash") for ln in out.splitlines()
                if ln.startswith("REPORTED ")}
    assert reported == damaged, out


# Loads node-1 twice as a node would, queueing one message in between, and prints
# what the library reported and what it loaded.
LOAD_TAIL = """\
import blockdev
blockdev.mount("flash.img", "/flash", block_count=64, prog_size=32)
from mqttsession import SessionStore

for rnd in (1, 2):
    store = SessionStore("/flash/.mqtt")
    s = store.get("broker.local", "node-1")
    for e in store.errors:
        print("REPORTED", rnd, e.split(": ", 1)[0])
    print("PENDING", rnd, repr(sorted(s.msg[k] for k in s.live())))
    if rnd == 1:
        k = s.add(b"t/after", b"after", 1, False)
        s._keep(k)
"""


def test_empty_tail_file_is_a_write_cut_short_not_damage(
        image: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a tail write creates its file, then commits the content: a power cut or a full
    # filesystem between the two leaves an empty file, and that publish never returned.
    # Nothing stored is missing, so neither the library nor the tool reports it; a tail
    # file cut short anywhere else is damage for both, and the rest loads
    fs = _open(image)
    n1 = "/.mqtt/broker.local/node-1"
    with fs.open(f"{n1}/t0/1", "wb"):
        pass  # slot 4: the next tail file, created and never written
    with fs.open(f"{n1}/t0/0", "rb") as f:
        data = f.read()
    with fs.open(f"{n1}/t1/1", "wb") as f:
        f.write(data[:5])  # slot 5: cut short after its first bytes
    _save(fs, image)

    rc, rep = run_json(capsys, "--image", str(image))
    assert rc == 1 and [d["path"] for d in rep["damaged"]] == [f"{n1}/t1/1"], rep["damaged"]
    assert [m["seq"] for m in sessions(rep)["node-1"]["messages"]] == [0, 1, 2, 3]

    out = _run_micropython(LOAD_TAIL, image.parent)
    reported = [ln.split(" ", 2)[1:] for ln in out.splitlines() if ln.startswith("REPORTED ")]
    # reported once: removed with it (README: "removed where it is the store's own name")
    assert reported == [["1", f"/flash{n1}/t1/1"]], out
    pending = [literal_eval(ln.split(" ", 2)[2]) for ln in out.splitlines()
               if ln.startswith("PENDING ")]
    four = sorted([b"payload", b"\x00\x01bin" + b"z" * 60, b"two", b"released"])
    assert pending == [four, sorted([*four, b"after"])], out


def test_missing_tail_file_below_a_later_one_is_damage_reported_once(
        image: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # littlefs dropping a tail directory's newest commits (a damaged byte in its
    # metadata) can leave no file in a slot below one holding a later message: that
    # message is lost, reported by the tool and the library. The library seals the tail
    # at that load, so the next load meets no gap and reports nothing
    fs = _open(image)
    n1 = "/.mqtt/broker.local/node-1"
    fs.remove(f"{n1}/t1/0")  # slot 1 (seq 1), below slots 2 and 3
    _save(fs, image)

    rc, rep = run_json(capsys, "--image", str(image))
    assert rc == 1 and [d["path"] for d in rep["damaged"]] == [f"{n1}/t1/0"], rep["damaged"]
    assert [m["seq"] for m in sessions(rep)["node-1"]["messages"]] == [0, 2, 3]

    out = _run_micropython(LOAD_TAIL, image.parent)
    reported = [ln.split(" ", 2)[1:] for ln in out.splitlines() if ln.startswith("REPORTED ")]
    assert reported == [["1", f"/flash{n1}/t1/0"]], out
    pending = [literal_eval(ln.split(" ", 2)[2]) for ln in out.splitlines()
               if ln.startswith("PENDING ")]
    three = sorted([b"payload", b"two", b"released"])
    assert pending == [three, sorted([*three, b"after"])], out


# Loads node-2 (the session the host's "last" file names), then node-1, twice, and
# prints what the library reported each round.
LOAD_EMPTIED = """\
import blockdev
blockdev.mount("flash.img", "/flash", block_count=64, prog_size=32)
from mqttsession import SessionStore

for rnd in (1, 2):
    store = SessionStore("/flash/.mqtt")
    for c in ("node-2", "node-1"):
        print("PENDING", rnd, c, store.get("broker.local", c).pending())
    for e in store.errors:
        print("REPORTED", rnd, e.split(": ", 1)[0])
"""


def test_session_directory_that_lost_its_files_is_damage(
        image: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # littlefs dropping a session directory's newer commits (a damaged byte in its
    # metadata) can take every file in it. node-2, which the host's "last" file names
    # (written only once a session's identity is), emptied: its identity is reported
    # missing, by the tool and once by the library. node-1 emptied too, not named: a
    # session a power cut left before its identity was written, a note, not damage
    fs = _open(image)
    n1, n2 = "/.mqtt/broker.local/node-1", "/.mqtt/broker.local/node-2"
    for d in (n1, n2):
        for n in fs.listdir(d):
            fs.remove(f"{d}/{n}", recursive=True)
    _save(fs, image)

    rc, rep = run_json(capsys, "--image", str(image))
    assert rc == 1 and [(d["path"], d["reason"]) for d in rep["damaged"]] == [
        (f"{n2}/id", inspect_format.ID_LOST)], rep["damaged"]
    assert inspect_format.NO_ID in sessions(rep)["node-1"]["notes"]

    out = _run_micropython(LOAD_EMPTIED, image.parent)
    reported = [ln.split(" ", 2)[1:] for ln in out.splitlines() if ln.startswith("REPORTED ")]
    assert reported == [["1", f"/flash{n2}/id"]], out
    assert {ln for ln in out.splitlines() if ln.startswith("PENDING ")} == {
        f"PENDING {r} node-{i} 0" for r in (1, 2) for i in (1, 2)}, out


def test_session_set_aside_as_newer_is_not_damage(image: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    # SessionStore(newer="aside") renames a session of a newer format to <dir>~new (then
    # ~new1...), kept and never read: the tool says so, and reports no damage for it
    fs = _open(image)
    n2 = "/.mqtt/broker.local/node-2"
    with fs.open(f"{n2}/id", "rb") as f:
        ident = bytearray(f.read())
    ident[3] = 3  # a newer format
    for d in (f"{n2}~new", f"{n2}~new1"):
        fs.mkdir(d)
        with fs.open(f"{d}/id", "wb") as f:
            f.write(ident)
    _save(fs, image)
    rc, rep = run_json(capsys, "--image", str(image))
    assert rc == 0 and rep["damaged"] == [], rep["damaged"]
    ss = {s["dir"]: s for st in rep["stores"] for h in st["hosts"] for s in h["sessions"]}
    for d in ("node-2~new", "node-2~new1"):
        assert any("newer='aside'" in n for n in ss[d]["notes"]), ss[d]
    assert ss["node-2"]["damaged"] == []
    assert inspect_store.main(["--image", str(image)]) == 0
    out = capsys.readouterr().out
    assert "session node-2~new1\n    note: a session of a newer store format" in out, out


def test_command_line(image: Path, tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True,
                              text=True, timeout=60)

    r = run("--image", str(image))
    assert r.returncode == 0, r.stderr
    assert "session node-1" in r.stdout and "MQTT 5 (5)" in r.stdout
    assert "leftover" in r.stdout and "No damaged files." in r.stdout
    assert run().returncode == 2  # neither --image nor --dir
    assert run("--image", str(tmp_path / "absent.img")).returncode == 2
    junk = tmp_path / "junk.img"
    junk.write_bytes(b"\x00" * (4 * BLOCK))
    r = run("--image", str(junk))
    assert r.returncode == 2 and "does not mount" in r.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run("--dir", str(empty))
    assert r.returncode == 2 and "no session store" in r.stderr


def test_file_parsers() -> None:
    p, u = inspect_format.pack, inspect_format.unpack
    assert u(b"l", p(b"l", b"node-1")) == b"node-1"
    with pytest.raises(inspect_format.Damaged, match="not a m file"):
        u(b"m", p(b"s", b"x" * 9))
    with pytest.raises(inspect_format.Damaged, match="truncated"):
        inspect_format.parse_message(b"\x01\x00\x00\x00\x00\x09\x00t/x")
    with pytest.raises(inspect_format.Damaged, match="QoS 2 entries"):
        inspect_format.parse_hot(b"\x00" * 8 + b"\x00" + b"\x01\x00")
    h = inspect_format.parse_hot(b"\x05\x00\x02\x00\x07\x00\x00\x00\x01\x09\x00"
                                b"\x06\x00\x00\x00\x04\x00\x01")
    assert (h.pid, h.epoch, h.nseq, h.rx2, h.out) == (5, 2, 7, [9], {6: (4, True)})
    assert inspect_report.preview(b"ab\ncd", 4) == "ab.c..."


FIXTURES = ROOT / "tests" / "fixtures"


def test_format_1_fixture_read_and_named(capsys: pytest.CaptureFixture[str]) -> None:
    # the store 0.1.0 wrote (tests/fixtures/make_v1.py): read as it is, format named
    rc, rep = run_json(capsys, "--image", str(FIXTURES / "store-v1.img"))
    assert rc == 0 and rep["ok"]
    ss = sessions(rep)
    assert {s["format"] for s in ss.values()} == {1}
    a = ss["node-a"]
    assert [m["preview"] for m in a["messages"]] == [
        "queued-0", "queued-1", "queued-2", "two-sent", "released", "sent-once"]
    assert [(m["pid"], m["released"]) for m in a["messages"]][3:] == [
        (1, False), (2, True), (3, False)]
    assert a["rx2"] == [9, 12] and a["version"] == 5 and a["expiry"] == 3600
    assert [m["preview"] for m in ss["\\xffid"]["messages"]] == ["odd-one"]
    assert inspect_store.main(["--image", str(FIXTURES / "store-v1.img")]) == 0
    out = capsys.readouterr().out
    assert "format 1" in out and "migrates it to format 2" in out
    # MQTT 3.1.1 has no session expiry: the broker keeps the session until a clean
    # connect, which the report says instead of "0 s"
    assert "session expiry  kept by the broker until a clean connect" in out
    assert "session expiry  0 s" not in out


def test_format_2_named_and_set_aside_listed(built: tuple[Path, str], image: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    rc, rep = run_json(capsys, "--image", str(image))
    assert {s["format"] for s in sessions(rep).values()} == {2}
    assert inspect_store.main(["--image", str(image)]) == 0
    out = capsys.readouterr().out
    assert ": format 2" in out and "set aside       1 ever, 1 kept" in out
    assert "t/aside  'poison' (6 bytes): refused" in out


# Store shapes the library itself leaves, built on the unix port: segments whose seq
# ranges overlap (0.2.23's _keep; mended at load by qmend.py, their sealed copies still
# in the tail), 0.2.23's held message still in the tail below a sealed segment (one, and
# two back to back at the tail's end; and a copy of this library's own that looks like
# one), a seal
# the power cut interrupted (the newest segment cut short, the tail holding all of it), a
# segment cut short that is damage, a delete() interrupted after its rename (<dir>.t), a
# session moved aside to "<ID>~old" cut before its identity was rewritten, a hot-state
# watermark lagging behind segment removal, and (damage) a tail file back at a sealed
# message, as littlefs leaves one when a damaged byte drops its directory's newest
# commits, and likewise the newest segment gone.
SHAPES = """\
import os
import blockdev
blockdev.mount("flash.img", "/flash", block_count=192, prog_size=32)
from mqttsession import SessionStore, dirs
from mqttsession.stored import StoredSession, append

def keep_0223(self, k):
    # StoredSession._keep as 0.2.23 had it (tests/device/dev_store_overlap_upgrade.py)
    f = self.fl[k]
    if f & 32:
        return
    append(self, self.seq[k], f & 7, self.ids[k] if f & 64 else 0, self.epoch,
           self.top[k], self.msg[k])
    if k == self.cap:
        if not self.more:
            self._cur = self.seq[k]
        self.more += 1
        self.fl[k] = 0
        self.top[k] = self.msg[k] = None
    else:
        self.fl[k] = f | 32 | (128 if f & 64 else 0)

def cut(s):
    q = sorted(os.listdir(s._p + "/q"))[-1]
    b = open(s._p + "/q/" + q, "rb").read()
    with open(s._p + "/q/" + q, "wb") as f:
        f.write(b[: len(b) // 2])

st = SessionStore("/flash/.mqtt", max_bytes=200000, ram=8)
keep = StoredSession._keep
StoredSession._keep = keep_0223
# m0 in flight (its packet ID given) while m1..m39 are queued, then held after them (into
# the tail), then more queued up to n: "ovl" seals m0 with newer ones (n 70), "held"
# stops with m0 still in the tail (n 45)
for c, n in ((b"ovl", 70), (b"held", 45)):
    s = st.get("h", c, 128)
    kx = s.add(b"t", b"m0", 1, False)
    s.assign(kx)
    for i in range(1, n):
        s._keep(s.add(b"t", b"m%d" % i, 1, False))
        if i == 39:
            s.hold(kx, s.seq[kx])
# "held2": h0 and h1 in flight while h2..h40 are queued, then both held (slot after slot
# at the tail's end, nothing behind them)
s = st.get("h", b"held2", 128)
kx = [s.add(b"t", b"h%d" % i, 1, False) for i in range(2)]
for k in kx:
    s.assign(k)
for i in range(2, 41):
    s._keep(s.add(b"t", b"h%d" % i, 1, False))
for k in kx:
    s.hold(k, s.seq[k])
StoredSession._keep = keep
s = st.get("h", b"seal", 128)
for i in range(32):
    s._keep(s.add(b"t", b"s%d" % i, 1, False))
cut(s)
s = st.get("h", b"short", 128)
for i in range(40):
    s._keep(s.add(b"t", b"c%d" % i, 1, False))
cut(s)
s = st.get("h", b"del", 128)
s._keep(s.add(b"t", b"d0", 1, False))
os.rename(s._p, s._p + ".t")
s = st.get("h", b"old", 128)
s._keep(s.add(b"t", b"o0", 1, False))
os.rename(s._p, dirs.sdir(st, "/flash/.mqtt/h", b"old~old"))
s = st.get("h", b"lag", 128)
for i in range(100):
    s._keep(s.add(b"t", b"l%d" % i, 1, False))
for i in range(33):
    k = s.live()[0]
    s.assign(k)
    s.acked(s.ids[k], False)
s = st.get("h", b"rolled", 128)
for i in range(40):
    if i == 32:
        old = open(s._p + "/t2/0", "rb").read()  # slot 2 after the first seal: seq 2
    s._keep(s.add(b"t", b"r%d" % i, 1, False))
with open(s._p + "/t2/0", "wb") as f:
    f.write(old)  # t2's newest commit dropped (littlefs, a damaged byte): seq 34 lost
s = st.get("h", b"qlost", 128)
for i in range(70):
    s._keep(s.add(b"t", b"g%d" % i, 1, False))
os.remove(s._p + "/q/" + sorted(os.listdir(s._p + "/q"))[-1])  # [32..63], gone with
# q's newest commits: its messages 38..63 are still in the tail, 32..37 overwritten
s = st.get("h", b"copy", 128)  # a copy in the tail that looks like 0.2.23's held one
for i in range(32):
    k = s.add(b"t", b"y%d" % i, 1, False)
    if i == 1:
        s.assign(k)  # y1 in flight: written with its packet ID
        s.hold(k, s.seq[k])
    else:
        s._keep(k)
s._keep(s.add(b"t", b"Y" * 3100, 1, False))  # a segment alone
s._keep(s.add(b"t", b"y33", 1, False))
for i in range(32):  # the first segment complete and removed, the watermark behind it
    k = s.live()[0]
    if not s.ids[k]:
        s.assign(k)
    s.acked(s.ids[k], False)
print("BUILT")
"""

# Loads each session as get() does after a reboot and drains it: the seqs it sends, in
# order, and what it reported.
LOAD_SHAPES = """\
import blockdev
blockdev.mount("flash.img", "/flash", block_count=192, prog_size=32)
from mqttsession import SessionStore

st = SessionStore("/flash/.mqtt", max_bytes=200000, ram=8)
for c in (b"ovl", b"held", b"held2", b"copy", b"seal", b"short", b"lag", b"old~old", b"rolled",
          b"qlost"):
    s = st.get("h", c, 128)
    got = []
    while s.live():
        k = s.live()[0]
        got.append(s.seq[k])
        s.assign(k)
        s.acked(s.ids[k], False)
    print("LOADED", c.decode(), repr(got))
for e in st.errors:
    print("REPORTED", e.split(": ", 1)[0][len("/flash"):])
"""


def test_library_shapes_report_what_the_library_loads(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "BUILT" in _run_micropython(SHAPES, tmp_path)
    img = tmp_path / "flash.img"
    rc, rep = run_json(capsys, "--image", str(img))  # before the library mends it
    shutil.copyfile(img, tmp_path / "before.img")
    out = _run_micropython(LOAD_SHAPES, tmp_path)
    dev = {ln.split(" ", 2)[1]: literal_eval(ln.split(" ", 2)[2]) for ln in out.splitlines()
           if ln.startswith("LOADED ")}
    reported = [ln.split(" ", 1)[1] for ln in out.splitlines() if ln.startswith("REPORTED ")]
    assert dev["ovl"] == list(range(70)) and dev["seal"] == list(range(32)), out
    assert dev["held"] == list(range(45)) and dev["copy"] == [32, 33], out
    assert dev["held2"] == list(range(41)), out
    assert dev["rolled"] == [x for x in range(40) if x != 34], out
    assert dev["qlost"] == [*range(32), *range(38, 70)], out
    ss = sessions(rep)
    # the half-deleted session is no session: never loaded, and not damage
    assert set(ss) == set(dev), ss.keys()
    for cid, seqs in dev.items():
        assert [m["seq"] for m in ss[cid]["messages"]] == seqs, cid
    # the same damage: the segment cut short that was no cut seal, the tail slot rolled
    # back to a sealed message, and nothing else
    assert sorted(d["path"] for d in rep["damaged"]) == sorted(reported), (rep["damaged"], out)
    assert rc == 1 and len(reported) == 3, out
    assert any("/h/short/q/" in x for x in reported), out
    assert any(x.endswith("/h/rolled/t2/0") for x in reported), out
    assert any(x.endswith("/h/qlost/q") for x in reported), out
    assert rep["leftovers"] == ["/.mqtt/h/del.t"]
    assert any("moved aside" in n for n in ss["old~old"]["notes"])
    assert inspect_store.main(["--image", str(tmp_path / "before.img")]) == 1
    text_out = capsys.readouterr().out
    assert "leftover of an interrupted delete(): /.mqtt/h/del.t" in text_out


def test_negative_block_count_is_a_usage_error(tmp_path: Path) -> None:
    img = FIXTURES / "store-v1.img"
    r = subprocess.run([sys.executable, str(TOOL), "--image", str(img), "--block-count", "-1"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "--block-count" in r.stderr


# A session of four messages, then the tail file of seq 1 replaced by a well-formed one
# over 64 KB (no library writes one: the file of a foreign or broken writer).
BUILD_OVER_64K = """\
import binascii
import struct
import blockdev
blockdev.mount("flash.img", "/flash", block_count=128, prog_size=32)
from mqttsession import SessionStore
from mqttsession.store import pack

s = SessionStore("/flash/.mqtt").get("h", "big")
for i in range(4):
    s._keep(s.add(b"t", b"m%d" % i, 1, False))
t, m = b"t/" + b"x" * 200, b"y" * 65500
r = struct.pack("<IBHHHH", 1, 1, 0, 0, len(t), len(m)) + t + m
r += struct.pack("<I", binascii.crc32(r))
with open("/flash/.mqtt/h/big/t1/0", "wb") as f:
    f.write(pack(b"t", r, 2))
print("BUILT")
"""

# Loads it as a node would: the seqs it sends, in order, and the paths it reported.
LOAD_OVER_64K = """\
import blockdev
blockdev.mount("flash.img", "/flash", block_count=128, prog_size=32)
from mqttsession import SessionStore

store = SessionStore("/flash/.mqtt")
s = store.get("h", "big")
print("SENT", [s.seq[k] for k in s.live()])
for e in store.errors:
    print("REPORTED", e.split(": ", 1)[0][len("/flash"):])
"""


def test_file_over_64k_is_damage_not_read(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    # README: anything over 64 KB (store._MAXF, 65600 bytes) is never read: the library
    # reports it and loads none of it, even a well-formed one
    assert "BUILT" in _run_micropython(BUILD_OVER_64K, tmp_path, "1m")
    before = tmp_path / "before.img"
    shutil.copyfile(tmp_path / "flash.img", before)  # the library removes what it reports
    out = _run_micropython(LOAD_OVER_64K, tmp_path, "1m")
    sent = literal_eval(out.split("SENT ", 1)[1].splitlines()[0])
    reported = [ln.split(" ", 1)[1] for ln in out.splitlines() if ln.startswith("REPORTED ")]
    assert sent == [0, 2, 3] and reported == ["/.mqtt/h/big/t1/0"], out

    for args in (["--image", str(before)], ["--dir", str(_extract(before, tmp_path / "c"))]):
        rc, rep = run_json(capsys, *args)
        assert [m["seq"] for m in sessions(rep)["big"]["messages"]] == sent, args
        assert rc == 1 and [d["path"] for d in rep["damaged"]] == reported, rep["damaged"]
        assert "larger than 65600 bytes" in rep["damaged"][0]["reason"]
