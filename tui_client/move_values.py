"""The solved-game value of every move, for the move list and the value bar (pure, no I/O).

Tic Tac Toe is solved (:mod:`server.solver`, the same table the minimax bot plays from), so
each move can be graded exactly, as a chess site grades moves with an engine:

* ``??`` the move throws away a result (a win becomes a loss, or a draw a loss),
* ``?``  it lets a win become a draw,
* ``!``  it is the only move that keeps the result, where every other move loses some,
* ``""`` it keeps the result and other moves did too (most moves), or it was refused.

Values are seen from X: +1 X wins with best play, 0 draw, −1 O wins.

>>> from server.game import Board
>>> grade(Board.empty(), 5), grade(Board("X........"), 2)
('', '??')
>>> grade(Board("XX.OO...."), 3)  # X completes the row; 6 or anything else lets O win
'!'
>>> describe_value(Board("XX.OO...."))
'X wins in 1'
"""

from __future__ import annotations

from dataclasses import dataclass

from server.game import Board, IllegalMoveError, Seat
from server.solver import move_outcomes, solve


@dataclass(frozen=True, slots=True)
class MoveValue:
    """One move judged by the solved game: its mark and the value (for X) it left."""

    mark: str
    value_after: int  # +1 X wins, 0 draw, -1 O wins (with best play from the position after the move)
    depth_after: int  # plies to the end with best play


def grade(board: Board, cell: int) -> str:
    """The mark of playing ``cell`` on ``board`` (see the module doc); ``""`` if it is illegal."""
    outcomes = move_outcomes(board)
    if cell not in outcomes:
        return ""
    best = max(o.value for o in outcomes.values())
    got = outcomes[cell].value
    if got < best:
        return "??" if got < 0 else "?"
    keeping = sum(1 for o in outcomes.values() if o.value == best)
    return "!" if keeping == 1 and len(outcomes) > 1 else ""


def value_for_x(board: Board) -> tuple[int, int]:
    """(value for X, plies to the end) of ``board`` with best play from both sides."""
    sol = solve()[board.code]
    value = sol.value if board.turn is Seat.X else -sol.value
    return value, sol.depth


def describe_value(board: Board) -> str:
    """``'X wins in 3'``, ``'draw (best play)'``, ``'O won'``, ``'draw'`` (a finished board)."""
    if board.is_over:
        return f"{board.winner.value} won" if board.winner is not None else "draw"
    value, depth = value_for_x(board)
    if value == 0:
        return "draw (best play)"
    winner = "X" if value > 0 else "O"
    return f"{winner} wins in {(depth + 1) // 2 if (winner == 'X') == (board.turn is Seat.X) else depth // 2}"


def value_bar(value: int, width: int) -> str:
    """A bar from O's side (left) to X's side (right) with the draw in the middle.

    >>> value_bar(0, 9), value_bar(1, 9), value_bar(-1, 9)
    ('░░░░│░░░░', '░░░░│████', '████│░░░░')
    """
    half = max(width // 2, 1)
    left = "█" * half if value < 0 else "░" * half
    right = "█" * half if value > 0 else "░" * half
    return left + "│" + right


def judge_moves(cells_and_seats: list[tuple[int, Seat, bool]]) -> list[MoveValue | None]:
    """Judge each move of a game, given as (cell, seat, illegal); a refused or out-of-turn
    move (a recorded forfeit) gets ``None`` and leaves the board as it was."""
    out: list[MoveValue | None] = []
    board = Board.empty()
    for cell, seat, illegal in cells_and_seats:
        if illegal or board.is_over or board.turn is not seat:
            out.append(None)
            continue
        mark = grade(board, cell)
        try:
            board = board.play(cell)
        except IllegalMoveError:
            out.append(None)
            continue
        if board.is_over:
            value = 0 if board.winner is None else (1 if board.winner is Seat.X else -1)
            out.append(MoveValue(mark, value, 0))
        else:
            value, depth = value_for_x(board)
            out.append(MoveValue(mark, value, depth))
    return out


#: how a game ended other than on the board, as the value bar says it
ENDINGS = {
    "timeout": "on time",
    "resign": "by resignation",
    "disconnect": "by abandonment",
    "illegal_move": "by forfeit (illegal move)",
}


def ending_value(board: Board, result: str | None, reason: str | None) -> tuple[int, str]:
    """The value bar at the end of a game: (+1 X won, −1 O won, 0 drawn or aborted, for X)
    and its words. A game won on time, by resignation, abandonment or forfeit ends with
    that result whatever the board held; the words say both.

    >>> ending_value(Board.from_moves([5, 1]), "O", "timeout")
    (-1, 'O won on time (the board: draw (best play))')
    >>> ending_value(Board.from_moves([1, 4, 2, 5, 3]), "X", "line")
    (1, 'X won')
    >>> ending_value(Board.from_moves([5]), "aborted", "aborted")
    (0, 'aborted (the board: draw (best play))')
    """
    on_board = describe_value(board)
    if result in ("X", "O"):
        value = 1 if result == "X" else -1
        how = ENDINGS.get(reason or "")
        if how is None or board.is_over:
            return value, on_board if board.is_over else f"{result} won"
        return value, f"{result} won {how} (the board: {on_board})"
    if result == "aborted":
        return 0, f"aborted (the board: {on_board})" if not board.is_over else "aborted"
    return (0 if board.winner is None else 1 if board.winner is Seat.X else -1), on_board
