# The asyncio client's disconnect(end_session=True), loaded when a session is ended on
# purpose (aio.MQTTClient.disconnect): a node that keeps its session never loads it.


async def end_session(c):
    # before the DISCONNECT: the broker is to discard the session (MQTT 5: Session Expiry
    # 0 at DISCONNECT; 3.1.1, or offline: first one clean connect, without the keeper or
    # on_connect) and the store forgets its messages and subscriptions. That connect
    # failing raises its error, and the session is kept.
    if not c.isconnected() or c.version == 4:
        lk, hk, td = c.link, c.on_connect, c._todo
        c.link = c.on_connect = None
        c._todo = {}
        try:
            await c.connect(True)
        finally:
            c.link, c.on_connect = lk, hk
            if not c._up:
                c._todo = td  # kept with the session
    c._s.clear()
