"""The bot client: connects any :class:`server.players.base.Bot` to an arena server as a remote bot.

It says ``hello`` with role ``bot``, accepts challenge offers up to ``max_games`` games at
once (declining beyond with reason ``busy``), and whenever it is to move in one or more
games gathers them for a short batching window and asks the bot for all of them in one
``choose_batch`` call, run in a worker thread so the event loop keeps serving frames. Each
move carries the bot's ``trace`` and ``on_illegal = "forfeit" if bot.forfeit_on_illegal else "error"``.

The protocol is :mod:`client.core`'s (the session, offers, games, whose turn, requests and
their replies) and the connection :mod:`client.aio`'s; this module is the bot's policy
over them. When the connection drops it reconnects with jittered exponential backoff and
resumes the session with its token, so games in progress go on (the server keeps them for
its grace period). Error frames are logged and counted, never raised.

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
import logging
import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Sequence

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from client.aio import ArenaClient, HelloError, SendPacer
from client.core import (
    BadFrame,
    ChallengeDeclined,
    ClientCore,
    Event,
    GameEnded,
    GameStarted,
    GameView,
    Notice,
    OfferReceived,
    RequestFailed,
    ServerError,
    SessionExpired,
    Welcomed,
    YourTurn,
)
from server.players.base import Bot, Decision, MoveRequest
from server.game import Seat
from server.protocol import dumps, replace_non_finite
from server.waiting import event_or_timeout

__all__ = ["Backoff", "BotClient", "BotClientError", "ClientStats", "FinishedGame", "SendPacer"]

log = logging.getLogger("autosteer.bot")


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

    def __init__(
        self, initial: float = 0.5, maximum: float = 30.0, *, factor: float = 2.0, rng: random.Random | None = None
    ) -> None:
        if not 0 < initial <= maximum:
            raise ValueError(f"backoff needs 0 < initial <= maximum, got {initial} and {maximum}")
        self.initial, self.maximum, self.factor = initial, maximum, factor
        self.rng = rng or random.Random()
        self.attempts = 0

    def next(self) -> float:
        ceiling = min(self.maximum, self.initial * self.factor**self.attempts)
        self.attempts += 1
        return self.rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempts = 0


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

    def __init__(
        self,
        bot: Bot,
        url: str,
        *,
        name: str | None = None,
        max_games: int = 8,
        reconnect: bool = True,
        backoff: tuple[float, float] = (0.5, 30.0),
        batch_window: float = 0.005,
        on_game_over: GameOverCallback | None = None,
        send_rate: float = 20.0,
        send_burst: int = 40,
        illegal_retries: int = 2,
        open_timeout: float = 10.0,
        seed: int | None = None,
    ) -> None:
        if not url.startswith(("ws://", "wss://")):
            raise BotClientError(f"server URL must start with ws:// or wss://, got {url!r}")
        if not 1 <= max_games <= 1024:
            raise BotClientError(f"max_games must be 1-1024, got {max_games}")
        self.bot = bot
        self.url = url
        self.max_games = max_games
        self.reconnect = reconnect
        self.backoff = Backoff(*backoff, rng=random.Random(seed))
        self.batch_window = batch_window
        self.on_game_over = on_game_over
        self.send_rate, self.send_burst = send_rate, send_burst
        self.illegal_retries = illegal_retries
        self.open_timeout = open_timeout
        self.stats = ClientStats()
        self.core = ClientCore(
            name or bot.name,
            role="bot",
            max_games=max_games,
            description=getattr(bot, "description", None),
            id_prefix="m",
        )
        self._link = ArenaClient(
            url, self.core, on_event=self._on_link_event, open_timeout=open_timeout, max_size=1 << 20
        )
        self._pacer = SendPacer(send_rate, send_burst)
        self._illegal: Counter[str] = Counter()  # illegal choices per game
        self._wake = asyncio.Event()
        self._stopping = False
        self._draining = False
        self._stop_event: asyncio.Event | None = None
        self._connected = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._bot_lock = threading.Lock()

    # ------------------------------------------------------------------ public API
    @property
    def name(self) -> str:
        return self.core.name

    @property
    def token(self) -> str | None:
        """The session's token (None before the first welcome)."""
        return self.core.token

    @property
    def games(self) -> dict[str, GameView]:
        """The games this bot plays now, by id."""
        return {gid: g for gid, g in self.core.games.items() if g.playing}

    @property
    def _pending_moves(self) -> dict[Any, dict[str, Any]]:
        return self.core.pending  # moves sent, by request id, until their reply

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
                log.warning(
                    "%s: %d game(s) still running after %.0f s; closing anyway", self.name, len(self.games), timeout
                )
        self._stopping = True
        if self._stop_event is None:
            self._stop_event = asyncio.Event()
        self._stop_event.set()
        self._wake.set()
        ws = self._link.ws
        if ws is not None:
            await ws.close(1000, "bot stopping")

    async def drop_connection(self) -> None:
        """Abort the connection without a closing handshake, as a network failure would
        (for tests and chaos drills); the client then reconnects and resumes."""
        self._link.abort()

    # ------------------------------------------------------------------ one connection
    async def _connect_once(self) -> None:
        try:
            await self._link.connect()
        except HelloError as exc:
            if exc.event.retryable:  # the server is full or restarting: try again later
                raise ConnectionError(f"the server refused hello: {exc}") from None
            raise BotClientError(f"the server refused hello as {self.name!r}: {exc}") from None
        ws = self._link.ws
        mover = asyncio.create_task(self._mover(ws), name=f"{self.name}-mover")
        try:
            await self._link.wait_closed()
        finally:
            mover.cancel()
            try:
                await mover
            except (asyncio.CancelledError, ConnectionClosed):
                pass
            self._connected.clear()
            if not self._stopping and ws is not None:
                log.warning(
                    "%s: disconnected from %s (%s)",
                    self.name,
                    self.url,
                    ws.close_reason or ws.close_code or "connection lost",
                )

    async def _send(self, ws: Any, frame: dict[str, Any]) -> None:
        await self._pacer.take()
        await ws.send(dumps(frame))

    # ------------------------------------------------------------------ events
    async def _on_link_event(self, event: Event) -> None:
        await self._on_event(self._link.ws, event)

    async def _on_frame(self, ws: Any, raw: str | bytes) -> None:
        """Handle one server frame as the connection's reader does (sends go to ``ws``)."""
        for event in self.core.receive(raw):
            await self._on_event(ws, event)

    async def _on_event(self, ws: Any, event: Event) -> None:
        try:
            if isinstance(event, YourTurn):
                self._wake.set()
            elif isinstance(event, OfferReceived):
                await self._on_offer(ws, event.offer)
            elif isinstance(event, GameStarted):
                self._on_game_start(event)
            elif isinstance(event, GameEnded):
                await self._on_game_over(event)
            elif isinstance(event, RequestFailed):
                await self._on_refused(ws, event)
            elif isinstance(event, Welcomed):
                self._on_welcome(event)
            else:
                self._on_notice(event)
        except ConnectionClosed:
            raise
        except Exception:  # a bug here must cost one frame, not the bot
            log.exception("%s: failed on a %s frame", self.name, event.frame.get("type"))

    def _on_welcome(self, event: Welcomed) -> None:
        self.stats.connections += 1
        self.backoff.reset()
        self._pacer = SendPacer.for_server(event.frame.get("limits"), self.send_rate, self.send_burst)
        for game in event.lost:  # ended while we were away, or the session is new
            if game.playing:
                log.warning("%s: game %s was lost while disconnected", self.name, game.game_id)
                self.stats.games_lost_track += 1
                self._illegal.pop(game.game_id, None)
        self._update_idle()
        self._connected.set()
        what = f"resumed {len(event.resumed)} game(s)" if event.resumed else "ready for challenges"
        log.info("%s: connected to %s as a bot (max %d games); %s", self.name, self.url, self.max_games, what)

    def _on_notice(self, event: Event) -> None:
        if isinstance(event, ServerError):
            self.stats.errors[event.code] += 1
            log.warning("%s: server error [%s] %s", self.name, event.code, event.message)
        elif isinstance(event, SessionExpired):
            log.warning("%s: session expired (%s); starting a new session", self.name, event.frame.get("message"))
        elif isinstance(event, ChallengeDeclined):
            self._update_idle()
        elif isinstance(event, Notice):
            log.info("%s: server: %s", self.name, event.message)
        elif isinstance(event, BadFrame):
            log.warning("%s: ignoring a frame it cannot use (%s): %.80r", self.name, event.reason, event.raw)

    async def _on_offer(self, ws: Any, offer: Any) -> None:
        busy = len(self.games) + len(self.core.accepted)
        if self._draining or self._stopping:
            reply = self.core.decline(offer.challenge_id, "shutting down", track=False)
            self.stats.offers_declined += 1
        elif busy >= self.max_games:
            reply = self.core.decline(offer.challenge_id, "busy", track=False)
            self.stats.offers_declined += 1
            log.info(
                "%s: declined %s from %s: busy (%d/%d games)",
                self.name,
                offer.challenge_id,
                offer.challenger,
                busy,
                self.max_games,
            )
        else:
            reply = self.core.accept(offer.challenge_id, track=False)
            self.stats.offers_accepted += 1
            log.debug("%s: accepted %s from %s as %s", self.name, offer.challenge_id, offer.challenger, offer.side)
        self._update_idle()
        await self._send(ws, reply)

    def _on_game_start(self, event: GameStarted) -> None:
        game = event.game
        # a new game starts with its opening on the board (most have none); a later game_start is a resume
        if game.playing and not event.resumed and game.board.ply == len(game.opening):
            self.stats.games_started += 1
            log.info("%s: game %s started: %s (X) vs %s (O)", self.name, game.game_id, game.x, game.o)
        self._update_idle()

    async def _on_game_over(self, event: GameEnded) -> None:
        game = event.game
        if game is None or not game.playing:
            return
        self._illegal.pop(game.game_id, None)
        self._update_idle()
        outcome, frame = str(event.outcome), event.frame
        self.stats.games_finished += 1
        tally = {"win": "wins", "draw": "draws", "loss": "losses"}.get(outcome, "aborted")
        setattr(self.stats, tally, getattr(self.stats, tally) + 1)
        self.stats.reasons[str(game.reason)] += 1
        log.info(
            "%s: game %s vs %s over: %s (%s, %s)",
            self.name,
            game.game_id,
            game.opponent,
            outcome,
            game.result,
            game.reason,
        )
        if self.on_game_over is None:
            return
        assert game.you is not None
        finished = FinishedGame(
            game.game_id,
            game.x,
            game.o,
            game.you,
            outcome,
            str(game.result),
            str(game.reason),
            str(frame.get("board", "")),
            list(frame.get("moves") or []),
            frame.get("tag"),
        )
        try:
            out = self.on_game_over(finished)
            if inspect.isawaitable(out):
                await out
        except Exception:
            log.exception("%s: the on_game_over callback failed", self.name)

    async def _on_refused(self, ws: Any, event: RequestFailed) -> None:
        code, move = event.code, event.request
        self.stats.errors[code] += 1
        if move.get("type") != "move":
            log.warning("%s: server error [%s] %s", self.name, code, event.message)
            return
        gid = move["game_id"]
        if code == "rate_limited":
            log.info("%s: move in %s was rate limited; resending", self.name, gid)
            await asyncio.sleep(1.0 / self.send_rate)
            await self._send(ws, self.core.retry(move))
            return
        log.warning("%s: move %s in game %s refused: [%s] %s", self.name, move.get("cell"), gid, code, event.message)
        if gid not in self.games:
            return
        if code == "unknown_game":
            self.core.forget(gid)
            self.stats.games_lost_track += 1
            self._update_idle()
            return
        # Our view of the game is out of date: ask for the truth (a state or a record).
        await self._send(ws, self.core.get_game(gid, track=False))

    def _update_idle(self) -> None:
        if self.games or self.core.accepted:
            self._idle.clear()
        else:
            self._idle.set()

    # ------------------------------------------------------------------ choosing and sending moves
    async def _mover(self, ws: Any) -> None:
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
                    await self._play_batch(ws, waiting[start : start + size])
                except ConnectionClosed:
                    return
                except Exception:  # keep moving in the other games
                    log.exception("%s: failed while playing a batch", self.name)

    async def _play_batch(self, ws: Any, games: Sequence[GameView]) -> None:
        requests = []
        for g in games:
            self.core.mark_asked(g.game_id)
            requests.append(MoveRequest(g.game_id, g.board, str(g.opponent)))
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
                    await self._send(ws, self.core.resign(r.game_id, track=False))
            return
        for request, decision in zip(requests, decisions):
            await self._send_decision(ws, request, decision)

    def _choose_batch(self, requests: list[MoveRequest]) -> list[Decision]:
        # A batch abandoned by a dropped connection may still be running in its thread when
        # the next one starts: bots (an LLM) need not be thread-safe, so one call at a time.
        with self._bot_lock:
            return list(self.bot.choose_batch(requests))

    async def _send_decision(self, ws: Any, request: MoveRequest, decision: Decision) -> None:
        game = self.games.get(request.game_id)
        if game is None or game.board != request.board:
            return  # the game ended or moved on while the bot was thinking
        cell = decision.cell
        legal = isinstance(cell, int) and not isinstance(cell, bool) and cell in request.board.legal_cells()
        if not legal:
            self.stats.illegal_choices += 1
            if not self.bot.forfeit_on_illegal:
                await self._illegal_choice(ws, game, cell)
                return
            log.info("%s: bot chose illegal cell %r in %s; sending it (forfeits)", self.name, cell, game.game_id)
        trace = None
        if decision.trace is not None:
            trace, replaced = replace_non_finite(decision.trace)  # the protocol carries finite JSON only
            if replaced:
                log.warning(
                    "%s: %d NaN/infinite values in the trace of %s sent as null", self.name, replaced, game.game_id
                )
        if not isinstance(cell, int) or isinstance(cell, bool):
            cell = -1  # not a cell: the schema wants an int, and True must not become cell 1
        on_illegal = "forfeit" if self.bot.forfeit_on_illegal else "error"
        await self._send(ws, self.core.move(game.game_id, cell, trace=trace, on_illegal=on_illegal))
        self.stats.moves_sent += 1

    async def _illegal_choice(self, ws: Any, game: GameView, cell: Any) -> None:
        """The bot named an illegal cell and does not forfeit: ask again, or resign after too many."""
        self._illegal[game.game_id] += 1
        tries = self._illegal[game.game_id]
        if tries <= self.illegal_retries:
            log.warning(
                "%s: bot chose illegal cell %r in %s (board %s); asking again",
                self.name,
                cell,
                game.game_id,
                game.board.code,
            )
            game.asked_at_ply = -1
            self._wake.set()
        else:
            log.error(
                "%s: bot chose illegal cell %r in %s %d times; resigning the game", self.name, cell, game.game_id, tries
            )
            await self._send(ws, self.core.resign(game.game_id, track=False))


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text
