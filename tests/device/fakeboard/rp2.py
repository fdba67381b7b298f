# rp2.country for the Pico W board layer on the unix port.
def country(c=None):
    return None
