"""The fixed-vector search: its exact objective against minimax, and a search run on a
tiny random model."""

import random

import pytest

from bots.llm.testing import tiny_language_model, tiny_sae
from server.game import Board, Result, Seat
from server.solver import choose_cell, optimal_cells
from training.vector_search import SearchConfig, budget_curve, exact_outcome, pick_features, run_search


def first_legal(boards):
    return [b.legal_cells()[0] for b in boards]


def simulate(choose_one, llm_seat: Seat, games: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    counts = {"win": 0, "draw": 0, "loss": 0}
    for _ in range(games):
        board = Board.empty()
        while not board.is_over:
            cell = choose_one(board) if board.turn is llm_seat else rng.choice(optimal_cells(board))
            board = board.play(cell)
        r = board.result
        counts["draw" if r is Result.DRAW else "win" if r is Result.win_for(llm_seat) else "loss"] += 1
    return counts


@pytest.mark.parametrize("seat", list(Seat))
def test_exact_outcome_matches_simulated_games(seat: Seat) -> None:
    exact = exact_outcome(first_legal, seat)
    assert exact.win + exact.draw + exact.loss == pytest.approx(1.0)
    assert exact.win == 0.0  # nobody beats minimax
    n = 4000
    sim = simulate(lambda b: b.legal_cells()[0], seat, n, seed=1)
    for key in ("draw", "loss"):
        p = getattr(exact, key)
        se = max((p * (1 - p) / n) ** 0.5, 1 / n)
        assert abs(sim[key] / n - p) <= 4 * se + 1e-9, (key, sim, exact)


def test_exact_outcome_counts_illegal_moves_as_losses() -> None:
    always_five = lambda boards: [5 for _ in boards]  # noqa: E731 - occupied sooner or later
    o = exact_outcome(always_five, Seat.X)
    assert o.illegal == pytest.approx(1.0) and o.loss == pytest.approx(1.0)
    none = exact_outcome(lambda boards: [None for _ in boards], Seat.O)
    assert none.illegal == pytest.approx(1.0)


def test_perfect_play_draws_every_line() -> None:
    for seat in Seat:
        o = exact_outcome(lambda boards: [choose_cell(b, tiebreak="first") for b in boards], seat)
        assert o.draw == pytest.approx(1.0)


def test_search_on_a_tiny_model_is_seeded_and_never_worse_than_zero(tmp_path) -> None:
    from bots.llm.bot import LLMBot
    from bots.llm.policy import FixedSteeringPolicy

    lm = tiny_language_model()
    sae = tiny_sae(lm, folder=tmp_path / "sae")
    feats = pick_features(sae, 4)
    assert len(feats) == 4 and len(set(feats)) == 4

    def search(seed: int):
        bot = LLMBot(lm, sae=sae, policy=FixedSteeringPolicy(feats, [0.0] * 4), mode="masked", top_k=0)
        cfg = SearchConfig(population=4, elite=2, iterations=2, bound=3.0, seed=seed, l1=0.0)
        return run_search(bot, cfg)

    a, b = search(0), search(0)
    assert a["best"]["coefficients"] == b["best"]["coefficients"]
    assert a["best"]["score"] >= a["baseline"]["score"]
    assert a["baseline"]["coefficients"] == [0.0] * 4
    curve = budget_curve(a["evaluate"], a["best"]["coefficients"], scales=(0.0, 1.0))
    assert curve[0]["draw_x"] == pytest.approx(a["baseline"]["x"]["draw"])
    assert curve[1]["draw_x"] == pytest.approx(a["best"]["x"]["draw"])
