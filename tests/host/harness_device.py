"""Test harness: device scripts on the MicroPython unix port (devcfg, results, background
processes) or on a real board through mpremote; harness.run_device and start_device choose."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness_proc import DEVICE_DIR, LIB_DIR, REPO, _find_tool, _kill_group, micropython_path

# --------------------------------------------------------------------------------------
# Device scripts (MicroPython)

_CFG_TYPES = (str, int, float, bytes, bool, type(None))


def devcfg_source(cfg: Mapping[str, Any]) -> str:
    """The text of devcfg.py: one `NAME = repr(value)` line per key."""
    out = []
    for name, value in cfg.items():
        if not name.isidentifier():
            raise ValueError(f"devcfg key {name!r} is not an identifier")
        if not isinstance(value, _CFG_TYPES):
            raise TypeError(f"devcfg value for {name} has unsupported type {type(value).__name__}")
        out.append(f"{name} = {value!r}\n")
    return "".join(out)


def resolve_script(script: str | Path) -> Path:
    """A device script by path, or by name relative to tests/device/."""
    p = Path(script)
    candidates = [p] if p.is_absolute() else [DEVICE_DIR / p, REPO / p, Path.cwd() / p]
    for c in candidates:
        if c.is_file():
            return c.resolve()
    raise FileNotFoundError(f"device script {script} not found (looked in {DEVICE_DIR})")


_aliases: dict[str, str] = {}  # a directory -> its short name (short_path)
_aliases_lock = threading.Lock()  # device runs start from several threads at once
_alias_dir: list[str] = []  # where the short names are: made at the first


def short_path(p: Path | str, copy: bool = False) -> str:
    """Directory p by a short name: a symlink (or with copy, a copy) in one directory of
    this process under /tmp. A device keeps each module's file name in its heap (its
    __file__, one string per module), as long as the path it was imported from: a board's
    is /lib/... . Device scripts see the library, tests/device, boards/unix and the run's
    directory by these names, so the heap a test leaves does not depend on where the
    repository is cloned or pytest makes its temporary directories (the heap-edge tests
    run within a few percent of a board's heap). tests/device is a copy: the unix port
    puts the real path of a script's directory first on sys.path."""
    s = str(p)
    with _aliases_lock:
        a = _aliases.get(s)
        if a is None:
            if not _alias_dir:
                tmp = "/tmp" if os.access("/tmp", os.W_OK) else None
                _alias_dir.append(tempfile.mkdtemp(prefix="mq", dir=tmp))
                atexit.register(shutil.rmtree, _alias_dir[0], True)
            a = os.path.join(_alias_dir[0], format(len(_aliases), "x"))
            try:
                if copy:
                    shutil.copytree(s, a, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    os.symlink(s, a)
            except OSError:
                shutil.rmtree(a, ignore_errors=True)  # the next call makes it again
                raise
            _aliases[s] = a
    return a


def device_argv(script: Path, heap: str | int, args: Sequence[str]) -> list[str]:
    """The unix port's command line for a device script: one of tests/device by the
    short name of that directory's copy (short_path), any other by its own path."""
    d = short_path(DEVICE_DIR, copy=True) if script.parent == DEVICE_DIR else script.parent
    return [micropython_path(), "-X", heap_arg(heap), os.path.join(d, script.name), *args]


def device_env(workdir: Path, lib: Path = LIB_DIR) -> dict[str, str]:
    env = dict(os.environ)
    # MICROPYPATH replaces the default path; .frozen keeps frozen modules such as asyncio.
    # boards/unix gives the virtual board's block device (blockdev) and board layer. lib:
    # the library's directory (the sources, or the .mpy files tools/mpy.py compiled).
    # Each by its short name (short_path)
    w, lib_, board = (short_path(d) for d in (workdir, lib, REPO / "boards" / "unix"))
    dev = short_path(DEVICE_DIR, copy=True)
    env["MICROPYPATH"] = ":".join([w, ".frozen", lib_, dev, board])
    return env


def heap_arg(heap: str | int) -> str:
    """The unix port's -X option for a device heap ("64k", "1m" or bytes), scaled by
    MQTTS_HEAP_SCALE when set: MQTTS_HEAP_SCALE=0.9 runs every device script that
    run_device and start_device start in 90% of its heap, to see how much room a test's
    heap leaves (a heap sized to a board's, or held short on purpose, fails there by
    design; tests that start the unix port themselves keep theirs)."""
    scale = os.environ.get("MQTTS_HEAP_SCALE")
    if not scale:
        return f"heapsize={heap}"
    try:
        f = float(scale)
    except ValueError:
        f = 0
    if not f > 0:
        raise ValueError(f"MQTTS_HEAP_SCALE must be a number > 0, not {scale!r}")
    h = str(heap).lower()
    n = int(float(h[:-1]) * (1 << 20 if h[-1] == "m" else 1 << 10)) if h[-1] in "km" else int(h)
    return f"heapsize={int(n * f)}"


@dataclass
class DeviceResult:
    rc: int
    out: str
    workdir: Path | None = None
    timed_out: bool = False

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()

    @property
    def passed(self) -> bool:
        last = [ln.strip() for ln in self.lines if ln.strip()]
        return self.rc == 0 and not self.timed_out and bool(last) and last[-1] == "PASS"

    def values(self, prefix: str, maxsplit: int = -1) -> list[list[str]]:
        """The lines that start with prefix (as a whole word), minus the prefix, split on
        whitespace: `GOT t/1 hello` gives ["t/1", "hello"] for prefix "GOT"."""
        found = []
        for line in self.lines:
            if _matches(line, prefix):
                found.append(line[len(prefix) :].split(None, maxsplit))
        return found

    def value(self, prefix: str) -> str:
        """The rest of the single line that starts with prefix."""
        rows = [ln[len(prefix) :].strip() for ln in self.lines if _matches(ln, prefix)]
        if len(rows) != 1:
            raise AssertionError(f"expected one {prefix!r} line, found {len(rows)}:\n{self.out}")
        return rows[0]

    def check(self, what: str = "device script") -> DeviceResult:
        __tracebackhide__ = True
        if not self.passed:
            why = "timed out" if self.timed_out else f"exit code {self.rc}"
            if not self.timed_out and self.rc == 0:
                why = "last line is not PASS"
            raise AssertionError(f"{what} failed ({why}); output:\n{self.out}")
        return self


def _matches(line: str, prefix: str) -> bool:
    if not line.startswith(prefix):
        return False
    rest = line[len(prefix) :]
    return not rest or rest[0].isspace() or not prefix[-1:].isalnum()


def _prepare(cfg: Mapping[str, Any], workdir: Path | str | None) -> tuple[Path, bool]:
    source = devcfg_source(cfg)  # before making a directory, so bad settings leave none
    own = workdir is None
    wd = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="mqs-dev-"))
    wd.mkdir(parents=True, exist_ok=True)
    (wd / "devcfg.py").write_text(source, encoding="utf-8")
    return wd, own


