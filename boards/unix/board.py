# Board layer of the virtual board: the MicroPython unix port standing in
# for an ESP32 or a Pico W. Same interface as boards/esp32 and boards/rp2040.
#
# Everything a real board keeps in hardware lives in host files next to the
# flash image, so it survives a "reboot" (the process killed and started
# again on the same image):
#   <image>          littlefs flash (MQTTS_IMAGE, default ./flash.img)
#   <image>.uid      unique ID, created once from os.urandom
#   <image>.rtc      RTC memory; delete it to emulate a power-on
#   <image>.wake     written by deepsleep(); read by reset_cause()
# Wi-Fi is virtual: the file named by MQTTS_WIFI holds "up" or "down"; an
# unset variable or a missing file means up. A test or the fault rig pulls
# the link by writing "down".
import os
import time

from micropython import const

FS_ROOT = "/flash"

# Status codes as on the ESP32 (network.STAT_*).
STAT_IDLE = const(1000)
STAT_CONNECTING = const(1001)
STAT_GOT_IP = const(1010)
STAT_NO_AP_FOUND = const(201)

_RTC_MAX = const(2048)  # ESP32's RTC user memory size
_DEFAULT_BLOCKS = const(256)  # 1 MiB image when MQTTS_BLOCKS is unset

_POLL_MS = const(50)

_bdev = None
_wlan = None
_reason = ""


def _abspath(p):
    # Fixed at import, before boot.py changes into /flash: the files next to
    # the image are host files, not files on the image.
    return p if p.startswith("/") else os.getcwd().rstrip("/") + "/" + p


_IMAGE = _abspath(os.getenv("MQTTS_IMAGE") or "flash.img")


def _image():
    return _IMAGE


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def _link_up():
    path = os.getenv("MQTTS_WIFI")
    if not path:
        return True
    state = _read(path)
    return state is None or state.strip() != b"down"


class WLAN:
    # The subset of network.WLAN that board code and the link keeper use.
    # The link state is read from the control file on every call, so pulling
    # it down is seen at once, like a lost beacon.

    def __init__(self, interface=0):
        self._active = False
        self._want = False

    def active(self, state=None):
        if state is None:
            return self._active
        self._active = bool(state)
        if not self._active:
            self._want = False
        return None

    def connect(self, ssid=None, key=None, **kw):
        if not self._active:
            raise OSError("Wifi Not Started")
        self._want = True

    def disconnect(self):
        self._want = False

    def status(self, param=None):
        if param == "rssi":
            return -50
        if not (self._active and self._want):
            return STAT_IDLE
        return STAT_GOT_IP if _link_up() else STAT_NO_AP_FOUND

    def isconnected(self):
        return self.status() == STAT_GOT_IP

    def ifconfig(self, *args):
        if self.isconnected():
            return ("127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1")
        return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")

    def config(self, *args, **kw):
        return None


def wlan():
    global _wlan
    if _wlan is None:
        _wlan = WLAN()
    return _wlan


def wifi_reason():
    # Why the last wifi_connect() failed, in words; "" after a success.
    return _reason


def wifi_start(ssid=None, key=None, country=None):
    # Starts connecting and returns at once; wifi_poll() reports progress.
    w = wlan()
    w.active(True)
    w.connect(ssid, key)


def wifi_poll():
    # True once connected, else False (the attempt goes on; the reason so
    # far in wifi_reason()). Never waits.
    global _reason
    if wlan().isconnected():
        _reason = ""
        return True
    _reason = "no access point (virtual link down)"
    return False


def wifi_connect(ssid=None, key=None, timeout_ms=15000, country=None):
    # True once connected, False after timeout_ms with the reason in
    # wifi_reason(); never raises for a missing network, like the real boards.
    wifi_start(ssid, key)
    t0 = time.ticks_ms()
    while not wifi_poll():
        if time.ticks_diff(time.ticks_ms(), t0) >= timeout_ms:
            wlan().disconnect()
            return False
        time.sleep_ms(_POLL_MS)
    return True


def wifi_isconnected():
    return _wlan is not None and _wlan.isconnected()


def wifi_disconnect():
    if _wlan is not None:
        _wlan.disconnect()
        _wlan.active(False)


def mount():
    # Mounts the image at FS_ROOT once; later calls return the same root.
    global _bdev
    if _bdev is None:
        import blockdev

        _bdev = blockdev.mount(
            _image(),
            FS_ROOT,
            block_count=int(os.getenv("MQTTS_BLOCKS") or _DEFAULT_BLOCKS),
            prog_size=int(os.getenv("MQTTS_PROG") or 32),
        )
    return FS_ROOT


def bdev():
    # The mounted FileBlockDev, for counting erases and programs.
    return _bdev


def unique_id():
    # 8 bytes like the rp2's flash ID; stable across reboots of one image.
    path = _image() + ".uid"
    uid = _read(path)
    if not uid:
        uid = os.urandom(8)
        _write(path, uid)
    return uid


def rtc_memory(data=None):
    path = _image() + ".rtc"
    if data is None:
        return _read(path) or b""
    if len(data) > _RTC_MAX:
        raise ValueError("data: at most 2048 bytes")
    _write(path, data)
    return None


def reset_cause():
    # "deepsleep" once after a deepsleep() wake, else "power".
    path = _image() + ".wake"
    if _read(path) is not None:
        _remove(path)
        return "deepsleep"
    return "power"


def deepsleep(ms=0):
    # Ends the process as a board's deep sleep ends the program; the virtual
    # board (tools/vboard.py) starts it again after ms when auto-restart is on.
    import sys

    _write(_image() + ".wake", str(ms).encode())
    sys.exit(0)
