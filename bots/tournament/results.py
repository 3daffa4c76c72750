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



def summarise(config: TournamentConfig, games: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The report (JSON-ready) from the tournament's ``game_over`` frames."""
    from bots.tournament.ratings import GameScore, RatingError, rate

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
        sa = sx if a == x else 1.0 - sx
        slot = 0 if sa == 1.0 else 1 if sa == 0.5 else 2
        (p.a_as_x if a == x else p.a_as_o)[slot] += 1
        if slot == 0:
            p.wins += 1
        elif slot == 1:
            p.draws += 1
        else:
            p.losses += 1

    ratings: dict[str, Any] | None = None
    rating_error = None
    if scores:
        try:
            ratings = rate(scores, bootstrap=config.bootstrap, seed=config.seed, anchor=config.anchor,
                           anchor_rating=config.anchor_rating).to_dict()
        except RatingError as exc:
            rating_error = str(exc)
    cross: dict[str, dict[str, float | None]] = {a: {} for a in config.bots}
    for (a, b), p in pairings.items():
        cross[a][b] = p.points / p.played if p.played else None
        cross[b][a] = (p.played - p.points) / p.played if p.played else None
    return {
        "tournament_id": config.tournament_id,
        "bots": list(config.bots),
        "seed": config.seed,
        "games_per_pairing": config.games,
        "clock": config.clock,
        "games_played": len(games),
        "games_rated": len(scores),
        "reasons": reasons,
        "pairings": [
            {"a": p.a, "b": p.b, "wins": p.wins, "draws": p.draws, "losses": p.losses, "aborted": p.aborted,
             "points": p.points, "played": p.played,
             "a_as_x": dict(zip(("wins", "draws", "losses"), p.a_as_x)),
             "a_as_o": dict(zip(("wins", "draws", "losses"), p.a_as_o))}
            for p in pairings.values()
        ],
        "cross_table": cross,  # row's score rate against column
        "ratings": ratings,
        "rating_error": rating_error,
        "games": [{"game_id": g["game_id"], "x": g["x"], "o": g["o"], "result": g["result"], "reason": g["reason"],
                   "seed": g.get("seed"), "moves": "".join(str(m["cell"]) for m in g.get("moves", []))}
                  for g in games],
    }
