# A port's ticks on the unix port: shadows the built-in time module (time is extensible, so
# a time.py earlier on the path wins; the real one is imported here with the path emptied).
# ticks_ms/ticks_us wrap at 2**30 as on the ESP32 and RP2040 ports, ticks_add/ticks_diff
# with that period (ticks_add's OverflowError too), and the clock starts START ms (devcfg
# WRAP_START, default 2**30 - 5000: the wrap comes 5 s into the run). jump(ms) moves the
# clock on, as if ms had passed without the client being called (a node busy elsewhere,
# or a connection that lived for days: nothing in the library sees time pass but ticks).
# A device script puts this directory first on sys.path before anything imports time.
import sys

_p = sys.path[:]
sys.path.clear()
try:
    import time as _t  # the built-in one (this module is not in sys.modules yet)
finally:
    sys.path.extend(_p)
# asyncio's task queue on these ticks (wrapclock_asyncio.py here; _asyncio is built in and
# not extensible: only sys.modules replaces it), set before asyncio is imported
sys.modules["_asyncio"] = __import__("wrapclock_asyncio")

PERIOD = 1 << 30
_MASK = PERIOD - 1
_HALF = PERIOD >> 1

try:
    import devcfg

    START = getattr(devcfg, "WRAP_START", PERIOD - 5000)
except ImportError:
    START = PERIOD - 5000

_off_ms = START - _t.ticks_ms()
_off_us = START * 1000 - _t.ticks_us()

sleep = _t.sleep
sleep_ms = _t.sleep_ms
sleep_us = _t.sleep_us
time = _t.time
time_ns = _t.time_ns
gmtime = _t.gmtime
localtime = _t.localtime
mktime = _t.mktime
ticks_cpu = _t.ticks_cpu


def ticks_ms():
    return (_t.ticks_ms() + _off_ms) & _MASK


def ticks_us():
    return (_t.ticks_us() + _off_us) & _MASK


def ticks_diff(a, b):
    return ((a - b + _HALF) & _MASK) - _HALF


def ticks_add(t, d):
    if d < -_HALF or d >= _HALF:
        raise OverflowError("ticks interval overflow")
    return (t + d) & _MASK


def jump(ms):
    global _off_ms, _off_us
    _off_ms += ms
    _off_us += ms * 1000
