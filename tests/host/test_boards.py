"""Boards, packaging and the virtual board.

- manifest.py, package.json and __version__ agree, and package.json lists exactly
  the modules under lib/mqttsession;
- (the board manifests: test_manifests.py);
- every board's files compile with mpy-cross and offer the same board interface;
- the virtual board: mpremote cp/ls onto its littlefs, the image read back on the host
  with littlefs-python, a reboot keeps files and the unique ID, deep sleep and the
  virtual Wi-Fi, the block device's counters and power-cut simulation;
- mpremote mip install from the local package.json and over loopback HTTP, and
  tools/deploy.py with .mpy files;
- the example node on the ESP32-sized virtual board (needs SessionStore).
"""

from __future__ import annotations

import ast
import functools
import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import littlefs
import pytest

import deploy
import mpy
import package
import vboard
from manifest_eval import evaluate
from vboard import BOARDS, ESP32_HEAP, VirtualBoard

ROOT = Path(__file__).resolve().parents[2]
LIB = ROOT / "lib" / "mqttsession"
BOARD_DIRS = [ROOT / "boards" / b for b in ("esp32", "rp2040", "unix")]
PY = sys.executable
MICROPYTHON = str(Path(sys.executable).parent / "micropython")

HAS_CLIENT = (LIB / "client.py").exists()
HAS_STORE = "SessionStore" in (LIB / "__init__.py").read_text()
needs_client = pytest.mark.skipif(
    not HAS_CLIENT, reason="lib/mqttsession/client.py does not exist yet"
)
needs_store = pytest.mark.skipif(
    not HAS_STORE, reason="mqttsession does not export SessionStore yet"
)


# --------------------------------------------------------------------------------------
# Packaging


def _package_json() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOT / "package.json").read_text())
    return data


def test_package_json_lists_exactly_the_modules() -> None:
    data = _package_json()
    targets = sorted(t for t, _ in data["urls"])
    on_disk = sorted(p.relative_to(LIB.parent).as_posix() for p in LIB.rglob("*.py"))
    assert targets == on_disk, "run: python tools/package.py"
    for target, url in data["urls"]:
        assert not url.startswith(("http:", "https:", "github:", "/")), url
        assert url == f"lib/{target}"
        assert (ROOT / url).is_file(), url
    assert data["deps"] == []


def test_versions_agree() -> None:
    version = package.read_version()
    assert re.fullmatch(r"\d+\.\d+\.\d+([.-]?\w+)?", version), version
    assert _package_json()["version"] == version
    meta = evaluate(ROOT / "manifest.py", {}).metadata
    assert meta["version"] == version and meta.get("description")


