# The constructor's arguments, checked, and the session they name when it lives in RAM:
# loaded by Core.__init__ and freed again there before the store loads its session, so a
# connected node holds none of it.
from .session import Session


# the sizes MicroPython gives an attribute table (py/map.c), from 17 slots on
_SIZES = (17, 23, 29, 37, 47, 59, 73, 97, 127, 167, 223)


def roomy(o):
    # MicroPython grows an object's attribute table only once it is full, and a method
    # call first looks its name up there: the miss probes to an empty slot, so on a full
    # table every method call walks all of it (a Session fills 23 of 23 slots: 0.73 us a
    # call on the unix port, 0.11 us grown; how much depends on where the names hash).
    # Grows the table now, to 1.5x the attributes, with placeholders taken out again: the
    # class's own names, which are interned already (a new name would cost a qstr, and
    # the ESP32-sized heap has no room for one more qstr pool).
    try:
        d = o.__dict__
    except AttributeError:
        return  # a port without __dict__
    n = len(d)
    b = 0
    for a in _SIZES:
        if a * 2 >= n * 3:
            break
        b = a
    # used > b: the table grows past b (a loop: a comprehension is one more function)
    k = []
    for x in dir(type(o)):
        if len(k) <= b - n and x[0] != "_" and x not in d:
            k.append(x)
    for x in k:
        setattr(o, x, 0)
    for x in k:
        delattr(o, x)


def check_args(version, keepalive, window, queue, strikes, max_packet, tx_size, timeout):
    # the constructor's numbers: ValueError naming the argument and what it may be
    if version not in (4, 5):
        raise ValueError("version must be 4 (MQTT 3.1.1) or 5")
    for v, name, lo, hi in ((keepalive, "keepalive", 0, 65535), (window, "window", 1, 65535),
                            (queue, "queue", 1, 0), (strikes, "strikes", 1, 0),
                            (max_packet, "max_packet", 64, 0), (tx_size, "tx_size", 32, 0)):
        if type(v) is not int or v < lo or hi and v > hi:
            raise ValueError(("%s must be an int from %d to %d" if hi else
                              "%s must be an int >= %d%s") % (name, lo, hi or ""))
    if not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ValueError("timeout must be a number of seconds > 0")


def session(self, client_id, server, store, version, cap):
    # the session the constructor's arguments name when it lives in RAM; None for the
    # store's session for (server, client_id), its null session for client_id ''
    if client_id is not None:
        self._bytes(client_id, "client_id", True)
    if store is None:
        if client_id is None:
            raise ValueError("client_id None needs a store")
        s = Session(self._bytes(client_id, "client_id"), server, cap)
        # a RAM session only: a stored session's table (about 40 names) would grow
        # through blocks of up to 1.2 KB while the flash load has the heap in pieces
        roomy(s)
    elif client_id is not None and not len(client_id) and version != 5:
        raise ValueError("client_id '' (a null session) needs version=5")
    else:
        return None  # the store's (null) session: the caller loads it once args is freed
    return s