def _mpremote(port: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    tool = _find_tool("mpremote")
    if not tool:
        raise RuntimeError("mpremote not found: run `make venv`")
    cmd = [tool, "connect", port, *args]
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, _ = proc.communicate()
        out += f"\n[harness: mpremote {' '.join(args)} killed after {timeout} s]\n"
        return subprocess.CompletedProcess(cmd, -signal.SIGKILL, out)
    return subprocess.CompletedProcess(cmd, proc.returncode, out)


def _run_on_board(
    port: str,
    path: Path,
    cfg: Mapping[str, Any],
    *,
    timeout: float,
    args: Sequence[str],
    check: bool,
) -> DeviceResult:
    import pytest

    __tracebackhide__ = True
    if not os.path.exists(port):
        pytest.fail(f"--board {port}: no such device (is the board plugged in?)", pytrace=False)
    if args:
        pytest.skip("script arguments are not supported on a board; pass them in cfg")
    wd, _ = _prepare(cfg, None)
    try:
        cp = _mpremote(port, "cp", str(wd / "devcfg.py"), ":devcfg.py", timeout=min(30.0, timeout))
        if cp.returncode != 0:
            pytest.fail(f"mpremote cp to {port} failed:\n{cp.stdout}", pytrace=False)
        r = _mpremote(port, "run", str(path), timeout=timeout)
    finally:
        shutil.rmtree(wd, ignore_errors=True)
    result = DeviceResult(r.returncode, r.stdout, None, r.returncode == -signal.SIGKILL)
    if check:
        result.check(f"{path.name} on {port}")
    return result


# Every DeviceProcess not yet closed; conftest closes the leftovers at the end of the session.
_running_devices: set[DeviceProcess] = set()


class DeviceProcess:
    """A device script running in the background on the unix port, for tests that kill it
    mid-run (a power cut). Output is collected continuously; see output() and wait_for()."""

    def __init__(
        self,
        script: str | Path,
        cfg: Mapping[str, Any],
        *,
        heap: str | int = "64k",
        args: Sequence[str] = (),
        workdir: Path | str | None = None,
    ) -> None:
        self.script = resolve_script(script)
        self.workdir, self._own_dir = _prepare(cfg, workdir)
        self._buf = bytearray()
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            device_argv(self.script, heap, args),
            cwd=self.workdir,
            env=device_env(self.workdir),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        _running_devices.add(self)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        while chunk := self.proc.stdout.read1(4096):
            with self._cond:
                self._buf += chunk
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll(self) -> int | None:
        return self.proc.poll()

    def output(self) -> str:
        with self._cond:
            return self._buf.decode("utf-8", errors="replace")

    def wait_for(self, text: str, timeout: float = 30) -> str:
        """Wait until a line starting with text has been printed; return that line."""
        __tracebackhide__ = True
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self._buf.decode("utf-8", errors="replace").splitlines():
                    if _matches(line, text):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(
                        f"{self.script.name}: no line {text!r} "
                        f"({'exited' if self.proc.poll() is not None else 'timed out'}); "
                        f"output:\n{self._buf.decode('utf-8', errors='replace')}"
                    )
                self._cond.wait(min(left, 0.2))

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill the script's whole process group (SIGKILL by default: a power cut)."""
        if self.proc.poll() is None:
            _kill_group(self.proc, sig)
            if sig == signal.SIGKILL:
                self.proc.wait()

    def wait(self, timeout: float | None = 60) -> int:
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"{self.script.name} still running after {timeout} s; output:\n{self.output()}"
            ) from None
        self._reader.join(5)
        return rc

    def result(self, timeout: float | None = 60, check: bool = True) -> DeviceResult:
        """Wait for the script to end and return its DeviceResult."""
        __tracebackhide__ = True
        rc = self.wait(timeout)
        res = DeviceResult(rc, self.output(), self.workdir)
        if check:
            res.check(self.script.name)
        return res

    def close(self) -> None:
        self.kill()
        if self.proc.stdout is not None:
            self._reader.join(5)
            self.proc.stdout.close()
        _running_devices.discard(self)
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> DeviceProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def stop_all_devices() -> None:
    for d in list(_running_devices):
        d.close()
