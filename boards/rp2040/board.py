# Board layer for the Raspberry Pi Pico W (RP2040 + CYW43439 Wi-Fi).
# Same interface as boards/esp32/board.py and boards/unix/board.py.
import os
import time

import machine
import network
import rp2
from micropython import const

FS_ROOT = "/"  # the port mounts littlefs (4096-byte sectors, progsize 256) at /

# WLAN.status() on the Pico W: the CYW43_LINK_* values. network.STAT_* name
# most of them; 2 (CYW43_LINK_NOIP: joined, waiting for DHCP) has no name.
_LINK_DOWN = const(0)  # STAT_IDLE
_LINK_JOIN = const(1)  # STAT_CONNECTING
_LINK_NOIP = const(2)
_LINK_UP = const(3)  # STAT_GOT_IP
_REASONS = {
    -1: "connection failed (STAT_CONNECT_FAIL)",
    -2: "no access point with that SSID (STAT_NO_AP_FOUND)",
    -3: "wrong password (STAT_WRONG_PASSWORD)",
}

_PM_NONE = const(0xA11140)  # CYW43 power management off: no missed packets
_RETRY_PAUSE_MS = const(1000)  # between attempts that failed with a reason
_POLL_MS = const(100)
_RTC_FILE = "/.rtcmem"
_RTC_MAX = const(2048)

_wlan = None
_reason = ""
_creds = None  # (ssid, key) of the last wifi_connect() that named a network


def wlan():
    global _wlan
    if _wlan is None:
        _wlan = network.WLAN(network.STA_IF)
    return _wlan


def wifi_reason():
    # Why the last wifi_connect() failed, in words; "" after a success.
    return _reason


# The connect runs as steps, so a caller that must not wait (the library's link
# keeper) starts it with wifi_start() and calls wifi_poll() now and then;
# wifi_connect() does the same in a loop. _joining: a connect() is under way
# (else one is retried from ticks _at on).
_joining = False
_at = 0


def wifi_start(ssid=None, key=None, country=None):
    # Starts connecting and returns at once; wifi_poll() reports progress.
    # ssid=None: the network of the previous call, so the library's link
    # keeper can reconnect without knowing the credentials.
    global _creds, _joining
    if ssid is None:
        if _creds is None:
            raise ValueError("ssid: no network given yet")
    else:
        _creds = (ssid, key)
    if country:
        # Must be set before the radio starts to select the legal channels.
        rp2.country(country)
    w = wlan()
    if w.isconnected():
        return
    w.active(True)
    # The default power-save mode drops packets and delays replies by up
    # to a beacon interval; an MQTT node that is awake briefly wants neither.
    w.config(pm=_PM_NONE)
    w.connect(*_creds)
    _joining = True


def wifi_poll():
    # True once connected with an IP address; else False, never waiting.
    # Failed tries (CONNECT_FAIL, NO_AP_FOUND, WRONG_PASSWORD) are retried
    # after a pause; wifi_reason() says why the last one failed.
    global _reason, _joining, _at
    if _wlan is None or _creds is None:
        return False
    w = _wlan
    st = w.status()
    if st == _LINK_UP:
        _reason = ""
        return True
    if _joining:
        if st < 0:
            _reason = _REASONS.get(st, "status %d" % st)
            w.disconnect()
            _joining = False
            _at = time.ticks_add(time.ticks_ms(), _RETRY_PAUSE_MS)
    elif time.ticks_diff(time.ticks_ms(), _at) >= 0:
        w.connect(*_creds)
        _joining = True
    return False


def wifi_connect(ssid=None, key=None, timeout_ms=15000, country=None):
    # True once connected with an IP address, False after timeout_ms with
    # the reason in wifi_reason(); wifi_start() and wifi_poll() in a loop.
    global _reason
    wifi_start(ssid, key, country)
    t0 = time.ticks_ms()
    while not wifi_poll():
        if time.ticks_diff(time.ticks_ms(), t0) >= timeout_ms:
            if _joining:
                _reason = "timeout after %d ms (status %d)" % (timeout_ms, _wlan.status())
            wifi_disconnect()
            return False
        time.sleep_ms(_POLL_MS)
    _reason = ""
    return True


def wifi_isconnected():
    return _wlan is not None and _wlan.status() == _LINK_UP


def wifi_disconnect():
    if _wlan is not None:
        _wlan.disconnect()
        _wlan.active(False)


def mount():
    # The port mounted the filesystem at boot.
    return FS_ROOT


def unique_id():
    return machine.unique_id()


def rtc_memory(data=None):
    # The RP2040 has no RTC memory that survives deepsleep (which resets the
    # chip), so this is a small file on flash. Unlike RTC memory it also
    # survives power-off, and every change costs a flash write: a littlefs
    # metadata commit while the file stays under 512 bytes (inline).
    # Unchanged data is not rewritten.
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
    os.rename(tmp, _RTC_FILE)  # atomic replace: a power cut keeps old or new
    return None


def reset_cause():
    # "power", "hard", "watchdog", "deepsleep", "soft" or "unknown". The
    # rp2 port leaves deepsleep() through a watchdog reset, so a wake from
    # deep sleep reads as "watchdog" here.
    c = machine.reset_cause()
    for name, label in (
        ("PWRON_RESET", "power"),
        ("HARD_RESET", "hard"),
        ("WDT_RESET", "watchdog"),
        ("DEEPSLEEP_RESET", "deepsleep"),
        ("SOFT_RESET", "soft"),
    ):
        if getattr(machine, name, None) == c:
            return label
    return "unknown"


def deepsleep(ms):
    # Radio off first, or the CYW43 keeps drawing current while asleep.
    wifi_disconnect()
    machine.deepsleep(ms)
