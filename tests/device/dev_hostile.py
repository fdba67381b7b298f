# The blocking client against the scripted hostile broker (tests/host/hostile.py):
# devcfg.TEST names the scenario. Prints what the application sees, for the host to judge:
# RAISED <exception> <code> <ms the call took>, REFUSED <code>, GOT <topic> <length>.
import socket
import time

import devlib as d
from mqttsession import MQTTClient, MQTTException


def client():
    return MQTTClient("hostile", d.cfg("HOST"), d.cfg("PORT"), keepalive=0, version=d.VERSION,
                      timeout=d.cfg("TIMEOUT", 2), max_packet=d.cfg("MAX_PACKET", 1024))


def timed(fn):
    # runs fn; prints what it raised and how long it took
    t0 = time.ticks_ms()
    try:
        fn()
        e = None
    except (OSError, MQTTException) as x:
        e = x
    ms = time.ticks_diff(time.ticks_ms(), t0)
    if e is None:
        print("RETURNED", ms)
    else:
        print("RAISED", type(e).__name__, e.args[0], ms)
    return e


def connect_fails():
    c = client()
    e = timed(c.connect)
    d.check(e is not None, "connect failed")
    d.check(not c.isconnected() and c.sock is None, "no socket left open after a failed connect")


def wait_one():
    # one wait_msg() while the broker misbehaves
    c = client()
    c.connect()
    print("CONNECTED")
    e = timed(c.wait_msg)
    d.check(e is not None, "wait_msg raised")
    if isinstance(e, OSError):
        d.check(not c.isconnected(), "link closed after OSError")


def subscribe_waits():
    # a SUBACK withheld or trickled: subscribe() raises within timeout, the link closed
    c = client()
    c.connect()
    print("CONNECTED")
    e = timed(lambda: c.subscribe("t/x", 1))
    d.check(e is not None, "subscribe raised")
    d.check(not c.isconnected(), "link closed")


def check_loop():
    # check_msg() polled as a node does; each call returns quickly until the packet
    # that started to arrive is past its deadline
    c = client()
    c.connect()
    print("CONNECTED")
    longest = 0
    e = None
    t0 = time.ticks_ms()
    while e is None and time.ticks_diff(time.ticks_ms(), t0) < 30000:
        t1 = time.ticks_ms()
        try:
            c.check_msg()
        except (OSError, MQTTException) as x:
            e = x
        longest = max(longest, time.ticks_diff(time.ticks_ms(), t1))
        time.sleep_ms(10)
    print("LONGEST", longest)
    d.check(e is not None, "check_msg raised")
    print("RAISED", type(e).__name__, e.args[0], time.ticks_diff(time.ticks_ms(), t0))


def flood_out():
    # QoS 0 publishes to a broker that has stopped reading: once the socket is full, the
    # publish that cannot get its packet out raises within timeout
    c = client()
    c.connect()
    print("CONNECTED")
    m = bytes(60000)
    e = None
    for i in range(400):
        e = timed(lambda: c.publish("t/flood", m))
        if e is not None:
            break
    d.check(e is not None, "a publish raised")
    d.check(not c.isconnected(), "link closed")


def oversized():
    # oversized PUBLISHes are refused with 0x95 and acknowledged; the next message arrives
    c = client()
    box = d.Inbox()
    c.set_callback(box)
    c.connect()
    print("CONNECTED")
    n = d.cfg("COUNT", 1)
    t0 = time.ticks_ms()
    # until the messages are in and every QoS 2 exchange is complete (PUBREL answered)
    while (len(box) < n or c._s.rx2) and time.ticks_diff(time.ticks_ms(), t0) < 20000:
        try:
            c.check_msg()
        except MQTTException as x:
            print("REFUSED", x.args[0])
        time.sleep_ms(5)
    for t, m in box.got:
        print("GOT", t.decode(), len(m))
    d.check(c.isconnected(), "still connected")
    c.disconnect()


class _Sockets:
    # mqttsession.wire's socket module, whose sockets get a node's small send buffer
    SOCK_STREAM = socket.SOCK_STREAM
    getaddrinfo = socket.getaddrinfo

    @staticmethod
    def socket(*a):
        return d.small_sndbuf(socket.socket(*a))


def disconnect_stalled():
    # a broker that stopped reading (it reads again later, and never acknowledges): QoS 1
    # messages of 30 KB behind a node's small send buffer, a keeper's budget leaving what
    # the socket did not take waiting; then disconnect(), which sends that output and reads
    # the answers together within timeout (the linger after the DISCONNECT aside)
    import mqttsession.wire as wire
    from mqttsession import Link

    wire.socket = _Sockets
    c = MQTTClient("hostile", d.cfg("HOST"), d.cfg("PORT"), keepalive=0, timeout=d.cfg("TIMEOUT"),
                   link=Link(), window=4)
    c.connect()
    print("CONNECTED")
    m = bytes(30000)
    for i in range(4):
        c.publish("t/stalled", m, qos=1)
        if c._ob is not None:
            break
    d.check(c._ob is not None and c._s.nin, "output waits behind the stalled socket")
    timed(c.disconnect)
    d.check(c.sock is None, "closed")


globals()[d.cfg("TEST")]()
print("PASS")
