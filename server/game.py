"""Tic Tac Toe rules: an immutable board, whose turn it is, legal moves, winner and draw.

Cells are numbered 1-9 row by row from the top left, like a phone keypad::

    1 | 2 | 3
    4 | 5 | 6
    7 | 8 | 9

A board is written compactly as nine characters ``X``, ``O`` or ``.`` in that order
(its *code*), which is what the protocol and the game records carry.

>>> b = Board.empty().play(5).play(1)
>>> b.code
'O...X....'
>>> b.turn
<Seat.X: 'X'>
>>> print(b)
O . .
. X .
. . .
>>> Board.parse(b.code) == b
True
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Sequence

CELLS = tuple(range(1, 10))
EMPTY = "."

# Every line of three, as 0-based indexes into the nine cells.
LINES: tuple[tuple[int, int, int], ...] = (
    (0, 1, 2),
    (3, 4, 5),
    (6, 7, 8),
    (0, 3, 6),
    (1, 4, 7),
    (2, 5, 8),
    (0, 4, 8),
    (2, 4, 6),
)


class Seat(str, enum.Enum):
    """A side of the board. X always moves first."""

    X = "X"
    O = "O"

    @property
    def other(self) -> "Seat":
        return Seat.O if self is Seat.X else Seat.X

    @classmethod
    def parse(cls, text: str) -> "Seat":
        """``Seat.parse("x")`` → ``Seat.X``; raises :class:`ValueError` otherwise."""
        try:
            return cls(str(text).upper())
        except ValueError:
            raise ValueError(f"not a seat: {text!r} (expected 'X' or 'O')") from None

    def __str__(self) -> str:
        return self.value


class GameError(ValueError):
    """Base class of rule violations; ``code`` is the protocol's error code."""

    code = "illegal_move"


class InvalidBoardError(GameError):
    code = "invalid_board"


class IllegalMoveError(GameError):
    """A move the rules forbid. ``code`` says why: out_of_range, occupied or game_over."""

    def __init__(self, cell: object, code: str, message: str) -> None:
        super().__init__(message)
        self.cell = cell
        self.code = code


class Result(str, enum.Enum):
    """How a finished game ended, seen from the board."""

    X_WINS = "X"
    O_WINS = "O"
    DRAW = "draw"

    @classmethod
    def win_for(cls, seat: Seat) -> "Result":
        return cls.X_WINS if seat is Seat.X else cls.O_WINS

    def __str__(self) -> str:
        return self.value


def score_for_x(result: str) -> float | None:
    """X's points for a game result (``X``, ``O``, ``draw``), None for an aborted game."""
    return {"X": 1.0, "O": 0.0, "draw": 0.5}.get(result)


@dataclass(frozen=True, slots=True)
class Move:
    """A move: the seat that plays and the cell (1-9) it takes."""

    seat: Seat
    cell: int

    def __post_init__(self) -> None:
        if not isinstance(self.cell, int) or isinstance(self.cell, bool) or not 1 <= self.cell <= 9:
            raise IllegalMoveError(self.cell, "out_of_range", f"cell must be an integer 1-9, got {self.cell!r}")

    def __str__(self) -> str:
        return f"{self.seat.value}{self.cell}"

    @classmethod
    def parse(cls, text: str) -> "Move":
        """``Move.parse("X5")`` → ``Move(Seat.X, 5)``."""
        text = text.strip()
        if len(text) != 2 or not text[1].isdigit():
            raise ValueError(f"not a move: {text!r} (expected e.g. 'X5')")
        return cls(Seat.parse(text[0]), int(text[1]))


def _check_cell(cell: object) -> int:
    if isinstance(cell, bool) or not isinstance(cell, int) or not 1 <= cell <= 9:
        raise IllegalMoveError(cell, "out_of_range", f"cell must be an integer 1-9, got {cell!r}")
    return cell


