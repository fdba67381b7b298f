# Example node for the virtual board: wake, read a (simulated) sensor,
# publish it at QoS 1 over the persistent session, and sleep or stop.
# Environment: MQTTS_BROKER=host:port (default 127.0.0.1:1883);
# MQTTS_SLEEP_MS=n to deep-sleep afterwards (the process ends and
# tools/vboard.py boots it again after n ms), else it just returns.
import os

import board
from mqttsession import MQTTClient, MQTTException, SessionStore

_TOPIC = "nodes/{id}/temperature"


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


def run():
    if not board.wifi_connect("virtual", "", 5000):
        print("wifi: link down")
        return
    host, port = broker()
    client = MQTTClient(
        None, host, port=port, keepalive=60, store=SessionStore(board.mount() + "/.mqtt")
    )
    present = client.connect(clean_session=False)
    cid = client.client_id
    if isinstance(cid, bytes):
        cid = cid.decode()
    topic = _TOPIC.format(id=cid)
    msg = '{"seq":%d,"t":%s}' % (next_seq(), read_temperature())
    client.publish(topic, msg, qos=1)
    client.disconnect()
    print("published", topic, msg, "(session resumed)" if present else "(new session)")


def main():
    try:
        run()
    except (OSError, MQTTException) as e:
        print("mqtt:", repr(e))
    ms = os.getenv("MQTTS_SLEEP_MS")
    if ms:
        board.deepsleep(int(ms))


main()
