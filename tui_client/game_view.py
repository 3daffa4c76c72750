"""One game as the client sees it, built from the server's frames (start, state, over, record).

Pure state, no I/O: the app feeds it parsed frames and the widgets read it. The board can
be rebuilt at any ply from the move list, which is how replay steps through a game.

>>> from server.protocol import parse_server_frame
>>> view = GameView("g1")
>>> view.apply(parse_server_frame({"type": "game_start", "game_id": "g1", "x": "ann", "o": "minimax",
...     "you": "X", "clock": 30.0, "board": ".........", "turn": "X"}))
>>> view.status_line()
'Your turn (X): press 1-9 or click a cell'
>>> view.apply(parse_server_frame({"type": "game_over", "game_id": "g1", "x": "ann", "o": "minimax",
...     "result": "draw", "reason": "full_board", "winner": None, "board": "XOXXOOOXX",
...     "moves": []}))
>>> view.result_line()
'Draw: the board is full'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from server.game import Board, IllegalMoveError, InvalidBoardError, Seat
from server.protocol import GameOver, GameRecord, GameStart, MoveRecord, State

from tui_client.move_values import MoveValue, judge_moves
from tui_client.trace import MoveTrace, parse_trace

REASONS = {
    "line": "three in a row",
    "full_board": "the board is full",
    "resign": "resigned",
    "timeout": "ran out of time",
    "disconnect": "disconnected",
    "aborted": "the game was aborted",
    "illegal_move": "illegal move (forfeit)",
}

LOW_TIME = 10.0  # seconds: a running clock below this (and a quarter of the clock) turns red


@dataclass(frozen=True, slots=True)
class TimeControl:
    """A game clock as on lichess: ``base`` seconds for each side's whole game plus
    ``increment`` seconds after each of its moves.

    >>> str(TimeControl(180, 2)), str(TimeControl(60, 0)), str(TimeControl(90, 0.5))
    ('3+2', '1+0', '1.5+0.5')
    """

    base: float
    increment: float = 0.0

    def __str__(self) -> str:
        return f"{self.base / 60:g}+{self.increment:g}"

    def frame(self) -> dict[str, float]:
        return {"base": self.base, "increment": self.increment}

    @classmethod
    def parse(cls, raw: Any) -> "TimeControl | None":
        """From a frame's ``time_control`` (``{base, increment}``); ``None`` if absent or unreadable."""
        if not isinstance(raw, dict):
            return None
        try:
            return cls(float(raw["base"]), float(raw.get("increment", 0.0)))
        except (KeyError, TypeError, ValueError):
            return None


