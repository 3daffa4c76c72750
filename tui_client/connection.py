"""The client's WebSocket session with an arena server: hello, frames in and out, reconnect.

A thin layer over :mod:`client.aio`: the session (its token, request ids) is a
:class:`client.core.ClientCore`, each connection an :class:`client.aio.ArenaClient`. When
the connection drops it reconnects with the token so the server resumes the session's
games (within its grace period); a taken name becomes ``ann-2``, ``ann-3``... It reports
every change of state through ``on_status`` and every parsed server frame through
``on_frame``; it never raises into the caller's loop.
"""

from __future__ import annotations

import asyncio
import enum
import time
from dataclasses import dataclass
from typing import Any, Callable

import websockets

from client.aio import ArenaClient, ConnectionLost, HelloError
from client.core import BadFrame, ClientCore, Event, HelloRefused, Welcomed
from server.protocol import ErrorMsg, parse_server_frame


class LinkState(str, enum.Enum):
    """Where the session stands."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class LinkStatus:
    """A snapshot of the session for the status bar."""

    state: LinkState
    url: str
    name: str
    attempt: int = 0
    detail: str = ""

    def describe(self, show_url: bool = True) -> str:
        where = f" · {self.url}" if show_url and self.url else ""
        if self.state is LinkState.CONNECTED:
            return f"● connected as {self.name}{where}"
        if self.state is LinkState.CONNECTING:
            return f"◌ connecting to {self.url or 'server'}…"
        if self.state is LinkState.RECONNECTING:
            why = f" ({self.detail})" if self.detail else ""
            return f"◌ connection lost{why}: reconnecting, attempt {self.attempt}…"
        why = f": {self.detail}" if self.detail else ""
        return f"✖ disconnected{why}"


class NotConnected(RuntimeError):
    """Raised by :meth:`ArenaConnection.send` while there is no live connection."""


class FatalConnectionError(RuntimeError):
    """A refusal that retrying cannot fix (bad URL, protocol mismatch)."""


_NETWORK_ERRORS = (
    OSError,
    asyncio.TimeoutError,
    websockets.ConnectionClosed,
    websockets.InvalidHandshake,
    websockets.InvalidURI,
    EOFError,
)


class ArenaConnection:
    """One client session; run :meth:`run` as a task, :meth:`send` requests, :meth:`close` at the end.

    ``on_frame`` receives parsed server frames (pydantic models from
    :mod:`server.protocol`), ``on_status`` each :class:`LinkStatus`. Both are called on
    the connection's event loop and must not block. The session (its token, request ids)
    is a :class:`client.core.ClientCore`, each connection a :class:`client.aio.ArenaClient`.
    """

    def __init__(
        self,
        url: str,
        name: str,
        *,
        on_frame: Callable[[Any], None],
        on_status: Callable[[LinkStatus], None],
        role: str = "player",
        retry_delays: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0, 3.0),
        open_timeout: float = 5.0,
    ) -> None:
        self.url = url
        self.core = ClientCore(name, role=role, id_prefix=None)
        self.retry_delays = retry_delays
        self.open_timeout = open_timeout
        self._on_frame = on_frame
        self._on_status = on_status
        self._arena: ArenaClient | None = None
        self._closing = False
        self._renames = 0
        self._last_frame: dict[str, Any] | None = None
        self.status = LinkStatus(LinkState.CONNECTING, url, name)
        self.lost_at: float | None = None

    # -- public ------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.core.name

    @property
    def role(self) -> str:
        return self.core.role

    @property
    def token(self) -> str | None:
        return self.core.token

    @property
    def connected(self) -> bool:
        return self._arena is not None and self._arena.connected and self.status.state is LinkState.CONNECTED

    async def send(self, frame: dict[str, Any]) -> int:
        """Send a request with a fresh ``id``; return the id. Raises :class:`NotConnected`."""
        arena = self._arena
        if arena is None or not self.connected:
            raise NotConnected(self.status.describe(show_url=False))
        request = self.core.request(frame["type"], **{k: v for k, v in frame.items() if k != "type"})
        try:
            await arena.send(request)
        except (websockets.ConnectionClosed, ConnectionLost) as exc:
            raise NotConnected(f"connection closed ({exc})") from None
        return request["id"]

    async def close(self) -> None:
        self._closing = True
        if self._arena is not None and self._arena.ws is not None:
            await self._arena.ws.close()

    def drop(self) -> None:
        """Cut the network link abruptly, as a lost connection would (tests, diagnostics)."""
        if self._arena is not None:
            self._arena.abort()

    async def run(self) -> None:
        """Connect and read frames until :meth:`close`; reconnect whenever the link drops."""
        attempt = 0
        while not self._closing:
            detail = ""
            try:
                await self._session()
                detail = "server closed the connection"
            except FatalConnectionError as exc:
                self._set_status(LinkState.CLOSED, detail=str(exc))
                return
            except websockets.InvalidURI as exc:
                self._set_status(LinkState.CLOSED, detail=f"bad server URL: {exc}")
                return
            except _NETWORK_ERRORS as exc:
                detail = _brief(exc)
            if self._closing:
                break
            if self.lost_at is None:
                self.lost_at = time.monotonic()
            attempt += 1
            self._set_status(LinkState.RECONNECTING, attempt=attempt, detail=detail)
            await asyncio.sleep(self.retry_delays[min(attempt - 1, len(self.retry_delays) - 1)])
        self._set_status(LinkState.CLOSED, detail="closed")

    # -- internals -----------------------------------------------------------------
    async def _session(self) -> None:
        self._renames = 0
        arena = ArenaClient(
            self.url,
            self.core,
            on_event=self._on_event,
            open_timeout=self.open_timeout,
            max_size=1 << 20,
            retry_hello=self._rename,
            connect_options={"ping_interval": 10, "ping_timeout": 10},
        )
        try:
            welcomed = await arena.connect()
        except HelloError as exc:
            raise FatalConnectionError(f"server refused hello: {exc}") from None
        self._arena = arena
        self.lost_at = None
        self._set_status(LinkState.CONNECTED)
        self._emit(parse_server_frame(welcomed.frame))
        try:
            await arena.wait_closed()
        finally:
            self._arena = None

    def _rename(self, refused: HelloRefused) -> bool:
        """A taken name becomes ``ann-2``, ``ann-3``... (a new session only, five times at most)."""
        if refused.code != "name_taken" or self.core.token or self._renames >= 5:
            return False
        self._renames += 1
        self.core.name = _next_name(self.core.name, self._renames + 1)
        return True

    def _on_event(self, event: Event) -> None:
        """Pass each server frame on once, parsed (several events may come from one frame)."""
        if isinstance(event, Welcomed) or event.frame is self._last_frame:
            return  # the welcome is passed on once the status says connected
        self._last_frame = event.frame
        if isinstance(event, BadFrame):
            self._emit(
                ErrorMsg(type="error", code="bad_server_frame", message=f"unreadable server frame: {event.reason}")
            )
        else:
            self._emit(parse_server_frame(event.frame))

    def _emit(self, frame: Any) -> None:
        try:
            self._on_frame(frame)
        except Exception as exc:  # a UI bug must not kill the session
            try:
                self._on_frame(
                    ErrorMsg(type="error", code="client_error", message=f"client failed on a frame: {exc!r}")
                )
            except Exception:
                pass

    def _set_status(self, state: LinkState, attempt: int = 0, detail: str = "") -> None:
        self.status = LinkStatus(state, self.url, self.name, attempt, detail)
        try:
            self._on_status(self.status)
        except Exception:
            pass


def _next_name(name: str, n: int) -> str:
    """``ann`` → ``ann-2`` → ``ann-3`` (kept within the protocol's 32 characters)."""
    base = name.rsplit("-", 1)[0] if name.rsplit("-", 1)[-1].isdigit() else name
    suffix = f"-{n}"
    return base[: 32 - len(suffix)] + suffix


def _brief(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, websockets.ConnectionClosed):
        return "connection closed"
    text = str(exc) or type(exc).__name__
    return text[:80]
