"""Elo ratings from game results: maximum-likelihood Bradley-Terry with draws as half
points, anchored, with bootstrap 95 % confidence intervals. Pure: no I/O.

The model: player *i* has strength θᵢ and scores against *j* with expected value
``σ(θᵢ − θⱼ)`` (σ the logistic function); a win counts 1, a draw ½, a loss 0. Elo is
``θ · 400 / ln 10``, so a 200-point gap means an expected score of 0.76. The ratings
maximise the likelihood of the observed scores (a concave problem, solved by damped
Newton steps).

*Perfect scores.* A player who never drops a point has no finite maximum-likelihood
rating. As in BayesElo, every pair of players that met gets ``prior_draws`` virtual
draws (default 1) added to its real games. That weak prior keeps every rating finite and
pulls a perfect score to a large but finite gap; its effect shrinks as real games add up
(with 100 games per pair it moves a 99 % score by a few Elo). ``prior_draws=0`` gives the
plain MLE and refuses perfect scores.

*Anchoring.* Ratings are only defined up to a common shift: by default their mean is
1500; ``anchor="random", anchor_rating=1000`` pins one player instead.

*Intervals.* Games are resampled with replacement (seeded) ``bootstrap`` times, each
resample is rated the same way (same prior, same anchor), and the 2.5 and 97.5
percentiles of each player's rating form its 95 % interval.

>>> games = [GameScore("minimax", "random", 1.0)] * 9 + [GameScore("minimax", "random", 0.5)]
>>> table = rate(games, bootstrap=200, seed=0)
>>> [r.name for r in table.ratings]
['minimax', 'random']
>>> round(table["minimax"].elo - table["random"].elo)
400
>>> round((table["minimax"].elo + table["random"].elo) / 2)
1500
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Iterable, Sequence

import numpy as np

ELO_PER_NATURAL_UNIT = 400.0 / math.log(10.0)
VALID_SCORES = (0.0, 0.5, 1.0)


class RatingError(ValueError):
    """The games cannot be rated as asked (bad score, unknown anchor, disconnected players...)."""


@dataclass(frozen=True, slots=True)
class GameScore:
    """One finished game between two players: ``score`` is ``first``'s points
    (1 win, 0.5 draw, 0 loss). Seats do not matter to the rating."""

    first: str
    second: str
    score: float

    def __post_init__(self) -> None:
        if self.first == self.second:
            raise RatingError(f"a player cannot play itself: {self.first!r}")
        if self.score not in VALID_SCORES:
            raise RatingError(f"score must be 1, 0.5 or 0 (first player's points), got {self.score!r}")


@dataclass(frozen=True, slots=True)
class Rating:
    name: str
    elo: float
    low: float  # lower end of the confidence interval
    high: float  # upper end
    games: int
    points: float  # real points scored (wins + draws / 2), prior excluded

    @property
    def score_rate(self) -> float:
        return self.points / self.games if self.games else float("nan")

    def overlaps(self, other: "Rating") -> bool:
        """Whether the two confidence intervals overlap."""
        return self.low <= other.high and other.low <= self.high


@dataclass(frozen=True)
class RatingTable:
    """Ratings best first, with how they were computed."""

    ratings: list[Rating]
    confidence: float
    bootstrap: int
    seed: int | None
    prior_draws: float
    anchor: str | None
    anchor_rating: float
    method: str = field(
        default=(
            "maximum-likelihood Bradley-Terry (Elo scale), draws as half points, "
            "virtual draws per pair as prior, percentile bootstrap over games"
        )
    )

    def __getitem__(self, name: str) -> Rating:
        for r in self.ratings:
            if r.name == name:
                return r
        raise KeyError(name)

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "confidence": self.confidence,
            "bootstrap": self.bootstrap,
            "seed": self.seed,
            "prior_draws": self.prior_draws,
            "anchor": self.anchor or "mean",
            "anchor_rating": self.anchor_rating,
            "ratings": [asdict(r) | {"score_rate": r.score_rate} for r in self.ratings],
        }


# --------------------------------------------------------------------------- fitting
def _index(games: Sequence[GameScore]) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Players, and the distinct (first, second, score) kinds of game with their counts.
    Resampling games is the same as resampling kinds in proportion to their counts, and
    there are at most 3·k² kinds however many games were played."""
    names = sorted({g.first for g in games} | {g.second for g in games})
    pos = {n: i for i, n in enumerate(names)}
    kinds: dict[tuple[int, int, float], int] = {}
    for g in games:
        key = (pos[g.first], pos[g.second], g.score)
        kinds[key] = kinds.get(key, 0) + 1
    keys = list(kinds)
    a = np.array([k[0] for k in keys], dtype=np.int64)
    b = np.array([k[1] for k in keys], dtype=np.int64)
    s = np.array([k[2] for k in keys], dtype=np.float64)
    counts = np.array([kinds[k] for k in keys], dtype=np.float64)
    return names, a, b, s, counts


