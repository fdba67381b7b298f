# Board layer for the ESP32 (generic ESP32; S2, S3 and C3 share the API).
# Same interface as boards/rp2040/board.py and boards/unix/board.py.
import time

import machine
import network
from micropython import const

FS_ROOT = "/"  # the port mounts littlefs (4096-byte blocks, prog 32) at /

# network.STAT_* on the ESP32. While a connect is wanted, status() says
# CONNECTING; once the driver gives up it returns the raw disconnect reason
# (an ESP-IDF wifi_err_reason_t), so other codes appear too.
_STAT_IDLE = const(1000)
_STAT_CONNECTING = const(1001)
_STAT_GOT_IP = const(1010)
_REASONS = {
    2: "authentication expired (wrong password?)",
    15: "4-way handshake timeout (wrong password?)",
    200: "beacon timeout (access point gone or out of range)",
    201: "no access point with that SSID",
    202: "authentication failed (wrong password?)",
    203: "association failed",
    204: "handshake timeout (wrong password?)",
    205: "connection failed",
}

_ACTIVE_PAUSE_MS = const(100)  # the driver is not ready when active(True) returns
_RESET_PAUSE_MS = const(500)  # after "Wifi Internal Error": driver off, pause, on
_RETRY_PAUSE_MS = const(1000)  # between connect attempts that failed with a reason
_POLL_MS = const(100)
_RECONNECTS = const(3)  # driver retries per attempt before status() shows why
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


def _off(w):
    try:
        w.disconnect()
    except OSError:
        pass
    try:
        w.active(False)
    except OSError:
        pass


# The connect runs as steps, so a caller that must not wait (the library's link
# keeper) starts it with wifi_start() and calls wifi_poll() now and then;
# wifi_connect() does the same in a loop. _step says what wifi_poll() does next,
# not before ticks _at.
_ACTIVATE = const(0)  # driver on (if off), then pause
_CONNECT = const(1)  # connect() to the network
_WAIT = const(2)  # until GOT_IP or a failure code
_step = _ACTIVATE
_at = 0


def wifi_start(ssid=None, key=None, country=None):
    # Starts connecting and returns at once; wifi_poll() reports progress.
    # ssid=None: the network of the previous call, so the library's link
    # keeper can reconnect without knowing the credentials.
    global _creds, _step, _at
    if ssid is None:
        if _creds is None:
            raise ValueError("ssid: no network given yet")
    else:
        _creds = (ssid, key)
    if country:
        try:
            network.country(country)
        except (AttributeError, OSError, ValueError):
            pass
    _step = _ACTIVATE
    _at = time.ticks_ms()


def _later(ms, step):
    global _step, _at
    _step = step
    _at = time.ticks_add(time.ticks_ms(), ms)


def wifi_poll():
    # True once connected with an IP address; else False after one step of
    # the attempt, never waiting. Failed tries are retried after a pause
    # (access points refuse or vanish for a moment); wifi_reason() says why
    # the last one failed.
    global _reason
    w = wlan()
    if w.isconnected():
        _reason = ""
        return True
    if _creds is None or time.ticks_diff(time.ticks_ms(), _at) < 0:
        return False
    if _step == _ACTIVATE:
        if not w.active():
            w.active(True)  # the driver is not ready when this returns
            _later(_ACTIVE_PAUSE_MS, _CONNECT)
            return False
        _later(0, _CONNECT)
    if _step == _CONNECT:
        try:
            try:
                # Makes status() report the failure reason after a few tries
                # instead of CONNECTING forever; older firmware lacks it.
                w.config(reconnects=_RECONNECTS)
            except (ValueError, TypeError, OSError):
                pass
            w.connect(*_creds)
            _later(0, _WAIT)
        except OSError as e:
            # "Wifi Internal Error" right after active(True), or while an
            # earlier attempt still runs: restart the driver and pause.
            _reason = "driver error: %s" % e
            _off(w)
            _later(_RESET_PAUSE_MS, _ACTIVATE)
        return False
    st = w.status()
    if st != _STAT_CONNECTING and st != _STAT_IDLE:
        _reason = _REASONS.get(st, "status %d" % st)
        try:
            w.disconnect()
        except OSError:
            pass
        _later(_RETRY_PAUSE_MS, _ACTIVATE)
    return False


def wifi_connect(ssid=None, key=None, timeout_ms=15000, country=None):
    # True once connected with an IP address, False after timeout_ms with
    # the reason in wifi_reason(); wifi_start() and wifi_poll() in a loop.
    global _reason
    wifi_start(ssid, key, country)
    t0 = time.ticks_ms()
    while not wifi_poll():
        if time.ticks_diff(time.ticks_ms(), t0) >= timeout_ms:
            if _step == _WAIT:
                _reason = "timeout after %d ms" % timeout_ms
            _off(wlan())
            return False
        time.sleep_ms(_POLL_MS)
    return True


def wifi_isconnected():
    return _wlan is not None and _wlan.isconnected()


def wifi_disconnect():
    if _wlan is not None:
        _off(_wlan)


def mount():
    # The port mounted the filesystem at boot.
    return FS_ROOT


def unique_id():
    return machine.unique_id()


def rtc_memory(data=None):
    # RTC slow memory: kept through deep sleep and soft resets, lost on
    # power-off. Costs no flash writes.
    rtc = machine.RTC()
    if data is None:
        return rtc.memory()
    if len(data) > _RTC_MAX:
        raise ValueError("data: at most 2048 bytes")
    rtc.memory(data)
    return None


def reset_cause():
    # "power", "hard", "watchdog", "deepsleep", "soft" or "unknown".
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
    # Wi-Fi off first: the radio would otherwise be torn down uncleanly.
    wifi_disconnect()
    machine.deepsleep(ms)
