# The parts of machine that the board layers touch at import (none are called here).
def unique_id():
    return b"\x01\x02\x03\x04\x05\x06\x07\x08"
