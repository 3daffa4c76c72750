"""The game solved once: value and distance to the end of every reachable position,
and the optimal move choice the minimax bot plays.

Values are seen from the side to move: +1 it wins, 0 draw, -1 it loses, with perfect
play on both sides. ``depth`` counts plies to the end of the game when the winner wins
as fast as possible and the loser loses as slowly as possible.

>>> table = solve()
>>> len(table)
5478
>>> table[Board.empty().code]
Solution(value=0, depth=9)
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from server.game import Board, Result, Seat


@dataclass(frozen=True, slots=True)
class Solution:
    value: int  # +1 / 0 / -1 for the side to move
    depth: int  # plies to the end under optimal play


TieBreak = Literal["random", "first", "exploit"]
TIE_BREAKS: tuple[str, ...] = ("random", "first", "exploit")


@functools.cache
def solve() -> dict[str, Solution]:
    """Solve every reachable position (computed once per process, ~0.1 s)."""
    table: dict[str, Solution] = {}

    def visit(board: Board) -> Solution:
        hit = table.get(board.code)
        if hit is not None:
            return hit
        sol: Solution | None
        if board.is_over:
            # The side to move has just been beaten, or the board is full.
            sol = Solution(-1 if board.winner is not None else 0, 0)
        else:
            best_key = None
            sol = None
            for _, child in board.children():
                c = visit(child)
                cand = Solution(-c.value, c.depth + 1)
                key = move_key(cand)
                if best_key is None or key > best_key:
                    best_key, sol = key, cand
        assert sol is not None  # a board that is not over has a child
        table[board.code] = sol
        return sol

    visit(Board.empty())
    return table


def move_key(outcome: Solution) -> tuple[int, int]:
    """Order moves by the outcome they lead to: win > draw > loss, faster wins and slower
    losses first. Larger is better."""
    if outcome.value > 0:
        return (1, -outcome.depth)
    if outcome.value < 0:
        return (-1, outcome.depth)
    return (0, 0)


def move_outcomes(board: Board) -> dict[int, Solution]:
    """For each legal cell, the solved outcome for the side to move if it plays there."""
    table = solve()
    out = {}
    for cell, child in board.children():
        c = table[child.code]
        out[cell] = Solution(-c.value, c.depth + 1)
    return out


def optimal_cells(board: Board) -> tuple[int, ...]:
    """All moves that are optimal by :func:`move_key` (the set minimax chooses from)."""
    outcomes = move_outcomes(board)
    if not outcomes:
        return ()
    best = max(move_key(o) for o in outcomes.values())
    return tuple(c for c, o in outcomes.items() if move_key(o) == best)


def value_preserving_cells(board: Board) -> tuple[int, ...]:
    """Moves that keep the game-theoretic value (win stays win, draw stays draw),
    whatever the speed. This is what "an optimal move" means when grading a player."""
    outcomes = move_outcomes(board)
    if not outcomes:
        return ()
    best = max(o.value for o in outcomes.values())
    return tuple(c for c, o in outcomes.items() if o.value == best)


def epsilon_minimax_cells(board: Board, epsilon: float) -> dict[int, float]:
    """The move distribution of an ε-greedy minimax player (``server.players.house.EpsilonMinimaxBot``):
    a uniformly random legal move with probability ``epsilon``, else uniform over
    :func:`optimal_cells`. ``epsilon=0`` is the minimax bot (random tie-breaks), ``1`` the
    random bot.

    >>> epsilon_minimax_cells(Board.from_moves([1, 2, 4]), 0.0)
    {7: 1.0}
    >>> round(epsilon_minimax_cells(Board.from_moves([1, 2, 4]), 0.3)[7], 4)
    0.75
    """
    legal = board.legal_cells()
    best = optimal_cells(board)
    out = {c: epsilon / len(legal) for c in legal} if epsilon > 0 else {}
    for c in best:
        out[c] = out.get(c, 0.0) + (1.0 - epsilon) / len(best)
    return out


@functools.cache
def _win_chance_vs_random(code: str, me: Seat) -> Fraction:
    """Probability that ``me`` wins when it plays the *exploit* policy and the opponent
    plays uniformly at random."""
    board = Board(code)
    if board.is_over:
        return Fraction(int(board.winner is me))
    if board.turn is me:
        return max(_win_chance_vs_random(board.play(c).code, me) for c in optimal_cells(board))
    kids = [child.code for _, child in board.children()]
    return sum((_win_chance_vs_random(k, me) for k in kids), Fraction(0)) / len(kids)


def choose_cell(board: Board, rng: random.Random | None = None, tiebreak: TieBreak = "random") -> int:
    """The minimax bot's move.

    ``tiebreak`` picks among equally optimal moves: ``random`` (uniform, seeded by
    ``rng``), ``first`` (the lowest cell; deterministic), or ``exploit`` (the moves that
    maximise the chance of winning against a uniformly random opponent, then uniform).
    """
    cells = optimal_cells(board)
    if not cells:
        raise ValueError(f"no legal move on a finished board {board.code!r}")
    if tiebreak == "first":
        return cells[0]
    if tiebreak == "exploit":
        me = board.turn
        scores = {c: _win_chance_vs_random(board.play(c).code, me) for c in cells}
        top = max(scores.values())
        cells = tuple(c for c in cells if scores[c] == top)
    elif tiebreak != "random":
        raise ValueError(f"unknown tie-break {tiebreak!r}; expected one of {TIE_BREAKS}")
    return (rng or random).choice(cells)


def exact_outcomes_vs_random(minimax_seat: Seat, tiebreak: TieBreak = "random") -> dict[str, Fraction]:
    """Exact probabilities of ``win`` / ``draw`` / ``loss`` for the minimax bot playing
    ``minimax_seat`` with the given tie-break against a uniformly random opponent."""

    @functools.cache
    def dist(code: str) -> tuple[Fraction, Fraction, Fraction]:
        board = Board(code)
        if board.is_over:
            r = board.result
            if r is Result.DRAW:
                return (Fraction(0), Fraction(1), Fraction(0))
            return (
                (Fraction(1), Fraction(0), Fraction(0))
                if r is Result.win_for(minimax_seat)
                else (Fraction(0), Fraction(0), Fraction(1))
            )
        if board.turn is minimax_seat:
            if tiebreak == "first":
                cells: tuple[int, ...] = (optimal_cells(board)[0],)
            elif tiebreak == "exploit":
                scores = {c: _win_chance_vs_random(board.play(c).code, minimax_seat) for c in optimal_cells(board)}
                top = max(scores.values())
                cells = tuple(c for c in scores if scores[c] == top)
            else:
                cells = optimal_cells(board)
        else:
            cells = board.legal_cells()
        parts = [dist(board.play(c).code) for c in cells]
        n = len(parts)
        win, draw, loss = (sum((p[i] for p in parts), Fraction(0)) / n for i in range(3))
        return win, draw, loss

    w, d, l = dist(Board.empty().code)
    return {"win": w, "draw": d, "loss": l}


def epsilon_match(x_epsilon: float, o_epsilon: float) -> tuple[float, float, float]:
    """Exact probabilities (X wins, draw, O wins) of a game between two ε-greedy minimax
    players (:func:`epsilon_minimax_cells`): ``0`` is the minimax bot with random
    tie-breaks, ``1`` the random bot. An expectation over the whole game tree, no sampling.

    >>> [round(p, 4) for p in epsilon_match(0.0, 0.0)]  # minimax against itself: always a draw
    [0.0, 1.0, 0.0]
    >>> [round(p, 4) for p in epsilon_match(0.0, 1.0)]  # minimax (X) against random
    [0.9678, 0.0322, 0.0]
    """
    memo: dict[str, tuple[float, float, float]] = {}

    def dist(board: Board) -> tuple[float, float, float]:
        known = memo.get(board.code)
        if known is not None:
            return known
        if board.is_over:
            out = (float(board.winner is Seat.X), float(board.winner is None), float(board.winner is Seat.O))
        else:
            cells = epsilon_minimax_cells(board, x_epsilon if board.turn is Seat.X else o_epsilon)
            x = d = o = 0.0
            for cell, p in cells.items():
                cx, cd, co = dist(board.play(cell))
                x, d, o = x + p * cx, d + p * cd, o + p * co
            out = (x, d, o)
        memo[board.code] = out
        return out

    return dist(Board.empty())


@dataclass(frozen=True, slots=True)
class LevelScore:
    """How strong an ε-greedy minimax player is: its expected score (a win 1, a draw ½, a
    loss 0) against the minimax bot and against the random bot, the mean of its games as X
    and as O."""

    epsilon: float
    vs_minimax: float
    vs_random: float


@functools.cache
def level_score(epsilon: float) -> LevelScore:
    """The exact :class:`LevelScore` of the ε-greedy minimax player with this ``epsilon``.

    >>> level_score(0.0)
    LevelScore(epsilon=0.0, vs_minimax=0.5, vs_random=0.9363)
    """

    def score(opponent: float) -> float:
        x_win, x_draw, _ = epsilon_match(epsilon, opponent)
        _, o_draw, o_win = epsilon_match(opponent, epsilon)
        return round(((x_win + x_draw / 2) + (o_win + o_draw / 2)) / 2, 4)

    return LevelScore(float(epsilon), score(0.0), score(1.0))
