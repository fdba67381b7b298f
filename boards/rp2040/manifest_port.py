# Freezes mqttsession into firmware for an rp2 board without a manifest of its
# own (RPI_PICO, RPI_PICO2), whose default is the port's manifest:
#
#   cd micropython/ports/rp2
#   make BOARD=RPI_PICO FROZEN_MANIFEST=/path/to/mqttsession/boards/rp2040/manifest_port.py
#
# FROZEN_MANIFEST replaces the board's default, so that comes first; then the
# library. Not board.py: it is the Pico W's Wi-Fi layer and imports `network`,
# which these boards lack; the application brings up its own network.
# Relative paths are resolved from this file's directory.
include("$(PORT_DIR)/boards/manifest.py")
include("../../manifest.py")
