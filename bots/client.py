"""The bot client: connects any :class:`server.players.base.Bot` to an arena server as a remote bot.

It says ``hello`` with role ``bot``, accepts challenge offers up to ``max_games`` games at
once (declining beyond with reason ``busy``), tracks each game's board, and whenever it is
to move in one or more games gathers them for a short batching window and asks the bot
for all of them in one ``choose_batch`` call, run in a worker thread so the event loop
keeps serving frames. Each move carries the bot's ``trace`` and
``on_illegal = "forfeit" if bot.forfeit_on_illegal else "error"``.

When the connection drops it reconnects with jittered exponential backoff and resumes the
session with its token, so games in progress go on (the server keeps them for its grace
period). Error frames are logged and counted, never raised.

An illegal choice by a bot that does not forfeit on illegal moves is never sent: the bot
is asked again (up to ``illegal_retries`` times) and then the client resigns that game,
logging why — there is no silent fallback to another move.

>>> import asyncio
>>> from server.players.house import RandomBot
>>> client = BotClient(RandomBot(seed=1), "ws://127.0.0.1:8765", max_games=4)
>>> client.name, client.stats.games_finished
('random', 0)
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import logging
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Sequence

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from server.players.base import Bot, Decision, MoveRequest
from server.game import Board, InvalidBoardError, Seat
from server.protocol import PROTOCOL_VERSION, ProtocolError, dumps, parse_server_frame, replace_non_finite
from server.waiting import event_or_timeout

log = logging.getLogger("autosteer.bot")


_RETRYABLE_HELLO_ERRORS = frozenset({"too_many_connections", "server_shutting_down", "rate_limited", "internal_error"})


class BotClientError(RuntimeError):
    """A failure the client cannot recover from by reconnecting (bad URL, name taken...)."""


# --------------------------------------------------------------------------- small pieces
class Backoff:
    """Jittered exponential delays: ``initial`` doubling up to ``maximum``; each delay is
    drawn uniformly from [½·d, d] so many bots restarting together spread out.

    >>> b = Backoff(0.5, 30.0, rng=random.Random(0))
    >>> delays = [b.next() for _ in range(8)]
    >>> all(c / 2 <= d <= c for d, c in zip(delays, [0.5, 1, 2, 4, 8, 16, 30, 30]))
    True
    >>> b.reset(); b.attempts
    0
    """

    def __init__(self, initial: float = 0.5, maximum: float = 30.0, *, factor: float = 2.0,
                 rng: random.Random | None = None) -> None:
        if not 0 < initial <= maximum:
            raise ValueError(f"backoff needs 0 < initial <= maximum, got {initial} and {maximum}")
        self.initial, self.maximum, self.factor = initial, maximum, factor
        self.rng = rng or random.Random()
        self.attempts = 0

    def next(self) -> float:
        ceiling = min(self.maximum, self.initial * self.factor ** self.attempts)
        self.attempts += 1
        return self.rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempts = 0


class SendPacer:
    """A token bucket that keeps the client under the server's per-connection message
    rate (the server's defaults: 20 messages/s, bursts of 40)."""

    def __init__(self, rate: float, burst: int) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"send rate must be > 0 and burst >= 1, got {rate} and {burst}")
        self.rate, self.burst = rate, float(burst)
        self.tokens = float(burst)
        self.at = time.monotonic()

    async def take(self) -> None:
        while True:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
            self.at = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return
            await asyncio.sleep((1.0 - self.tokens) / self.rate)


@dataclass
class ClientStats:
    """What the client has done since it was created (across reconnects)."""

    connections: int = 0  # successful hellos (1 + reconnects)
    offers_accepted: int = 0
    offers_declined: int = 0
    games_started: int = 0
    games_finished: int = 0
    wins: int = 0
    draws: int = 0
    losses: int = 0
    aborted: int = 0
    games_lost_track: int = 0  # games that vanished across a reconnect without a game_over
    moves_sent: int = 0
    batches: int = 0
    largest_batch: int = 0
    illegal_choices: int = 0  # bot picked an illegal cell (not sent unless it forfeits)
    bot_failures: int = 0  # choose_batch raised
    reasons: Counter = field(default_factory=Counter)  # game_over reasons
    errors: Counter = field(default_factory=Counter)  # error frames by code

    @property
    def reconnects(self) -> int:
        return max(0, self.connections - 1)

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if not isinstance(v, Counter)}
        out["reconnects"] = self.reconnects
        out["reasons"] = dict(self.reasons)
        out["errors"] = dict(self.errors)
        return out


