# Freezing mqttsession into firmware. A board manifest includes this file
# after its port's or board's own manifest (see boards/esp32/manifest.py).
# The version is kept equal to lib/mqttsession/__init__.py's __version__
# and package.json's by tools/package.py.
metadata(
    description="MQTT 3.1.1/5.0 client whose persistent session lives in littlefs flash.",
    version="0.2.24",
)

package("mqttsession", base_path="lib")
