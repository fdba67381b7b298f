# Freezes mqttsession and this board layer into ESP32 firmware:
#
#   cd micropython/ports/esp32
#   make BOARD=ESP32_GENERIC FROZEN_MANIFEST=/path/to/mqttsession/boards/esp32/manifest.py
#
# ESP32_GENERIC has no manifest of its own: the port's is its default, so it
# comes first (it freezes _boot.py, inisetup.py, asyncio, mip, ...).
# Relative paths are resolved from this file's directory.
include("$(PORT_DIR)/boards/manifest.py")
include("../../manifest.py")
module("board.py")
