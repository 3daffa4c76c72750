"""A tiny async WebSocket test client for the arena: connect, hello, send/recv JSON, wait_for.

Usage in a test::

    async with serve_arena(ServerConfig(port=0, db_path=":memory:")) as srv:
        async with WsClient.connect(srv.url, "ann") as ann:
            await ann.send(type="challenge", opponent="minimax", side="X")
            start = await ann.wait_for("game_start")

Frames that ``wait_for`` skips stay in ``backlog`` and are returned by later ``recv`` /
``wait_for`` calls, so no frame is lost; ``seen`` lists every frame received.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
from typing import Any, AsyncIterator

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from server.protocol import PROTOCOL_VERSION, parse_server_frame

DEFAULT_TIMEOUT = 5.0


class WsClient:
    """A connected test client. ``welcome`` holds the server's welcome frame after :meth:`hello`."""

    def __init__(self, ws: ClientConnection, *, validate: bool = True) -> None:
        self.ws = ws
        self.validate = validate  # check every server frame against server.protocol's models
        self.welcome: dict[str, Any] | None = None
        self.seen: list[dict[str, Any]] = []  # every frame received, in order
        self.backlog: collections.deque[dict[str, Any]] = collections.deque()  # skipped, not yet consumed
        self._next_id = 0

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls,
        url: str,
        name: str | None = None,
        role: str = "player",
        *,
        token: str | None = None,
        max_games: int | None = None,
        protocol: int | None = PROTOCOL_VERSION,
        **connect_kwargs: Any,
    ) -> AsyncIterator["WsClient"]:
        """Connect and, when ``name`` is given, say hello (raises if not welcomed)."""
        async with connect(url, open_timeout=DEFAULT_TIMEOUT, close_timeout=1, **connect_kwargs) as ws:
            client = cls(ws)
            if name is not None:
                await client.hello(name, role, token=token, max_games=max_games, protocol=protocol)
            yield client

    @property
    def token(self) -> str:
        assert self.welcome is not None, "hello first"
        return self.welcome["token"]

    async def hello(
        self,
        name: str,
        role: str = "player",
        *,
        token: str | None = None,
        max_games: int | None = None,
        protocol: int | None = PROTOCOL_VERSION,
    ) -> dict[str, Any]:
        """Say hello, speaking ``protocol`` (None: leave the field out, as a version 1 client does)."""
        frame: dict[str, Any] = {"type": "hello", "name": name, "role": role}
        if protocol is not None:
            frame["protocol"] = protocol
        if token is not None:
            frame["token"] = token
        if max_games is not None:
            frame["max_games"] = max_games
        await self.send(**frame)
        reply = await self.recv()
        if reply.get("type") != "welcome":
            raise AssertionError(f"hello refused: {reply}")
        self.welcome = reply
        return reply

    async def send(self, **frame: Any) -> None:
        await self.ws.send(json.dumps(frame))

    async def send_raw(self, data: str | bytes) -> None:
        await self.ws.send(data)

    async def _read(self, timeout: float) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        frame = json.loads(raw)
        if self.validate:
            parse_server_frame(frame)  # raises ProtocolError on a frame the protocol does not define
        self.seen.append(frame)
        return frame

    async def recv(self, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """The next frame not yet consumed (frames skipped by :meth:`wait_for` come first)."""
        if self.backlog:
            return self.backlog.popleft()
        return await self._read(timeout)

    async def request(self, timeout: float = DEFAULT_TIMEOUT, **frame: Any) -> dict[str, Any]:
        """Send a frame with an ``id`` and return the first reply carrying that id."""
        self._next_id += 1
        rid = frame.setdefault("id", f"req-{self._next_id}")
        await self.send(**frame)
        return await self.wait_for(lambda f: f.get("id") == rid, timeout=timeout)

    async def wait_for(self, what: str | Any, timeout: float = DEFAULT_TIMEOUT, **fields: Any) -> dict[str, Any]:
        """The first frame of type ``what`` (or matching the predicate ``what``) whose
        ``fields`` equal the given values. Frames that do not match stay in ``backlog``, in
        order, for later calls. Raises TimeoutError when none arrives in time."""

        def matches(frame: dict[str, Any]) -> bool:
            ok = frame.get("type") == what if isinstance(what, str) else bool(what(frame))
            return ok and all(frame.get(k) == v for k, v in fields.items())

        for frame in self.backlog:
            if matches(frame):
                self.backlog.remove(frame)
                return frame
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            left = end - loop.time()
            try:
                if left <= 0:
                    raise asyncio.TimeoutError
                frame = await self._read(left)
            except asyncio.TimeoutError:
                raise TimeoutError(
                    f"no {what!r} {fields or ''} within {timeout} s; last frames: {self.seen[-5:]}"
                ) from None
            if matches(frame):
                return frame
            self.backlog.append(frame)

    async def expect_silence(self, seconds: float = 0.2) -> None:
        """Assert that no new frame arrives for ``seconds``."""
        try:
            frame = await self._read(seconds)
        except asyncio.TimeoutError:
            return
        raise AssertionError(f"expected no frame, got {frame}")

    async def closed(self, timeout: float = DEFAULT_TIMEOUT) -> ConnectionClosed:
        """Read until the server closes the connection; return the ConnectionClosed."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            try:
                self.backlog.append(await self._read(max(0.01, end - loop.time())))
            except ConnectionClosed as exc:
                return exc
            except asyncio.TimeoutError:
                raise TimeoutError(f"the server did not close within {timeout} s") from None


async def start_game(challenger: WsClient, opponent: WsClient, side: str = "X") -> str:
    """``challenger`` challenges ``opponent`` (playing ``side``), who accepts; returns the game id."""
    await challenger.request(type="challenge", opponent=opponent.welcome["name"], side=side)
    offer = await opponent.wait_for("challenge")
    await opponent.request(type="accept", challenge_id=offer["challenge_id"])
    return offer["challenge_id"]


async def play_moves(client: WsClient, game_id: str, cells: list[int]) -> dict[str, Any]:
    """Play ``cells`` for ``client`` in turn, waiting for each resulting state; returns the last frame."""
    last: dict[str, Any] = {}
    for cell in cells:
        last = await client.request(type="move", game_id=game_id, cell=cell)
    return last