def format_clock(seconds: float, time_control: bool) -> str:
    """``2:58`` on a time-control clock, ``7.4`` under ten seconds; ``30 s`` on a move clock.

    >>> format_clock(178.2, True), format_clock(7.44, True), format_clock(29.6, False)
    ('2:58', '7.4', '30 s')
    """
    if not time_control:
        return f"{seconds:.0f} s"
    if seconds < 10:
        return f"{max(0.0, seconds):.1f}"
    whole = int(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


@dataclass(frozen=True, slots=True)
class PlayedMove:
    """A move of the game with the trace its bot attached (if any)."""

    ply: int
    seat: Seat
    cell: int
    trace: MoveTrace | None = None
    #: the move the rules refused, which lost the game by forfeit (the server records it apart)
    illegal: bool = False

    def __str__(self) -> str:
        return f"{self.seat.value}{self.cell}" + ("✖" if self.illegal else "")


def _moves(records: list[MoveRecord]) -> list[PlayedMove]:
    out = []
    for rec in sorted(records, key=lambda r: r.ply):
        out.append(PlayedMove(rec.ply, Seat(rec.seat), rec.cell, parse_trace(rec.trace)))
    return out


def _forfeit(frame: Any) -> PlayedMove | None:
    """The illegal move that ended a game by forfeit (``illegal_move`` of ``game_over`` and
    of a record), with its trace; ``None`` when there was none or it cannot be read."""
    raw = getattr(frame, "illegal_move", None)
    if not isinstance(raw, dict):
        return None
    try:
        seat, cell, ply = Seat(raw.get("seat")), int(raw["cell"]), int(raw["ply"])
    except (KeyError, TypeError, ValueError):
        return None
    return PlayedMove(ply, seat, cell, parse_trace(raw.get("trace")), illegal=True)


def _board(code: str | None) -> Board | None:
    if not code:
        return None
    try:
        return Board(code)
    except InvalidBoardError:
        return None


@dataclass
class GameView:
    """Everything the client knows about one game."""

    game_id: str
    x: str = "?"
    o: str = "?"
    you: Seat | None = None  # None: spectating or replaying
    board: Board = field(default_factory=Board.empty)
    moves: list[PlayedMove] = field(default_factory=list)
    turn: Seat | None = Seat.X
    deadline: float | None = None
    clock: float | None = None
    result: str | None = None  # "X", "O", "draw", "aborted"
    reason: str | None = None
    winner: str | None = None
    replay: bool = False
    tag: str | None = None
    #: a move sent and not yet answered by the server: no second move goes out meanwhile
    pending_move: int | None = None
    time_control: TimeControl | None = None
    #: time-control games: seconds left per seat (the mover's as its clock started; it runs to ``deadline``)
    clocks: dict[Seat, float] = field(default_factory=dict)
    #: a player who left the game: (name, unix time its grace ends and it loses)
    away: tuple[str, float] | None = None
    rematch_of: str | None = None
    _judged: tuple[tuple[Any, ...], list[MoveValue | None]] | None = field(default=None, repr=False, compare=False)

    # -- updates ---------------------------------------------------------------
    def apply(self, frame: Any) -> None:
        """Update from a parsed server frame about this game (other frames are ignored)."""
        if isinstance(frame, (GameStart, State, GameOver, GameRecord)):
            self.pending_move = None  # the server has answered (a refusal clears it in the app)
        if isinstance(frame, GameStart):
            self.x, self.o, self.clock = frame.x, frame.o, frame.clock
            self.you = Seat(frame.you) if frame.you else None
            self.board = _board(frame.board) or Board.empty()
            self.turn = Seat(frame.turn)
            self.deadline = frame.deadline  # the first mover's clock runs from the start
            self.time_control = TimeControl.parse(frame.time_control)
            self.rematch_of = frame.rematch_of
            self._set_clocks(frame.clocks)
        elif isinstance(frame, State):
            self.x, self.o = frame.x, frame.o
            self.moves = _moves(frame.moves)
            self.board = _board(frame.board) or self.board_at(len(self.moves))
            self.turn = Seat(frame.turn) if frame.turn else None
            self.deadline = frame.deadline
            self._set_clocks(frame.clocks)
        elif isinstance(frame, GameOver):
            self.x, self.o = frame.x, frame.o
            if frame.moves:
                self.moves = _moves(frame.moves)
            self._add_forfeit(frame)
            self.board = _board(frame.board) or self.board_at(len(self.moves))
            self._set_clocks(frame.clocks)
            self._finish(frame.result, frame.reason, frame.winner)
        elif isinstance(frame, GameRecord):
            self.x, self.o, self.tag = frame.x, frame.o, frame.tag
            self.moves = _moves(frame.moves)
            self._add_forfeit(frame)
            self.board = _board(frame.board) or self.board_at(len(self.moves))
            if frame.result in ("X", "O", "draw", "aborted"):
                self._finish(frame.result, frame.reason, None)
            else:  # get_game on a live game may answer with a record-like frame
                self.turn = self.board.turn if not self.board.is_over else None

    def _set_clocks(self, raw: dict[str, float] | None) -> None:
        if raw:
            self.clocks = {Seat(k): float(v) for k, v in raw.items() if k in ("X", "O")}

    def _add_forfeit(self, frame: Any) -> None:
        """Show the refused move that lost the game as the last move, with its trace."""
        forfeit = _forfeit(frame)
        if forfeit is not None and not any(m.illegal for m in self.moves):
            self.moves.append(forfeit)

    @property
    def forfeit(self) -> PlayedMove | None:
        """The illegal move that ended the game, if it ended so."""
        return self.moves[-1] if self.moves and self.moves[-1].illegal else None

    def _finish(self, result: str, reason: str, winner: str | None) -> None:
        self.result, self.reason = result, reason
        if winner is None and result in ("X", "O"):
            winner = self.x if result == "X" else self.o
        self.winner = winner
        self.turn = None
        self.deadline = None
        self.away = None

    # -- queries ---------------------------------------------------------------
    @property
    def over(self) -> bool:
        return self.result is not None

    @property
    def my_turn(self) -> bool:
        return not self.over and self.you is not None and self.turn == self.you

    @property
    def opponent(self) -> str | None:
        if self.you is None:
            return None
        return self.o if self.you is Seat.X else self.x

    def time_left(self, seat: Seat, now: float) -> float | None:
        """Seconds left on ``seat``'s clock: counting down for the side to move; for the
        other its game time (time control) or the full per-move clock. ``None`` when the
        game has no clock, or it is over without a time control."""
        if self.time_control is not None:
            if self.turn is seat and self.deadline is not None and not self.over:
                return max(0.0, self.deadline - now)
            return self.clocks.get(seat, self.time_control.base)
        if self.over or self.clock is None:
            return None
        if self.turn is seat and self.deadline is not None:
            return max(0.0, self.deadline - now)
        return self.clock

    def low_on_time(self, seat: Seat, now: float) -> bool:
        """The side to move has under a quarter of its clock (and at most ``LOW_TIME`` s) left."""
        left = self.time_left(seat, now)
        if left is None or self.over or self.turn is not seat or self.deadline is None:
            return False
        full = self.time_control.base if self.time_control is not None else self.clock
        return full is not None and left <= min(LOW_TIME, full / 4)

    def clock_text(self, seat: Seat, now: float) -> str | None:
        """``seat``'s clock as shown beside its name, or ``None`` when there is none."""
        left = self.time_left(seat, now)
        return None if left is None else format_clock(left, self.time_control is not None)

    def clock_name(self) -> str:
        """``3+2`` (a time control) or ``30 s a move``."""
        if self.time_control is not None:
            return str(self.time_control)
        return f"{self.clock:g} s a move" if self.clock is not None else ""

    def away_line(self, now: float) -> str:
        """``bob left: you win in 12 s unless bob returns`` while a player is away, else ``""``."""
        if self.away is None or self.over:
            return ""
        name, back_by = self.away
        seat = Seat.X if self.x == name else Seat.O
        winner = self.player(seat.other)
        who = "you win" if self.you is seat.other else f"{winner} wins"
        return f"{name} left: {who} in {max(0.0, back_by - now):.0f} s unless {name} returns"

    def player(self, seat: Seat) -> str:
        return self.x if seat is Seat.X else self.o

    def board_at(self, ply: int) -> Board:
        """The board after the first ``ply`` moves. A move the rules refuse (a recorded
        forfeit) leaves the board unchanged."""
        board = Board.empty()
        for move in self.moves[:ply]:
            try:
                if board.turn is move.seat:
                    board = board.play(move.cell)
            except IllegalMoveError:
                continue
        return board

    def move_values(self) -> list[MoveValue | None]:
        """Each move judged by the solved game (``None`` for a refused move); see
        :mod:`tui_client.move_values`. Kept until the move list changes."""
        key = tuple((m.cell, m.seat, m.illegal) for m in self.moves)
        if self._judged is None or self._judged[0] != key:
            self._judged = (key, judge_moves(list(key)))
        return self._judged[1]

    def last_traced_move(self, upto_ply: int | None = None) -> PlayedMove | None:
        """The latest move (up to ``upto_ply`` moves) that carries a trace."""
        moves = self.moves if upto_ply is None else self.moves[:upto_ply]
        for move in reversed(moves):
            if move.trace is not None:
                return move
        return None

    def check_move(self, cell: int) -> str | None:
        """Why playing ``cell`` now would be refused, or ``None`` if it is fine."""
        if self.over:
            return "The game is over."
        if self.you is None:
            return "You are watching this game; spectators cannot move."
        if self.pending_move is not None:
            return f"Your move {self.pending_move} is on its way to the server."
        if self.turn != self.you:
            return f"Not your turn: waiting for {self.player(self.you.other)} ({self.you.other.value})."
        try:
            self.board.check(cell)
        except IllegalMoveError as exc:
            return f"Cell {cell} is taken." if exc.code == "occupied" else str(exc)
        return None

    def title(self, markup: bool = False) -> str:
        """``X ann (you)  vs  O minimax``; with ``markup``, one player per line, marks coloured."""

        def who(seat: Seat) -> str:
            name = self.player(seat)
            if markup:
                name = name.replace("[", "\\[")
                mark = "[b $secondary]X[/]" if seat is Seat.X else "[b $warning]O[/]"
                return f"{mark} {name}" + (" [i](you)[/i]" if self.you is seat else "")
            return f"{seat.value} {name}" + (" (you)" if self.you is seat else "")

        if markup:
            return f"{who(Seat.X)}\n{who(Seat.O)}"
        return f"{who(Seat.X)}  vs  {who(Seat.O)}"

    def result_line(self) -> str:
        if not self.over:
            return ""
        reason = REASONS.get(self.reason or "", self.reason or "")
        if self.result == "draw":
            return f"Draw: {reason}" if reason else "Draw"
        if self.result == "aborted":
            return f"Aborted: {reason}" if reason and self.reason != "aborted" else "Game aborted"
        seat = Seat(self.result)
        name = self.winner or self.player(seat)
        if self.you is not None:
            head = "You win" if seat is self.you else f"{name} wins"
        else:
            head = f"{name} ({seat.value}) wins"
        if self.reason == "illegal_move" and self.forfeit is not None:
            loser = self.player(seat.other)
            return f"{head}: {loser} played the illegal move {self.forfeit.cell} (forfeit)"
        if self.reason in ("resign", "timeout", "disconnect", "illegal_move"):
            loser = self.player(seat.other)
            return f"{head}: {loser} {reason}"
        return f"{head}: {reason}" if reason else head

    def status_line(self) -> str:
        if self.over:
            return self.result_line()
        if self.turn is None:
            return "Waiting for the server…"
        if self.you is None:
            return f"{self.player(self.turn)} ({self.turn.value}) to move"
        if self.turn is self.you:
            return f"Your turn ({self.you.value}): press 1-9 or click a cell"
        return f"{self.player(self.turn)} ({self.turn.value}) is thinking…"

    def move_list(self) -> str:
        """``1. X5 O1  2. X9 O3`` (moves numbered in pairs)."""
        parts = []
        for i in range(0, len(self.moves), 2):
            pair = " ".join(str(m) for m in self.moves[i : i + 2])
            parts.append(f"{i // 2 + 1}. {pair}")
        return "  ".join(parts)
