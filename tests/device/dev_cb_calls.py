# Calls into the client from its own message callback, with a burst of commands arriving
# together: a node resumes its session while 40 QoS 1 commands wait at the broker (it
# sends up to its in-flight limit at once, so they arrive in one read).
# TEST=reply: the callback publishes a reply (QoS REPLY_QOS, window WINDOW) for each; the
#   node is subscribed to the replies too. "CMDS n distinct" and "REPLIES n distinct".
# TEST=sub: each command names a topic the callback subscribes to; then one message on
#   each of those topics. "CMDS ..." and "HEARD n" (messages heard on them).
# TEST=bye: the callback disconnects at command 5; the node connects again and hears the
#   rest. "FIRST ..." (commands of the first connection), "SECOND ..." (after).
# TEST=flight: no callback calls: a client with a will publishes the N commands at
#   window 64 and disconnects with them in flight; a node subscribed to the commands and
#   the will hears them. "HEARD n distinct", "WILL n", "PENDING n" (the sender's after
#   its disconnect). With API=aio the sender is the asyncio client.
# TEST=consumer (aio): as bye, the commands read with messages(2) in a task that, at
#   command 5, publishes a QoS 1 message (window 16) and disconnects: "FIRST ...",
#   "SECOND ...", and "EARLY <the disconnect returned before its timeout, 60 s>".
# TEST=nested: the callback calls check_msg(): "NESTED <what check_msg raised>
#   <connected after>".
# API=aio: the asyncio client, its callback a coroutine function (TEST=bye only).
# Every call's exception is printed ("RAISED ...") and ends the run.
import time

import devlib as d

TEST = d.cfg("TEST")
API = d.cfg("API", "blocking")
CID = d.cfg("CID")
N = 40
cmd = d.topic("cmd").encode()
reply = d.topic("reply").encode()
got = []
replies = []
heard = []


def sender():
    # the commands, published while the node is offline (the broker keeps them for it)
    p = d.client(CID + "-s", window=64)
    p.connect()
    for i in range(N):
        p.publish(cmd, b"%d" % i, qos=1)
    p.disconnect()


def words(xs):
    return " ".join(x.decode() for x in xs)


def blocking():
    c = d.client(CID, window=d.cfg("WINDOW", 1), queue=64)

    def cb(t, m):
        if t == cmd:
            got.append(m)
            if TEST == "reply":
                c.publish(reply, m, qos=d.cfg("REPLY_QOS", 1))
            elif TEST == "sub":
                c.subscribe(d.topic("s/").encode() + m, 1)
            elif m == b"5":
                c.disconnect()
        elif t == reply:
            replies.append(m)
        else:
            heard.append(m)

    c.set_callback(cb)
    c.connect(clean_session=True)
    c.disconnect()
    c.connect(clean_session=False)
    c.subscribe(cmd, 1)
    c.subscribe(reply, 1)
    c.disconnect()
    sender()
    c.connect(clean_session=False)

    def done():
        if TEST == "reply":
            return len(got) >= N and len(replies) >= N and not c.pending()
        return len(got) >= N or c.sock is None

    t0 = time.ticks_ms()
    while not done() and time.ticks_diff(time.ticks_ms(), t0) < 30000:
        c.check_msg()
        time.sleep_ms(1)
    print("CMDS", len(got), len(set(got)))
    if TEST == "reply":
        print("REPLIES", len(replies), len(set(replies)))
        print("PENDING", c.pending())
    elif TEST == "sub":
        p = d.client(CID + "-s")
        p.connect()
        for i in range(N):
            p.publish(d.topic("s/%d" % i), b"%d" % i, qos=1)
        p.disconnect()
        d.pump(c, lambda: len(heard) >= N)
        print("HEARD", len(heard), len(set(heard)))
    else:
        print("FIRST", words(got), c.sock is None)
        got.clear()
        c.connect(clean_session=False)
        d.pump(c, lambda: len(got) >= N - 6, 10000)
        # anything more the broker would send (a command again) comes meanwhile
        d.pump(c, lambda: False, 500)
        print("SECOND", words(got))
    c.disconnect()


