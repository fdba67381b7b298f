"""A loopback TCP proxy whose two directions are switched apart: each passes, stops (holds
what it reads, in order, and delivers it on the next pass) or drips (n bytes every gap
seconds). The fault rig (tools/faultrig.py) switches both directions at once. A device
script switches it through a line protocol on a second port: "up|down pass|stop|drip N GAP"
answered "ok"."""

from __future__ import annotations

import select
import socket
import threading
import time
from typing import Any


class OneWay:
    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.target = (host, target_port)
        self.mode: dict[str, tuple[Any, ...]] = {"up": ("pass",), "down": ("pass",)}
        self._stop = False
        self._socks: list[socket.socket] = []
        self._ls = self._listen()
        self._cs = self._listen()
        self.port = self._ls.getsockname()[1]
        self.control_port = self._cs.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()
        threading.Thread(target=self._control, daemon=True).start()

    @staticmethod
    def _listen() -> socket.socket:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        return s

    def _accept(self) -> None:
        while not self._stop:
            try:
                c, _ = self._ls.accept()
                u = socket.create_connection(self.target, timeout=5)
            except OSError:
                continue
            for s in (c, u):
                s.settimeout(None)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._socks.append(s)
            threading.Thread(target=self._pipe, args=(c, u, "up"), daemon=True).start()
            threading.Thread(target=self._pipe, args=(u, c, "down"), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, way: str) -> None:
        buf = bytearray()
        eof = False
        try:
            while not self._stop:
                mode = self.mode[way]
                if not eof and len(buf) < 65536:
                    if select.select([src], [], [], 0.01)[0]:
                        data = src.recv(65536)
                        eof = not data
                        buf += data
                elif mode[0] == "stop" or not buf:
                    time.sleep(0.01)
                if mode[0] == "stop":
                    continue
                if buf:
                    n = mode[1] if mode[0] == "drip" else len(buf)
                    dst.sendall(bytes(buf[:n]))
                    del buf[:n]
                    if mode[0] == "drip":
                        time.sleep(mode[2])
                elif eof:
                    dst.shutdown(socket.SHUT_WR)
                    return
        except (OSError, ValueError):  # (ValueError: the other direction closed src)
            for s in (src, dst):
                s.close()

    def _control(self) -> None:
        while not self._stop:
            try:
                c, _ = self._cs.accept()
            except OSError:
                return
            with c, c.makefile("rwb") as f:
                for line in f:
                    w = line.decode().split()
                    self.mode[w[0]] = (w[1], *(float(x) if "." in x else int(x) for x in w[2:]))
                    f.write(b"ok\n")
                    f.flush()

    def close(self) -> None:
        self._stop = True
        for s in [self._ls, self._cs, *self._socks]:
            try:
                s.close()
            except OSError:
                pass

    def __enter__(self) -> OneWay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
