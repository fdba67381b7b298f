# MQTTClient for asyncio, on the same core as the blocking client. A reader task handles
# incoming packets, keepalive pings and (with link=) reconnects, so a node runs it beside
# its other tasks. Within one packet, reads and writes are bounded by the timeout.
import asyncio
import time

from .packet import MQTTException
from .core import Core




class MQTTClient(Core):
    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self._ev = asyncio.Event()  # set whenever the reader handled something
        self._task = None
        self._err = None  # what ended the reader without a keeper
        self._up = False  # connected and resumed: publish may use the socket

    def _wait_out(self):
        pass  # never block the loop: _readable sends what waits in _ob (core._write)

    async def _readable(self, ms):
        # True once the socket has data, False after ms. Polls: cancelling a task that
        # waits in asyncio's I/O queue leaves a stale entry behind (a later socket with
        # the same id then never wakes), so timeouts here never cancel an I/O wait.
        # Also True when whole packets wait in the buffer, or when a packet that started
        # to arrive is past its deadline (the read then raises ETIMEDOUT).
        t0 = time.ticks_ms()
        while self._poll is not None:
            if self._ob is not None:
                self._flush()  # output the socket did not take: sent as it drains
            for _ in self._poll.ipoll(0):
                return True
            if not self._rx_ms(1):
                return True
            if time.ticks_diff(time.ticks_ms(), t0) >= ms:
                return False
            # quick while an answer is due, slower when idle
            busy = self._ping or self._sub or self._s.nin or not self._up or self._ob
            await asyncio.sleep_ms(1 if busy else 20)
        return False

    async def _wait(self, ms):
        # until the reader handles a packet; OSError when nothing comes within ms
        self._ev.clear()
        if self._task is None or self.sock is None:
            raise OSError(107)
        try:
            await asyncio.wait_for_ms(self._ev.wait(), ms)
        except asyncio.TimeoutError:
            raise OSError(110)
        if self._err:
            raise self._err

    async def connect(self, clean_session=True):
        if self.link and self._task is None:
            # the keeper takes over if this attempt fails: the reader task reconnects
            self._want = True
            try:
                return await self._connect(clean_session)
            except (OSError, MQTTException) as e:
                self._close()
                self.link.failed(e)
                self._task = asyncio.create_task(self._run())
                raise
        return await self._connect(clean_session)

    async def _connect(self, clean_session):
        s = self._s
        self._up = False
        # connect steps (TCP, TLS, CONNECT, CONNACK) never block; the poll mask says
        # which way the socket must be ready next
        self._conn_start(clean_session)
        while True:
            present = self._conn_step()
            if present is not None:
                break
            await self._readable(self._conn_ms())
        if present and clean_session:
            present = 0
        if present and self.store and s.fresh and self.version == 5:
            self._close()  # [MQTT-3.2.2-4]
            return await self._connect(True)
        self._resume(present, clean_session)
        self._up = True
        self._err = None
        self._want = True
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        if not present and not clean_session:
            for t, q in list(s.subs.items()):
                await self.subscribe(t, q)
        self._pump()
        if self.link:
            self.link.connected()
        return bool(present)

    async def _run(self):
        try:
            while self._want:
                if self.sock is None:
                    if not await self._reconnect():
                        return
                    continue
                try:
                    due = self._keepalive_due(time.ticks_ms())
                    if due <= 0:
                        self._send_ping()
                        continue
                    if not await self._readable(due):
                        continue
                    if self.sock is not None:
                        self._recv()
                except (OSError, MQTTException) as e:
                    self._close()
                    if self.link:
                        self.link.failed(e)
                    elif isinstance(e, OSError):
                        self._err = e
                        return
                    else:
                        self._err = e  # a refused oversized packet: reported, link kept
                self._ev.set()
        finally:
            self._task = None
            self._ev.set()

    async def _reconnect(self):
        lk = self.link
        if lk is None:
            return False
        await asyncio.sleep_ms(max(0, lk.due()))
        try:
            if not lk.wifi():
                raise OSError(113)
            await self._connect(False)  # this reader stays the only one: _task is set
        except (OSError, MQTTException) as e:
            self._close()
            lk.failed(e)
        return True

    async def publish(self, topic, msg, retain=False, qos=0):
        self._check(self._topic(topic), self._payload(msg), qos)
        if not self._online():
            if qos == 0 and self.link:
                self.lost0 += 1
                return
            if self.store is None and self.link is None:
                raise OSError(107)
            self._queue(qos, retain, False)
            return
        if qos == 0:
            try:
                self._pub0(retain)
            except OSError:
                if self._lost(self.link):
                    raise
            return
        s = self._s
        t, m = self._t, self._m
        try:
            while self._online() and (s.full() or s.nin >= self._quota):
                await self._wait(self._tms)  # room in the window first
        except OSError:
            if self.store is None and self.link is None:
                raise
        self._t, self._m = t, m  # other tasks may have published meanwhile
        k = self._queue(qos, retain, self._online())
        if not self._online():
            return
        seq = s.seq[k]
        try:
            self._send_slot(k)
            while self.window == 1 and s.fl[k] and s.seq[k] == seq:
                await self._wait(self._tms)
        except OSError:
            if self._lost(self.store or self.link):
                raise
        if s.fl[k] and s.seq[k] == seq and not s.durable(k):
            s._keep(k)

    async def subscribe(self, topic, qos=0):
        await self._sub_call(topic, qos)

    async def unsubscribe(self, topic):
        await self._sub_call(topic, None)

    async def _sub_call(self, topic, qos):
        topic = self._sub_start(topic, qos)
        t0 = time.ticks_ms()
        while self._sub:
            await self._wait(max(1, self._tms - time.ticks_diff(time.ticks_ms(), t0)))
        self._sub_end(topic, qos)

    async def disconnect(self):
        self._bye()
        self._ev.set()

    def _online(self):
        return self._up and self.sock is not None

    def isconnected(self):
        return self._online()

    def pending(self):
        return self._s.pending()
