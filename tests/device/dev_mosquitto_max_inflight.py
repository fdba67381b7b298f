# A window of QoS 1/2 messages against mosquitto with max_inflight_messages set
# (tests/host/test_mosquitto_max_inflight.py).
import devlib as d

N = d.cfg("N", 6)
Q = d.cfg("QOS", 2)


def blocking():
    c = d.client(d.cfg("CID", "infl"), window=d.cfg("WINDOW", 8), timeout=10)
    c.connect(clean_session=False)
    for i in range(N):
        c.publish(d.topic("m"), b"%d" % i, qos=Q)
    print("SENT", N)
    d.check(d.pump(c, lambda: c.pending() == 0, 30000), "all acknowledged")
    print("DOWNGRADED", c.downgraded, "DROPPED", c.dropped)
    c.disconnect()


def aio():
    import asyncio

    from mqttsession.aio import MQTTClient

    async def main():
        c = MQTTClient(d.cfg("CID", "infl"), d.cfg("HOST"), d.cfg("PORT"), version=d.VERSION,
                       window=d.cfg("WINDOW", 8), timeout=10, keepalive=30)
        await c.connect(clean_session=False, wait=True)
        for i in range(N):
            await c.publish(d.topic("m"), b"%d" % i, qos=Q)
        print("SENT", N)
        for _ in range(1500):
            if not c.pending():
                break
            await asyncio.sleep_ms(20)
        d.check(c.pending() == 0, "all acknowledged")
        print("DOWNGRADED", c.downgraded, "DROPPED", c.dropped)
        await c.disconnect()

    asyncio.run(main())


globals()[d.cfg("TEST", "blocking")]()
print("PASS")
