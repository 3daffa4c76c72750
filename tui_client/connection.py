"""The client's WebSocket session with an arena server: hello, frames in and out, reconnect.

A thin I/O layer over :mod:`server.protocol`. It keeps the session token from ``welcome``
and, when the connection drops, reconnects with it so the server resumes the session's
games (within its grace period). It reports every change of state through ``on_status`` and
every parsed server frame through ``on_frame``; it never raises into the caller's loop.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import time
from dataclasses import dataclass
from typing import Any, Callable

import websockets
from websockets.asyncio.client import ClientConnection, connect

from server.protocol import PROTOCOL_VERSION, ErrorMsg, ProtocolError, Welcome, dumps, parse_server_frame


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


_NETWORK_ERRORS = (OSError, asyncio.TimeoutError, websockets.ConnectionClosed, websockets.InvalidHandshake,
                   websockets.InvalidURI, EOFError)


class ArenaConnection:
    """One client session; run :meth:`run` as a task, :meth:`send` requests, :meth:`close` at the end.

    ``on_frame`` receives parsed server frames (pydantic models from
    :mod:`server.protocol`), ``on_status`` each :class:`LinkStatus`. Both are called on
    the connection's event loop and must not block.
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
        self.name = name
        self.role = role
        self.token: str | None = None
        self.retry_delays = retry_delays
        self.open_timeout = open_timeout
        self._on_frame = on_frame
        self._on_status = on_status
        self._ws: ClientConnection | None = None
        self._closing = False
        self._ids = itertools.count(1)
        self.status = LinkStatus(LinkState.CONNECTING, url, name)
        self.lost_at: float | None = None

    # -- public ------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._ws is not None and self.status.state is LinkState.CONNECTED

    async def send(self, frame: dict[str, Any]) -> int:
        """Send a request with a fresh ``id``; return the id. Raises :class:`NotConnected`."""
        ws = self._ws
        if ws is None or self.status.state is not LinkState.CONNECTED:
            raise NotConnected(self.status.describe(show_url=False))
        request_id = next(self._ids)
        try:
            await ws.send(dumps({**frame, "id": request_id}))
        except websockets.ConnectionClosed as exc:
            raise NotConnected(f"connection closed ({exc})") from None
        return request_id

    async def close(self) -> None:
        self._closing = True
        ws = self._ws
        if ws is not None:
            await ws.close()

    def drop(self) -> None:
        """Cut the network link abruptly, as a lost connection would (tests, diagnostics)."""
        ws = self._ws
        if ws is not None:
            ws.transport.abort()

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
            finally:
                self._ws = None
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
        async with connect(self.url, open_timeout=self.open_timeout, max_size=1 << 20,
                           ping_interval=10, ping_timeout=10) as ws:
            welcome = await self._hello(ws)
            self._ws = ws
            self.lost_at = None
            self._set_status(LinkState.CONNECTED)
            self._emit(welcome)
            async for raw in ws:
                try:
                    frame = parse_server_frame(raw)
                except (ProtocolError, ValueError) as exc:
                    frame = ErrorMsg(type="error", code="bad_server_frame", message=f"unreadable server frame: {exc}")
                self._emit(frame)

    async def _hello(self, ws: ClientConnection) -> Welcome:
        """Say hello (resuming with the token when there is one); adjust a taken name once or twice."""
        for tries in range(6):
            hello: dict[str, Any] = {"type": "hello", "name": self.name, "role": self.role, "protocol": PROTOCOL_VERSION}
            if self.token:
                hello["token"] = self.token
            await ws.send(dumps(hello))
            raw = await asyncio.wait_for(ws.recv(), timeout=10)
            try:
                frame = parse_server_frame(raw)
            except ProtocolError as exc:
                raise FatalConnectionError(f"the server's reply to hello is not protocol v1: {exc}") from None
            if isinstance(frame, Welcome):
                self.token = frame.token
                self.name = frame.name
                return frame
            if isinstance(frame, ErrorMsg):
                if frame.code == "bad_token":  # session expired: start a new one
                    self.token = None
                    self._emit(frame)
                    continue
                if frame.code == "name_taken" and not self.token:
                    self.name = _next_name(self.name, tries + 2)
                    continue
                raise FatalConnectionError(f"server refused hello: [{frame.code}] {frame.message}")
        raise FatalConnectionError("server kept refusing hello")

    def _emit(self, frame: Any) -> None:
        try:
            self._on_frame(frame)
        except Exception as exc:  # a UI bug must not kill the session
            try:
                self._on_frame(ErrorMsg(type="error", code="client_error", message=f"client failed on a frame: {exc!r}"))
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
