"""Tests of bots/tournament/ratings.py: the maximum-likelihood Elo fit, anchoring, the prior that
keeps perfect scores finite, bootstrap intervals and input checks."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bots.tournament.ratings import GameScore, RatingError, expected_score, fit_elo, rate


def series(a: str, b: str, wins: int, draws: int, losses: int) -> list[GameScore]:
    return [GameScore(a, b, 1.0)] * wins + [GameScore(a, b, 0.5)] * draws + [GameScore(b, a, 1.0)] * losses


def test_two_players_gap_is_the_logit_of_the_score() -> None:
    # 75 % score → gap 400·log10(3) ≈ 190.8 Elo (plain MLE, no prior)
    elo = fit_elo(series("a", "b", 60, 30, 10), prior_draws=0)
    assert elo["a"] - elo["b"] == pytest.approx(400 * math.log10(3), abs=1e-6)
    assert (elo["a"] + elo["b"]) / 2 == pytest.approx(1500)


def test_equal_results_give_equal_ratings() -> None:
    games = series("a", "b", 10, 5, 10) + series("b", "c", 3, 4, 3) + series("c", "a", 7, 0, 7)
    elo = fit_elo(games)
    assert elo["a"] == pytest.approx(1500, abs=1e-6)
    assert elo["b"] == pytest.approx(1500, abs=1e-6)
    assert elo["c"] == pytest.approx(1500, abs=1e-6)


def test_anchor_pins_one_player() -> None:
    games = series("minimax", "random", 80, 20, 0) + series("random", "random2", 10, 5, 10)
    elo = fit_elo(games, anchor="random", anchor_rating=1000)
    assert elo["random"] == pytest.approx(1000)
    mean_anchored = fit_elo(games)
    # anchoring only shifts: the gaps are the same
    assert elo["minimax"] - elo["random2"] == pytest.approx(mean_anchored["minimax"] - mean_anchored["random2"])
    with pytest.raises(RatingError, match="anchor 'nobody' played no game"):
        fit_elo(games, anchor="nobody")


def test_perfect_score_is_finite_with_the_prior_and_refused_without() -> None:
    games = series("minimax", "random", 100, 0, 0)
    elo = fit_elo(games, prior_draws=1.0)
    gap = elo["minimax"] - elo["random"]
    # 100 wins + 1 virtual draw: score 100.5 / 101 → gap 400·log10(100.5/0.5)
    assert gap == pytest.approx(400 * math.log10(100.5 / 0.5), abs=1e-6)
    assert math.isfinite(gap)
    with pytest.raises(RatingError, match="perfect"):
        fit_elo(games, prior_draws=0)


def test_the_prior_fades_as_games_add_up() -> None:
    few = fit_elo(series("a", "b", 9, 0, 1))
    many = fit_elo(series("a", "b", 900, 0, 100))
    plain = fit_elo(series("a", "b", 9, 0, 1), prior_draws=0)
    gap = lambda e: e["a"] - e["b"]  # noqa: E731
    assert gap(few) < gap(many) < gap(plain) + 1e-9
    assert gap(plain) - gap(many) < 1.0


def test_ranking_follows_strength_in_a_round_robin() -> None:
    # strong beats medium beats weak, with sides mixed and draws
    games = (
        series("strong", "medium", 30, 15, 5) + series("medium", "weak", 30, 15, 5) + series("strong", "weak", 45, 5, 0)
    )
    table = rate(games, bootstrap=300, seed=1)
    assert [r.name for r in table.ratings] == ["strong", "medium", "weak"]
    assert not table["strong"].overlaps(table["weak"])
    assert table["strong"].games == 100 and table["strong"].points == pytest.approx(30 + 7.5 + 45 + 2.5)
    assert table["weak"].score_rate == pytest.approx((5 + 7.5 + 0 + 2.5) / 100)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from("abcd"), st.sampled_from("abcd"), st.sampled_from([0.0, 0.5, 1.0])),
        min_size=1,
        max_size=60,
    ),
    st.floats(min_value=0.25, max_value=4),
)
def test_the_fit_is_a_maximum_likelihood_solution(raw: list, prior: float) -> None:
    """At the MLE every player's expected points (prior included) equal its actual points."""
    games = [GameScore(a, b, s) for a, b, s in raw if a != b]
    if not games:
        return
    try:
        elo = fit_elo(games, prior_draws=prior)
    except RatingError as exc:
        assert "linked by games" in str(exc)
        return
    met = {frozenset((g.first, g.second)) for g in games}
    for player in elo:
        actual = sum(g.score if g.first == player else 1 - g.score for g in games if player in (g.first, g.second))
        expected = sum(
            expected_score(elo[player], elo[g.second if g.first == player else g.first])
            for g in games
            if player in (g.first, g.second)
        )
        for pair in met:
            if player in pair:
                (other,) = pair - {player}
                actual += 0.5 * prior
                expected += prior * expected_score(elo[player], elo[other])
        assert expected == pytest.approx(actual, abs=1e-6)
    assert sum(elo.values()) / len(elo) == pytest.approx(1500)


def test_order_of_games_does_not_matter() -> None:
    games = series("a", "b", 7, 3, 2) + series("b", "c", 5, 5, 1) + series("a", "c", 4, 1, 6)
    shuffled = games[:]
    random.Random(3).shuffle(shuffled)
    assert fit_elo(games) == pytest.approx(fit_elo(shuffled))


def test_bootstrap_interval_is_seeded_contains_the_estimate_and_narrows_with_games() -> None:
    small = series("a", "b", 6, 2, 2)
    big = series("a", "b", 600, 200, 200)
    t1, t2 = rate(small, seed=5, bootstrap=400), rate(small, seed=5, bootstrap=400)
    assert t1 == t2
    assert rate(small, seed=6, bootstrap=400)["a"] != t1["a"]
    for table in (t1, rate(big, seed=5, bootstrap=400)):
        for r in table.ratings:
            assert r.low <= r.elo <= r.high
    width = lambda t: t["a"].high - t["a"].low  # noqa: E731
    assert width(rate(big, seed=5, bootstrap=400)) < width(t1) / 5
    no_boot = rate(small, bootstrap=0)
    assert no_boot["a"].low == no_boot["a"].elo == no_boot["a"].high


def test_to_dict_is_json_ready() -> None:
    import json

    d = rate(series("x", "y", 3, 1, 1), bootstrap=50).to_dict()
    text = json.dumps(d)
    assert '"anchor": "mean"' in text and d["ratings"][0]["name"] == "x"
    assert set(d["ratings"][0]) >= {"name", "elo", "low", "high", "games", "points", "score_rate"}


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: GameScore("a", "b", 0.3), "score must be 1, 0.5 or 0"),
        (lambda: GameScore("a", "a", 1.0), "cannot play itself"),
        (lambda: rate([]), "no games"),
        (lambda: rate(series("a", "b", 1, 0, 1) + series("c", "d", 1, 0, 1)), "c, d"),
        (lambda: rate(series("a", "b", 1, 0, 1), prior_draws=-1), "prior_draws"),
        (lambda: rate(series("a", "b", 1, 0, 1), confidence=1.5), "confidence"),
        (lambda: rate(series("a", "b", 1, 0, 1), bootstrap=-1), "bootstrap"),
    ],
)
def test_bad_input_gives_clear_errors(call, message: str) -> None:
    with pytest.raises(RatingError, match=message):
        call()


def test_expected_score() -> None:
    assert expected_score(1500, 1500) == 0.5
    assert expected_score(1900, 1500) == pytest.approx(10 / 11)
    assert expected_score(1500, 1900) == pytest.approx(1 / 11)
