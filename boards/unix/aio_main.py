# Example asyncio node: a sensor task (every 200 ms), a QoS 1 publisher (the average of
# the readings every second), commands over a QoS 2 subscription, and a watchdog fed
# every 100 ms, all in one event loop with the client. Boots and keeps running offline;
# the link keeper connects when it can. Board-neutral: runs on the virtual board
# (`import aio_main` there) and, with board.py and config.py, on a real one.
# Environment (unix port): MQTTS_BROKER=host:port; MQTTS_RUN_S=n to stop after n s;
# MQTTS_SLEEP_MS=n: after an error, deep-sleep n ms (the virtual board boots it again).
# Commands on nodes/<id>/cmd: "ping" (answers "pong" on nodes/<id>/reply),
# "every <ms>" (publish interval).
import asyncio
import os
import time

import board
from mqttsession import Link, MQTTException, SessionStore
from mqttsession.aio import MQTTClient

_getenv = getattr(os, "getenv", lambda k: None)


class Watchdog:
    # machine.WDT where the port has one; else a stand-in that records the longest gap
    # between feeds (what a real watchdog would have seen)
    def __init__(self, ms):
        self.longest = 0
        self._t = time.ticks_ms()
        try:
            from machine import WDT

            self._wdt = WDT(timeout=ms)
        except (ImportError, AttributeError, ValueError):
            self._wdt = None

    def feed(self):
        if self._wdt:
            self._wdt.feed()
        n = time.ticks_ms()
        self.longest = max(self.longest, time.ticks_diff(n, self._t))
        self._t = n


try:
    import config  # a real board: the settings of boards/<board>/config_example.py
except ImportError:
    config = None


def broker():
    if config:
        return config.BROKER, config.PORT
    host, _, port = (_getenv("MQTTS_BROKER") or "127.0.0.1:1883").rpartition(":")
    return host or "127.0.0.1", int(port or 1883)


def wifi():
    # a first attempt at boot (it blocks, before the loop starts); offline is fine, the
    # keeper tries again
    if config:
        return board.wifi_connect(config.WIFI_SSID, config.WIFI_KEY, config.WIFI_TIMEOUT_MS)
    return board.wifi_connect("virtual", "", 5000)


class Node:
    def __init__(self):
        host, port = broker()
        self.c = MQTTClient(None, host, port, keepalive=30, store=SessionStore(
            board.mount() + "/.mqtt"), link=Link(board=board, wifi_timeout_ms=2000),
            on_connect=self.online)
        self.base = "nodes/" + self.c.client_id
        self.c.set_last_will(self.base + "/status", "offline", retain=True, qos=1)
        self.readings = []
        self.every = 1000
        self.sent = self.cmds = 0
        self.wdt = Watchdog(5000)

    async def online(self, c):
        # awaited as a task after every (re)connect
        await c.publish(self.base + "/status", "online", retain=True, qos=1)

    async def sensor(self):
        while True:
            self.readings.append(20 + os.urandom(1)[0] % 56 / 10)  # simulated, 20-25.5
            await asyncio.sleep_ms(200)

    async def publisher(self):
        while True:
            await asyncio.sleep_ms(self.every)
            r, self.readings = self.readings, []
            if r:
                msg = '{"t":%.2f,"n":%d}' % (sum(r) / len(r), len(r))
                try:
                    await self.c.publish(self.base + "/temperature", msg, qos=1)
                    self.sent += 1
                except OSError as e:
                    # the store full after a long outage (ENOSPC): this one is not kept,
                    # and the task goes on (ended, its readings would pile up in RAM)
                    print("not queued:", repr(e))

    async def commands(self):
        async for topic, msg, retained in self.c.messages():
            self.cmds += 1
            w = msg.decode().split()
            print("CMD", " ".join(w))
            if w == ["ping"]:
                await self.c.publish(self.base + "/reply", "pong", qos=1)
            elif len(w) == 2 and w[0] == "every" and w[1].isdigit():
                self.every = max(200, int(w[1]))

    async def watchdog(self):
        while True:
            self.wdt.feed()
            await asyncio.sleep_ms(100)

    async def run(self, secs=None):
        for f in (self.sensor, self.publisher, self.watchdog, self.commands):
            asyncio.create_task(f())
        # returns at once when the broker cannot be reached: the keeper goes on
        await self.c.connect(clean_session=False)
        await self.c.subscribe(self.base + "/cmd", 2)  # offline: made on connect
        print("node", self.c.client_id, "up" if self.c.isconnected() else "offline")
        t0 = time.ticks_ms()
        while secs is None or time.ticks_diff(time.ticks_ms(), t0) < secs * 1000:
            await asyncio.sleep(1)
        print("published", self.sent, "commands", self.cmds, "outages", self.c.link.outages,
              "watchdog longest gap", self.wdt.longest, "ms")
        await self.c.disconnect()


def main():
    try:
        wifi()
        secs = _getenv("MQTTS_RUN_S")
        asyncio.run(Node().run(int(secs) if secs else None))
        return
    except (OSError, MQTTException) as e:
        # trouble the link keeper does not ride through: what publish() accepted is in
        # flash and goes out after the next boot
        print("mqtt:", repr(e))
    except Exception as e:
        # Anything else, such as a store written by a newer library version
        # (ValueError): printed, and the node sleeps and boots again, as the blocking
        # example node does, never left with a traceback.
        print("error:", repr(e))
    ms = config.INTERVAL_S * 1000 if config else _getenv("MQTTS_SLEEP_MS")
    if ms:
        board.deepsleep(int(ms))


main()
