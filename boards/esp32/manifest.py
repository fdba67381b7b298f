# ESP32_GENERIC and every ESP32 board without a manifest of its own:
#
#   make BOARD=ESP32_GENERIC FROZEN_MANIFEST=/path/to/mqttsession/boards/esp32/manifest.py
#
# A board with its own ports/esp32/boards/<BOARD>/manifest.py (UM_TINYPICO, ...):
# use manifest_board.py instead, or its extras are lost.
include("manifest_port.py")