@dataclass(frozen=True)
class Board:
    """An immutable position. Build one with :meth:`empty`, :meth:`parse` or :meth:`play`."""

    # ``_info`` is the position's facts (see _facts), boards after each move included: a slot,
    # not a dataclass field, so eq, hash, repr, asdict and copies see only the code.
    __slots__ = ("code", "_info")
    code: str
    if TYPE_CHECKING:  # the slot's type, for the checker only (an annotation would make it a dataclass field)

        @property
        def _info(self) -> "_Facts": ...

    def __post_init__(self) -> None:
        if not isinstance(self.code, str):
            raise InvalidBoardError(f"a board is nine characters of X, O or '.', got {self.code!r}")
        object.__setattr__(self, "_info", _facts(self.code))  # validates the position

    def __reduce__(self) -> tuple[type["Board"], tuple[str]]:
        return Board, (self.code,)  # pickled and copied as its code alone

    # -- construction ---------------------------------------------------------
    @classmethod
    def empty(cls) -> "Board":
        return _EMPTY_BOARD if cls is Board else cls(EMPTY * 9)

    @classmethod
    def parse(cls, text: str) -> "Board":
        """Parse a code (``"X...O...."``) or a grid (``str(board)`` or :meth:`grid`); spaces,
        ``|`` and separator lines (``---+---+---``) are ignored, ``-``, ``_`` and digits
        stand for empty cells.

        >>> b = Board("X...O...X")
        >>> Board.parse(b.grid()) == Board.parse(str(b)) == b
        True
        """
        lines = [ln for ln in str(text).splitlines() if not ("+" in ln and set(ln.strip()) <= set("-+"))]
        cleaned = [c for c in "".join(lines).upper() if c not in " |\r\t"]
        cleaned = ["." if c in "-_123456789" else c for c in cleaned]
        return cls("".join(cleaned))

    @classmethod
    def from_moves(cls, cells: "list[int] | tuple[int, ...]") -> "Board":
        board = cls.empty()
        for cell in cells:
            board = board.play(cell)
        return board

    # -- queries --------------------------------------------------------------
    def __getitem__(self, cell: int) -> Seat | None:
        c = self.code[_check_cell(cell) - 1]
        return None if c == EMPTY else Seat(c)

    @property
    def turn(self) -> Seat:
        """The seat to move (X when the counts are equal). Meaningless once the game is over."""
        return self._info[0]

    @property
    def to_move(self) -> Seat | None:
        """The seat to move, or None once the game is over."""
        return self._info[4]

    @property
    def ply(self) -> int:
        """Number of moves played so far."""
        return 9 - self.code.count(EMPTY)

    def legal_cells(self) -> tuple[int, ...]:
        """Empty cells, in order; empty when the game is over."""
        return self._info[5]

    def empty_cells(self) -> tuple[int, ...]:
        return tuple(i + 1 for i, c in enumerate(self.code) if c == EMPTY)

    @property
    def winner(self) -> Seat | None:
        return self._info[1]

    @property
    def is_over(self) -> bool:
        return self._info[2]

    @property
    def result(self) -> Result | None:
        """``Result`` of a finished game, ``None`` while it goes on."""
        return self._info[3]

    def winning_line(self) -> tuple[int, int, int] | None:
        """The completed line as 1-based cells, if any."""
        for line in LINES:
            a, b, c = (self.code[i] for i in line)
            if a != EMPTY and a == b == c:
                i, j, k = line
                return i + 1, j + 1, k + 1
        return None

    # -- moves ----------------------------------------------------------------
    def check(self, cell: object) -> int:
        """Return ``cell`` if it is a legal move here, else raise :class:`IllegalMoveError`."""
        if type(cell) is int and 0 < cell < 10 and self._info[6][cell] is not None:  # played before: legal
            return cell
        cell = _check_cell(cell)
        if self.is_over:
            raise IllegalMoveError(cell, "game_over", "the game is already over")
        if self.code[cell - 1] != EMPTY:
            raise IllegalMoveError(cell, "occupied", f"cell {cell} is already taken by {self.code[cell - 1]}")
        return cell

    def play(self, cell: int) -> "Board":
        """The board after the side to move takes ``cell``."""
        if type(cell) is int and 0 < cell < 10:  # not a bool: True would find cell 1's board
            after = self._info[6][cell]
            if after is not None:
                return after
        cell = self.check(cell)
        i = cell - 1
        after = self._info[6][cell] = Board(self.code[:i] + self.turn.value + self.code[i + 1 :])
        return after

    def children(self) -> Iterator[tuple[int, "Board"]]:
        for cell in self.legal_cells():
            yield cell, self.play(cell)

    # -- formatting -----------------------------------------------------------
    def __str__(self) -> str:
        rows = [self.code[r * 3 : (r + 1) * 3] for r in range(3)]
        return "\n".join(" ".join(row) for row in rows)

    def grid(self, numbered: bool = True) -> str:
        """A grid with ``|`` separators; empty cells show their number when ``numbered``."""
        cells = [c if c != EMPTY else (str(i + 1) if numbered else " ") for i, c in enumerate(self.code)]
        rows = [" " + " | ".join(cells[r * 3 : (r + 1) * 3]) for r in range(3)]
        return "\n---+---+---\n".join(rows)


def _has_line(code: str, piece: str) -> bool:
    return any(code[a] == code[b] == code[c] == piece for a, b, c in LINES)


