"""The arena's state records: a connection, a session (a named client), a pending offer
and a game with its clock, plus the signatures of the record-store readers the arena is
given. Plain dataclasses; the rules that change them live in the arena's parts."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable, Literal

from server.arena.effects import Frame
from server.game import Board, Seat
from server.protocol import DEFAULT_PROTOCOL


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
    protocol: int = DEFAULT_PROTOCOL  # the version its connection speaks (hello.protocol)

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
    time_control: tuple[float, float] | None = None  # (base, increment) seconds; None: the move clock
    rematch_of: str | None = None  # the finished game this offer follows
    opening: tuple[int, ...] = ()  # the game's first moves, given (checked: server.game.opening_board)


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
    clock_timer_at: float | None = None  # when the one clock timer queued for this game fires (server.arena.core)
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
    # A time control (base, increment): each seat's time for the whole game, kept in
    # ``remaining`` (the mover's as it was when its clock started); None: a fresh move clock per move.
    time_control: tuple[float, float] | None = None
    remaining: dict[Seat, float] = field(default_factory=dict)
    rematch_of: str | None = None
    opening: tuple[int, ...] = ()  # its first moves, given: the first moves of ``moves``, marked "opening"
    followers: set[str] = field(default_factory=set)  # spectators when it ended: a rematch takes them along

    @property
    def paused(self) -> bool:
        return self.paused_at is not None

    @property
    def live(self) -> bool:
        return self.result is None

    def name_of(self, seat: Seat) -> str:
        return self.x if seat is Seat.X else self.o

    def seats_of(self, name: str) -> list[Seat]:
        if name == self.x:
            return [Seat.X, Seat.O] if name == self.o else [Seat.X]
        return [Seat.O] if name == self.o else []

    @property
    def turn(self) -> Seat | None:
        return None if self.result is not None else self.board.to_move

    def record(self) -> Frame:
        """The stored form (also the body of ``game_record`` and the export)."""
        return {
            "game_id": self.game_id,
            "x": self.x,
            "o": self.o,
            "x_kind": self.x_kind,
            "o_kind": self.o_kind,
            "status": "live" if self.live else ("aborted" if self.result == "aborted" else "finished"),
            "result": self.result,
            "reason": self.reason,
            "winner": self.winner,
            "board": self.board.code,
            "moves": list(self.moves),
            "tag": self.tag,
            "clock": self.clock,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "illegal_move": self.illegal_move,
            "seed": self.seed,
            "time_control": self.time_control_frame(),
            "rematch_of": self.rematch_of,
        }

    def time_control_frame(self) -> Frame | None:
        if self.time_control is None:
            return None
        return {"base": self.time_control[0], "increment": self.time_control[1]}

    def clocks_frame(self) -> Frame | None:
        """Seconds left per seat in a time-control game (the mover's as its clock started)."""
        if self.time_control is None:
            return None
        return {seat.value: round(self.remaining.get(seat, self.time_control[0]), 3) for seat in (Seat.X, Seat.O)}


RecordLoader = Callable[[str], "Frame | None"]
# (limit, player, tag, before) → summaries of finished games, newest first (see record_summary)
RecordLister = Callable[[int, "str | None", "str | None", "float | None"], list[Frame]]
# id prefix → ids of stored games that start with it (an exact id alone when it is one)
RecordFinder = Callable[[str], list[str]]
