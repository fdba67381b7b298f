# mqttsession: an MQTT client for MicroPython whose session survives reboots.
__version__ = "0.2.24"

from .packet import MQTTException

def __getattr__(name):
    # the blocking client, the store and the keeper load on first use, so a node without
    # them (an asyncio node) does not pay for them; other names are submodules (from
    # mqttsession import aio)
    mod = {"MQTTClient": "client", "SessionStore": "store", "Link": "link"}.get(name, name)
    try:
        m = __import__("mqttsession." + mod, None, None, (mod,))
    except ImportError:
        raise AttributeError(name)
    return m if mod is name else getattr(m, name)