def _pair_matrices(
    k: int, a: np.ndarray, b: np.ndarray, s: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Batched (B, k, k) matrices of games played and points scored by row against column.
    ``weights`` is (B, n_kinds): how many games of each kind each sample holds."""
    batch = weights.shape[0]
    played = np.zeros((batch, k * k))
    points = np.zeros((batch, k * k))
    ab, ba = a * k + b, b * k + a
    for cell, pts in ((ab, s), (ba, 1.0 - s)):
        # sum weights of games per (row, column) cell, for every sample at once
        onehot = np.zeros((len(cell), k * k))
        onehot[np.arange(len(cell)), cell] = 1.0
        played += weights @ onehot
        points += (weights * pts) @ onehot
    return played.reshape(batch, k, k), points.reshape(batch, k, k)


def _check_connected(names: list[str], met: np.ndarray) -> None:
    k = len(names)
    seen, stack = {0}, [0]
    while stack:
        i = stack.pop()
        for j in np.nonzero(met[i])[0]:
            if int(j) not in seen:
                seen.add(int(j))
                stack.append(int(j))
    if len(seen) != k:
        apart = sorted(names[i] for i in range(k) if i not in seen)
        raise RatingError(
            "ratings need every player linked by games; these never met the others' group: " + ", ".join(apart)
        )


def _fit_strengths(played: np.ndarray, points: np.ndarray, tol: float = 1e-10, max_iter: int = 200) -> np.ndarray:
    """Maximum-likelihood θ (natural units, player 0 fixed at 0) for a batch (B, k, k)."""
    batch, k, _ = played.shape
    theta = np.zeros((batch, k))
    total = points.sum(axis=2)  # (B, k) points per player
    for _ in range(max_iter):
        diff = theta[:, :, None] - theta[:, None, :]
        p = 1.0 / (1.0 + np.exp(-diff))  # expected score of row vs column
        grad = total - (played * p).sum(axis=2)
        w = played * p * (1.0 - p)
        hess = w.copy()  # off-diagonal: +w_ij
        hess[:, np.arange(k), np.arange(k)] = -w.sum(axis=2)
        # θ₀ is fixed at 0: solve on the remaining coordinates
        step = np.linalg.solve(-hess[:, 1:, 1:], grad[:, 1:, None])[:, :, 0]
        biggest = np.abs(step).max(axis=1, keepdims=True)
        step = step * np.minimum(1.0, 2.0 / np.maximum(biggest, 1e-300))  # damped: ≤ 2 per step
        theta[:, 1:] += step
        if float(np.abs(step).max()) < tol:
            break
    return theta


def _anchor(elo: np.ndarray, names: list[str], anchor: str | None, anchor_rating: float) -> np.ndarray:
    if anchor is None:
        return elo - elo.mean(axis=-1, keepdims=True) + anchor_rating
    i = names.index(anchor)
    return elo - elo[..., i : i + 1] + anchor_rating


def fit_elo(
    games: Iterable[GameScore], *, prior_draws: float = 1.0, anchor: str | None = None, anchor_rating: float = 1500.0
) -> dict[str, float]:
    """Maximum-likelihood Elo of every player (no intervals). See the module docstring."""
    table = rate(games, bootstrap=0, prior_draws=prior_draws, anchor=anchor, anchor_rating=anchor_rating)
    return {r.name: r.elo for r in table.ratings}


def rate(
    games: Iterable[GameScore],
    *,
    bootstrap: int = 1000,
    seed: int | None = 0,
    confidence: float = 0.95,
    prior_draws: float = 1.0,
    anchor: str | None = None,
    anchor_rating: float = 1500.0,
) -> RatingTable:
    """Rate every player in ``games``; intervals from ``bootstrap`` resamples (0: none,
    the interval is then the point itself)."""
    games = list(games)
    if not games:
        raise RatingError("no games to rate")
    if prior_draws < 0:
        raise RatingError(f"prior_draws must be >= 0, got {prior_draws}")
    if not 0 < confidence < 1:
        raise RatingError(f"confidence must be between 0 and 1, got {confidence}")
    if bootstrap < 0:
        raise RatingError(f"bootstrap must be >= 0, got {bootstrap}")
    names, a, b, s, counts = _index(games)
    if anchor is not None and anchor not in names:
        raise RatingError(f"anchor {anchor!r} played no game; players are: {', '.join(names)}")
    k = len(names)

    played, points = _pair_matrices(k, a, b, s, counts[None, :])
    met = played[0] > 0
    _check_connected(names, met)
    prior_played = met * float(prior_draws)  # each virtual draw: one game, half a point each
    prior_points = met * (0.5 * prior_draws)
    if prior_draws == 0:
        real_points = points[0].sum(axis=1)
        real_games = played[0].sum(axis=1)
        perfect = [names[i] for i in range(k) if real_points[i] in (0.0, real_games[i])]
        if perfect and k > 1:
            raise RatingError(
                "no finite maximum-likelihood rating for a perfect (or zero) score: "
                + ", ".join(perfect)
                + "; use prior_draws > 0"
            )

    def elo_of(played_b: np.ndarray, points_b: np.ndarray) -> np.ndarray:
        theta = _fit_strengths(played_b + prior_played, points_b + prior_points)
        return _anchor(theta * ELO_PER_NATURAL_UNIT, names, anchor, anchor_rating)

    point = elo_of(played, points)[0]
    low, high = point.copy(), point.copy()
    if bootstrap > 0:
        rng = np.random.default_rng(seed)
        n = len(games)
        samples = []
        chunk = 250  # bound memory: (chunk, k, k) matrices at a time
        for start in range(0, bootstrap, chunk):
            size = min(chunk, bootstrap - start)
            weights = rng.multinomial(n, counts / n, size=size).astype(np.float64)
            bp, bs = _pair_matrices(k, a, b, s, weights)
            samples.append(elo_of(bp, bs))
        boot = np.concatenate(samples)
        tail = (1.0 - confidence) / 2.0 * 100.0
        low, high = np.percentile(boot, [tail, 100.0 - tail], axis=0)

    real_games = played[0].sum(axis=1)
    real_points = points[0].sum(axis=1)
    ratings = [
        Rating(names[i], float(point[i]), float(low[i]), float(high[i]), int(real_games[i]), float(real_points[i]))
        for i in range(k)
    ]
    ratings.sort(key=lambda r: (-r.elo, r.name))
    return RatingTable(ratings, confidence, bootstrap, seed, prior_draws, anchor, anchor_rating)


def expected_score(elo_a: float, elo_b: float) -> float:
    """Expected points of a player rated ``elo_a`` against one rated ``elo_b``.

    >>> round(expected_score(1700, 1500), 2)
    0.76
    """
    return 1.0 / (1.0 + 10.0 ** ((elo_b - elo_a) / 400.0))
