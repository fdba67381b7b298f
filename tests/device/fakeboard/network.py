# A stand-in for MicroPython's network module on the unix port, for running the ESP32 and
# Pico W board layers' Wi-Fi steps: each connect() plays the next list of PLAN as the
# successive values of status(); UP is the status that means connected.
STA_IF = 0
PLAN = []
UP = 1010
calls = {"connect": 0, "status": 0}


def country(c=None):
    return None


class WLAN:
    def __init__(self, iface=0):
        self._active = False
        self._seq = None

    def active(self, state=None):
        if state is None:
            return self._active
        self._active = bool(state)
        if not state:
            self._seq = None
        return None

    def connect(self, ssid=None, key=None):
        calls["connect"] += 1
        self._seq = list(PLAN.pop(0)) if PLAN else [UP - 1]

    def disconnect(self):
        self._seq = None

    def status(self, param=None):
        calls["status"] += 1
        if self._seq is None:
            return 0 if UP == 3 else 1000
        return self._seq.pop(0) if len(self._seq) > 1 else self._seq[0]

    def isconnected(self):
        return self._seq is not None and self._seq[0] == UP and len(self._seq) == 1

    def config(self, *a, **kw):
        return None