def test_package_check_passes() -> None:
    r = subprocess.run(
        [PY, str(ROOT / "tools" / "package.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr


def test_package_check_detects_drift(tmp_path: Path) -> None:
    (tmp_path / "lib" / "mqttsession").mkdir(parents=True)
    (tmp_path / "lib" / "mqttsession" / "__init__.py").write_text('__version__ = "1.2.3"\n')
    (tmp_path / "manifest.py").write_text('metadata(version="1.2.3")\n')
    (tmp_path / "package.json").write_text(package.render(package.build(tmp_path)))
    assert package.check(tmp_path) == []
    (tmp_path / "lib" / "mqttsession" / "extra.py").write_text("")
    assert any("package.json" in m for m in package.check(tmp_path))
    (tmp_path / "manifest.py").write_text('metadata(version="1.2.4")\n')
    assert any("manifest.py" in m for m in package.check(tmp_path))
    synced = package.sync_manifest((tmp_path / "manifest.py").read_text(), "1.2.3")
    assert 'version="1.2.3"' in synced


# --------------------------------------------------------------------------------------
# Board files


def _board_sources() -> list[Path]:
    return sorted(p for d in BOARD_DIRS for p in d.glob("*.py"))


@pytest.mark.parametrize("src", _board_sources(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_board_file_compiles(src: Path, tmp_path: Path) -> None:
    r = subprocess.run(
        [mpy.mpy_cross(), "-O2", "-o", str(tmp_path / "out.mpy"), str(src)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr


INTERFACE = {
    "wifi_connect": ["ssid", "key", "timeout_ms"],
    "wifi_isconnected": [],
    "wifi_disconnect": [],
    "wifi_reason": [],
    "mount": [],
    "unique_id": [],
    "rtc_memory": ["data"],
    "reset_cause": [],
    "deepsleep": ["ms"],
    "wlan": [],
}


@pytest.mark.parametrize("board_dir", BOARD_DIRS, ids=lambda p: p.name)
def test_board_interface_is_common(board_dir: Path) -> None:
    tree = ast.parse((board_dir / "board.py").read_text())
    funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    names = {
        t.id
        for n in tree.body
        if isinstance(n, ast.Assign)
        for t in n.targets
        if isinstance(t, ast.Name)
    }
    assert "FS_ROOT" in names
    for name, params in INTERFACE.items():
        assert name in funcs, f"{board_dir.name}/board.py lacks {name}()"
        args = [a.arg for a in funcs[name].args.args]
        assert args[: len(params)] == params, f"{name}{tuple(args)}"
    wc = funcs["wifi_connect"].args
    defaults = dict(zip([a.arg for a in wc.args][-len(wc.defaults) :], wc.defaults, strict=True))
    timeout = defaults["timeout_ms"]
    assert isinstance(timeout, ast.Constant) and timeout.value == 15000
    # The link keeper calls wifi_connect(timeout_ms=...): the board remembers the network.
    for name in ("ssid", "key"):
        d = defaults[name]
        assert isinstance(d, ast.Constant) and d.value is None, name


@pytest.mark.parametrize("board_dir", BOARD_DIRS[:2], ids=lambda p: p.name)
def test_board_example_config_covers_main(board_dir: Path) -> None:
    used = set(re.findall(r"config\.([A-Z_]+)", (board_dir / "main.py").read_text()))
    example = ast.parse((board_dir / "config_example.py").read_text())
    defined = {
        t.id
        for n in example.body
        if isinstance(n, ast.Assign)
        for t in n.targets
        if isinstance(t, ast.Name)
    }
    assert used and used <= defined, used - defined


def test_mpy_build_table(tmp_path: Path) -> None:
    rows = mpy.compile_all(out=tmp_path, march="xtensawin")
    assert {r.output.name for r in rows} == {p.with_suffix(".mpy").name for p in mpy.sources()}
    assert all(r.output.is_file() and r.mpy_bytes > 0 for r in rows)
    text = mpy.table(rows)
    assert text.splitlines()[-1].split()[-1] == str(sum(r.mpy_bytes for r in rows))


# --------------------------------------------------------------------------------------
# The block device, directly on the unix port


def _run_micropython(code: str, tmp_path: Path, timeout: float = 30) -> str:
    script = tmp_path / "script.py"
    script.write_text(code)
    env = dict(os.environ, MICROPYPATH=f".frozen:{ROOT / 'boards' / 'unix'}")
    r = subprocess.run(
        [MICROPYTHON, str(script)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def _open_image(path: Path, prog: int = 32) -> littlefs.LittleFS:
    data = path.read_bytes()
    fs = littlefs.LittleFS(
        block_size=4096, block_count=len(data) // 4096, prog_size=prog, read_size=32, mount=False
    )
    fs.context.buffer = bytearray(data)
    fs.mount()
    return fs


def test_blockdev_counts_and_power_cut(tmp_path: Path) -> None:
    out = _run_micropython(
        """
import os, blockdev
bd = blockdev.mount("img", block_count=32, prog_size=256)
bd.reset_counts()
with open("/flash/a.txt", "w") as f:
    f.write("x" * 100)
print("COUNTS", bd.reads > 0, bd.progs, bd.prog_bytes, bd.erases)
before = open("img", "rb").read()
bd.fail_after = 0
try:
    with open("/flash/b.txt", "w") as f:
        f.write("y" * 100)
    print("NOFAIL")
except OSError as e:
    print("CUT", e.errno)
print("SAME", open("img", "rb").read() == before)
""",
        tmp_path,
    )
    counts = out.split("COUNTS ")[1].split()
    assert counts[0] == "True" and int(counts[1]) >= 1 and int(counts[2]) >= 256
    assert int(counts[2]) % 256 == 0  # littlefs programs whole prog units
    assert "CUT 5" in out and "SAME True" in out
    # After the "power cut" the image still mounts, with a.txt intact.
    fs = _open_image(tmp_path / "img", prog=256)
    with fs.open("a.txt", "r") as f:
        assert f.read() == "x" * 100


def test_blockdev_image_opens_on_host_and_back(tmp_path: Path) -> None:
    _run_micropython(
        """
import os, blockdev
blockdev.mount("img", block_count=16)
os.mkdir("/flash/lib")
with open("/flash/lib/m.py", "w") as f:
    f.write("X = 1\\n")
""",
        tmp_path,
    )
    fs = _open_image(tmp_path / "img")
    assert fs.listdir("/") == ["lib"]
    assert fs.listdir("/lib") == ["m.py"]
    # The other way: a file written by littlefs-python is read on the unix port.
    with fs.open("host.txt", "w") as f:
        f.write("from host")
    (tmp_path / "img").write_bytes(bytes(fs.context.buffer))
    out = _run_micropython(
        'import blockdev\nblockdev.mount("img")\nprint(open("/flash/host.txt").read())\n',
        tmp_path,
    )
    assert "from host" in out


# --------------------------------------------------------------------------------------
# The virtual board


@pytest.fixture
def make_board(tmp_path: Path) -> Iterator[Callable[..., VirtualBoard]]:
    made: list[VirtualBoard] = []

    def make(name: str = "flash.img", **kw: Any) -> VirtualBoard:
        kw.setdefault("heap", ESP32_HEAP)
        kw.setdefault("link", str(tmp_path / f"vb{len(made)}"))
        vb = VirtualBoard(tmp_path / name, **kw)
        made.append(vb)
        return vb.start()

    yield make
    for vb in made:
        vb.stop()


def test_vboard_cp_ls_then_host_reads_image(
    make_board: Callable[..., VirtualBoard], tmp_path: Path
) -> None:
    vb = make_board()
    src = tmp_path / "hello.py"
    src.write_text("print('hello from littlefs')\n")
    vb.mpremote("cp", str(src), ":hello.py")
    ls = vb.mpremote("ls").stdout
    assert re.search(r"\s29 hello\.py", ls), ls
    assert "hello from littlefs" in vb.exec("import hello")
    df = vb.mpremote("df").stdout
    assert re.search(r"VfsLfs2.*1048576", df), df
    vb.stop()
    assert not Path(vb.path).exists()
    fs = _open_image(tmp_path / "flash.img")
    assert "hello.py" in fs.listdir("/")
    with fs.open("hello.py", "r") as f:
        assert f.read() == src.read_text()


def test_vboard_reboot_keeps_files_and_unique_id(
    make_board: Callable[..., VirtualBoard], tmp_path: Path
) -> None:
    vb = make_board()
    vb.exec("f = open('keep.txt', 'w'); f.write('kept'); f.close()")
    uid = vb.exec("import board; print(board.unique_id().hex())").strip()
    assert re.fullmatch(r"[0-9a-f]{16}", uid)
    pid = vb.proc.pid if vb.proc else None
    vb.restart()
    assert vb.proc is not None and vb.proc.pid != pid and vb.boots == 2
    assert vb.exec("print(open('keep.txt').read())").strip() == "kept"
    assert vb.exec("import board; print(board.unique_id().hex())").strip() == uid
    # A second board on another image has another ID.
    other = make_board("other.img")
    assert other.exec("import board; print(board.unique_id().hex())").strip() != uid


def test_vboard_paths_and_prog256_geometry(
    make_board: Callable[..., VirtualBoard], tmp_path: Path
) -> None:
    vb = make_board(prog=256, heap=BOARDS["picow"][0])
    out = vb.exec("import sys, os; print(sys.path); print(os.getcwd())")
    path_line, cwd = out.strip().splitlines()
    sys_path = ast.literal_eval(path_line)
    assert sys_path[:2] == ["", ".frozen"] and sys_path[-1] == "/flash/lib"
    assert [p for p in sys_path if p.endswith("/lib")] == ["/flash/lib"]  # mip's target
    assert cwd == "/flash"
    vb.exec("f = open('p.bin', 'wb'); f.write(bytes(600)); f.close()")
    vb.stop()
    fs = _open_image(tmp_path / "flash.img", prog=256)
    assert fs.stat("p.bin").size == 600


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_vboard_free_heap_matches_board(make_board: Callable[..., VirtualBoard], name: str) -> None:
    heap, prog, free = BOARDS[name]
    vb = make_board(heap=heap, prog=prog)
    got = int(vb.exec("import gc; gc.collect(); print(gc.mem_free())"))
    # The heap passed to -X heapsize is the board's free figure plus what the virtual
    # board itself uses; after boot the two should agree within a few KiB.
    assert abs(got - free) < 4096, (name, got, free)


def test_vboard_virtual_wifi(make_board: Callable[..., VirtualBoard], tmp_path: Path) -> None:
    link = tmp_path / "wifi"
    vb = make_board(wifi=link)
    probe = "import board; print(board.wifi_connect('x', 'y', 300), board.wifi_isconnected())"
    assert vb.exec(probe).split() == ["True", "True"]  # no file: link up
    link.write_text("down\n")
    assert vb.exec("import board; print(board.wifi_isconnected())").strip() == "False"
    assert vb.exec(probe).split() == ["False", "False"]
    link.write_text("up\n")
    assert vb.exec(probe).split() == ["True", "True"]
    vb.exec("import board; board.wifi_disconnect()")
    assert vb.exec("import board; print(board.wifi_isconnected())").strip() == "False"


def test_vboard_deepsleep_reboots_after_the_time(
    make_board: Callable[..., VirtualBoard],
) -> None:
    vb = make_board(auto_restart=True)
    assert vb.exec("import board; print(board.reset_cause())").strip() == "power"
    vb.exec("import board; board.rtc_memory(b'\\x01\\x02')")
    t0 = time.monotonic()
    vb.mpremote("exec", "import board; board.deepsleep(400)", check=False, timeout=10)
    deadline = time.monotonic() + 10
    while vb.boots < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert vb.boots == 2 and time.monotonic() - t0 >= 0.4
    vb.wait_prompt()
    out = vb.exec(
        "import board; print(board.reset_cause(), board.reset_cause(), board.rtc_memory())"
    )
    assert out.split() == ["deepsleep", "power", "b'\\x01\\x02'"]


def test_vboard_cli_starts_and_stops(tmp_path: Path) -> None:
    link = tmp_path / "cli-vb"
    proc = subprocess.Popen(
        [
            PY,
            str(ROOT / "tools" / "vboard.py"),
            "--board",
            "picow",
            "--image",
            str(tmp_path / "cli.img"),
            "--link",
            str(link),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert f"virtual board on {link}" in first and "prog 256" in first, first
        r = subprocess.run(
            [vboard._tool("mpremote"), "connect", str(link), "resume", "exec", "print(6*7)"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert r.stdout.strip() == "42", r.stdout + r.stderr
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(timeout=5)
    assert proc.returncode == 0
    assert not link.exists() and not link.is_symlink()


def test_deploy_right_after_the_board_starts_in_the_background(tmp_path: Path) -> None:
    # the README's First steps: `tools/vboard.py ... &` and on the next line
    # `tools/deploy.py --port LINK`: deploy waits for the link the board is still making
    link = tmp_path / "bg-vb"
    proc = subprocess.Popen(
        [PY, str(ROOT / "tools" / "vboard.py"), "--image", str(tmp_path / "bg.img"),
         "--link", str(link)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        r = subprocess.run(
            [PY, str(ROOT / "tools" / "deploy.py"), "--port", str(link), "--mpy", "--board",
             "unix", "--wait", "60"], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        r = subprocess.run(
            [vboard._tool("mpremote"), "connect", str(link), "resume", "exec",
             "import mqttsession; print(mqttsession.__file__)"],
            capture_output=True, text=True, timeout=60)
        assert r.stdout.strip().endswith("mqttsession/__init__.mpy"), r.stdout + r.stderr
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(timeout=5)


@pytest.mark.parametrize("case", ["no-dir", "a-dir", "blocks-0", "tiny-file", "a-document"])
def test_vboard_cli_refuses_an_image_without_a_filesystem(tmp_path: Path, case: str) -> None:
    # the board could not mount its flash: one line saying why and exit 2, never a traceback
    # or "virtual board on ..." as if it were ready; a file that is no image at all (named
    # by mistake) is left as it was, not formatted
    tiny = tmp_path / "tiny.img"
    tiny.write_bytes(b"")
    doc = tmp_path / "notes.md"
    text = (ROOT / "README.md").read_bytes()
    doc.write_bytes(text)
    args, says = {
        "no-dir": (["--image", str(tmp_path / "absent" / "x.img")], "no directory"),
        "a-dir": (["--image", str(tmp_path)], "a directory"),
        "blocks-0": (["--image", str(tmp_path / "x.img"), "--blocks", "0"], "at least 2"),
        "tiny-file": (["--image", str(tiny)], "0 bytes"),
        "a-document": (["--image", str(doc)], "not a littlefs image"),
    }[case]
    link = tmp_path / "cli-vb"
    r = subprocess.run([PY, str(ROOT / "tools" / "vboard.py"), *args, "--link", str(link)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.startswith("vboard: error: ") and says in r.stderr, r.stderr
    assert len(r.stderr.splitlines()) == 1 and r.stdout == "", r.stdout + r.stderr
    assert not link.is_symlink() and not (tmp_path / "x.img").exists()
    assert doc.read_bytes() == text


# --------------------------------------------------------------------------------------
# Installing the library: mip and tools/deploy.py


def _lib_listing(vb: VirtualBoard) -> list[str]:
    out = vb.mpremote("fs", "ls", ":/flash/lib/mqttsession").stdout
    return sorted(line.split()[-1] for line in out.splitlines()[1:] if line.strip())


def _expected_py() -> list[str]:
    return sorted(p.name for p in LIB.glob("*.py"))


def test_mip_install_from_local_package_json(make_board: Callable[..., VirtualBoard]) -> None:
    vb = make_board()
    r = vb.mpremote("mip", "install", str(ROOT / "package.json"), timeout=120)
    assert "Installing: /flash/lib/mqttsession/__init__.py" in r.stdout, r.stdout
    assert _lib_listing(vb) == _expected_py()
    vb.stop()
    fs = _open_image(vb.image)
    with fs.open("lib/mqttsession/__init__.py", "r") as f:
        assert f.read() == (LIB / "__init__.py").read_text()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def http_repo() -> Iterator[str]:
    """The repository served read-only on a loopback port, as a Git host would."""
    handler = functools.partial(_QuietHandler, directory=str(ROOT))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_mip_install_over_http(make_board: Callable[..., VirtualBoard], http_repo: str) -> None:
    # Same relative URLs as for github:OWNER/REPO, which resolves them against the
    # directory holding package.json.
    vb = make_board()
    env = dict(os.environ, no_proxy="127.0.0.1,localhost", NO_PROXY="127.0.0.1,localhost")
    r = vb.mpremote("mip", "install", f"{http_repo}/package.json", timeout=120, env=env)
    assert "Done" in r.stdout, r.stdout + r.stderr
    assert _lib_listing(vb) == _expected_py()


@needs_client
def test_mip_installed_library_imports_after_reset(
    make_board: Callable[..., VirtualBoard],
) -> None:
    # On the Pico W-sized board: mip installs .py source, which the board compiles at
    # import, and that needs more heap than the ESP32 has (see the heap test below and
    # boards/esp32/README.md).
    vb = make_board(heap=BOARDS["picow"][0], prog=BOARDS["picow"][1])
    vb.mpremote("mip", "install", str(ROOT / "package.json"), timeout=120)
    vb.restart()  # as after installing on a board: a fresh, unfragmented heap
    out = vb.exec("import mqttsession; print(mqttsession.__version__, mqttsession.__file__)")
    assert out.split() == [package.read_version(), "/flash/lib/mqttsession/__init__.py"]


@needs_client
def test_deploy_mpy_then_import(make_board: Callable[..., VirtualBoard]) -> None:
    vb = make_board()
    vb.mpremote("mip", "install", str(ROOT / "package.json"), timeout=120)
    written = deploy.deploy(vb.path, use_mpy=True, timeout=120)
    # The .py files that mip put there are gone: they would shadow the .mpy files.
    assert _lib_listing(vb) == sorted(p.with_suffix(".mpy").name for p in LIB.glob("*.py"))
    assert sorted(written) == sorted(f"lib/mqttsession/{n}" for n in _lib_listing(vb))
    vb.restart()
    out = vb.exec("import mqttsession; print(mqttsession.__version__, mqttsession.__file__)")
    assert out.split() == [package.read_version(), "/flash/lib/mqttsession/__init__.mpy"]


def test_deploy_missing_port_fails_fast(tmp_path: Path) -> None:
    t0 = time.monotonic()
    r = subprocess.run(
        [PY, str(ROOT / "tools" / "deploy.py"), "--port", str(tmp_path / "ttyNONE")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2 and "does not exist" in r.stderr, r.stderr
    assert time.monotonic() - t0 < 10
    dangling = tmp_path / "vb-gone"
    dangling.symlink_to(tmp_path / "pts-gone")
    with pytest.raises(deploy.DeployError, match="virtual board"):
        deploy.resolve_port(str(dangling))


# --------------------------------------------------------------------------------------
# The example node on the ESP32-sized virtual board


@needs_store
def test_node_runs_in_esp32_heap_and_resumes_after_reboot(
    make_board: Callable[..., VirtualBoard], broker: Any
) -> None:
    vb = make_board(
        heap=ESP32_HEAP,
        env={"MQTTS_BROKER": f"127.0.0.1:{broker.port}"},
    )
    deploy.deploy(vb.path, use_mpy=True, board="unix", timeout=120)
    vb.restart()
    first = vb.exec("import main", timeout=60)
    m = re.search(r"published nodes/(\S+)/temperature (\S+) \(0 still in flash\)", first)
    assert m and "connected (new session)" in first, first
    client_id = m.group(1)
    vb.restart()
    second = vb.exec(
        "import main; import gc; gc.collect(); print('free', gc.mem_free())", timeout=60
    )
    assert f"published nodes/{client_id}/temperature" in second, second
    assert "(session resumed)" in second and '"seq":2' in second, second


def _min_heap(script: Path, micropypath: str, lo: int = 8 * 1024, hi: int = 512 * 1024) -> int:
    """Smallest -X heapsize (to 1 KiB) at which the script prints OK."""

    def ok(heap: int) -> bool:
        r = subprocess.run(
            [MICROPYTHON, "-X", f"heapsize={heap}", str(script)],
            capture_output=True,
            text=True,
            timeout=60,
            env=dict(os.environ, MICROPYPATH=f".frozen:{micropypath}"),
            cwd=script.parent,
        )
        return "OK" in r.stdout

    assert ok(hi), f"{script.name} fails even with a {hi}-byte heap"
    while hi - lo > 1024:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


@needs_client
def test_library_heap_need_against_board_heaps(broker: Any, tmp_path: Path) -> None:
    # Import, connect, five QoS 1 publishes, disconnect: the smallest heap that does it,
    # from .mpy files and from .py source (which the board compiles at import, as after
    # a plain `mip install`). Compared with the boards' free heap after boot.
    built = tmp_path / "mpy"
    mpy.compile_all(out=built)
    script = tmp_path / "need.py"
    script.write_text(
        "from mqttsession import MQTTClient\n"
        f"c = MQTTClient('need', '127.0.0.1', port={broker.port}, keepalive=60)\n"
        "c.connect()\n"
        "for i in range(5):\n"
        "    c.publish(b't/need', b'x' * 20, qos=1)\n"
        "c.disconnect()\n"
        "print('OK')\n"
    )
    need_mpy = _min_heap(script, str(built))
    need_py = _min_heap(script, str(LIB.parent))
    esp32_free = BOARDS["esp32"][2]
    report = (
        f"heap needed: {need_mpy} B from .mpy, {need_py} B from .py source; "
        f"ESP32 free {esp32_free} B, Pico W free {BOARDS['picow'][2]} B"
    )
    print(report)
    assert need_mpy < need_py, report
    assert need_mpy <= esp32_free, report


_HEAP_STEPS = """
import gc
gc.collect(); boot = gc.mem_free()
import mqttsession
gc.collect(); imp = gc.mem_free()
from mqttsession import MQTTClient, SessionStore
c = MQTTClient(None, "127.0.0.1", port={port}, keepalive=60, store=SessionStore("/flash/.mqtt"))
c.connect(clean_session=False)
gc.collect(); con = gc.mem_free()
for i in range(20):
    c.publish(b"t/heap", b"reading %d" % i, qos=1)
gc.collect(); pub = gc.mem_free()
c.disconnect()
print("HEAP", boot, imp, con, pub)
"""


@needs_store
def test_heap_table_on_virtual_boards(make_board: Callable[..., VirtualBoard], broker: Any) -> None:
    # The free-heap table of the board READMEs: gc.mem_free() after boot, after import,
    # after connect with a SessionStore, after 20 QoS 1 publishes; .mpy and .py source.
    rows = []
    for name in ("esp32", "picow"):
        heap, prog, _ = BOARDS[name]
        for use_mpy in (True, False):
            vb = make_board(f"{name}-{use_mpy}.img", heap=heap, prog=prog)
            deploy.deploy(vb.path, use_mpy=use_mpy, timeout=120)
            vb.restart()
            r = vb.mpremote("exec", _HEAP_STEPS.format(port=broker.port), check=False, timeout=60)
            m = re.search(r"HEAP (\d+) (\d+) (\d+) (\d+)", r.stdout)
            tail = (r.stdout + r.stderr).strip().splitlines()[-1:]
            got = m.groups() if m else tuple(["failed:", *tail])
            rows.append(f"{name:6} {heap:5} {'.mpy' if use_mpy else '.py':5} {' '.join(got)}")
            vb.stop()
            if use_mpy:
                assert m, rows[-1]  # .mpy files must fit both boards
    print("\n".join(["board  heap  form  boot import connect publish", *rows]))
