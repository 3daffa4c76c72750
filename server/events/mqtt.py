"""One MQTT connection for a server: a bounded outgoing queue, reconnects with backoff, subscriptions.

:class:`MqttLink` is what the cluster layer (:mod:`server.events.cluster`) publishes through. A
publish never waits and never raises: it appends to a queue of at most ``queue_size``
messages; when the queue is full (the broker is away, or slower than the games) the new
message is dropped and counted. One task drains the queue in order: a message leaves the
queue only once the broker has it (QoS 1: its PUBACK), so nothing is lost when the
connection breaks mid-publish; the task then reconnects with exponential backoff (0.1 s
doubling to ``max_backoff``) and goes on where it stopped. Subscriptions are renewed on
every connection. The server's status is not queued: it is one retained latest value
(:meth:`set_status`), sent before anything queued whenever it changed and on every
connection; the broker publishes the ``will`` when the connection drops without a goodbye.

``mqtt://host[:port][/prefix]`` URLs name a broker; the prefix (default ``autosteer/v1``)
starts every topic.

>>> parse_mqtt_url("mqtt://127.0.0.1:1884/lab/autosteer/v1")
('127.0.0.1', 1884, 'lab/autosteer/v1')
>>> parse_mqtt_url("mqtt://broker")
('broker', 1883, 'autosteer/v1')
>>> topic_part("cup/2026#1")
'cup_2026_1'
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlsplit

log = logging.getLogger("autosteer.mqtt")

DEFAULT_PREFIX = "autosteer/v1"
DEFAULT_PORT = 1883


class MqttUrlError(ValueError):
    """An ``--mqtt`` value that is not ``mqtt://host[:port][/prefix]``."""


def parse_mqtt_url(url: str) -> tuple[str, int, str]:
    """``(host, port, prefix)`` of an ``mqtt://host[:port][/prefix]`` URL."""
    parts = urlsplit(url)
    if parts.scheme != "mqtt" or not parts.hostname:
        raise MqttUrlError(
            f"{url!r} is not an MQTT broker URL; write mqtt://host[:port][/prefix], e.g. mqtt://127.0.0.1:1883"
        )
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise MqttUrlError(f"{url!r} has a bad port; write mqtt://host:1883") from None
    prefix = parts.path.strip("/") or DEFAULT_PREFIX
    if parts.query or "#" in url or any(c in prefix for c in "+\0"):
        raise MqttUrlError(f"the topic prefix {prefix!r} may not contain +, # or NUL")
    return parts.hostname, port, prefix


def topic_part(text: str) -> str:
    """``text`` as one topic level: ``/``, ``+``, ``#`` and NUL become ``_``."""
    return "".join("_" if c in "/+#\0" else c for c in str(text)) or "_"


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    payload: bytes
    qos: int
    retain: bool


MessageHandler = Callable[[str, bytes], None]


