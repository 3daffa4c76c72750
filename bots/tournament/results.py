"""A tournament's results from its ``game_over`` frames: per pairing (win/draw/loss, by
side), the cross table and the Elo ratings (:mod:`bots.tournament.ratings`)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Sequence

from bots.tournament.schedule import TournamentConfig
from server.game import score_for_x


@dataclass
class PairingResult:
    """Results of ``a`` against ``b`` (a listed before b), from a's side."""

    a: str
    b: str
    wins: int = 0
    draws: int = 0
    losses: int = 0
    aborted: int = 0
    a_as_x: list[int] = field(default_factory=lambda: [0, 0, 0])  # W/D/L with a playing X
    a_as_o: list[int] = field(default_factory=lambda: [0, 0, 0])

    @property
    def played(self) -> int:
        return self.wins + self.draws + self.losses

    @property
    def points(self) -> float:
        return self.wins + 0.5 * self.draws

    def record(self, score_a: float, a_is_x: bool) -> None:
        """Count one finished game in which ``a`` scored ``score_a`` (1, 0.5 or 0)."""
        slot = 0 if score_a == 1.0 else 1 if score_a == 0.5 else 2
        (self.a_as_x if a_is_x else self.a_as_o)[slot] += 1
        if slot == 0:
            self.wins += 1
        elif slot == 1:
            self.draws += 1
        else:
            self.losses += 1

    def to_dict(self) -> dict[str, Any]:
        """The pairing as the report lists it."""
        return {
            "a": self.a,
            "b": self.b,
            "wins": self.wins,
            "draws": self.draws,
            "losses": self.losses,
            "aborted": self.aborted,
            "points": self.points,
            "played": self.played,
            "a_as_x": dict(zip(("wins", "draws", "losses"), self.a_as_x)),
            "a_as_o": dict(zip(("wins", "draws", "losses"), self.a_as_o)),
        }


def summarise(config: TournamentConfig, games: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The report (JSON-ready) from the tournament's ``game_over`` frames."""
    pairings, scores, reasons = _tally(config, games)
    ratings, rating_error = _rate(config, scores)
    return {
        "tournament_id": config.tournament_id,
        "bots": list(config.bots),
        "seed": config.seed,
        "games_per_pairing": config.games,
        "clock": config.clock,
        "games_played": len(games),
        "games_rated": len(scores),
        "reasons": reasons,
        "pairings": [p.to_dict() for p in pairings.values()],
        "cross_table": _cross_table(config, pairings),  # row's score rate against column
        "ratings": ratings,
        "rating_error": rating_error,
        "games": [
            {
                "game_id": g["game_id"],
                "x": g["x"],
                "o": g["o"],
                "result": g["result"],
                "reason": g["reason"],
                "seed": g.get("seed"),
                "moves": "".join(str(m["cell"]) for m in g.get("moves", [])),
            }
            for g in games
        ],
    }


def _tally(
    config: TournamentConfig, games: Sequence[dict[str, Any]]
) -> tuple[dict[tuple[str, str], PairingResult], list[Any], dict[str, int]]:
    """Each pairing's results, the rated games' scores and the count of each end reason."""
    from bots.tournament.ratings import GameScore

    order = {name: i for i, name in enumerate(config.bots)}
    pairings: dict[tuple[str, str], PairingResult] = {}
    for a, b in itertools.combinations(config.bots, 2):
        pairings[(a, b)] = PairingResult(a, b)
    scores: list[GameScore] = []
    reasons: dict[str, int] = {}
    for g in games:
        x, o, result = g["x"], g["o"], g["result"]
        a, b = sorted((x, o), key=order.__getitem__)
        p = pairings[(a, b)]
        reasons[g["reason"]] = reasons.get(g["reason"], 0) + 1
        sx = score_for_x(result)
        if sx is None:
            p.aborted += 1
            continue
        scores.append(GameScore(x, o, sx))
        p.record(sx if a == x else 1.0 - sx, a == x)
    return pairings, scores, reasons


def _rate(config: TournamentConfig, scores: list[Any]) -> tuple[dict[str, Any] | None, str | None]:
    """The ratings from the rated games (None without any), or why they could not be fitted."""
    from bots.tournament.ratings import RatingError, rate

    ratings: dict[str, Any] | None = None
    rating_error = None
    if scores:
        try:
            ratings = rate(
                scores,
                bootstrap=config.bootstrap,
                seed=config.seed,
                anchor=config.anchor,
                anchor_rating=config.anchor_rating,
            ).to_dict()
        except RatingError as exc:
            rating_error = str(exc)
    return ratings, rating_error


def _cross_table(
    config: TournamentConfig, pairings: dict[tuple[str, str], PairingResult]
) -> dict[str, dict[str, float | None]]:
    """Each bot's score rate against each other bot (None where they played no rated game)."""
    cross: dict[str, dict[str, float | None]] = {a: {} for a in config.bots}
    for (a, b), p in pairings.items():
        cross[a][b] = p.points / p.played if p.played else None
        cross[b][a] = (p.played - p.points) / p.played if p.played else None
    return cross
