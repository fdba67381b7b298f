# Freezes mqttsession and this board layer into firmware for an ESP32 board
# that has no manifest of its own (no ports/esp32/boards/<BOARD>/manifest.py:
# ESP32_GENERIC, ESP32_GENERIC_S3, ...), whose default is the port's manifest:
#
#   cd micropython/ports/esp32
#   make BOARD=ESP32_GENERIC FROZEN_MANIFEST=/path/to/mqttsession/boards/esp32/manifest_port.py
#
# FROZEN_MANIFEST replaces the board's default, so that comes first (it freezes
# _boot.py, inisetup.py, asyncio, mip, ...); then the library, then board.py.
# Relative paths are resolved from this file's directory.
include("$(PORT_DIR)/boards/manifest.py")
include("../../manifest.py")
module("board.py")