class MqttLink:
    """A publishing (and subscribing) connection that outlives broker outages; see the module docstring."""

    def __init__(
        self,
        url: str,
        *,
        client_id: str,
        queue_size: int = 10_000,
        will: tuple[str, dict[str, Any]] | None = None,
        online: tuple[str, dict[str, Any]] | None = None,
        on_message: MessageHandler | None = None,
        max_backoff: float = 5.0,
        keepalive: int = 10,
        window: int = 64,
    ) -> None:
        self.host, self.port, self.prefix = parse_mqtt_url(url)
        self.url = url
        self.client_id = client_id
        self.queue_size = queue_size
        self.will = will
        self.online = online
        self.on_message = on_message
        self.max_backoff = max_backoff
        self.keepalive = keepalive
        self.window = window
        self.queue: collections.deque[Outgoing] = collections.deque()
        self.subscriptions: set[str] = set()
        self.connected = False
        self.published = 0
        self.dropped = 0
        self.connects = 0
        self.last_error: str | None = None
        self._status_dirty = online is not None
        self._ready = asyncio.Event()
        self._client: Any = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    # ------------------------------------------------------------------ API (never blocks)
    def publish(
        self, topic: str, payload: dict[str, Any] | bytes | None, *, qos: int = 1, retain: bool = False
    ) -> bool:
        """Queue one message; False (and counted in ``dropped``) when the queue is full.
        ``None`` as payload with ``retain`` clears the topic's retained message."""
        if len(self.queue) >= self.queue_size:
            self.dropped += 1
            return False
        try:
            data = (
                b""
                if payload is None
                else payload
                if isinstance(payload, bytes)
                else json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
            )
        except (TypeError, ValueError, RecursionError) as exc:  # not JSON: counted, never raised into play
            self.dropped += 1
            log.warning("dropped a message for %s that is not JSON: %s", topic, exc)
            return False
        self.queue.append(Outgoing(topic, data, qos, retain))
        self._ready.set()
        return True

    def set_status(self, topic: str, payload: dict[str, Any]) -> None:
        """The retained status, replaced (never queued, never dropped): only the latest counts."""
        self.online = (topic, payload)
        self._status_dirty = True
        self._ready.set()

    def subscribe(self, topic: str) -> None:
        if topic in self.subscriptions:
            return
        self.subscriptions.add(topic)
        if self.connected and self._client is not None:
            asyncio.get_running_loop().create_task(self._safe(self._client.subscribe(topic, qos=1)))

    def unsubscribe(self, topic: str) -> None:
        if topic not in self.subscriptions:
            return
        self.subscriptions.discard(topic)
        if self.connected and self._client is not None:
            asyncio.get_running_loop().create_task(self._safe(self._client.unsubscribe(topic)))

    def status(self) -> dict[str, Any]:
        """For ``/healthz``: connected, queued, published, dropped, connects, last error."""
        return {
            "broker": f"{self.host}:{self.port}",
            "prefix": self.prefix,
            "connected": self.connected,
            "queued": len(self.queue),
            "queue_size": self.queue_size,
            "published": self.published,
            "dropped": self.dropped,
            "connects": self.connects,
            "last_error": self.last_error,
        }

    # ------------------------------------------------------------------ life cycle
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"mqtt-{self.client_id}")

    async def stop(self, *, flush_timeout: float = 2.0) -> None:
        """Send what is queued (for up to ``flush_timeout`` s, connecting first if it has to),
        then say goodbye (no will) and stop."""
        end = time.monotonic() + flush_timeout
        while (self.queue or self._status_dirty) and time.monotonic() < end:
            await asyncio.sleep(0.01)
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _safe(self, coro: Any) -> None:
        try:
            await coro
        except Exception as exc:  # the connection broke: the next connection renews it
            log.debug("mqtt call failed: %s", exc)

    async def _run(self) -> None:
        import aiomqtt

        backoff = 0.1
        while not self._closing:
            will = None
            if self.will is not None:
                will = aiomqtt.Will(
                    self.will[0], json.dumps(self.will[1], separators=(",", ":")).encode(), qos=1, retain=True
                )
            client = aiomqtt.Client(
                self.host, self.port, identifier=self.client_id, will=will, keepalive=self.keepalive, timeout=5.0
            )
            client.pending_calls_threshold = self.window + 16  # our window is meant, not a leak to warn about
            try:
                async with client:
                    self._client, self.connected = client, True
                    self.connects += 1
                    backoff = 0.1
                    log.info("connected to the MQTT broker %s:%s", self.host, self.port)
                    self._status_dirty = self.online is not None
                    for topic in sorted(self.subscriptions):
                        await client.subscribe(topic, qos=1)
                    await self._pump(client)
            except asyncio.CancelledError:
                self.connected = False
                raise
            except Exception as exc:  # aiomqtt.MqttError and socket errors: wait, then reconnect
                self.last_error = f"{type(exc).__name__}: {exc}"
                if self.connected:
                    log.warning("lost the MQTT broker %s:%s (%s); reconnecting", self.host, self.port, exc)
            finally:
                self.connected, self._client = False, None
            if not self._closing:
                await asyncio.sleep(backoff)
                backoff = min(self.max_backoff, backoff * 2)

    async def _pump(self, client: Any) -> None:
        """Deliver queued messages in order while reading incoming ones; returns (raises)
        when the connection ends. Up to ``window`` publishes are in flight at once (paho
        writes them in the order they start); a message leaves the queue only when it and
        every message before it are acknowledged, so after a broken connection the
        unacknowledged ones are sent again (QoS 1: at least once)."""
        reader = asyncio.get_running_loop().create_task(self._read(client))
        in_flight: collections.deque[asyncio.Future[Any]] = collections.deque()  # for queue[0:len(in_flight)]

        def start(item: Outgoing) -> asyncio.Future[Any]:
            return asyncio.ensure_future(
                client.publish(item.topic, item.payload, qos=item.qos, retain=item.retain, timeout=math.inf)
            )

        try:
            while True:
                if self._status_dirty and self.online is not None:  # the latest status goes first
                    self._status_dirty = False
                    status = Outgoing(
                        self.online[0],
                        json.dumps(self.online[1], separators=(",", ":"), allow_nan=False).encode(),
                        1,
                        True,
                    )
                    try:
                        await self._first(start(status), reader)
                    except BaseException:
                        self._status_dirty = True
                        raise
                while len(in_flight) < min(self.window, len(self.queue)):
                    in_flight.append(start(self.queue[len(in_flight)]))
                if in_flight:
                    await self._first(in_flight[0], reader)  # raises when the connection ends
                    in_flight.popleft()
                    self.queue.popleft()
                    self.published += 1
                    continue
                self._ready.clear()
                if self.queue or self._status_dirty:
                    continue
                waiter = asyncio.ensure_future(self._ready.wait())
                done, _ = await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if reader in done:
                    waiter.cancel()
                    reader.result()  # raises the disconnect
                    return
        finally:
            for task in (reader, *in_flight):
                task.cancel()
            for task in (reader, *in_flight):
                with contextlib.suppress(BaseException):
                    await task

    @staticmethod
    async def _first(send: asyncio.Future[Any], reader: asyncio.Task[None]) -> None:
        """Wait for ``send``; raise if the connection ends first (``reader`` stops) or it fails."""
        done, _ = await asyncio.wait({send, reader}, return_when=asyncio.FIRST_COMPLETED)
        if send in done:
            send.result()
            return
        reader.result()
        raise ConnectionError("the MQTT connection ended")

    async def _read(self, client: Any) -> None:
        async for message in client.messages:
            if self.on_message is None:
                continue
            try:
                payload = message.payload if isinstance(message.payload, bytes) else str(message.payload or "").encode()
                self.on_message(str(message.topic), payload)
            except Exception:
                log.exception("handling an MQTT message on %s failed", message.topic)
