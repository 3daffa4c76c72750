"""The arena's sans-I/O core: lobby, sessions, challenges, games, move clocks and grace periods.

:class:`Arena` is a pure state machine. The I/O layer (:mod:`server.app`) feeds it events
— a connection opened, a text frame received, a connection lost, the clock ticked — each
with the current unix time, and then drains the *effects* it produced: frames to send
(:class:`Send`), connections to close (:class:`Close`) and game records to store
(:class:`StoreGame`). Nothing here touches a socket, a file or the system clock, so every
rule (turns, clocks, grace, rate limits, offers) is tested directly with a fake time.

House bots (minimax, random) are plain :class:`bots.base.Bot` objects played inline: they
answer in microseconds, so a house bot's reply is part of the same step as the move that
gave it the turn.

Rules this module implements (``docs/PROTOCOL.md`` is the user-facing description):

* a session (name, role, token) outlives its connection by ``grace`` seconds; ``hello``
  with the token within that time resumes it, after it the session's live games are lost
  with reason ``disconnect``;
* while a player is disconnected, the clock of every game where it is to move is paused,
  for at most ``grace`` seconds in total per player and game; on resume (or when that
  allowance is spent) the clock goes on with the time that was left, never a fresh one,
  so reconnecting cannot buy time;
* the side to move that lets its deadline pass loses on ``timeout``;
* an offer (challenge or arranged game) not answered within ``challenge_timeout`` is
  declined;
* a game may carry a ``seed``: each house bot in it then draws from its own
  ``random.Random(seed)`` for that game only, so the game repeats exactly;
* every connection has a token bucket; refused messages get ``rate_limited`` and a
  connection with ``flood_close`` refusals in a row is closed with code 1008.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import secrets
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Literal, Union

from bots.base import Bot, MoveRequest
from server import __version__
from server.game import Board, IllegalMoveError, Seat
from server.relay import RemoteLobby
from server.protocol import (
    PROTOCOL_VERSION,
    Accept,
    Arrange,
    Challenge,
    Decline,
    GetGame,
    Hello,
    ListBots,
    ListGames,
    ListPlayers,
    ListRecords,
    MoveMsg,
    Ping,
    ProtocolError,
    Resign,
    Spectate,
    Unspectate,
    WatchLobby,
    LOBBY_PUSH_SECONDS,
    error_frame,
    parse_client_frame,
    request_id_of,
)

log = logging.getLogger("autosteer.arena")

SERVER_NAME = f"autosteer-arena/{__version__}"

# WebSocket close codes the arena asks for.
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008  # flood, too many connections
CLOSE_REPLACED = 4000  # the session was resumed on another connection

Frame = dict[str, Any]


# ----------------------------------------------------------------------------- configuration
@dataclass
class ServerConfig:
    """Everything the server can be configured with; the defaults are the CLI's defaults.

    Times are seconds. ``db_path`` ``":memory:"`` keeps records in memory (tests).
    """

    host: str = "127.0.0.1"
    port: int = 8765
    db_path: str = "var/arena.sqlite3"
    move_clock: float = 30.0  # default seconds per move; a challenge may set its own
    grace: float = 15.0  # seconds a disconnected session may take to resume
    house_bots: bool = True  # serve the in-process "minimax" and "random" bots
    seed: int | None = None  # seeds house bots and random seat draws (reproducible games)
    minimax_tiebreak: str = "random"
    challenge_timeout: float = 30.0  # an offer unanswered this long is declined
    max_frame_bytes: int = 64 * 1024  # larger frames close the connection with 1009
    # A bot playing 64 games at once answers them in one burst, so the bucket is large.
    rate: float = 100.0  # messages per second refilled into each connection's bucket
    burst: int = 200  # bucket size: messages a connection may send at once
    flood_close: int = 200  # refusals in a row (rate_limited) before closing with 1008
    max_connections_per_address: int = 64
    max_spectators: int = 64  # per game
    max_connections: int = 4096
    # live games (and pending offers) a session may have opened with challenge/arrange at once,
    # and all sessions from one address together; games it is challenged to do not count
    max_live_games_per_session: int = 64
    max_live_games_per_address: int = 256
    ping_interval: float | None = 20.0  # websocket keepalive
    send_queue_bytes: int = 16 * 1024 * 1024  # a client that falls this far behind reading is disconnected
    finished_games_kept: int = 2048  # finished games remembered in memory (older: from records)

    def __post_init__(self) -> None:
        checks = [
            (self.move_clock > 0, "move_clock must be > 0"),
            (self.grace >= 0, "grace must be >= 0"),
            (self.challenge_timeout > 0, "challenge_timeout must be > 0"),
            (self.max_frame_bytes >= 1024, "max_frame_bytes must be >= 1024"),
            (self.rate > 0, "rate must be > 0"),
            (self.burst >= 1, "burst must be >= 1"),
            (self.flood_close >= 1, "flood_close must be >= 1"),
            (self.max_connections_per_address >= 1, "max_connections_per_address must be >= 1"),
            (self.max_spectators >= 0, "max_spectators must be >= 0"),
            (self.max_live_games_per_session >= 1, "max_live_games_per_session must be >= 1"),
            (self.max_live_games_per_address >= 1, "max_live_games_per_address must be >= 1"),
            (0 <= self.port <= 65535, "port must be 0-65535"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"invalid server configuration: {message}")


# ----------------------------------------------------------------------------- effects
@dataclass(frozen=True, slots=True)
class Send:
    """Send ``frame`` (a JSON object) on connection ``conn_id``."""

    conn_id: int
    frame: Frame


@dataclass(frozen=True, slots=True)
class Close:
    """Close connection ``conn_id`` with a WebSocket close code, after frames already queued."""

    conn_id: int
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class StoreGame:
    """Write a game record: at start (``status`` live) and when it ends."""

    record: Frame


@dataclass(frozen=True, slots=True)
class GameEnded:
    """A game finished (for logs: the server prints one line per game)."""

    record: Frame


@dataclass(frozen=True, slots=True)
class GameEvent:
    """A game's progress, for event transports (MQTT): ``kind`` ``start`` carries the
    ``game_start`` frame (as a spectator sees it), ``move`` the ``state`` after a move,
    ``over`` the ``game_over`` frame. Each move appears once, in order."""

    kind: Literal["start", "move", "over"]
    frame: Frame


@dataclass(frozen=True, slots=True)
class RelayGame:
    """Start (``watch``) or stop following a game played on another server: the first
    spectator here asked for it, or the last one left / the game ended."""

    game_id: str
    watch: bool


Effect = Union[Send, Close, StoreGame, GameEnded, GameEvent, RelayGame]


# ----------------------------------------------------------------------------- state
@dataclass
class Connection:
    conn_id: int
    address: str
    session: "Session | None" = None
    tokens: float = 0.0
    refilled_at: float = 0.0
    refusals_in_a_row: int = 0
    closing: bool = False


@dataclass
class Session:
    """A named client: lives while connected and ``grace`` seconds after."""

    name: str
    role: Literal["player", "bot", "spectator"]
    token: str
    max_games: int = 1
    conn_id: int | None = None
    disconnected_at: float | None = None
    games: set[str] = field(default_factory=set)  # live games it plays
    watching: set[str] = field(default_factory=set)  # live games it spectates
    offers: set[str] = field(default_factory=set)  # pending offers made TO it
    opened: set[str] = field(default_factory=set)  # its challenges/arranged games, pending or live
    generation: int = 0  # bumps on every disconnect; stale grace timers are ignored
    description: str = ""  # what a bot said about itself in hello (list_bots shows it)

    @property
    def connected(self) -> bool:
        return self.conn_id is not None


@dataclass
class Offer:
    """A pending challenge (player → opponent) or arranged game (organiser → two bots).

    The offer's id becomes the game's id once every remote party has accepted."""

    offer_id: str
    origin: str  # challenger or organiser name
    x: str
    o: str
    clock: float
    expires_at: float
    awaiting: dict[str, Seat]  # remote party name → seat offered, not yet accepted
    tag: str | None = None
    arranged: bool = False
    seed: int | None = None


@dataclass
class Game:
    game_id: str
    x: str
    o: str
    x_kind: str
    o_kind: str
    clock: float
    started_at: float
    tag: str | None = None
    board: Board = field(default_factory=Board.empty)
    moves: list[Frame] = field(default_factory=list)
    deadline: float | None = None
    spectators: set[str] = field(default_factory=set)  # session names
    result: str | None = None
    reason: str | None = None
    winner: str | None = None
    ended_at: float | None = None
    illegal_move: Frame | None = None
    seed: int | None = None
    house_rngs: dict[Seat, random.Random] = field(default_factory=dict, repr=False)  # per seat, when seeded
    # A paused clock (its player is disconnected): the mover's time left and since when.
    clock_left: float | None = None
    paused_at: float | None = None
    pause_allowance: dict[Seat, float] = field(default_factory=dict)  # seconds of pause left per seat
    pauses: int = 0  # pauses so far; a pause timer only ends the pause it was set for

    @property
    def paused(self) -> bool:
        return self.paused_at is not None

    @property
    def live(self) -> bool:
        return self.result is None

    def name_of(self, seat: Seat) -> str:
        return self.x if seat is Seat.X else self.o

    def seats_of(self, name: str) -> list[Seat]:
        return [s for s in (Seat.X, Seat.O) if self.name_of(s) == name]

    @property
    def turn(self) -> Seat | None:
        return None if not self.live or self.board.is_over else self.board.turn

    def record(self) -> Frame:
        """The stored form (also the body of ``game_record`` and the export)."""
        return {
            "game_id": self.game_id, "x": self.x, "o": self.o, "x_kind": self.x_kind,
            "o_kind": self.o_kind, "status": "live" if self.live else ("aborted" if self.result == "aborted" else "finished"),
            "result": self.result, "reason": self.reason, "winner": self.winner,
            "board": self.board.code, "moves": list(self.moves), "tag": self.tag,
            "clock": self.clock, "started_at": self.started_at, "ended_at": self.ended_at,
            "illegal_move": self.illegal_move, "seed": self.seed,
        }


RecordLoader = Callable[[str], "Frame | None"]
# (limit, player, tag, before) → summaries of finished games, newest first (see record_summary)
RecordLister = Callable[[int, "str | None", "str | None", "float | None"], list[Frame]]
# id prefix → ids of stored games that start with it (an exact id alone when it is one)
RecordFinder = Callable[[str], list[str]]


# ----------------------------------------------------------------------------- the arena
class Arena:
    """The whole lobby and every game, driven by events; see the module docstring."""

    def __init__(self, config: ServerConfig | None = None, *, house_bots: dict[str, Bot] | None = None,
                 load_record: RecordLoader | None = None, list_records: RecordLister | None = None,
                 find_records: RecordFinder | None = None,
                 remote: "RemoteLobby | None" = None) -> None:
        """``load_record``, ``list_records`` and ``find_records`` read the game store; without them
        ``get_game`` and ``list_records`` answer from the finished games kept in memory. ``remote``
        holds what other servers of a cluster announce: their bots and live games are listed
        here too, and spectating one of their games is relayed (:meth:`relay`)."""
        self.config = config or ServerConfig()
        self.rng = random.Random(self.config.seed)
        if house_bots is None:
            house_bots = default_house_bots(self.config) if self.config.house_bots else {}
        self.house: dict[str, Bot] = dict(house_bots)
        self.load_record = load_record
        self.list_records = list_records
        self.find_records = find_records
        self.remote = remote
        self.connections: dict[int, Connection] = {}
        self.sessions: dict[str, Session] = {}  # by name
        self.tokens: dict[str, Session] = {}
        self.offers: dict[str, Offer] = {}
        self.games: dict[str, Game] = {}  # live
        self.finished: OrderedDict[str, Game] = OrderedDict()
        self.games_finished = 0
        self.shutting_down = False
        self._effects: list[Effect] = []
        # offers and games opened by challenge/arrange, pending or live: id → (session name, address)
        self._opened: dict[str, tuple[str, str]] = {}
        self._opened_per_address: dict[str, int] = {}
        self._timers: list[tuple[float, int, str, str, int]] = []  # (when, seq, kind, key, generation)
        self._seq = itertools.count()
        self._lobby_watchers: set[str] = set()  # sessions that asked for lobby pushes (watch_lobby)
        self._lobby_push_due = False

    # ------------------------------------------------------------------ public events
    def drain(self) -> list[Effect]:
        """Effects produced since the last call, in order."""
        out, self._effects = self._effects, []
        return out

    def connect(self, conn_id: int, address: str, now: float) -> bool:
        """A connection opened. Returns False (and queues an error and a close) when refused."""
        if self.shutting_down:
            self._refuse(conn_id, "server_shutting_down", "the server is stopping", CLOSE_GOING_AWAY)
            return False
        same = sum(1 for c in self.connections.values() if c.address == address)
        if same >= self.config.max_connections_per_address:
            self._refuse(conn_id, "too_many_connections",
                         f"{same} connections from {address} already; the limit is {self.config.max_connections_per_address}",
                         CLOSE_POLICY)
            return False
        if len(self.connections) >= self.config.max_connections:
            self._refuse(conn_id, "too_many_connections", "the server is full; try again later", CLOSE_POLICY)
            return False
        self.connections[conn_id] = Connection(conn_id, address, tokens=float(self.config.burst), refilled_at=now)
        return True

    def receive(self, conn_id: int, raw: str | bytes, now: float) -> None:
        """A frame arrived on ``conn_id``. Never raises: failures become error frames."""
        conn = self.connections.get(conn_id)
        if conn is None or conn.closing:
            return
        if not self._take_token(conn, now, raw):
            return
        rid = None
        try:
            msg = parse_client_frame(raw)
            rid = msg.id
            self._dispatch(conn, msg, now)
        except ProtocolError as exc:
            self._send(conn_id, error_frame(exc.code, exc.message, exc.id if exc.id is not None else rid))
        except Exception:  # a bug must cost one request, not the server
            log.exception("internal error on a frame from connection %s", conn_id)
            self._send(conn_id, error_frame("internal_error", "the server failed on this request; it has been logged", rid))

    def disconnect(self, conn_id: int, now: float) -> None:
        """The connection is gone. Its session, if any, enters its grace period."""
        conn = self.connections.pop(conn_id, None)
        if conn is None or conn.session is None:
            return
        session = conn.session
        if session.conn_id != conn_id:
            return  # replaced by a newer connection already
        session.conn_id = None
        session.disconnected_at = now
        session.generation += 1
        if session.role in ("bot", "player"):
            self._lobby_changed(now)
        for gid in sorted(session.games):
            game = self.games[gid]
            if self._to_move(game) == session.name and game.deadline is not None:
                self._pause_clock(game, max(0.0, game.deadline - now), now)  # stale clock timers are ignored
            self._tell_opponents(game, session.name, f"{session.name} disconnected; they have {self.config.grace:g} s to return")
        self._push_timer(now + self.config.grace, "grace", session.name, session.generation)

    def tick(self, now: float) -> None:
        """Fire every timer due at ``now``: move clocks, grace periods, offer timeouts."""
        while self._timers and self._timers[0][0] <= now:
            timer = heapq.heappop(self._timers)
            if not self._timer_current(timer):
                continue  # its game moved on, its session came back, its offer was answered
            _, _, kind, key, _ = timer
            if kind == "clock":
                game = self.games[key]
                if game.deadline is not None and game.deadline <= now:
                    loser = game.turn
                    assert loser is not None
                    self._finish(game, loser.other.value, "timeout", now)
            elif kind == "pause":
                self._restart_clock(self.games[key], now, announce=True)  # pause allowance spent
            elif kind == "grace":
                self._expire_session(self.sessions[key], now)
            elif kind == "offer":
                offer = self.offers[key]
                if offer.expires_at <= now:
                    self._cancel_offer(offer, "no answer in time", None)
            elif kind == "lobby":
                self._push_lobby()

    def next_deadline(self) -> float | None:
        """Unix time of the next timer (the I/O layer sleeps until then), or None."""
        return self._timers[0][0] if self._timers else None

    def shutdown(self, now: float) -> None:
        """Stop: abort every live game (stored, announced), tell and close every connection."""
        self.shutting_down = True
        for offer in list(self.offers.values()):
            self._cancel_offer(offer, "the server is stopping", None)
        for game in list(self.games.values()):
            self._finish(game, "aborted", "aborted", now)
        for conn in list(self.connections.values()):
            self._send(conn.conn_id, error_frame("server_shutting_down", "the server is stopping; your finished games are stored"))
            self._close(conn.conn_id, CLOSE_GOING_AWAY, "server shutting down")

    def relay(self, game_id: str, frame: Frame | None) -> None:
        """A frame of a game on another server (from the broker) for its spectators here;
        ``None`` (its server went away) or a ``game_over`` frame ends the relay."""
        if self.remote is None:
            return
        for name in sorted(self.remote.watchers(game_id)):
            if frame is not None:
                self._send_to(name, frame)
            else:
                self._send_to(name, {"type": "info", "game_id": game_id,
                                     "message": f"the server playing game {game_id} went away; it can no longer be followed"})
        if frame is None or frame.get("type") == "game_over":
            if self.remote.unwatch_all(game_id):
                self._effects.append(RelayGame(game_id, watch=False))

    # ------------------------------------------------------------------ status
    def lobby(self) -> Frame:
        """This server's own bots and live games (what it announces to a cluster)."""
        return {"bots": self._bot_list(), "games": [self._summary(g) for g in self.games.values()]}

    def status(self) -> Frame:
        """The body of ``GET /healthz``."""
        return {
            "status": "stopping" if self.shutting_down else "ok",
            "games_live": len(self.games),
            "games_finished": self.games_finished,
            "connections": len(self.connections),
            "bots": len(self._bot_list()),
            "version": __version__,
            "protocol": PROTOCOL_VERSION,
        }

    # ------------------------------------------------------------------ plumbing
    def _send(self, conn_id: int | None, frame: Frame) -> None:
        if conn_id is not None:
            self._effects.append(Send(conn_id, frame))

    def _send_to(self, name: str, frame: Frame) -> None:
        session = self.sessions.get(name)
        if session is not None and session.conn_id is not None:
            self._send(session.conn_id, frame)

    def _close(self, conn_id: int, code: int, reason: str) -> None:
        conn = self.connections.get(conn_id)
        if conn is not None:
            conn.closing = True
        self._effects.append(Close(conn_id, code, reason))

    def _refuse(self, conn_id: int, code: str, message: str, close_code: int) -> None:
        self._send(conn_id, error_frame(code, message))
        self._effects.append(Close(conn_id, close_code, code))

    def _push_timer(self, when: float, kind: str, key: str, generation: int) -> None:
        heapq.heappush(self._timers, (when, next(self._seq), kind, key, generation))
        # Every move arms a clock timer and the one it replaces stays queued until it is due:
        # with many fast games that is move_clock x moves/s stale entries. Drop them now and then.
        if len(self._timers) > 1024 + 8 * (len(self.games) + len(self.sessions) + len(self.offers)):
            self._timers = [t for t in self._timers if self._timer_current(t)]
            heapq.heapify(self._timers)

    def _timer_current(self, timer: tuple[float, int, str, str, int]) -> bool:
        """False for a timer that :meth:`tick` would ignore (its game, pause, session or offer moved on)."""
        _, _, kind, key, generation = timer
        if kind == "clock":
            game = self.games.get(key)
            return game is not None and game.deadline is not None and len(game.moves) == generation
        if kind == "pause":
            game = self.games.get(key)
            return game is not None and game.paused and game.pauses == generation
        if kind == "grace":
            session = self.sessions.get(key)
            return session is not None and not session.connected and session.generation == generation
        if kind == "lobby":
            return self._lobby_push_due
        return key in self.offers

    def _take_token(self, conn: Connection, now: float, raw: str | bytes) -> bool:
        cfg = self.config
        conn.tokens = min(float(cfg.burst), conn.tokens + max(0.0, now - conn.refilled_at) * cfg.rate)
        conn.refilled_at = now
        if conn.tokens >= 1.0:
            conn.tokens -= 1.0
            conn.refusals_in_a_row = 0
            return True
        conn.refusals_in_a_row += 1
        rid = request_id_of(raw)  # a pipelining client must learn which request was dropped
        if conn.refusals_in_a_row >= cfg.flood_close:
            self._send(conn.conn_id, error_frame("rate_limited", f"{conn.refusals_in_a_row} messages over the rate limit in a row; closing", rid))
            self._close(conn.conn_id, CLOSE_POLICY, "message flood")
        else:
            self._send(conn.conn_id, error_frame(
                "rate_limited", f"more than {cfg.rate:g} messages/s (burst {cfg.burst}); this message was dropped", rid))
        return False

    # ------------------------------------------------------------------ dispatch
    def _dispatch(self, conn: Connection, msg: Any, now: float) -> None:
        if isinstance(msg, Hello):
            self._on_hello(conn, msg, now)
            return
        session = conn.session
        if session is None:
            raise ProtocolError("hello_required", "send 'hello' first: {\"type\": \"hello\", \"name\": ..., \"role\": ...}", msg.id)
        if isinstance(msg, Ping):
            self._send(conn.conn_id, self._with_id({"type": "pong", "time": now}, msg.id))
        elif isinstance(msg, ListBots):
            self._send(conn.conn_id, self._with_id(self._bots_frame(), msg.id))
        elif isinstance(msg, ListGames):
            self._send(conn.conn_id, self._with_id(self._games_frame(), msg.id))
        elif isinstance(msg, ListPlayers):
            self._send(conn.conn_id, self._with_id(self._players_frame(), msg.id))
        elif isinstance(msg, WatchLobby):
            if msg.on:
                self._lobby_watchers.add(session.name)
            else:
                self._lobby_watchers.discard(session.name)
            self._send(conn.conn_id, self._with_id(self._bots_frame(), msg.id))
            self._send(conn.conn_id, self._with_id(self._games_frame(), msg.id))
            self._send(conn.conn_id, self._with_id(self._players_frame(), msg.id))
        elif isinstance(msg, Spectate):
            self._on_spectate(session, msg)
        elif isinstance(msg, Unspectate):
            self._on_unspectate(session, msg)
        elif isinstance(msg, GetGame):
            self._on_get_game(conn, msg)
        elif isinstance(msg, ListRecords):
            self._on_list_records(conn, msg)
        elif session.role == "spectator":
            raise ProtocolError("forbidden", f"spectators may not send {msg.type!r}; they may list, spectate, get_game, list_records and ping", msg.id)
        elif isinstance(msg, MoveMsg):
            self._on_move(session, msg, now)
        elif isinstance(msg, Resign):
            self._on_resign(session, msg, now)
        elif isinstance(msg, Challenge):
            self._on_challenge(session, msg, now)
        elif isinstance(msg, Arrange):
            self._on_arrange(session, msg, now)
        elif isinstance(msg, Accept):
            self._on_accept(session, msg, now)
        elif isinstance(msg, Decline):
            self._on_decline(session, msg, now)
        else:  # pragma: no cover - parse_client_frame knows only the types above
            raise ProtocolError("unknown_type", f"unhandled message type {msg.type!r}", msg.id)

    @staticmethod
    def _with_id(frame: Frame, rid: Any) -> Frame:
        if rid is not None:
            frame = dict(frame)
            frame["id"] = rid
        return frame

    # ------------------------------------------------------------------ hello / sessions
    def _on_hello(self, conn: Connection, msg: Hello, now: float) -> None:
        if conn.session is not None:
            raise ProtocolError("already_hello", f"this connection is already {conn.session.name!r}", msg.id)
        if self.shutting_down:
            raise ProtocolError("server_shutting_down", "the server is stopping", msg.id)
        if msg.protocol != PROTOCOL_VERSION:
            raise ProtocolError("invalid_message", f"protocol {msg.protocol} is not supported; this server speaks {PROTOCOL_VERSION}", msg.id)
        if msg.token is not None:
            session = self.tokens.get(msg.token)
            if session is None:
                raise ProtocolError("bad_token", "unknown or expired session token; send hello without a token to start a new session", msg.id)
            if session.name != msg.name:
                raise ProtocolError("bad_token", f"this token belongs to another name, not {msg.name!r}", msg.id)
            if session.role != msg.role:
                raise ProtocolError("forbidden", f"session {session.name!r} was started with role {session.role!r}; resume it "
                                                 f"with role {session.role!r}, or send hello without the token for a new session", msg.id)
            self._resume(conn, session, msg, now)
            return
        if msg.name in self.house or msg.name in self.sessions:
            raise ProtocolError("name_taken", f"the name {msg.name!r} is in use; pick another (or resume with your token)", msg.id)
        lookalike = next((h for h in self.house if name_skeleton(h) == name_skeleton(msg.name)), None)
        if lookalike is not None:
            raise ProtocolError("name_taken", f"the name {msg.name!r} looks like the house bot {lookalike!r}; pick another", msg.id)
        session = Session(msg.name, msg.role, secrets.token_urlsafe(18), max_games=msg.max_games,
                          description=" ".join((msg.description or "").split()))
        self.sessions[session.name] = session
        self.tokens[session.token] = session
        self._attach(conn, session)
        self._send(conn.conn_id, self._with_id(self._welcome(session, []), msg.id))
        if session.role in ("bot", "player"):
            self._lobby_changed(now)

    def _attach(self, conn: Connection, session: Session) -> None:
        conn.session = session
        session.conn_id = conn.conn_id
        session.disconnected_at = None

    def _welcome(self, session: Session, resumed: list[str]) -> Frame:
        return {"type": "welcome", "name": session.name, "role": session.role, "token": session.token,
                "protocol": PROTOCOL_VERSION, "server": SERVER_NAME, "resumed": resumed,
                "grace": float(self.config.grace), "move_clock": float(self.config.move_clock),
                "limits": {"rate": float(self.config.rate), "burst": int(self.config.burst),
                           "max_frame_bytes": int(self.config.max_frame_bytes),
                           "max_live_games_per_session": int(self.config.max_live_games_per_session),
                           "max_live_games_per_address": int(self.config.max_live_games_per_address)}}

    def _resume(self, conn: Connection, session: Session, msg: Hello, now: float) -> None:
        if session.conn_id is not None:  # the old connection is still open: the new one wins
            old = session.conn_id
            self._send(old, {"type": "info", "message": "this session was resumed on another connection"})
            self._close(old, CLOSE_REPLACED, "session resumed elsewhere")
            self.connections.pop(old, None)
        self._attach(conn, session)
        if session.role in ("bot", "player"):
            self._lobby_changed(now)
        session.generation += 1
        if session.role == "bot":
            session.max_games = msg.max_games
            if msg.description is not None:
                session.description = " ".join(msg.description.split())
        resumed = sorted(session.games)
        self._send(conn.conn_id, self._with_id(self._welcome(session, resumed), msg.id))
        for gid in resumed:
            game = self.games[gid]
            if self._to_move(game) == session.name and game.paused:
                self._restart_clock(game, now)  # the time that was left, not a fresh clock
            seats = game.seats_of(session.name)
            self._send(conn.conn_id, self._game_start(game, seats[0].value if seats else None))
            self._send(conn.conn_id, self._state(game))
            self._tell_opponents(game, session.name, f"{session.name} is back")
        for gid in sorted(session.watching):
            game = self.games.get(gid)
            if game is not None:
                self._send(conn.conn_id, self._game_start(game, None))
                self._send(conn.conn_id, self._state(game))
        for oid in sorted(session.offers):
            offer = self.offers.get(oid)
            if offer is not None and session.name in offer.awaiting:
                self._send(conn.conn_id, self._offer_frame(offer, session.name, now))

    def _expire_session(self, session: Session, now: float) -> None:
        for gid in sorted(session.games):
            game = self.games.get(gid)
            if game is None:
                continue
            seats = game.seats_of(session.name)
            winner = seats[0].other.value if len(seats) == 1 else "aborted"
            self._finish(game, winner, "disconnect" if winner != "aborted" else "aborted", now)
        for gid in list(session.watching):
            game = self.games.get(gid)
            if game is not None:
                game.spectators.discard(session.name)
        for gid in self.remote.forget(session.name) if self.remote is not None else []:
            self._effects.append(RelayGame(gid, watch=False))
        for offer in list(self.offers.values()):
            if offer.origin == session.name or session.name in (offer.x, offer.o):
                self._cancel_offer(offer, f"{session.name} left", session.name)
        self.sessions.pop(session.name, None)
        self.tokens.pop(session.token, None)
        self._lobby_watchers.discard(session.name)

    # ------------------------------------------------------------------ lobby
    def _bots_frame(self) -> Frame:
        return {"type": "bots", "bots": self._bot_list() + (self.remote.bots() if self.remote is not None else [])}

    def _games_frame(self) -> Frame:
        games = [self._summary(g) for g in self.games.values()]
        if self.remote is not None:
            games += self.remote.games()
        return {"type": "games", "games": games}

    def _players_frame(self) -> Frame:
        return {"type": "players", "players": [{"name": s.name, "games": len(s.games)} for s in self.sessions.values()
                                               if s.role == "player" and s.connected]}

    def _lobby_changed(self, now: float) -> None:
        """A bot came or went, or a game started, moved or ended: push the lobby to its
        watchers soon (one push per LOBBY_PUSH_SECONDS however many changes)."""
        if self._lobby_watchers and not self._lobby_push_due and not self.shutting_down:
            self._lobby_push_due = True
            self._push_timer(now + LOBBY_PUSH_SECONDS, "lobby", "", 0)

    def _push_lobby(self) -> None:
        self._lobby_push_due = False
        watchers = [s for s in (self.sessions.get(n) for n in sorted(self._lobby_watchers)) if s is not None and s.connected]
        if not watchers:
            return
        frames = (self._bots_frame(), self._games_frame(), self._players_frame())
        for session in watchers:
            for frame in frames:
                self._send(session.conn_id, frame)

    def _bot_list(self) -> list[Frame]:
        bots = [{"name": name, "kind": "house", "description": bot.description,
                 "games": sum(1 for g in self.games.values() if name in (g.x, g.o)),
                 "max_games": 0, "unlimited": True} for name, bot in self.house.items()]
        for s in self.sessions.values():
            if s.role == "bot" and s.connected:
                bots.append({"name": s.name, "kind": "remote", "description": s.description,
                             "games": len(s.games), "max_games": s.max_games,
                             "pending": len(s.offers)})
        return bots

    def _summary(self, game: Game) -> Frame:
        turn = game.turn
        return {"game_id": game.game_id, "x": game.x, "o": game.o, "board": game.board.code,
                "turn": turn.value if turn else None, "ply": len(game.moves),
                "spectators": len(game.spectators), "clock": game.clock, "tag": game.tag,
                "started_at": game.started_at}

    def _kind(self, name: str) -> str:
        if name in self.house:
            return "house"
        session = self.sessions.get(name)
        return "remote" if session is not None and session.role == "bot" else "player"

    def _lookup_party(self, name: str, rid: Any) -> Session | None:
        """None for a house bot, the session for an online player or bot; raises otherwise."""
        if name in self.house:
            return None
        session = self.sessions.get(name)
        if session is None or not session.connected or session.role == "spectator":
            elsewhere = self.remote.bot(name) if self.remote is not None else None
            if elsewhere is not None:  # listed here, played there: a game lives on the server where it starts
                raise ProtocolError("unknown_opponent", f"{name!r} plays on server {elsewhere['server']!r}; connect to "
                                                        f"{elsewhere.get('url')} to challenge it", rid)
            raise ProtocolError("unknown_opponent", f"no bot or player named {name!r} is online; list_bots shows the bots", rid)
        return session

    def _check_capacity(self, session: Session, rid: Any, extra: int = 1) -> None:
        if session.role == "bot" and len(session.games) + len(session.offers) + extra > session.max_games:
            raise ProtocolError("busy", f"{session.name} plays {len(session.games)} games and has {len(session.offers)} offers pending; "
                                        f"its limit is {session.max_games}", rid)

    # ------------------------------------------------------------------ challenges and offers
    def _new_id(self) -> str:
        while True:
            gid = secrets.token_hex(6)
            if gid not in self.games and gid not in self.offers and gid not in self.finished:
                return gid

    def _on_challenge(self, session: Session, msg: Challenge, now: float) -> None:
        if msg.opponent == session.name:
            raise ProtocolError("forbidden", "you cannot challenge yourself", msg.id)
        opponent = self._lookup_party(msg.opponent, msg.id)
        if opponent is not None:
            self._check_capacity(opponent, msg.id)
        if msg.side != "random":
            side = Seat(msg.side)
        else:  # a seeded game draws its seats from the seed too, so it repeats exactly
            side = (random.Random(f"seats-{msg.seed}") if msg.seed is not None else self.rng).choice((Seat.X, Seat.O))
        x, o = (session.name, msg.opponent) if side is Seat.X else (msg.opponent, session.name)
        address = self._check_opened(session, msg.id)
        clock = float(msg.clock or self.config.move_clock)
        offer_id = self._new_id()
        self._send(session.conn_id, self._with_id(
            {"type": "challenge_sent", "challenge_id": offer_id, "opponent": msg.opponent, "side": side.value, "clock": clock}, msg.id))
        awaiting = {} if opponent is None else {opponent.name: side.other}
        offer = Offer(offer_id, session.name, x, o, clock, now + self.config.challenge_timeout, awaiting, seed=msg.seed)
        self._hold_opened(offer_id, session, address)
        self._open_offer(offer, now)

    def _on_arrange(self, session: Session, msg: Arrange, now: float) -> None:
        parties = {}
        for name in (msg.x, msg.o):
            party = self._lookup_party(name, msg.id)
            if party is not None and party.role != "bot":
                raise ProtocolError("forbidden", f"{name!r} is a player, not a bot; arrange is for bot-vs-bot games", msg.id)
            parties[name] = party
        if msg.x == msg.o and parties[msg.x] is not None:
            raise ProtocolError("forbidden", f"a remote bot cannot be arranged against itself ({msg.x!r}); house bots can", msg.id)
        for party in parties.values():
            if party is not None:
                self._check_capacity(party, msg.id)
        address = self._check_opened(session, msg.id)
        clock = float(msg.clock or self.config.move_clock)
        offer_id = self._new_id()
        self._send(session.conn_id, self._with_id(
            {"type": "challenge_sent", "challenge_id": offer_id, "opponent": f"{msg.x} vs {msg.o}", "x": msg.x, "o": msg.o,
             "clock": clock, "tag": msg.tag}, msg.id))
        awaiting = {}
        if parties[msg.x] is not None:
            awaiting[msg.x] = Seat.X
        if parties[msg.o] is not None:
            awaiting[msg.o] = Seat.O
        offer = Offer(offer_id, session.name, msg.x, msg.o, clock, now + self.config.challenge_timeout, awaiting,
                      tag=msg.tag, arranged=True, seed=msg.seed)
        self._hold_opened(offer_id, session, address)
        self._open_offer(offer, now)

    def _check_opened(self, session: Session, rid: Any) -> str:
        """Refuse a new challenge/arrange over the live-game caps; return the sender's address."""
        conn = self.connections.get(session.conn_id) if session.conn_id is not None else None
        address = conn.address if conn is not None else "unknown"
        cfg = self.config
        if len(session.opened) >= cfg.max_live_games_per_session:
            raise ProtocolError("too_many_games", f"you have {len(session.opened)} live games and challenges open; the limit is "
                                                  f"{cfg.max_live_games_per_session} (welcome.limits): finish some first", rid)
        if self._opened_per_address.get(address, 0) >= cfg.max_live_games_per_address:
            raise ProtocolError("too_many_games", f"your address has {self._opened_per_address[address]} live games and challenges "
                                                  f"open; the limit is {cfg.max_live_games_per_address} (welcome.limits)", rid)
        return address

    def _hold_opened(self, offer_id: str, session: Session, address: str) -> None:
        self._opened[offer_id] = (session.name, address)
        session.opened.add(offer_id)
        self._opened_per_address[address] = self._opened_per_address.get(address, 0) + 1

    def _release_opened(self, offer_id: str) -> None:
        """An offer or game stopped counting against its opener (declined, expired, over)."""
        held = self._opened.pop(offer_id, None)
        if held is None:
            return
        name, address = held
        session = self.sessions.get(name)
        if session is not None:
            session.opened.discard(offer_id)
        left = self._opened_per_address.get(address, 0) - 1
        if left > 0:
            self._opened_per_address[address] = left
        else:
            self._opened_per_address.pop(address, None)

    def _open_offer(self, offer: Offer, now: float) -> None:
        if not offer.awaiting:
            self._start_game(offer, now)
            return
        self.offers[offer.offer_id] = offer
        for name in offer.awaiting:
            self.sessions[name].offers.add(offer.offer_id)
            self._send_to(name, self._offer_frame(offer, name, now))
        self._push_timer(offer.expires_at, "offer", offer.offer_id, 0)

    def _offer_frame(self, offer: Offer, name: str, now: float) -> Frame:
        seat = offer.awaiting[name]
        return {"type": "challenge", "challenge_id": offer.offer_id, "challenger": offer.origin, "side": seat.value,
                "clock": offer.clock, "opponent": offer.o if seat is Seat.X else offer.x, "arranged": offer.arranged,
                "tag": offer.tag, "expires_in": max(0.0, round(offer.expires_at - now, 3))}

    def _pending_offer(self, session: Session, offer_id: str, rid: Any) -> Offer:
        offer = self.offers.get(offer_id)
        if offer is None or session.name not in offer.awaiting:
            raise ProtocolError("unknown_challenge", f"no pending challenge {offer_id!r} for {session.name}", rid)
        return offer

    def _on_accept(self, session: Session, msg: Accept, now: float) -> None:
        offer = self._pending_offer(session, msg.challenge_id, msg.id)
        # capacity counted the offer already, so accepting never makes a bot busy
        del offer.awaiting[session.name]
        session.offers.discard(offer.offer_id)
        if offer.awaiting:
            self._send(session.conn_id, self._with_id(
                {"type": "info", "message": f"accepted; waiting for {', '.join(offer.awaiting)}", "challenge_id": offer.offer_id}, msg.id))
            return
        del self.offers[offer.offer_id]
        self._start_game(offer, now, accepter=session.name, rid=msg.id)

    def _on_decline(self, session: Session, msg: Decline, now: float) -> None:
        offer = self._pending_offer(session, msg.challenge_id, msg.id)
        reason = f"{session.name} declined" + (f": {msg.reason}" if msg.reason else "")
        self._cancel_offer(offer, reason, session.name)
        self._send(session.conn_id, self._with_id(
            {"type": "info", "message": f"declined challenge {offer.offer_id}", "challenge_id": offer.offer_id}, msg.id))

    def _cancel_offer(self, offer: Offer, reason: str, by: str | None) -> None:
        if self.offers.pop(offer.offer_id, None) is None:
            return
        self._release_opened(offer.offer_id)
        frame = {"type": "challenge_declined", "challenge_id": offer.offer_id, "reason": reason}
        for name in {offer.origin, offer.x, offer.o}:
            session = self.sessions.get(name)
            if session is None:
                continue
            session.offers.discard(offer.offer_id)
            if name != by:
                self._send_to(name, frame)

    # ------------------------------------------------------------------ games
    def _start_game(self, offer: Offer, now: float, accepter: str | None = None, rid: Any = None) -> None:
        game = Game(offer.offer_id, offer.x, offer.o, self._kind(offer.x), self._kind(offer.o), offer.clock, now, tag=offer.tag,
                    seed=offer.seed)
        if offer.seed is not None:
            for seat in (Seat.X, Seat.O):
                if game.name_of(seat) in self.house:
                    game.house_rngs[seat] = random.Random(offer.seed)
        for name in (offer.x, offer.o):
            session = self.sessions.get(name)
            if session is not None:
                session.games.add(game.game_id)
        if offer.arranged:
            organiser = self.sessions.get(offer.origin)
            if organiser is not None and organiser.name not in (offer.x, offer.o):
                game.spectators.add(organiser.name)
                organiser.watching.add(game.game_id)
        self.games[game.game_id] = game
        self._lobby_changed(now)
        self._effects.append(StoreGame(game.record()))
        self._effects.append(GameEvent("start", self._game_start(game, None)))
        self._arm_clock(game, now)
        for name in dict.fromkeys((game.x, game.o)):
            seats = game.seats_of(name)
            frame = self._game_start(game, seats[0].value if len(seats) == 1 else None)
            self._send_to(name, self._with_id(frame, rid) if name == accepter else frame)
        for name in game.spectators:
            self._send_to(name, self._game_start(game, None))
        self._play_house_moves(game, now)

    def _game_start(self, game: Game, you: str | None) -> Frame:
        turn = game.turn
        return {"type": "game_start", "game_id": game.game_id, "x": game.x, "o": game.o, "you": you,
                "clock": game.clock, "board": game.board.code, "turn": turn.value if turn else game.board.turn.value,
                "ply": len(game.moves), "deadline": game.deadline, "tag": game.tag}

    def _state(self, game: Game) -> Frame:
        turn = game.turn
        return {"type": "state", "game_id": game.game_id, "x": game.x, "o": game.o, "board": game.board.code,
                "turn": turn.value if turn else None, "ply": len(game.moves), "moves": list(game.moves),
                "last_move": game.moves[-1] if game.moves else None, "deadline": game.deadline, "over": not game.live}

    def _audience(self, game: Game) -> list[str]:
        return list(dict.fromkeys([game.x, game.o, *sorted(game.spectators)]))

    def _broadcast(self, game: Game, frame: Frame, *, reply_to: str | None = None, rid: Any = None) -> None:
        for name in self._audience(game):
            self._send_to(name, self._with_id(frame, rid) if name == reply_to else frame)

    def _tell_opponents(self, game: Game, name: str, message: str) -> None:
        for other in self._audience(game):
            if other != name:
                self._send_to(other, {"type": "info", "message": message, "game_id": game.game_id})

    @staticmethod
    def _to_move(game: Game) -> str | None:
        turn = game.turn
        return None if turn is None else game.name_of(turn)

    def _arm_clock(self, game: Game, now: float, time_left: float | None = None) -> None:
        """Start the clock of the side to move with ``time_left`` (default: a full move clock);
        paused instead while that side is offline; none for house bots."""
        game.clock_left = game.paused_at = None
        turn = game.turn
        if turn is None or game.name_of(turn) in self.house:
            game.deadline = None
            return
        left = game.clock if time_left is None else time_left
        mover = self.sessions.get(game.name_of(turn))
        if mover is None or not mover.connected:
            self._pause_clock(game, left, now)
            return
        game.deadline = now + left
        self._push_timer(game.deadline, "clock", game.game_id, len(game.moves))

    def _pause_clock(self, game: Game, time_left: float, now: float) -> None:
        """The mover is offline: stop its clock with ``time_left`` on it, unless its pause
        allowance for this game is spent (then the clock runs on)."""
        turn = game.turn
        assert turn is not None
        allowance = game.pause_allowance.setdefault(turn, float(self.config.grace))
        if allowance <= 0:
            game.clock_left = game.paused_at = None
            game.deadline = now + time_left
            self._push_timer(game.deadline, "clock", game.game_id, len(game.moves))
            return
        game.deadline = None
        game.clock_left, game.paused_at = time_left, now
        game.pauses += 1
        self._push_timer(now + allowance, "pause", game.game_id, game.pauses)

    def _restart_clock(self, game: Game, now: float, *, announce: bool = False) -> None:
        """End a pause: charge it to the mover's allowance and run the clock with the time
        that was left. ``announce`` sends everyone the new deadline (the player is still away)."""
        turn = game.turn
        assert turn is not None and game.paused_at is not None and game.clock_left is not None
        used = max(0.0, now - game.paused_at)
        left = 0.0 if announce else game.pause_allowance.get(turn, float(self.config.grace)) - used
        game.pause_allowance[turn] = max(0.0, left)
        self._arm_clock(game, now, time_left=game.clock_left)
        if announce:
            self._broadcast(game, self._state(game))

    def _find_game(self, game_id: str, rid: Any) -> Game:
        game = self.games.get(game_id) or self.finished.get(game_id)
        if game is not None:
            return game
        if self.load_record is not None and self.load_record(game_id) is not None:
            raise ProtocolError("game_over", f"game {game_id} is over; get_game returns its record", rid)
        raise ProtocolError("unknown_game", f"no game has the id {game_id!r}", rid)

    def _own_live_game(self, session: Session, game_id: str, rid: Any) -> tuple[Game, list[Seat]]:
        """The live game ``game_id`` and the seats ``session`` plays in it, or the refusal a
        move or resignation gets (unknown game, not a player, game over)."""
        game = self._find_game(game_id, rid)
        seats = game.seats_of(session.name)
        if not seats:
            raise ProtocolError("not_a_player", f"you are not a player in game {game.game_id}", rid)
        if not game.live:
            raise ProtocolError("game_over", f"game {game.game_id} is over ({game.result}, {game.reason})", rid)
        return game, seats

    def _on_move(self, session: Session, msg: MoveMsg, now: float) -> None:
        game, seats = self._own_live_game(session, msg.game_id, msg.id)
        turn = game.board.turn
        if turn not in seats:
            raise ProtocolError("not_your_turn", f"it is {turn.value}'s turn in game {game.game_id}; you play {seats[0].value}", msg.id)
        try:
            cell = game.board.check(msg.cell)
        except IllegalMoveError as exc:
            if msg.on_illegal == "forfeit":
                game.illegal_move = {"ply": len(game.moves) + 1, "seat": turn.value, "cell": msg.cell, "at": now,
                                     "trace": msg.trace, "code": exc.code}
                self._finish(game, turn.other.value, "illegal_move", now, reply_to=session.name, rid=msg.id)
                return
            raise ProtocolError(exc.code, f"{exc}; game {game.game_id} goes on, it is still your move", msg.id) from None
        self._apply_move(game, cell, msg.trace, now, reply_to=session.name, rid=msg.id)
        self._play_house_moves(game, now)

    def _apply_move(self, game: Game, cell: int, trace: Frame | None, now: float, *,
                    reply_to: str | None = None, rid: Any = None) -> None:
        seat = game.board.turn
        game.board = game.board.play(cell)
        game.moves.append({"ply": len(game.moves) + 1, "seat": seat.value, "cell": cell, "at": now, "trace": trace})
        self._lobby_changed(now)
        result = game.board.result
        if result is not None:
            self._finish(game, result.value, "line" if game.board.winner else "full_board", now,
                         moved=True, reply_to=reply_to, rid=rid)
            return
        self._arm_clock(game, now)
        state = self._state(game)
        self._effects.append(StoreGame(game.record()))  # stored as played: a killed server keeps the moves
        self._effects.append(GameEvent("move", state))
        self._broadcast(game, state, reply_to=reply_to, rid=rid)

    def _play_house_moves(self, game: Game, now: float) -> None:
        while game.live and game.turn is not None and game.name_of(game.turn) in self.house:
            bot = self.house[game.name_of(game.turn)]
            seat = game.turn
            try:
                with _lend_rng(bot, game.house_rngs.get(seat)):
                    decision = bot.choose(MoveRequest(game.game_id, game.board, game.name_of(seat.other)))
                cell = game.board.check(decision.cell)
            except Exception:
                log.exception("house bot %s failed in game %s", bot.name, game.game_id)
                self._finish(game, "aborted", "aborted", now)
                return
            self._apply_move(game, cell, decision.trace, now)

    def _on_resign(self, session: Session, msg: Resign, now: float) -> None:
        game, seats = self._own_live_game(session, msg.game_id, msg.id)
        loser = game.turn if len(seats) == 2 and game.turn is not None else seats[0]
        self._finish(game, loser.other.value, "resign", now, reply_to=session.name, rid=msg.id)

    def _finish(self, game: Game, result: str, reason: str, now: float, *, moved: bool = False,
                reply_to: str | None = None, rid: Any = None) -> None:
        """End ``game``: announce (a last ``state`` when a move ended it, then ``game_over``) and store."""
        if not game.live:
            return
        game.result, game.reason, game.ended_at, game.deadline = result, reason, now, None
        game.winner = game.x if result == "X" else game.o if result == "O" else None
        self.games.pop(game.game_id, None)
        self._release_opened(game.game_id)
        self._lobby_changed(now)
        self.finished[game.game_id] = game
        while len(self.finished) > self.config.finished_games_kept:
            self.finished.popitem(last=False)
        self.games_finished += 1
        if moved:
            state = self._state(game)
            self._effects.append(GameEvent("move", state))
            self._broadcast(game, state, reply_to=reply_to, rid=rid)
        over = {"type": "game_over", "game_id": game.game_id, "x": game.x, "o": game.o, "result": result,
                "reason": reason, "winner": game.winner, "board": game.board.code, "moves": list(game.moves),
                "illegal_move": game.illegal_move, "tag": game.tag}
        self._broadcast(game, over, reply_to=reply_to, rid=rid)
        self._effects.append(GameEvent("over", over))
        for name in self._audience(game):
            session = self.sessions.get(name)
            if session is not None:
                session.games.discard(game.game_id)
                session.watching.discard(game.game_id)
        game.spectators.clear()
        record = game.record()
        self._effects.append(StoreGame(record))
        self._effects.append(GameEnded(record))

    # ------------------------------------------------------------------ spectators and replay
    def _on_spectate(self, session: Session, msg: Spectate) -> None:
        if (self.remote is not None and msg.game_id not in self.games and msg.game_id not in self.finished
                and self.remote.game(msg.game_id) is not None):
            self._spectate_remote(session, msg)
            return
        game = self._find_game(msg.game_id, msg.id)
        if not game.live:
            raise ProtocolError("game_over", f"game {game.game_id} is over; get_game returns its record", msg.id)
        if session.name not in game.spectators and len(game.spectators) >= self.config.max_spectators:
            raise ProtocolError("busy", f"game {game.game_id} has the maximum of {self.config.max_spectators} spectators", msg.id)
        game.spectators.add(session.name)
        session.watching.add(game.game_id)
        self._send(session.conn_id, self._with_id(self._game_start(game, None), msg.id))
        self._send(session.conn_id, self._state(game))

    def _spectate_remote(self, session: Session, msg: Spectate) -> None:
        """Watch a game another server plays: a ``game_start`` from its announced summary
        now, then its frames as the broker relays them (:meth:`relay`)."""
        assert self.remote is not None
        summary = self.remote.game(msg.game_id)
        assert summary is not None
        if self.remote.watch(msg.game_id, session.name):
            self._effects.append(RelayGame(msg.game_id, watch=True))
        frame = {"type": "game_start", "game_id": msg.game_id, "x": summary["x"], "o": summary["o"], "you": None,
                 "clock": summary["clock"], "board": summary["board"], "turn": summary.get("turn") or "X",
                 "ply": summary["ply"], "deadline": None, "tag": summary.get("tag"), "server": summary.get("server")}
        self._send(session.conn_id, self._with_id(frame, msg.id))

    def _on_unspectate(self, session: Session, msg: Unspectate) -> None:
        if self.remote is not None and session.name in self.remote.watchers(msg.game_id):
            if self.remote.unwatch(msg.game_id, session.name):
                self._effects.append(RelayGame(msg.game_id, watch=False))
            self._send(session.conn_id, self._with_id({"type": "info", "message": f"stopped watching {msg.game_id}",
                                                       "game_id": msg.game_id}, msg.id))
            return
        game = self.games.get(msg.game_id)
        if game is None or session.name not in game.spectators:
            raise ProtocolError("unknown_game", f"you are not watching a live game {msg.game_id!r}", msg.id)
        game.spectators.discard(session.name)
        session.watching.discard(game.game_id)
        self._send(session.conn_id, self._with_id({"type": "info", "message": f"stopped watching {game.game_id}", "game_id": game.game_id}, msg.id))

    def _full_game_id(self, game_id: str, rid: Any) -> str:
        """``game_id``, or the one game (live, finished or stored) whose id starts with it.

        Lets a person type the short id a client shows. An exact id always wins; a prefix
        that several games share is refused with ``ambiguous_game`` naming them."""
        if game_id in self.games or game_id in self.finished:
            return game_id
        found = {gid for gid in (*self.games, *self.finished) if gid.startswith(game_id)}
        if self.find_records is not None:
            stored = self.find_records(game_id)
            if stored == [game_id]:
                return game_id
            found.update(stored)
        if len(found) == 1:
            return found.pop()
        if len(found) > 1:
            names = ", ".join(sorted(found)[:10])
            raise ProtocolError("ambiguous_game", f"{len(found)}{'+' if len(found) >= 10 else ''} games have ids "
                                                  f"starting with {game_id!r} ({names}); type more of the id", rid)
        return game_id

    def _on_get_game(self, conn: Connection, msg: GetGame) -> None:
        game_id = self._full_game_id(msg.game_id, msg.id)
        game = self.games.get(game_id)
        if game is not None:
            self._send(conn.conn_id, self._with_id(self._state(game), msg.id))
            return
        finished = self.finished.get(game_id)
        record = finished.record() if finished is not None else (self.load_record(game_id) if self.load_record else None)
        if record is None:
            raise ProtocolError("unknown_game", f"no game has the id {msg.game_id!r}", msg.id)
        self._send(conn.conn_id, self._with_id(record_frame(record), msg.id))

    def _on_list_records(self, conn: Connection, msg: ListRecords) -> None:
        if self.list_records is not None:
            games = self.list_records(msg.limit, msg.player, msg.tag, msg.before)
        else:  # no store: the finished games still in memory
            kept = [g.record() for g in reversed(self.finished.values())
                    if (msg.player is None or msg.player in (g.x, g.o)) and (msg.tag is None or g.tag == msg.tag)
                    and (msg.before is None or (g.ended_at or 0.0) < msg.before)]
            kept.sort(key=lambda r: r["ended_at"] or 0.0, reverse=True)
            games = [record_summary(r) for r in kept[:msg.limit]]
        self._send(conn.conn_id, self._with_id({"type": "records", "games": games}, msg.id))


