# RPI_PICO_W (and every rp2 board with a manifest of its own):
#
#   make BOARD=RPI_PICO_W FROZEN_MANIFEST=/path/to/mqttsession/boards/rp2040/manifest.py
#
# RPI_PICO and other boards without one: use manifest_port.py instead.
include("manifest_board.py")
