# The floor: a bare loop on a raw socket that writes one prebuilt QoS 1 PUBLISH and
# reads its 4-byte PUBACK, stop-and-wait and with a window of prebuilt packets.
# What no MQTT client on this interpreter can beat.
import bcommon as B

N = B.num("n", 20000)
BUDGET = B.num("budget_ms", 1500) * 1000
W = B.num("window", 32)


def stop_and_wait():
    r = B.Raw("bench-floor-sw")
    s = r.s
    p = B.publish_packet(B.TOPIC, B.MSG, 1, 1)
    ab = bytearray(4)
    for _ in range(100):
        s.write(p)
        s.readinto(ab, 4)
    done = 0
    t0 = B.ticks()
    while done < N:
        for _ in range(64):
            s.write(p)
            s.readinto(ab, 4)
        done += 64
        if B.since(t0) > BUDGET:
            break
    B.out("floor.q1.w1", done * 1e6 / B.since(t0))
    r.close()


def windowed():
    r = B.Raw("bench-floor-win")
    s = r.s
    pk = [B.publish_packet(B.TOPIC, B.MSG, 1, i + 1) for i in range(W)]
    n = len(pk[0])
    buf = b"".join(pk)
    ab = bytearray(4)
    t0 = B.ticks()
    s.write(buf)
    sent = W
    done = 0
    stop = N
    while done < stop:
        s.readinto(ab, 4)
        done += 1
        if sent < stop:
            pid = ab[2] << 8 | ab[3]
            s.write(buf, (pid - 1) * n, n)
            sent += 1
            if not sent & 63 and B.since(t0) > BUDGET:
                stop = sent  # drain what is in flight, then stop
    B.out(f"floor.q1.w{W}", done * 1e6 / B.since(t0))
    r.close()


stop_and_wait()
windowed()
print("DONE")
