# mqttsession: an MQTT client for MicroPython whose session survives reboots.
__version__ = "0.1.0"

from .packet import MQTTException
from .client import MQTTClient
from .store import SessionStore
