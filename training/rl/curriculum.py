"""Start positions for training games: every open position, drawn uniformly or by priority.

A game opened from the empty board against the house bots visits the positions their play
leads to, in proportions that have nothing to do with how well the policy steers there, and
a position that is rare in play (a human's or a random player's odd line) is as much part
of "every open position" as the common ones. So a share of the training games start from an
open position drawn here and are then played out against the drawn opponent; the server
plays them with a ``challenge`` that carries the position's ``opening`` moves.

Two curricula:

* ``uniform``: every open position with the LLM's side to move, and every phrasing,
  equally likely.
* ``prioritized`` (the recipe): a (position, phrasing) pair's chance is its *failure score*
  plus a floor, and the game is played in that phrasing. The score is an exponential average
  of "the policy's move here, in this phrasing, lost the solved value" over the moves made
  there (in any game, opened here or not), starting at 1 for a pair the policy has not
  steered yet, so every pair is tried early and the draws then follow the pairs the policy
  still gets wrong. The floor keeps every pair in the mix. This is
  prioritized level replay (Jiang, Grefenstette and Rocktäschel, 2021) with the value loss
  as the score, which a contextual bandit with γ = 0 makes the right one.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from server.game import Board, Seat, reachable_positions

#: exponential averaging rate of a position's failure score
SCORE_RATE = 0.3
#: added to every position's score before drawing (a position kept right is still drawn)
SCORE_FLOOR = 0.01


class StartPositions:
    """The open positions per side to move, their failure scores per phrasing, and draws
    from them."""

    def __init__(
        self,
        curriculum: str = "prioritized",
        seed: int = 0,
        phrasings: Sequence[str] = ("grid",),
        floor: float = SCORE_FLOOR,
    ) -> None:
        if curriculum not in ("prioritized", "uniform"):
            raise ValueError(f"unknown curriculum {curriculum!r}; expected prioritized or uniform")
        if not floor > 0:
            raise ValueError(f"the curriculum's floor must be positive, got {floor}")
        self.floor = float(floor)
        self.curriculum = curriculum
        self.rng = np.random.default_rng(seed)
        open_boards = sorted((b for b in reachable_positions() if not b.is_over), key=lambda b: b.code)
        self.boards: dict[Seat, list[Board]] = {s: [b for b in open_boards if b.turn is s] for s in Seat}
        self.index: dict[str, int] = {b.code: i for s in Seat for i, b in enumerate(self.boards[s])}
        self.phrasings = list(phrasings)
        if not self.phrasings:
            raise ValueError("start positions need at least one phrasing")
        self.phrasing_index = {p: j for j, p in enumerate(self.phrasings)}
        self.score: dict[Seat, np.ndarray] = {s: np.ones((len(self.boards[s]), len(self.phrasings))) for s in Seat}
        self.draws = 0
        self.drawn: set[str] = set()

    def draw(self, seat: Seat) -> tuple[Board, str]:
        """One open position with ``seat`` to move, and the phrasing to play it in."""
        boards, n = self.boards[seat], len(self.phrasings)
        if self.curriculum == "uniform":
            k = int(self.rng.integers(len(boards) * n))
        else:
            weights = np.cumsum(self.score[seat].ravel() + self.floor)
            k = min(int(np.searchsorted(weights, self.rng.random() * weights[-1], side="right")), weights.size - 1)
        board, phrasing = boards[k // n], self.phrasings[k % n]
        self.draws += 1
        self.drawn.add(board.code)
        return board, phrasing

    def update(self, board: Board, phrasing: str, lost_value: bool) -> None:
        """Fold one policy move on ``board`` in ``phrasing`` into its failure score."""
        i = self.index.get(board.code)
        j = self.phrasing_index.get(phrasing)
        if i is None or j is None:  # a finished board is never steered; anything else is an open position
            return
        score = self.score[board.turn]
        score[i, j] += SCORE_RATE * (float(lost_value) - score[i, j])

    def summary(self) -> dict[str, Any]:
        """For the run card: draws, distinct positions drawn, mean failure score per side."""
        return {
            "curriculum": self.curriculum,
            "floor": self.floor,
            "games_from_positions": self.draws,
            "distinct_start_positions": len(self.drawn),
            "mean_failure_score": {s.value: round(float(self.score[s].mean()), 4) for s in Seat},
        }
