# The texts of the errors a healthy node never meets, loaded only to make one
# (packet.err) and freed again: in the modules a node keeps, each text would hold heap
# (a string object and its bytes, about its length + 60 bytes from a copied .mpy) for
# nothing. Line n of _T (one string: one object while loaded) is error n; its first
# letter the type: V ValueError, T TypeError, R RuntimeError, O OSError and M
# MQTTException (their first argument is the errno or reason code), N
# store.NewerFormat. A text with % takes the remaining arguments. A full queue or store
# ("session queue full", "session store full") is met by every node offline long
# enough: those stay in core.py and store.py, where raising one loads nothing (and
# cannot fail for want of heap).
from .packet import MQTTException

_T = (
    # packet.py
    "Vremaining length out of range\n"  # 0
    "VSUBSCRIBE of %d bytes exceeds buffer of %d\n"
    "MDUP on a QoS 0 PUBLISH\n"
    "Mbad PUBLISH topic\n"
    "MPUBLISH without a topic\n"
    "MPUBLISH with packet ID 0\n"  # 5
    "Mpacket ID 0\n"
    "Macknowledgement of %d bytes\n"
    "Vtopic must be 1 to 65535 bytes\n"
    "Vtopic must be UTF-8 without U+0000 or surrogates\n"
    "Vtopic must not contain wildcards\n"  # 10
    "Vtopic filter must be 1 to 65535 bytes\n"
    "Vtopic filter must be UTF-8 without U+0000 or surrogates\n"
    "Vinvalid topic filter %r\n"
    "Vqos must be 0, 1 or 2\n"
    # core.py
    "Tmsg must be bytes, bytearray, memoryview or str\n"  # 15
    "Mmessage exceeds the broker's maximum packet size\n"
    "Vclient_id longer than 65535 bytes\n"
    "Ttopic must be str or bytes\n"
    "MPUBLISH QoS 3\n"
    # wire.py
    "Mbad remaining length\n"  # 20
    # ctl.py
    "Munsubscribe refused\n"
    "Msubscription refused\n"
    "MSUBACK without return codes\n"
    "MSUBACK and UNSUBACK swapped\n"
    "M%d reason codes for 1 filter\n"  # 25
    "Mreason code 0x%02x\n"
    "Mexpected CONNACK\n"
    "Mbad CONNACK\n"
    "Mconnection refused\n"
    # client.py
    "Vbudget_ms must be None or an int from 0 to 536870000\n"  # 30
    # session.py
    "Vqueue must be 1 to 65535 in RAM (see SessionStore ram)\n"
    "Vwindow larger than SessionStore(ram=%d)\n"
    # store.py
    "Vlarger than %d bytes: left alone\n"
    "Nformat %d, newer than this library's %d\n"
    "Vbad checksum\n"  # 35
    "Vnot a %s file\n"
    # stored.py
    "Vbad record (length or CRC)\n"
    "Onull session: connect first\n"
    # texts that are printed or reported (the exception stands for its text)
    "Va file where a directory belongs: removed\n"
    "Vmqttsession: store: %s - starting without it\n"  # 40
    "Vmqttsession: link: on_change(%s) raised %r\n"
    # aio.py
    "Vmessages(n): n must be an int >= 1\n"
    # client.py
    "Rcheck_msg() and wait_msg() cannot run inside the callback\n"
    "Rconnect() cannot run inside the callback\n"
    "Vtimeout must be a number of seconds >= 0.001 and <= 536870\n"  # 45
    # core.py
    "Tset_callback(f): f must be callable or None\n"
    # resume.py: a tail file reported
    "Vempty, a later one is not\n"
    "Vmissing, a later one is not\n"
    "Volder than the one before it: its message lost\n"
    "Va segment lost: tail slot %d is from an older round\n"  # 50
    "Va filter or QoS the client refuses, left out\n"
    "Vwatermark beyond the queue\n"
    "Vnot a segment\n"
    "Vmqttsession: store: %s - kept, read again later\n"
    "Vmqttsession: store: %s - read as it is\n"  # 55
    # stored.py
    "Osession taken over by a later client of the same client ID, or deleted\n"
    # load.py
    "Tcapacity must be an int\n"
    # aio.py, args.py
    "T%s must be callable or None\n"
    # args.py
    "Vroot must not contain NUL\n"
    # resume.py
    "Vmissing, named by the host's last file: damage\n"  # 60
)


def make(n, a):
    i = 0
    for _ in range(n):
        i = _T.find("\n", i) + 1
    k = _T[i]
    t = _T[i + 1 : _T.find("\n", i)]
    if k == "O" or k == "M":
        c = a[0]
        a = a[1:]
    if a:
        t = t % a
    if k == "V":
        return ValueError(t)
    if k == "T":
        return TypeError(t)
    if k == "O":
        return OSError(c, t)
    if k == "M":
        return MQTTException(c, t)
    if k == "R":
        return RuntimeError(t)
    from .store import NewerFormat

    return NewerFormat(t)
