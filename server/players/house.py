"""House bots: the optimal minimax bot (from the solved game), a uniform random bot, and an
ε-greedy minimax bot (a uniformly random legal move with probability ε, else minimax) that
the evaluation uses as an opponent a steering policy was not fitted to.

They are pure Python (no torch) so the server runs them in-process, and ``autosteer-bot
run --kind minimax|random`` runs the same classes as remote bots.
"""

from __future__ import annotations

import random

from server.players.base import Bot, Decision, MoveRequest
from server.solver import TIE_BREAKS, TieBreak, choose_cell, move_outcomes


class MinimaxBot(Bot):
    """Plays an optimal move: wins fastest, loses slowest; ties broken by ``tiebreak``
    (``random`` with a seeded generator, ``first`` deterministic, ``exploit`` most
    winning chances against a random opponent)."""

    description = "optimal play from the solved game"

    def __init__(self, name: str = "minimax", seed: int | None = None, tiebreak: TieBreak = "random") -> None:
        if tiebreak not in TIE_BREAKS:
            raise ValueError(f"unknown tie-break {tiebreak!r}; expected one of {', '.join(TIE_BREAKS)}")
        self.name = name
        self.tiebreak = tiebreak
        self.rng = random.Random(seed)
        self.description = f"optimal play from the solved game (tie-break: {tiebreak})"

    def choose(self, request: MoveRequest) -> Decision:
        cell = choose_cell(request.board, self.rng, self.tiebreak)
        outcome = move_outcomes(request.board)[cell]
        verdict = {1: "win", 0: "draw", -1: "loss"}[outcome.value]
        return Decision(cell, {"solver": {"value": verdict, "plies_to_end": outcome.depth}})


class RandomBot(Bot):
    """Plays a uniformly random legal move (seeded)."""

    description = "uniformly random legal moves"

    def __init__(self, name: str = "random", seed: int | None = None) -> None:
        self.name = name
        self.rng = random.Random(seed)

    def choose(self, request: MoveRequest) -> Decision:
        return Decision(self.rng.choice(request.board.legal_cells()))


class EpsilonMinimaxBot(Bot):
    """With probability ``epsilon`` a uniformly random legal move, else minimax's (random
    tie-breaks); one seeded generator draws both. Its move distribution on a board is
    :func:`server.solver.epsilon_minimax_cells`' (the exact evaluation walks the same one).

    >>> from server.game import Board
    >>> bot = EpsilonMinimaxBot(epsilon=0.0, seed=1)
    >>> bot.choose(MoveRequest("g", Board.from_moves([1, 2, 4]))).cell  # blocks 1-4-7
    7
    """

    def __init__(self, name: str = "epsilon", seed: int | None = None, epsilon: float = 0.1) -> None:
        if not 0.0 <= float(epsilon) <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        self.name = name
        self.epsilon = float(epsilon)
        self.rng = random.Random(seed)
        self.description = f"minimax, but a uniformly random move with probability {self.epsilon:g}"

    def choose(self, request: MoveRequest) -> Decision:
        board = request.board
        if self.rng.random() < self.epsilon:
            return Decision(self.rng.choice(board.legal_cells()))
        return Decision(choose_cell(board, self.rng, "random"))


HOUSE_KINDS = {"minimax": MinimaxBot, "random": RandomBot, "epsilon": EpsilonMinimaxBot}

#: The graded house bots a server hosts beside ``minimax`` and ``random``, weakest first:
#: name -> ε of an :class:`EpsilonMinimaxBot` (the chance of a uniformly random move). The
#: lobby offers them as levels, and steering policies train against them so that the LLM
#: meets every position of the game, not only minimax's tree.
HOUSE_LEVELS: dict[str, float] = {"easy": 0.6, "medium": 0.3, "hard": 0.1}
#: every house bot a server hosts, strongest first
HOUSE_NAMES: tuple[str, ...] = ("minimax", *sorted(HOUSE_LEVELS, key=HOUSE_LEVELS.__getitem__), "random")


def make_house_bot(kind: str, name: str | None = None, seed: int | None = None, **options: object) -> Bot:
    """Build a house bot by kind name (``minimax``, ``random`` or ``epsilon``)."""
    try:
        cls = HOUSE_KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown house bot kind {kind!r}; expected one of {', '.join(HOUSE_KINDS)}") from None
    return cls(name=name or kind, seed=seed, **options)