async def aio():
    import asyncio
    from mqttsession.aio import MQTTClient as A

    c = A(CID, d.cfg("HOST"), d.cfg("PORT"), version=d.VERSION, keepalive=30, timeout=60,
          window=16)
    first = [True]
    early = []

    async def cb(t, m):
        got.append(m)
        if first[0] and m == b"5":
            await c.disconnect()

    async def consumer():
        async for t, m, _ in c.messages(2):
            got.append(m)
            if first[0] and m == b"5":
                # the reader waits for room in messages() meanwhile: the acknowledgement
                # of this message is not read before the disconnect
                await c.publish(d.topic("other"), b"x", qos=1)
                t0 = time.ticks_ms()
                await c.disconnect()
                early.append(time.ticks_diff(time.ticks_ms(), t0) < 30000)

    if TEST != "consumer":
        c.set_callback(cb)
    await c.connect(clean_session=True)
    await c.disconnect()
    await c.connect(clean_session=False)
    await c.subscribe(cmd, 1)
    await c.disconnect()
    sender()
    await c.connect(clean_session=False)
    if TEST == "consumer":
        asyncio.create_task(consumer())  # (an iterator ends at a disconnect(): made now)
    t0 = time.ticks_ms()
    while c.isconnected() and time.ticks_diff(time.ticks_ms(), t0) < 30000:
        await asyncio.sleep_ms(10)
    await asyncio.sleep_ms(300)  # handlers still to run would run meanwhile
    if TEST == "consumer":
        # the client is closed from the DISCONNECT on; disconnect() returns once the broker
        # has closed too (a second at most)
        t0 = time.ticks_ms()
        while not early and time.ticks_diff(time.ticks_ms(), t0) < 30000:
            await asyncio.sleep_ms(10)
    print("FIRST", words(got), not c.isconnected())
    if TEST == "consumer":
        print("EARLY", early == [True])
    first[0] = False
    got.clear()
    await c.connect(clean_session=False)
    if TEST == "consumer":
        asyncio.create_task(consumer())
    t0 = time.ticks_ms()
    while len(got) < N - 6 and time.ticks_diff(time.ticks_ms(), t0) < 10000:
        await asyncio.sleep_ms(10)
    await asyncio.sleep_ms(500)
    print("SECOND", words(got))
    await c.disconnect()


async def aio_sender():
    from mqttsession.aio import MQTTClient as A

    p = A(CID + "-s", d.cfg("HOST"), d.cfg("PORT"), version=d.VERSION, keepalive=30,
          window=64)
    p.set_last_will(d.topic("will"), b"gone", qos=1)
    await p.connect()
    for i in range(N):
        await p.publish(cmd, b"%d" % i, qos=1)
    await p.disconnect()
    return p.pending()


def nested():
    c = d.client(CID)
    c.set_callback(lambda t, m: c.check_msg())
    c.connect()
    c.subscribe(cmd, 1)
    c.publish(cmd, b"x")  # (QoS 0: publish reads nothing, the echo comes in check_msg)
    e = d.raises(RuntimeError, d.pump, c, lambda: False, 10000)
    print("NESTED", e.args[0].replace(" ", "_"), c.isconnected())
    c.disconnect()


def flight():
    c = d.client(CID)
    c.set_callback(lambda t, m: heard.append(m) if t == cmd else got.append(m))
    c.connect()
    c.subscribe(cmd, 1)
    c.subscribe(d.topic("will"), 1)
    if API == "aio":
        import asyncio

        n = asyncio.run(aio_sender())
    else:
        p = d.client(CID + "-s", window=64)
        p.set_last_will(d.topic("will"), b"gone", qos=1)
        p.connect()
        for i in range(N):
            p.publish(cmd, b"%d" % i, qos=1)
        p.disconnect()
        n = p.pending()
    d.pump(c, lambda: len(heard) >= N, 10000)
    d.pump(c, lambda: False, 1000)  # a will would come meanwhile
    print("HEARD", len(heard), len(set(heard)))
    print("WILL", len(got))
    print("PENDING", n)
    c.disconnect()


try:
    if TEST == "flight":
        flight()
    elif TEST == "nested":
        nested()
    elif API == "aio":
        import asyncio

        asyncio.run(aio())
    else:
        blocking()
except Exception as e:
    import sys

    sys.print_exception(e)
    print("RAISED", repr(e))
print("PASS")
