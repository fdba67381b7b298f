# Example node for the virtual board: wake, read a (simulated) sensor,
# publish it at QoS 1 over the persistent session, and sleep or stop.
# With Wi-Fi or the broker down, the reading is queued in flash (the
# session store) and goes out on a later wake, before that wake's reading.
# Environment: MQTTS_BROKER=host:port (default 127.0.0.1:1883);
# MQTTS_SLEEP_MS=n to deep-sleep afterwards (the process ends and
# tools/vboard.py boots it again after n ms), else it just returns.
import os
import time

import board
from mqttsession import MQTTClient, MQTTException, SessionStore

_TOPIC = "nodes/{id}/temperature"
_WIFI_MS = 3000  # the virtual link is up at once or not at all
_DRAIN_MS = 5000  # bound on waiting for acknowledgements before sleeping


def broker():
    host, _, port = (os.getenv("MQTTS_BROKER") or "127.0.0.1:1883").rpartition(":")
    return host or "127.0.0.1", int(port or 1883)


def read_temperature():
    # Simulated: 20.0 to 25.5 degrees.
    return 20 + os.urandom(1)[0] % 56 / 10


def next_seq():
    # A wake counter in (emulated) RTC memory, as on the ESP32.
    m = board.rtc_memory()
    n = int.from_bytes(m[:4], "little") + 1 if len(m) >= 4 else 1
    board.rtc_memory(n.to_bytes(4, "little"))
    return n


def online(client):
    # True when connected; False (with the reason printed) when Wi-Fi or the broker is down
    if not board.wifi_connect("virtual", "", _WIFI_MS):
        print("wifi:", board.wifi_reason())
        return False
    try:
        present = client.connect(clean_session=False)
    except (OSError, MQTTException) as e:
        print("mqtt:", repr(e))
        return False
    print("connected", "(session resumed)" if present else "(new session)")
    return True


def run():
    host, port = broker()
    # client_id=None: the session stored for this broker (or a new one); its ID is
    # known before connecting, so an offline wake can queue under the right topic.
    client = MQTTClient(
        None, host, port=port, keepalive=60, store=SessionStore(board.mount() + "/.mqtt")
    )
    up = online(client)
    cid = client.client_id
    if isinstance(cid, bytes):
        cid = cid.decode()
    topic = _TOPIC.format(id=cid)
    msg = '{"seq":%d,"t":%s}' % (next_seq(), read_temperature())
    # Connected: returns once the broker acknowledged it. Offline: stored in
    # flash, resent by connect() on a later wake.
    client.publish(topic, msg, qos=1)
    if not up:
        print("queued", topic, msg, "(%d in flash)" % client.pending())
        return
    t0 = time.ticks_ms()
    while client.pending() and time.ticks_diff(time.ticks_ms(), t0) < _DRAIN_MS:
        client.check_msg()  # acknowledgements of readings queued on earlier wakes
    client.disconnect()
    print("published", topic, msg, "(%d still in flash)" % client.pending())


def main():
    try:
        run()
    except (OSError, MQTTException) as e:
        # the link broke mid-way: what publish() accepted is in flash
        print("mqtt:", repr(e))
    except Exception as e:
        # Anything else, such as a store written by a newer library version
        # (ValueError): printed, and the node sleeps and wakes as ever, never
        # left awake with a traceback.
        print("error:", repr(e))
    ms = os.getenv("MQTTS_SLEEP_MS")
    if ms:
        board.deepsleep(int(ms))


main()
