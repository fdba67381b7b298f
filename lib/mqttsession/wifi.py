# Bringing Wi-Fi up through the board layer for the link keeper (link.Link.wifi_step).
# Loaded by a Link given a board, when it is made (so a reconnect after an outage never
# has to import it); a node whose network needs no care (board=None) never loads it.
import time


def step(lk):
    # one step of bringing Wi-Fi up, never waiting: True when the network is there,
    # None while the attempt goes on (call again), False once it took wifi_timeout_ms
    b = lk.board
    if b.wifi_isconnected():
        lk._wt = None
        return True
    if not hasattr(b, "wifi_poll"):  # a board layer that can only block
        return bool(b.wifi_connect(timeout_ms=lk.wifi_timeout_ms))
    now = time.ticks_ms()
    try:
        if lk._wt is None:
            lk._wt = now
            b.wifi_start()
        if b.wifi_poll():
            lk._wt = None
            return True
    except BaseException:
        # what the board raised ends this attempt (the keeper counts it a failed one): the
        # next starts the radio again. Left under way, wifi_start() was never called again,
        # and a wifi_poll() that kept raising never reached wifi_timeout_ms
        lk._wt = None
        raise
    if time.ticks_diff(now, lk._wt) >= lk.wifi_timeout_ms:
        lk._wt = None
        return False
    return None