_Facts = tuple[Seat, Seat | None, bool, "Result | None", Seat | None, tuple[int, ...], list["Board | None"]]


@functools.cache  # valid positions only (a refused code raises and is not kept): at most 3**9
def _facts(code: str) -> _Facts:
    """Check ``code`` is a reachable-looking position; return (side to move, winner, game
    over, result, side to move or None when over, legal cells, the board after each move).
    The server asks these for every move, so each position is worked out once (and each
    Board keeps its own). The last is filled by :meth:`Board.play` (index: the cell), so
    each legal move of a position builds its Board once: boards are immutable, sharing them
    is safe."""
    if len(code) != 9 or any(c not in "XO." for c in code):
        raise InvalidBoardError(f"a board is nine characters of X, O or '.', got {code!r}")
    nx, no = code.count("X"), code.count("O")
    if not (nx == no or nx == no + 1):
        raise InvalidBoardError(f"impossible piece counts in {code!r}: {nx} X and {no} O")
    wx, wo = _has_line(code, "X"), _has_line(code, "O")
    if wx and wo:
        raise InvalidBoardError(f"both sides have a line in {code!r}")
    if (wx and nx != no + 1) or (wo and nx != no):
        raise InvalidBoardError(f"play continued after a win in {code!r}")
    winner = Seat.X if wx else Seat.O if wo else None
    result = Result.win_for(winner) if winner is not None else Result.DRAW if EMPTY not in code else None
    turn = Seat.X if nx == no else Seat.O
    over = result is not None
    legal = () if over else tuple(i + 1 for i, c in enumerate(code) if c == EMPTY)
    return turn, winner, over, result, None if over else turn, legal, [None] * 10


_EMPTY_BOARD = Board(EMPTY * 9)


MAX_OPENING = 8  # an opening leaves at least one move to play


class OpeningError(GameError):
    """Moves that cannot open a game (see :func:`opening_board`); the message names why."""

    code = "invalid_opening"


def opening_of(board: Board) -> tuple[int, ...]:
    """An opening that reaches ``board``: X's and O's cells in turn, each side's in cell order
    (any order is legal because a position that is not over has no line; a finished board
    gets one too, its last move possibly not the one that ended the game).

    >>> opening_of(Board("X.O.X...."))
    (1, 3, 5)
    >>> opening_board(opening_of(Board("XO.OX...."))) == Board("XO.OX....")
    True
    """
    xs = [i + 1 for i, c in enumerate(board.code) if c == Seat.X.value]
    os_ = [i + 1 for i, c in enumerate(board.code) if c == Seat.O.value]
    moves: list[int] = []
    for i, x in enumerate(xs):
        moves.append(x)
        if i < len(os_):
            moves.append(os_[i])
    return tuple(moves)


def opening_board(cells: Sequence[int]) -> Board:
    """The board after the opening ``cells``: a game's first moves in order from the empty
    board, X first. They must be at most :data:`MAX_OPENING` distinct cells 1-9 and leave
    the game open; else :class:`OpeningError` says which rule they break.

    >>> opening_board([5, 1]).code
    'O...X....'
    >>> opening_board([5, 1, 5])  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ...
    server.game.OpeningError: cell 5 is played twice
    >>> opening_board([1, 4, 2, 5, 3])  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ...
    server.game.OpeningError: the game is over after these moves (X has three in a row: 1, 2, 3)
    """
    if len(cells) > MAX_OPENING:
        raise OpeningError(f"at most {MAX_OPENING} moves (the game must be left to play), got {len(cells)}")
    seen: set[int] = set()
    for cell in cells:
        if isinstance(cell, bool) or not isinstance(cell, int) or not 1 <= cell <= 9:
            raise OpeningError(f"{cell!r} is not a cell (an integer 1-9)")
        if cell in seen:
            raise OpeningError(f"cell {cell} is played twice")
        seen.add(cell)
    board = Board.empty()
    for n, cell in enumerate(cells, 1):
        board = board.play(cell)
        if board.is_over:
            line = board.winning_line()
            why = f"{board.winner} has three in a row: {', '.join(map(str, line))}" if line else "the board is full"
            where = "after these moves" if n == len(cells) else f"after move {n} of {len(cells)}"
            raise OpeningError(f"the game is over {where} ({why})")
    return board


def reachable_positions() -> list[Board]:
    """Every position reachable from the empty board by legal play (5,478 of them)."""
    seen: dict[str, Board] = {}
    stack = [Board.empty()]
    while stack:
        b = stack.pop()
        if b.code in seen:
            continue
        seen[b.code] = b
        stack.extend(child for _, child in b.children())
    return list(seen.values())