@contextmanager
def _lend_rng(bot: Bot, rng: random.Random | None) -> Iterator[None]:
    """Let ``bot`` draw from a seeded game's own generator for one move.

    House bots keep their generator in ``bot.rng``; a bot without one is left as it is."""
    if rng is None or not isinstance(getattr(bot, "rng", None), random.Random):
        yield
        return
    own = bot.rng  # type: ignore[attr-defined]
    bot.rng = rng  # type: ignore[attr-defined]
    try:
        yield
    finally:
        bot.rng = own  # type: ignore[attr-defined]


_CONFUSABLE = str.maketrans({"0": "o", "1": "l", "i": "l", "|": "l", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b",
                             "_": None, "-": None, ".": None})


def name_skeleton(name: str) -> str:
    """What a name looks like, case and look-alike characters folded: remote clients may not
    pass for a house bot (``Minimax``, ``m1nimax``, ``random_``).

    >>> name_skeleton("M1n-iMax") == name_skeleton("minimax"), name_skeleton("ann") == name_skeleton("anna")
    (True, False)
    """
    return name.lower().translate(_CONFUSABLE)


def record_summary(record: Frame) -> Frame:
    """One line of a ``records`` reply, from a stored record."""
    return {"game_id": record["game_id"], "x": record["x"], "o": record["o"],
            "result": record.get("result") or "aborted", "reason": record.get("reason") or "aborted",
            "ended_at": record.get("ended_at"), "ply": len(record.get("moves") or []), "tag": record.get("tag")}


def record_frame(record: Frame) -> Frame:
    """A stored record as a ``game_record`` frame."""
    frame = {"type": "game_record", **record}
    frame["result"] = frame.get("result") or "aborted"
    frame["reason"] = frame.get("reason") or "aborted"
    return frame


def default_house_bots(config: ServerConfig) -> dict[str, Bot]:
    """The in-process bots: ``minimax`` (optimal) and ``random``, seeded from the config."""
    from bots.house import MinimaxBot, RandomBot
    from server.solver import solve

    solve()  # build the table now, not during the first game
    seed = config.seed
    return {
        "minimax": MinimaxBot("minimax", seed=seed, tiebreak=config.minimax_tiebreak),  # type: ignore[arg-type]
        "random": RandomBot("random", seed=None if seed is None else seed + 1),
    }

