# The asyncio client's log hook raising KeyboardInterrupt (or SystemExit) on the
# "connected" line of its connect (tests/host/test_log_hook_kbi.py). The reader task makes
# the connect, so the exception ends the event loop (asyncio.run raises it, as any task's
# KeyboardInterrupt), once the connect is made: the link up, the session resumed. Up to
# 0.2.23 it came out of the middle of the connect.
# devcfg: HOST, PORT, EXC ("kbi", "exit"), PREFIX
import asyncio

import devlib as d
from mqttsession import Link
from mqttsession.aio import MQTTClient

EXC = {"kbi": KeyboardInterrupt, "exit": SystemExit}[d.cfg("EXC", "kbi")]
armed = [1]


def log(line):
    if armed and line.startswith("connected"):
        armed.pop()
        raise EXC("log")


lk = Link(min_ms=50, max_ms=100, jitter=0)
c = MQTTClient("logkbi-aio-" + d.cfg("EXC", "kbi"), d.cfg("HOST"), d.cfg("PORT"),
               keepalive=30, link=lk, timeout=10, log=log)


async def main():
    await c.connect(clean_session=True, wait=True)
    print("CONNECTED")  # (not reached: the loop ends at the log line)


raised = None
try:
    asyncio.run(main())
except EXC as e:
    raised = e
print("RAISED", repr(raised), "UP", c.isconnected(), lk.up)
ok = raised is not None and c.isconnected() and lk.up
print("RESULT", "ok" if ok else "FAIL")
