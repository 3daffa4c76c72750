"""The asyncio + websockets layer over :class:`client.core.ClientCore`.

:class:`ArenaClient` carries one core over a WebSocket: :meth:`~ArenaClient.connect` opens
the connection and runs the handshake (a resume when the core holds a token), a reader
task feeds every frame to the core and hands the events on, :meth:`~ArenaClient.request`
sends a request and waits for its matched reply, :meth:`~ArenaClient.events` iterates the
events (or ``on_event``, sync or async, is called with each in order), and
:meth:`~ArenaClient.close` ends it cleanly. The core, and so the session, outlives the
connection: connect again to resume. :meth:`~ArenaClient.play_arranged` arranges a
bot-vs-bot game and waits for its end (tournaments, evaluations).

::

    async with ArenaClient(url, ClientCore("ann")) as arena:
        reply = await arena.request(arena.core.challenge("minimax", side="X"))
        async for event in arena.events():
            if isinstance(event, YourTurn):
                await arena.send(arena.core.move(event.game.game_id, event.game.board.legal_cells()[0]))
            elif isinstance(event, GameEnded):
                break
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from typing import Any, AsyncIterator, Awaitable, Callable, Sequence

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from client.core import (
    ChallengeDeclined,
    ClientCore,
    Event,
    Frame,
    GameEnded,
    HelloRefused,
    Reply,
    RequestFailed,
    SessionExpired,
    Welcomed,
)
from server.protocol import dumps

log = logging.getLogger("autosteer.client")

EventHandler = Callable[[Event], "Awaitable[None] | None"]


class ClientError(RuntimeError):
    """A request or a game that cannot go on (no answer, refused, not started)."""


class ConnectionLost(ClientError):
    """The connection closed while a request or a game was waited for."""


class HelloError(ClientError):
    """The server refused the ``hello``; ``event.retryable`` when connecting later may work."""

    def __init__(self, event: HelloRefused) -> None:
        super().__init__(f"[{event.code}] {event.message}")
        self.event = event


class SendPacer:
    """A token bucket that keeps a client under the server's per-connection message rate."""

    def __init__(self, rate: float, burst: int) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"send rate must be > 0 and burst >= 1, got {rate} and {burst}")
        self.rate, self.burst = rate, float(burst)
        self.tokens = float(burst)
        self.at = time.monotonic()

    @classmethod
    def for_server(cls, limits: Any, rate: float, burst: int) -> "SendPacer":
        """90 % of what ``welcome.limits`` allows (``rate`` and ``burst`` where it says nothing)."""
        try:
            limits = limits or {}
            return cls(float(limits.get("rate", rate)) * 0.9, max(1, int(int(limits.get("burst", burst)) * 0.9)))
        except (TypeError, ValueError, AttributeError):
            return cls(rate, burst)

    async def take(self) -> None:
        while True:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
            self.at = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return
            await asyncio.sleep((1.0 - self.tokens) / self.rate)


