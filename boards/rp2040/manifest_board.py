# Freezes mqttsession and this board layer into firmware for an rp2 board that
# has a manifest of its own (ports/rp2/boards/<BOARD>/manifest.py: RPI_PICO_W,
# RPI_PICO2_W): it is the board's default (the port's manifest plus the
# networking bundle), so it comes first; then the library, then board.py:
#
#   cd micropython/ports/rp2
#   make BOARD=RPI_PICO_W FROZEN_MANIFEST=/path/to/mqttsession/boards/rp2040/manifest_board.py
#
# On a board without one (RPI_PICO) the build stops with "manifest file not
# found": use manifest_port.py there. Relative paths are resolved from this
# file's directory.
include("$(BOARD_DIR)/manifest.py")
include("../../manifest.py")
module("board.py")
