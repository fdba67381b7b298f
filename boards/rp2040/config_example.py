# Settings of the example node. Copy to config.py, edit, and put it on the
# board next to main.py (python tools/deploy.py --port PORT --board rp2040).
WIFI_SSID = "my-network"
WIFI_KEY = "my-password"
WIFI_COUNTRY = "GB"  # two letters (rp2.country); sets the legal channels
WIFI_TIMEOUT_MS = 15000

BROKER = "192.168.1.10"  # host name or address of the MQTT broker
PORT = 0  # 0: 1883 (8883 with TLS)
USER = None
PASSWORD = None
KEEPALIVE = 60

TOPIC = "nodes/{id}/temperature"  # {id} becomes the client ID
INTERVAL_S = 300  # deep sleep between readings (rp2: at most 4294 s)
BOOT_GRACE_S = 3  # after power-on, time to press Ctrl-C before the node runs
