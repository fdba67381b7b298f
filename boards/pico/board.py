# Board layer for the plain Raspberry Pi Pico (RPI_PICO: RP2040, no radio), the board
# tools/pico/pico.mjs emulates. Same interface as boards/rp2040/board.py. The network is
# the UART link of socket.py (next to this file): there is no Wi-Fi to join, so the
# wifi_* calls report the link as up and leave reconnecting to the TCP layer.
import os

import machine
from micropython import const

FS_ROOT = "/"  # the port mounts littlefs (4096-byte sectors, progsize 256) at /

_RTC_FILE = "/.rtcmem"
_RTC_MAX = const(2048)


def wifi_connect(ssid=None, key=None, timeout_ms=15000, country=None):
    return True


def wifi_reason():
    return ""


def wifi_isconnected():
    return True


def wifi_disconnect():
    pass


def wlan():
    return None


def mount():
    return FS_ROOT


def unique_id():
    # all zeros on the emulator: give each emulated node its own client ID
    return machine.unique_id()


def rtc_memory(data=None):
    # a small file, as on the Pico W (boards/rp2040/README.md): survives deepsleep, which
    # resets the chip, and power-off; every change is a flash write
    if data is None:
        try:
            with open(_RTC_FILE, "rb") as f:
                return f.read()
        except OSError:
            return b""
    if len(data) > _RTC_MAX:
        raise ValueError("data: at most 2048 bytes")
    if rtc_memory() == data:
        return None
    tmp = _RTC_FILE + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, _RTC_FILE)
    return None


def reset_cause():
    # "power", "watchdog" (also a wake from deepsleep) or "unknown": what rp2 knows
    c = machine.reset_cause()
    if c == machine.PWRON_RESET:
        return "power"
    if c == machine.WDT_RESET:
        return "watchdog"
    return "unknown"


def deepsleep(ms):
    machine.deepsleep(ms)
