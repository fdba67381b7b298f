# Boot script of the virtual board: `micropython -i boards/unix/boot.py`.
# Mounts the littlefs image at /flash and makes it the working directory,
# so mpremote's cp, ls and df act on littlefs as they do on a board, and
# puts /flash/lib on sys.path where a board has /lib (mip installs there).
import os
import sys
import time

import board

board.mount()
os.chdir(board.FS_ROOT)


def _set_path():
    # As on a board: '' (the filesystem's root), frozen modules, the board's
    # own files (they play the firmware), then lib on the filesystem. mip
    # installs into the first entry ending in /lib: nothing else may.
    lib = board.FS_ROOT + "/lib"
    dirs = ["", ".frozen"]
    for p in sys.path:
        if p not in dirs and p != lib and not p.endswith("/lib"):
            dirs.append(p)
    dirs.append(lib)
    sys.path.clear()
    sys.path.extend(dirs)


def _run_main():
    # Like a board running main.py after boot.py. Off by default: the unix
    # port cannot be interrupted by a Ctrl-C arriving over the terminal.
    try:
        os.stat("main.py")
    except OSError:
        return
    with open("main.py") as f:
        code = f.read()
    try:
        exec(code, {"__name__": "__main__"})
    except SystemExit:
        # board.deepsleep() ends the program with SystemExit, but after a script
        # given with -i the unix port would go on to its REPL: end the process,
        # so tools/vboard.py wakes the board again after the sleep.
        os.system("kill -TERM $PPID")
        time.sleep(10)


_set_path()
del _set_path
if os.getenv("MQTTS_MAIN") == "1":
    _run_main()
del _run_main

import gc  # noqa: E402

gc.collect()
