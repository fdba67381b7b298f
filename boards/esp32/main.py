# Example sensor node for the ESP32: wake, read the chip's temperature,
# publish it at QoS 1 over the persistent session, deep-sleep, repeat.
# With Wi-Fi or the broker down, the reading is queued in flash (the session
# store) and goes out on a later wake, before that wake's reading.
# Settings live in config.py (copy config_example.py).
import time

import board
import config
from mqttsession import MQTTClient, MQTTException, SessionStore


def read_temperature():
    # The chip's own sensor, so the example needs no wiring: replace it.
    import esp32

    try:
        return esp32.mcu_temperature()  # S2, S3, C3, ...
    except AttributeError:
        return round((esp32.raw_temperature() - 32) / 1.8, 1)  # ESP32: degrees F


def next_seq():
    # A wake counter in RTC memory: kept through deep sleep, 1 after power-on.
    m = board.rtc_memory()
    n = int.from_bytes(m[:4], "little") + 1 if len(m) >= 4 else 1
    board.rtc_memory(n.to_bytes(4, "little"))
    return n


def online(client):
    # True when connected; False (reason printed) when Wi-Fi or the broker is down
    if not board.wifi_connect(
        config.WIFI_SSID, config.WIFI_KEY, config.WIFI_TIMEOUT_MS, country=config.WIFI_COUNTRY
    ):
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
    # client_id=None: the session stored for this broker, or a new one whose
    # ID derives from machine.unique_id(); it lives in /.mqtt on littlefs and
    # is known before connecting, so an offline wake queues under its topic.
    client = MQTTClient(
        None,
        config.BROKER,
        port=config.PORT,
        user=config.USER,
        password=config.PASSWORD,
        keepalive=config.KEEPALIVE,
        store=SessionStore("/.mqtt"),
    )
    up = online(client)
    cid = client.client_id
    if isinstance(cid, bytes):
        cid = cid.decode()
    topic = config.TOPIC.format(id=cid)
    msg = '{"seq":%d,"t":%s}' % (next_seq(), read_temperature())
    # Connected: returns once the broker acknowledged it. Offline: stored in
    # flash, and connect() on a later wake sends it before that wake's reading.
    client.publish(topic, msg, qos=1)
    if not up:
        print("queued", topic, msg, "(%d in flash)" % client.pending())
        return
    t0 = time.ticks_ms()
    while client.pending() and time.ticks_diff(time.ticks_ms(), t0) < 5000:
        client.check_msg()  # acknowledgements of readings queued on earlier wakes
    client.disconnect()
    print("published", topic, msg, "(%d still in flash)" % client.pending())


def main():
    if board.reset_cause() == "power" and config.BOOT_GRACE_S:
        # A moment to press Ctrl-C (or run mpremote) before the first sleep.
        time.sleep(config.BOOT_GRACE_S)
    try:
        run()
    except (OSError, MQTTException) as e:
        # Link or broker trouble: a message publish() accepted is in flash
        # and is sent on a later wake, so sleeping now loses nothing.
        print("mqtt:", repr(e))
    except Exception as e:
        # Anything else, such as a store written by a newer library version
        # (ValueError): printed, and the node sleeps and wakes as ever, never
        # left awake with a traceback.
        print("error:", repr(e))
    board.deepsleep(config.INTERVAL_S * 1000)


main()
