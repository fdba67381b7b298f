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
        # checked and set by args.py, loaded for that and freed again (a running node
        # holds none of that code)
        from .args import link

        link(self, board, min_ms, max_ms, factor, jitter, wifi_timeout_ms, on_change)

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
        # (within a 32-bit port's ticks: a longer delay never ends, ticks_diff in due()
        # being below 2**29 ms; max_ms is at most that, the jitter may take it past)
        self.delay = min(int(d * (1 - self.jitter + 2 * self.jitter * r)), 536870000)
        self.at = t = time.ticks_ms()
        if not self.up:
            # the outage so far goes into _dn at every attempt, down_since moving on: a
            # port's ticks_diff counts up to 2**29 ms (6.2 days), an outage may last longer
            self._dn += time.ticks_diff(t, self.down_since)
            self.down_since = t
        self.lost()

    def lost(self):
        if self.up:
            self.up = False
            self.outages += 1
            self.down_since = time.ticks_ms()
            self._dn = 0
            self._tell(False)

    def _tell(self, up):
        # the application's hook: what it raises is printed and goes no further (it runs
        # inside the client's connect and close, which must finish either way)
        if self.on_change:
            try:
                self.on_change(up)
            except Exception as e:
                from .packet import err

                print(err(41, up, e))  # mqttsession: link: on_change(%s) raised %r

    def connected(self):
        # the broker accepted a connection. The backoff is kept until it proves healthy
        # (an acknowledgement arrived, or a ping was answered: Core._healthy sets tries to
        # 0): a broker that accepts and drops at once meets a growing delay
        now = time.ticks_ms()
        if not self.up:
            if self.outages:
                self.longest = max(self.longest,
                                   self._dn + time.ticks_diff(now, self.down_since))
            self.up = True
            self._tell(True)
        self.delay = 0
        self.at = now