class ArenaClient:
    """One session with the server at ``url`` through ``core``, one connection at a time.

    ``on_event`` (sync or async) gets every event in order, awaited before the next frame
    is read; ``pacer`` paces :meth:`send` (None: unpaced); ``open_timeout`` bounds the
    connection's opening and the wait for ``welcome``; ``max_size`` is the largest frame read;
    ``retry_hello`` decides on a refused ``hello``: True (after changing the core, e.g. its
    name) sends it again on the same connection; ``connect_options`` go to websockets' ``connect``."""

    def __init__(
        self,
        url: str,
        core: ClientCore,
        *,
        on_event: EventHandler | None = None,
        pacer: SendPacer | None = None,
        open_timeout: float = 10.0,
        max_size: int = 1 << 22,
        retry_hello: Callable[[HelloRefused], bool] | None = None,
        connect_options: dict[str, Any] | None = None,
    ) -> None:
        self.url, self.core = url, core
        self.on_event, self.pacer = on_event, pacer
        self.open_timeout, self.max_size = open_timeout, max_size
        self.retry_hello = retry_hello
        self.connect_options = dict(connect_options or {})
        self.ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiting: dict[Any, asyncio.Future[Event]] = {}  # request id -> its reply
        self._watched: set[Any] = set()  # ids of challenges and arranges whose game's end is waited for
        self._ends: dict[str, asyncio.Future[Event]] = {}  # challenge id -> its GameEnded / ChallengeDeclined
        self._queue: asyncio.Queue[Event | None] | None = None

    async def __aenter__(self) -> "ArenaClient":
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ the connection
    async def connect(self) -> Welcomed:
        """Open the connection, say hello (a new hello after an expired token) and start
        reading. Raises :class:`HelloError` on a refusal, and websockets' and the OS's
        errors (``OSError``, ``TimeoutError``, ``InvalidHandshake``, ``InvalidURI``) as they come."""
        ws = await connect(self.url, open_timeout=self.open_timeout, max_size=self.max_size, **self.connect_options)
        try:
            welcomed = await self._handshake(ws)
        except BaseException:
            await ws.close()
            self.core.connection_lost()
            raise
        self.ws = ws
        self._reader = asyncio.create_task(self._read(ws), name=f"{self.core.name}-reader")
        return welcomed

    async def _handshake(self, ws: ClientConnection) -> Welcomed:
        await ws.send(dumps(self.core.hello()))
        while True:
            raw = await asyncio.wait_for(ws.recv(), self.open_timeout)
            for event in self.core.receive(raw):
                if isinstance(event, HelloRefused) and not (self.retry_hello and self.retry_hello(event)):
                    raise HelloError(event)
                if not isinstance(event, HelloRefused):
                    await self._deliver(event)
                if isinstance(event, Welcomed):
                    return event
                if isinstance(event, (SessionExpired, HelloRefused)):
                    await ws.send(dumps(self.core.hello()))

    @property
    def connected(self) -> bool:
        return self.ws is not None and self.core.welcomed

    async def wait_closed(self) -> None:
        """Return when the present connection has ended and its last events are handled."""
        if self._reader is not None:
            await asyncio.shield(self._reader)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection (a closing handshake) and let the reader finish; a reader
        still held by an event handler a second later is cancelled."""
        ws, reader = self.ws, self._reader
        if ws is not None:
            await ws.close(code, reason)
        if reader is not None and reader is not asyncio.current_task():
            await asyncio.wait({reader}, timeout=1.0)
            reader.cancel()
            try:
                await reader
            except asyncio.CancelledError:
                pass

    def abort(self) -> None:
        """Cut the connection without a closing handshake, as a network failure would."""
        if self.ws is not None:
            self.ws.transport.abort()

    # ------------------------------------------------------------------ frames out
    async def send(self, frame: Frame) -> None:
        """Send one frame (built by the core). Raises ``ConnectionClosed`` without a connection."""
        if self.ws is None:
            raise ConnectionLost(f"not connected to {self.url}")
        if self.pacer is not None:
            await self.pacer.take()
        await self.ws.send(dumps(frame))

    async def request(self, frame: Frame, timeout: float | None = 30.0) -> Reply | RequestFailed:
        """Send a tracked request (``frame`` from the core, with its ``id``) and return its
        :class:`Reply`, or :class:`RequestFailed` when the server refused it. Raises
        :class:`ClientError` when no answer comes in ``timeout`` s, :class:`ConnectionLost`
        when the connection ends first."""
        rid = frame["id"]
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = future
        try:
            await self.send(frame)
            event = await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise ClientError(f"no answer from the server to {frame['type']!r} in {timeout:.0f} s") from None
        except ConnectionClosed:
            raise ConnectionLost(f"the connection to {self.url} closed") from None
        finally:
            self._waiting.pop(rid, None)
            self._watched.discard(rid)
        assert isinstance(event, (Reply, RequestFailed))
        return event

    async def play_arranged(
        self,
        x: str,
        o: str,
        *,
        game_timeout: float,
        clock: float | None = None,
        tag: str | None = None,
        seed: int | None = None,
        opening: Sequence[int] | None = None,
        retry_for: float = 120.0,
    ) -> Frame:
        """Arrange ``x`` vs ``o`` (from ``opening``, the game's first moves, when given) and
        return its ``game_over`` frame. A busy or declining bot is asked again with growing
        pauses for up to ``retry_for`` s; any other refusal, and a game not over in
        ``game_timeout`` s, raises :class:`ClientError`."""
        deadline = time.monotonic() + retry_for
        pause = 0.05
        while True:
            arrange = self.core.arrange(x, o, clock=clock, tag=tag, seed=seed, opening=opening)
            self._watched.add(arrange["id"])
            event = await self.request(arrange)
            if isinstance(event, Reply):
                end = await self.game_end(event.frame["challenge_id"], game_timeout, f"{x} vs {o}")
                if isinstance(end, GameEnded):
                    return end.frame
                why = end.reason or "declined"
            elif event.code in ("busy", "rate_limited"):
                why = event.message or "busy"
            else:
                raise ClientError(f"the server refused {x} vs {o}: [{event.code}] {event.message}")
            if time.monotonic() > deadline:
                raise ClientError(f"{x} vs {o} could not be started for {retry_for:.0f} s: {why}")
            log.debug("%s vs %s not started (%s); retrying in %.2f s", x, o, why, pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)

    async def game_end(self, game_id: str, timeout: float, what: str = "") -> GameEnded | ChallengeDeclined:
        """The end of a game started by a request sent through :meth:`play_arranged`: its
        :class:`GameEnded`, or :class:`ChallengeDeclined` when it never started."""
        future = self._ends.setdefault(game_id, asyncio.get_running_loop().create_future())
        try:
            event = await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise ClientError(f"game {game_id} ({what or 'arranged'}) did not finish in {timeout:.0f} s") from None
        finally:
            self._ends.pop(game_id, None)
        assert isinstance(event, (GameEnded, ChallengeDeclined))
        return event

    # ------------------------------------------------------------------ frames in
    def events(self) -> AsyncIterator[Event]:
        """Every event from this call on, until the connection closes (one iterator at a time)."""
        if self._queue is None:
            self._queue = asyncio.Queue()
        return self._drain(self._queue)

    @staticmethod
    async def _drain(queue: asyncio.Queue[Event | None]) -> AsyncIterator[Event]:
        while (event := await queue.get()) is not None:
            yield event

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                for event in self.core.receive(raw):
                    self._settle(event)
                    await self._deliver(event)
        except ConnectionClosed:
            pass
        finally:
            self.ws = None
            self.core.connection_lost()
            self._fail_waiters()
            if self._queue is not None:
                self._queue.put_nowait(None)

    def _settle(self, event: Event) -> None:
        """Resolve what waits for ``event``: a request's reply, a game's end."""
        if isinstance(event, (Reply, RequestFailed)):
            rid = event.request.get("id")
            if isinstance(event, Reply) and rid in self._watched and "challenge_id" in event.frame:
                self._ends.setdefault(event.frame["challenge_id"], asyncio.get_running_loop().create_future())
            _resolve(self._waiting.get(rid), event)
        elif isinstance(event, GameEnded) or isinstance(event, ChallengeDeclined) and not event.offered:
            gid = event.frame.get("game_id") or event.frame.get("challenge_id")
            if isinstance(gid, str):
                _resolve(self._ends.get(gid), event)

    async def _deliver(self, event: Event) -> None:
        if self._queue is not None:
            self._queue.put_nowait(event)
        if self.on_event is None:
            return
        try:
            out = self.on_event(event)
            if inspect.isawaitable(out):
                await out
        except ConnectionClosed:
            raise
        except Exception:  # a bug in a handler costs one event, not the session
            log.exception("%s: the event handler failed on %s", self.core.name, type(event).__name__)

    def _fail_waiters(self) -> None:
        error = ConnectionLost(f"the connection to {self.url} closed")
        for future in [*self._waiting.values(), *self._ends.values()]:
            if not future.done():
                future.set_exception(error)
        self._ends.clear()


def _resolve(future: asyncio.Future[Event] | None, event: Event) -> None:
    if future is not None and not future.done():
        future.set_result(event)