@dataclass(frozen=True)
class FinishedGame:
    """A game this bot played to the end, as passed to ``on_game_over``."""

    game_id: str
    x: str
    o: str
    you: Seat
    outcome: str  # win / draw / loss / aborted, for this bot
    result: str  # X / O / draw / aborted
    reason: str
    board: str
    moves: list[dict[str, Any]]
    tag: str | None = None


@dataclass
class _Game:
    game_id: str
    x: str
    o: str
    you: Seat
    board: Board
    tag: str | None = None
    asked_at_ply: int = -1  # the ply for which the bot was last asked (no double moves)
    illegal_tries: int = 0

    @property
    def opponent(self) -> str:
        return self.o if self.you is Seat.X else self.x

    @property
    def to_move(self) -> bool:
        return not self.board.is_over and self.board.turn is self.you and self.asked_at_ply != self.board.ply


GameOverCallback = Callable[[FinishedGame], "Awaitable[None] | None"]


# --------------------------------------------------------------------------- the client
class BotClient:
    """Plays ``bot`` on the server at ``url`` until :meth:`stop`.

    Keyword options (defaults in brackets): ``name`` [bot.name], ``max_games`` [8] games
    at once, ``reconnect`` [True], ``backoff`` [(0.5, 30.0)] seconds, ``batch_window``
    [0.005] s to gather moves into one batch, ``on_game_over`` [None] callback (sync or
    async), ``send_rate``/``send_burst`` [20, 40] client-side pacing until the server's
    ``welcome.limits`` says what it allows (then 90 % of that is used), ``illegal_retries``
    [2], ``open_timeout`` [10] s, ``seed`` [None] for the backoff jitter.
    """

    def __init__(self, bot: Bot, url: str, *, name: str | None = None, max_games: int = 8,
                 reconnect: bool = True, backoff: tuple[float, float] = (0.5, 30.0),
                 batch_window: float = 0.005, on_game_over: GameOverCallback | None = None,
                 send_rate: float = 20.0, send_burst: int = 40, illegal_retries: int = 2,
                 open_timeout: float = 10.0, seed: int | None = None) -> None:
        if not url.startswith(("ws://", "wss://")):
            raise BotClientError(f"server URL must start with ws:// or wss://, got {url!r}")
        if not 1 <= max_games <= 1024:
            raise BotClientError(f"max_games must be 1-1024, got {max_games}")
        self.bot = bot
        self.url = url
        self.name = name or bot.name
        self.max_games = max_games
        self.reconnect = reconnect
        self.backoff = Backoff(*backoff, rng=random.Random(seed))
        self.batch_window = batch_window
        self.on_game_over = on_game_over
        self.send_rate, self.send_burst = send_rate, send_burst
        self.illegal_retries = illegal_retries
        self.open_timeout = open_timeout
        self.stats = ClientStats()
        self.token: str | None = None
        self.games: dict[str, _Game] = {}
        self._accepted: set[str] = set()  # offers accepted, game not started yet
        self._ws: ClientConnection | None = None
        self._pacer = SendPacer(send_rate, send_burst)
        self._wake = asyncio.Event()
        self._stopping = False
        self._draining = False
        self._stop_event: asyncio.Event | None = None
        self._connected = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._ids = itertools.count(1)
        self._pending_moves: dict[str, dict[str, Any]] = {}  # request id → move frame
        self._bot_lock = threading.Lock()

    # ------------------------------------------------------------------ public API
    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self, timeout: float = 10.0) -> None:
        """Wait until the server has welcomed this client (tests, orchestration)."""
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def run(self) -> None:
        """Connect, play, reconnect on drops; return after :meth:`stop` (or, with
        ``reconnect=False``, when the connection ends). Raises :class:`BotClientError`
        on failures reconnecting cannot fix. A stopped client does not run again."""
        if self._stop_event is None:
            self._stop_event = asyncio.Event()
        while not self._stopping:
            try:
                await self._connect_once()
            except BotClientError:
                raise
            except InvalidURI as exc:
                raise BotClientError(f"bad server URL {self.url!r}: {exc}") from None
            except (OSError, asyncio.TimeoutError, ConnectionClosed, InvalidHandshake) as exc:
                if self._stopping:
                    break
                if not self.reconnect:
                    raise BotClientError(f"cannot reach {self.url}: {_describe(exc)}") from None
                log.warning("%s: connection to %s failed: %s", self.name, self.url, _describe(exc))
            if self._stopping:
                break
            if not self.reconnect:
                log.info("%s: connection closed; not reconnecting", self.name)
                break
            delay = self.backoff.next()
            log.info("%s: reconnecting in %.1f s (attempt %d)", self.name, delay, self.backoff.attempts)
            await event_or_timeout(self._stop_event, delay)  # stop() ends the wait; a cancellation is never lost
        self._connected.clear()

    async def stop(self, *, drain: bool = False, timeout: float = 60.0) -> None:
        """Stop. With ``drain`` decline new offers and first wait (up to ``timeout`` s) for
        the games in progress to end; otherwise close at once (the server then forfeits
        unfinished games after its grace period)."""
        if drain and self.connected:
            self._draining = True
            log.info("%s: draining: %d game(s) in progress, declining new offers", self.name, len(self.games))
            if not await event_or_timeout(self._idle, timeout):
                log.warning("%s: %d game(s) still running after %.0f s; closing anyway", self.name, len(self.games), timeout)
        self._stopping = True
        if self._stop_event is None:
            self._stop_event = asyncio.Event()
        self._stop_event.set()
        self._wake.set()
        ws = self._ws
        if ws is not None:
            await ws.close(1000, "bot stopping")

    async def drop_connection(self) -> None:
        """Abort the connection without a closing handshake, as a network failure would
        (for tests and chaos drills); the client then reconnects and resumes."""
        ws = self._ws
        if ws is not None:
            ws.transport.abort()

    # ------------------------------------------------------------------ one connection
    async def _connect_once(self) -> None:
        async with connect(self.url, open_timeout=self.open_timeout, max_size=1 << 20) as ws:
            self._ws = ws
            try:
                await self._hello(ws)
                mover = asyncio.create_task(self._mover(ws), name=f"{self.name}-mover")
                try:
                    async for raw in ws:
                        await self._on_frame(ws, raw)
                finally:
                    mover.cancel()
                    try:
                        await mover
                    except (asyncio.CancelledError, ConnectionClosed):
                        pass
            finally:
                self._ws = None
                self._connected.clear()
                if not self._stopping:
                    log.warning("%s: disconnected from %s (%s)", self.name, self.url,
                                ws.close_reason or ws.close_code or "connection lost")

    async def _hello(self, ws: ClientConnection) -> None:
        hello: dict[str, Any] = {"type": "hello", "name": self.name, "role": "bot", "max_games": self.max_games,
                                 "protocol": PROTOCOL_VERSION}
        about = " ".join(str(getattr(self.bot, "description", "") or "").split())[:200]
        if about:  # the lobby shows it (the LLM bot: model, move reading, steering)
            hello["description"] = about
        if self.token:
            hello["token"] = self.token
        await ws.send(dumps(hello))
        while True:
            raw = await asyncio.wait_for(ws.recv(), self.open_timeout)
            frame = _loads(raw)
            if frame is None:
                continue
            kind = frame.get("type")
            if kind == "welcome":
                break
            if kind == "error":
                code = frame.get("code")
                if code == "bad_token" and self.token:
                    log.warning("%s: session expired (%s); starting a new session", self.name, frame.get("message"))
                    self._lose_all_games()
                    self.token = None
                    hello.pop("token", None)
                    await ws.send(dumps(hello))
                    continue
                if code in _RETRYABLE_HELLO_ERRORS:  # the server is full or restarting: try again later
                    raise ConnectionError(f"the server refused hello: [{code}] {frame.get('message')}")
                raise BotClientError(f"the server refused hello as {self.name!r}: [{code}] {frame.get('message')}")
            log.debug("%s: ignoring %s before welcome", self.name, kind)
        resumed = set(frame.get("resumed") or [])
        fresh_session = frame.get("token") != self.token
        self.token = frame.get("token")
        self.stats.connections += 1
        self.backoff.reset()
        limits = frame.get("limits") or {}
        try:  # pace to what this server allows, with a margin
            rate = float(limits.get("rate", self.send_rate)) * 0.9
            burst = max(1, int(int(limits.get("burst", self.send_burst)) * 0.9))
            self._pacer = SendPacer(rate, burst)
        except (TypeError, ValueError):
            self._pacer = SendPacer(self.send_rate, self.send_burst)
        self._pending_moves.clear()
        # Games not resumed ended while we were away (or the session is new).
        for gid in [g for g in self.games if fresh_session or g not in resumed]:
            log.warning("%s: game %s was lost while disconnected", self.name, gid)
            self.games.pop(gid)
            self.stats.games_lost_track += 1
        for g in self.games.values():
            g.asked_at_ply = -1  # the server re-sends each resumed game's state
        self._accepted.clear()
        self._update_idle()
        self._connected.set()
        what = f"resumed {len(resumed)} game(s)" if resumed else "ready for challenges"
        log.info("%s: connected to %s as a bot (max %d games); %s", self.name, self.url, self.max_games, what)

    def _lose_all_games(self) -> None:
        self.stats.games_lost_track += len(self.games)
        self.games.clear()
        self._update_idle()

    async def _send(self, ws: ClientConnection, frame: dict[str, Any]) -> None:
        await self._pacer.take()
        await ws.send(dumps(frame))

    # ------------------------------------------------------------------ incoming frames
    async def _on_frame(self, ws: ClientConnection, raw: str | bytes) -> None:
        frame = _loads(raw)
        if frame is None:
            log.warning("%s: ignoring a frame that is not a JSON object: %.80r", self.name, raw)
            return
        try:
            msg = parse_server_frame(frame)
        except ProtocolError as exc:
            log.warning("%s: ignoring a malformed %r frame: %s", self.name, frame.get("type"), exc.message)
            return
        kind = frame["type"]
        try:
            if kind == "challenge":
                await self._on_offer(ws, msg)
            elif kind == "game_start":
                self._on_game_start(frame)
            elif kind == "state":
                self._on_state(frame)
            elif kind == "game_over":
                await self._on_game_over(frame)
            elif kind == "challenge_declined":
                self._accepted.discard(frame["challenge_id"])
                self._update_idle()
            elif kind == "error":
                await self._on_error(ws, frame)
            elif kind == "game_record":
                await self._on_game_record(frame)
            elif kind == "info":
                log.info("%s: server: %s", self.name, frame.get("message"))
        except ConnectionClosed:
            raise
        except (ValueError, KeyError, TypeError, InvalidBoardError) as exc:  # a frame we cannot make sense of
            log.warning("%s: could not handle a %s frame: %s", self.name, kind, exc)
        except Exception:  # a bug here must cost one frame, not the bot
            log.exception("%s: failed on a %s frame", self.name, kind)

    async def _on_offer(self, ws: ClientConnection, offer: Any) -> None:
        busy = len(self.games) + len(self._accepted)
        if self._draining or self._stopping:
            reply = {"type": "decline", "challenge_id": offer.challenge_id, "reason": "shutting down"}
            self.stats.offers_declined += 1
        elif busy >= self.max_games:
            reply = {"type": "decline", "challenge_id": offer.challenge_id, "reason": "busy"}
            self.stats.offers_declined += 1
            log.info("%s: declined %s from %s: busy (%d/%d games)", self.name, offer.challenge_id, offer.challenger,
                     busy, self.max_games)
        else:
            reply = {"type": "accept", "challenge_id": offer.challenge_id}
            self._accepted.add(offer.challenge_id)
            self.stats.offers_accepted += 1
            log.debug("%s: accepted %s from %s as %s", self.name, offer.challenge_id, offer.challenger, offer.side)
        self._update_idle()
        await self._send(ws, reply)

    def _on_game_start(self, frame: dict[str, Any]) -> None:
        gid = frame["game_id"]
        you = frame.get("you")
        self._accepted.discard(gid)
        if you is None:  # watching, not playing
            return
        board = Board(frame["board"])
        game = self.games.get(gid)
        if game is None:
            game = _Game(gid, frame["x"], frame["o"], Seat(you), board, tag=frame.get("tag"))
            self.games[gid] = game
            if board.ply == 0:
                self.stats.games_started += 1
                log.info("%s: game %s started: %s (X) vs %s (O)", self.name, gid, game.x, game.o)
        else:
            game.board = board
        self._update_idle()
        self._maybe_wake(game)

    def _on_state(self, frame: dict[str, Any]) -> None:
        self._pending_moves.pop(frame.get("id"), None)  # our move was applied
        game = self.games.get(frame["game_id"])
        if game is None:
            return
        board = Board(frame["board"])
        if board.ply >= game.board.ply:
            game.board = board
        self._maybe_wake(game)

    async def _on_game_over(self, frame: dict[str, Any]) -> None:
        self._pending_moves.pop(frame.get("id"), None)
        game = self.games.pop(frame["game_id"], None)
        if game is None:
            return
        self._update_idle()
        await self._finish(game, frame)

    async def _on_game_record(self, frame: dict[str, Any]) -> None:
        """Reply to our resync request: the game ended without us seeing game_over."""
        game = self.games.get(frame["game_id"])
        if game is not None and frame.get("result"):
            await self._on_game_over(frame)

    async def _finish(self, game: _Game, frame: dict[str, Any]) -> None:
        result, reason = str(frame.get("result")), str(frame.get("reason"))
        if result == "aborted":
            outcome = "aborted"
            self.stats.aborted += 1
        elif result == "draw":
            outcome = "draw"
            self.stats.draws += 1
        elif result == game.you.value:
            outcome = "win"
            self.stats.wins += 1
        else:
            outcome = "loss"
            self.stats.losses += 1
        self.stats.games_finished += 1
        self.stats.reasons[reason] += 1
        log.info("%s: game %s vs %s over: %s (%s, %s)", self.name, game.game_id, game.opponent, outcome, result, reason)
        if self.on_game_over is not None:
            finished = FinishedGame(game.game_id, game.x, game.o, game.you, outcome, result, reason,
                                    str(frame.get("board", "")), list(frame.get("moves") or []), frame.get("tag"))
            try:
                out = self.on_game_over(finished)
                if inspect.isawaitable(out):
                    await out
            except Exception:
                log.exception("%s: the on_game_over callback failed", self.name)

    async def _on_error(self, ws: ClientConnection, frame: dict[str, Any]) -> None:
        code, message, rid = frame.get("code"), frame.get("message"), frame.get("id")
        self.stats.errors[str(code)] += 1
        move = self._pending_moves.pop(rid, None) if isinstance(rid, str) else None
        if move is None:
            log.warning("%s: server error [%s] %s", self.name, code, message)
            return
        gid = move["game_id"]
        game = self.games.get(gid)
        if code == "rate_limited":
            log.info("%s: move in %s was rate limited; resending", self.name, gid)
            await asyncio.sleep(1.0 / self.send_rate)
            self._pending_moves[rid] = move
            await self._send(ws, move)
            return
        log.warning("%s: move %s in game %s refused: [%s] %s", self.name, move.get("cell"), gid, code, message)
        if game is None:
            return
        if code in ("unknown_game",):
            self.games.pop(gid, None)
            self.stats.games_lost_track += 1
            self._update_idle()
            return
        # Our view of the game is out of date: ask for the truth (a state or a record).
        game.asked_at_ply = -1
        await self._send(ws, {"type": "get_game", "game_id": gid})

    def _maybe_wake(self, game: _Game) -> None:
        if game.to_move:
            self._wake.set()

    def _update_idle(self) -> None:
        if self.games or self._accepted:
            self._idle.clear()
        else:
            self._idle.set()

    # ------------------------------------------------------------------ choosing and sending moves
    async def _mover(self, ws: ClientConnection) -> None:
        """Whenever games wait on us, batch them and ask the bot (one call at a time)."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            if self.batch_window > 0:
                await asyncio.sleep(self.batch_window)
            waiting = [g for g in self.games.values() if g.to_move]
            size = max(1, self.bot.max_batch)
            for start in range(0, len(waiting), size):
                try:
                    await self._play_batch(ws, waiting[start:start + size])
                except ConnectionClosed:
                    return
                except Exception:  # keep moving in the other games
                    log.exception("%s: failed while playing a batch", self.name)

    async def _play_batch(self, ws: ClientConnection, games: Sequence[_Game]) -> None:
        requests = []
        for g in games:
            g.asked_at_ply = g.board.ply
            requests.append(MoveRequest(g.game_id, g.board, g.opponent))
        self.stats.batches += 1
        self.stats.largest_batch = max(self.stats.largest_batch, len(requests))
        try:
            decisions = await asyncio.to_thread(self._choose_batch, requests)
            if len(decisions) != len(requests):
                raise ValueError(f"choose_batch returned {len(decisions)} decisions for {len(requests)} requests")
        except Exception:
            self.stats.bot_failures += 1
            log.exception("%s: the bot failed on a batch of %d; resigning those games", self.name, len(requests))
            for r in requests:
                if r.game_id in self.games:
                    await self._send(ws, {"type": "resign", "game_id": r.game_id})
            return
        for request, decision in zip(requests, decisions):
            await self._send_decision(ws, request, decision)

    def _choose_batch(self, requests: list[MoveRequest]) -> list[Decision]:
        # A batch abandoned by a dropped connection may still be running in its thread when
        # the next one starts: bots (an LLM) need not be thread-safe, so one call at a time.
        with self._bot_lock:
            return list(self.bot.choose_batch(requests))

    async def _send_decision(self, ws: ClientConnection, request: MoveRequest, decision: Decision) -> None:
        game = self.games.get(request.game_id)
        if game is None or game.board != request.board:
            return  # the game ended or moved on while the bot was thinking
        cell = decision.cell
        legal = isinstance(cell, int) and not isinstance(cell, bool) and cell in request.board.legal_cells()
        if not legal:
            self.stats.illegal_choices += 1
            if not self.bot.forfeit_on_illegal:
                game.illegal_tries += 1
                if game.illegal_tries <= self.illegal_retries:
                    log.warning("%s: bot chose illegal cell %r in %s (board %s); asking again", self.name, cell,
                                game.game_id, request.board.code)
                    game.asked_at_ply = -1
                    self._wake.set()
                else:
                    log.error("%s: bot chose illegal cell %r in %s %d times; resigning the game", self.name, cell,
                              game.game_id, game.illegal_tries)
                    await self._send(ws, {"type": "resign", "game_id": game.game_id})
                return
            log.info("%s: bot chose illegal cell %r in %s; sending it (forfeits)", self.name, cell, game.game_id)
        rid = f"m{next(self._ids)}"
        move: dict[str, Any] = {"type": "move", "id": rid, "game_id": game.game_id, "cell": cell,
                                "on_illegal": "forfeit" if self.bot.forfeit_on_illegal else "error"}
        if decision.trace is not None:
            trace, replaced = replace_non_finite(decision.trace)  # the protocol carries finite JSON only
            if replaced:
                log.warning("%s: %d NaN/infinite values in the trace of %s sent as null", self.name, replaced, game.game_id)
            move["trace"] = trace
        if not isinstance(cell, int) or isinstance(cell, bool):
            move["cell"] = -1  # not a cell: the schema wants an int, and True must not become cell 1
        self._pending_moves[rid] = move  # cleared by the reply: our state/game_over or an error
        await self._send(ws, move)
        self.stats.moves_sent += 1


def _loads(raw: str | bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("type"), str) else None


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text
