# TLS handshake from the device to the broker's TLS listener, CA given as DER.
# devcfg: HOST, TLS_PORT, CA_DER (bytes), SERVER_NAME
import socket
import ssl

import devcfg

ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.verify_mode = ssl.CERT_REQUIRED
ctx.load_verify_locations(cadata=devcfg.CA_DER)
addr = socket.getaddrinfo(devcfg.HOST, devcfg.TLS_PORT)[0][-1]
s = socket.socket()
s.connect(addr)
try:
    s = ctx.wrap_socket(s, server_hostname=devcfg.SERVER_NAME)
except (OSError, ValueError) as e:  # MicroPython reports a bad chain as ValueError
    print("TLS_ERROR", repr(e).replace("\n", " "))
    raise
print("TLS_OK")
# MQTT 3.1.1 CONNECT, clean session, client ID "tls-hello"; expect CONNACK 0.
cid = b"tls-hello"
body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(cid).to_bytes(2, "big") + cid
s.write(bytes([0x10, len(body)]) + body)
ack = s.read(4)
print("CONNACK", ack[0] >> 4, ack[3])
s.close()
print("PASS")
