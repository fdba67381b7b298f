# Freezes mqttsession and this board layer into firmware for an ESP32 board
# that has a manifest of its own (ports/esp32/boards/<BOARD>/manifest.py, e.g.
# UM_TINYPICO): that one is the board's default, includes the port's manifest
# and adds the board's extras, so it comes first:
#
#   cd micropython/ports/esp32
#   make BOARD=UM_TINYPICO FROZEN_MANIFEST=/path/to/mqttsession/boards/esp32/manifest_board.py
#
# On a board without one the build stops with "manifest file not found": use
# manifest_port.py there. Relative paths are resolved from this file's directory.
include("$(BOARD_DIR)/manifest.py")
include("../../manifest.py")
module("board.py")
