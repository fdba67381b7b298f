# Keeping the connection: when to try again (exponential backoff with jitter and a cap),
# Wi-Fi through the board layer, and the link's status for the application.
# Both front ends use it; it never sleeps itself.
import os
import time


class Link:
    # board: an object with wifi_isconnected() and wifi_connect(timeout_ms=...) (the board
    # layer; wifi_start() and wifi_poll() let an attempt run without blocking), or None
    # where the network needs no care (the unix port, Ethernet).
    # on_change(up): called when the link comes up or goes down.
    def __init__(self, board=None, min_ms=500, max_ms=30000, factor=2, jitter=0.25,
                 wifi_timeout_ms=15000, on_change=None):
        # each error names its argument; factor < 1 would shrink the waits (0: none at all,
        # a reconnect storm)
        for v, n in ((min_ms, "min_ms"), (max_ms, "max_ms"), (factor, "factor"),
                     (jitter, "jitter"), (wifi_timeout_ms, "wifi_timeout_ms")):
            if not isinstance(v, (int, float)):
                raise TypeError(n + " must be a number")
        if not 0 < min_ms <= max_ms:
            raise ValueError("backoff needs 0 < min_ms <= max_ms")
        if factor < 1:
            raise ValueError("factor must be >= 1")
        if not 0 <= jitter < 1:
            raise ValueError("jitter must be 0 to <1")
        if wifi_timeout_ms <= 0:
            raise ValueError("wifi_timeout_ms must be > 0")
        self.board = board
        self.min_ms = min_ms
        self.max_ms = max_ms
        self.factor = factor
        self.jitter = jitter
        self.wifi_timeout_ms = wifi_timeout_ms
        self.on_change = on_change
        self.up = False
        self.delay = 0  # ms until the next attempt, counted from .at
        self.at = time.ticks_ms()
        self.tries = 0  # failed attempts since the link was last up
        self.outages = 0
        self.down_since = self.at
        self.longest = 0  # longest outage ridden through, ms
        self.last_error = None
        self._wt = None  # ticks when the Wi-Fi attempt under way started
        if board is not None:
            from . import wifi  # noqa: F401 (now, not at the first reconnect: see wifi.py)

    def due(self):
        # ms until the next connection attempt may start (<= 0: now)
        return self.delay - time.ticks_diff(time.ticks_ms(), self.at)

    def wifi(self):
        # brings Wi-Fi up through the board, waiting for the attempt to end; True when the
        # network is there
        while True:
            r = self.wifi_step()
            if r is not None:
                return r
            time.sleep_ms(20)

    def wifi_step(self):
        # one step of bringing Wi-Fi up, never waiting: True when the network is there,
        # None while the attempt goes on (call again), False once it took wifi_timeout_ms
        if self.board is None:
            self._wt = None
            return True
        from . import wifi  # loaded already when the Link was made with its board

        return wifi.step(self)

    def failed(self, err):
        # an attempt failed: wait longer before the next one
        self.last_error = err
        self.tries += 1
        d = self.min_ms * self.factor ** min(self.tries - 1, 20)
        d = min(d, self.max_ms)
        r = os.urandom(1)[0] / 255  # jitter spreads nodes that lost the link together
        self.delay = int(d * (1 - self.jitter + 2 * self.jitter * r))
        self.at = time.ticks_ms()
        self.lost()

    def lost(self):
        if self.up:
            self.up = False
            self.outages += 1
            self.down_since = time.ticks_ms()
            self._tell(False)

    def _tell(self, up):
        # the application's hook: what it raises is printed and goes no further (it runs
        # inside the client's connect and close, which must finish either way)
        if self.on_change:
            try:
                self.on_change(up)
            except Exception as e:
                print("mqttsession: link: on_change(%s) raised %r" % (up, e))

    def connected(self):
        # the broker accepted a connection. The backoff is kept until it proves healthy
        # (an acknowledgement arrived, or a ping was answered: Core._healthy sets tries to
        # 0): a broker that accepts and drops at once meets a growing delay
        now = time.ticks_ms()
        if not self.up:
            if self.outages:
                self.longest = max(self.longest, time.ticks_diff(now, self.down_since))
            self.up = True
            self._tell(True)
        self.delay = 0
        self.at = now
