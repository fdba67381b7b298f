# Freezes mqttsession and this board layer into Pico W firmware:
#
#   cd micropython/ports/rp2
#   make BOARD=RPI_PICO_W FROZEN_MANIFEST=/path/to/mqttsession/boards/rp2040/manifest.py
#
# RPI_PICO_W has its own manifest (the port's plus the networking bundle),
# so that one is included first. Relative paths are resolved from this
# file's directory.
include("$(BOARD_DIR)/manifest.py")
include("../../manifest.py")
module("board.py")
