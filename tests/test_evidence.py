"""Evidence behind evaluation results, on a tiny random model: distinct games and boards,
exact values beside sampled rates, the steering budget (digit mass included), weight hashes
before and after, held-out checks and equal-effort controls."""

from __future__ import annotations

import json

import pytest

from bots.llm.bot import LLMBot
from bots.llm.policy import FixedSteeringPolicy
from bots.llm.testing import tiny_language_model, tiny_sae
from server.game import Board, Seat
from training.evaluation.evaluate import ArmResult, exact_arm, play_arm_local
from training.evaluation.evidence import distinct_counts, llm_boards

from tests.test_llm_evaluate import _Bar

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def lm():
    import torch

    torch.set_num_threads(1)
    return tiny_language_model()


@pytest.fixture(scope="module")
def sae(lm):
    s = tiny_sae(lm)
    # labels with the fields the search's picker reads, on 40 features
    s.features.labels = {
        i: {
            "label": f"feature {i}",
            "f1": 0.1 * (i % 9),
            "effect": {"kl": 0.01 * i, "mean_delta_prob": [((7 * i + c) % 11 - 5) / 100 for c in range(9)]},
        }
        for i in range(40)
    }
    return s


def _policy(sae, features=(1, 2, 3), coefs=(0.5, -1.0, 0.3)):
    return FixedSteeringPolicy(list(features), list(coefs), hook_name=sae.hook_name, d_sae=sae.d_sae)


# --------------------------------------------------------------------------- distinct games and boards
@pytest.mark.parametrize(
    "opponent, seat, mode", [("minimax", "X", "masked"), ("minimax", "O", "masked"), ("random", "X", "strict")]
)
def test_distinct_counts_equal_a_hand_count(lm, opponent, seat, mode):
    games: dict[str, list[int]] = {}
    arm = ArmResult(opponent, seat, mode)
    play_arm_local(LLMBot(lm, mode=mode), arm, 40, seed=3, concurrency=8, progress=_Bar(), games=games)
    assert len(games) == 40
    # by hand: distinct tuples of cells, and every board the LLM faced, replayed move by move
    records = {tuple(cells) for cells in games.values()}
    boards = set()
    for cells in records:
        board = Board.empty()
        for cell in cells:
            if board.turn is Seat(seat):
                boards.add(board.code)
            board = board.play(cell)
        if not board.is_over and board.turn is Seat(seat):  # the LLM forfeited here (strict)
            boards.add(board.code)
    assert (arm.distinct_games, arm.distinct_boards) == (len(records), len(boards))
    assert 1 <= arm.distinct_games <= arm.games
    if opponent == "minimax":
        # a deterministic bot against minimax: only minimax's tie-breaks vary the game, so 40
        # games are far fewer distinct records, and no more than the exact walk's boards
        assert arm.distinct_games < 40
        exact = exact_arm(LLMBot(lm, mode=mode), arm)
        assert arm.distinct_boards <= exact["boards"]
        assert abs(arm.draws / arm.games - exact["draw"]) < 0.35


def test_llm_boards_by_hand():
    assert llm_boards([5, 1, 9], Seat.X) == [Board.empty().code, Board.from_moves([5, 1]).code]
    assert llm_boards([], Seat.O) == []  # X has not moved yet: no O board
    assert distinct_counts([[1, 2], [1, 2], [1, 3]], Seat.X) == (2, 3)  # boards: empty, 1-2, 1-3


# --------------------------------------------------------------------------- budget and exact values
def test_arm_reports_budget_digit_mass_and_exact_value(lm, sae):
    bot = LLMBot(lm, sae=sae, policy=_policy(sae), mode="masked", digit_mass=True)
    arm = ArmResult("minimax", "X", "masked")
    play_arm_local(bot, arm, 12, seed=1, concurrency=4, progress=_Bar())
    arm.exact = exact_arm(bot, arm)
    assert 0 < arm.mean_norm_ratio <= arm.max_norm_ratio
    assert arm.mean_features_active == 3.0
    assert 0 < arm.min_digit_mass <= arm.mean_digit_mass <= 1 and 0 < arm.mean_base_digit_mass <= 1
    assert arm.mean_digit_mass != arm.mean_base_digit_mass  # the steering moved next-token mass
    assert set(arm.exact) == {"win", "draw", "loss", "illegal", "boards"}
    assert arm.exact["win"] + arm.exact["draw"] + arm.exact["loss"] == pytest.approx(1.0)


def test_digit_mass_of_the_cached_path_equals_a_full_forward(lm, sae):
    import torch

    from bots.llm.readers import make_reader

    boards = [Board.empty(), Board.from_moves([5]), Board.from_moves([1, 2, 3])]
    cached = make_reader(lm, sae.hook_name, reader="cached", digit_mass=True)
    hooked = make_reader(lm, sae.hook_name, reader="hooked")
    for added in (None, torch.randn(3, lm.d_model, generator=torch.Generator().manual_seed(0))):
        a, b = cached.answer(boards, added), hooked.answer(boards, added)
        assert torch.allclose(a.digit_mass, b.digit_mass, atol=1e-5)
        assert torch.allclose(a.base_digit_mass, b.base_digit_mass, atol=1e-5)
        # the mass is the digits' share of a softmax over the whole vocabulary
        assert bool(((a.digit_mass > 0) & (a.digit_mass < 1)).all())


def test_random_control_is_one_fixed_direction(lm, sae):
    import torch

    bot = LLMBot(lm, sae=sae, policy=_policy(sae), mode="masked", control="random", control_seed=4)
    coefs = torch.tensor([[0.5, -1.0, 0.3], [2.0, 0.1, -0.7]])
    vec, _, _ = bot._controlled(coefs)
    cos = torch.nn.functional.cosine_similarity(vec[0], vec[1], dim=0)
    assert float(cos) == pytest.approx(1.0, abs=1e-5)  # the same direction for every move
    plain = bot.steering.vectors(coefs)
    assert torch.allclose(vec.norm(dim=-1), plain.norm(dim=-1), atol=1e-5)  # at the policy's norm
    again = LLMBot(lm, sae=sae, policy=_policy(sae), mode="masked", control="random", control_seed=4)
    assert torch.allclose(again._controlled(coefs)[0], vec)


def test_epsilon_house_bot_and_exact_opponents():
    from server.players.base import MoveRequest
    from server.players.house import make_house_bot
    from server.solver import choose_cell, exact_outcomes_vs_random, optimal_cells
    from training.vector_search import exact_outcome

    board = Board.from_moves([1, 5])
    bot = make_house_bot("epsilon", seed=0, epsilon=0.3)
    picks = [bot.choose(MoveRequest("g", board)).cell for _ in range(3000)]
    share_optimal = sum(c in optimal_cells(board) for c in picks) / len(picks)
    expected = 0.7 + 0.3 * len(optimal_cells(board)) / len(board.legal_cells())
    assert abs(share_optimal - expected) < 0.03
    # the tree walk against a random opponent agrees with the solver's exact figures
    first = lambda boards: [choose_cell(b, tiebreak="first") for b in boards]  # noqa: E731
    o = exact_outcome(first, Seat.X, "random")
    ref = exact_outcomes_vs_random(Seat.X, tiebreak="first")
    assert (o.win, o.draw, o.loss) == pytest.approx((float(ref["win"]), float(ref["draw"]), float(ref["loss"])))
    with pytest.raises(ValueError, match="unknown opponent"):
        exact_outcome(first, Seat.X, "eps2")


# --------------------------------------------------------------------------- the command: both hashes
def test_evaluate_json_carries_hashes_before_and_after(lm, sae, tmp_path, monkeypatch, capsys):
    import bots.llm.model as model_mod
    from training.cli import main

    monkeypatch.setattr(model_mod, "load_model", lambda *a, **k: lm)
    folder = tmp_path / "sae"
    tiny_sae(lm, folder=folder)
    policy_file = tmp_path / "policy.json"
    _policy(sae).save(policy_file)
    out = tmp_path / "r.json"
    rc = main(
        [
            "evaluate",
            "--games",
            "6",
            "--via",
            "local",
            "--opponent",
            "minimax,eps0.1",
            "--seat",
            "X",
            "--mode",
            "masked",
            "--policy",
            str(policy_file),
            "--sae",
            str(folder),
            "--json",
            str(out),
        ]
    )
    assert rc == 0
    data = json.loads(out.read_text())
    meta = data["meta"]
    for key in ("weights_before", "weights_after"):
        snap = meta[key]
        assert len(snap["model"]) == 64 and len(snap["sae"]) == 64  # full sha256 of every weight
        assert snap["policy_digest"] == _policy(sae).digest and snap["policy_file"]
    assert meta["weights_before"] == meta["weights_after"] and meta["weights_unchanged"] is True
    for arm in data["arms"]:
        assert arm["distinct_games"] >= 1 and arm["distinct_boards"] >= 1
        assert arm["exact"] is not None and arm["min_digit_mass"] is not None
    # the server has no ε-greedy house bot: said clearly, before any game
    assert main(["evaluate", "--games", "1", "--opponent", "eps0.1"]) == 2
    # the report regenerates tables from the JSON: every minimax row names mode, distinct counts, exact value
    capsys.readouterr()
    assert main(["report", "--evaluate", str(out)]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| policy ")]
    assert len(rows) == 1 and "| X | masked | 6 |" in rows[0]
    arm = next(a for a in data["arms"] if a["opponent"] == "minimax")
    assert (
        f"{arm['distinct_games']} / {arm['distinct_boards']}" in rows[0]
        and f"{100 * arm['exact']['draw']:.1f} %" in rows[0]
    )


# --------------------------------------------------------------------------- held-out checks
def test_position_check_counts_every_open_position():
    from bots.llm.readers import MoveReading
    from server.solver import value_preserving_cells
    from training.evaluation.heldout import open_positions, position_check

    class Perfect:  # plays a value-preserving cell everywhere
        def play(self, boards):
            out = []
            for b in boards:
                cell = value_preserving_cells(b)[0]
                probs = tuple(1.0 if c == cell else 0.0 for c in range(1, 10))
                reading = MoveReading("masked", probs, cell, True)
                out.append(
                    type(
                        "M",
                        (),
                        {
                            "board": b,
                            "reading": reading,
                            "mean_abs_coef": 0.0,
                            "norm_ratio": 0.0,
                            "kl": 0.0,
                            "changed": False,
                            "features_active": 0,
                            "digit_mass": None,
                            "base_digit_mass": None,
                        },
                    )()
                )
            return out

    boards = open_positions()
    assert len(boards) == 4520  # reachable, not over
    res = position_check({"perfect": Perfect()}, ["strict", "masked"], chunk=1000)["perfect"]["positions"]
    for mode in ("strict", "masked"):
        n = res[mode]["X"]["all"]["positions"] + res[mode]["O"]["all"]["positions"]
        assert n == 4520
        assert res[mode]["X"]["all"]["share"] == res[mode]["O"]["all"]["share"] == 1.0
    by_turn = sum(1 for b in boards if b.turn is Seat.X)
    assert res["masked"]["X"]["all"]["positions"] == by_turn
    assert sum(res["masked"]["X"][p]["positions"] for p in ("opening", "middle", "end")) == by_turn


def test_heldout_report_on_phrasings_and_opponents(lm, sae):
    from training.evaluation.heldout import heldout_report, markdown_summary

    rep = heldout_report(
        lm,
        sae,
        {"fixed": _policy(sae), "none": None},
        modes=["masked"],
        phrasings=["grid", "list"],
        opponents=["minimax", "eps0.3"],
        positions=False,
    )
    for p in ("grid", "list"):
        for name in ("fixed", "none"):
            for seat in ("X", "O"):
                e = rep["phrasings"][p][name]["masked"]["minimax"][seat]
                assert e["win"] == 0.0 and e["draw"] + e["loss"] == pytest.approx(1.0)
    assert set(rep["opponents"]["fixed"]["masked"]) == {"minimax", "eps0.3"}
    lines = markdown_summary(rep)
    assert len(lines) == 4 and lines[2].startswith("| fixed |")


# --------------------------------------------------------------------------- equal-effort controls
def test_equal_effort_controls_run_end_to_end(lm, sae):
    import torch

    from training.bases import BASIS_NAMES, make_basis
    from training.controls import CEMFitter, basis_bot, run_controls
    from training.evaluation.tables import controls_table
    from training.vector_search import SearchConfig

    policy = _policy(sae)
    fitter = CEMFitter(SearchConfig(n_features=3, iterations=1, population=3, elite=2))
    calls = []
    report = run_controls(
        lm, sae, policy, fitter, seeds=[0], heldout=False, progress=lambda: calls.append(1), log=lambda s: None
    )
    rows = report["rows"]
    assert [r["basis"] for r in rows] == ["the policy (as given)"] + [
        BASIS_NAMES[k] for k in ("policy", "features", "directions", "labels")
    ]
    assert len(calls) == 4 * 3  # the same budget on every basis: iterations × population each
    assert report["budget"]["vectors_scored"] == 1 * 3 + 31
    for r in rows:
        for mode in ("strict", "masked"):
            for seat in ("X", "O"):
                e = r["in_sample"][mode][seat]
                assert e["exact"]["draw"] + e["exact"]["loss"] + e["exact"]["win"] == pytest.approx(1.0)
                assert e["budget"]["llm_moves"] == e["exact"]["boards"]  # each distinct board once
    feats = {r["basis"]: r["features"] for r in rows}
    assert not set(feats[BASIS_NAMES["features"]]) & set(policy.features)
    assert feats[BASIS_NAMES["directions"]] == list(policy.features)
    # the direction basis really steers along other directions, of the decoder rows' norms
    basis = make_basis("directions", sae, policy, 0)
    bot = basis_bot(lm, sae, basis)
    rows_dec = sae.W_dec.index_select(0, torch.tensor(policy.features)).float()
    assert not torch.allclose(bot.steering.directions, rows_dec)
    assert torch.allclose(bot.steering.directions.norm(dim=-1), rows_dec.norm(dim=-1), atol=1e-5)
    assert "max |cos|" in basis.note
    assert len(controls_table(report)) == 2 + len(rows)


def test_controls_command_writes_json_with_hashes(lm, tmp_path, monkeypatch):
    import bots.llm.model as model_mod
    from training.cli import main

    monkeypatch.setattr(model_mod, "load_model", lambda *a, **k: lm)
    folder = tmp_path / "sae"
    s = tiny_sae(lm, folder=folder)
    doc = json.loads((folder / "features.json").read_text())
    doc["labels"] = {str(i): {"label": f"f{i}", "f1": 0.6, "effect": {"kl": 0.01 * i}} for i in range(10)}
    (folder / "features.json").write_text(json.dumps(doc))
    policy_file = tmp_path / "policy.json"
    _policy(s).save(policy_file)
    out = tmp_path / "c.json"
    rc = main(
        [
            "controls",
            "--policy",
            str(policy_file),
            "--sae",
            str(folder),
            "--card",
            "none",
            "--iterations",
            "1",
            "--population",
            "2",
            "--elite",
            "2",
            "--bases",
            "features,labels",
            "--no-heldout",
            "--json",
            str(out),
        ]
    )
    assert rc == 0
    data = json.loads(out.read_text())
    assert data["meta"]["weights_unchanged"] is True and data["meta"]["weights_before"]["model"]
    assert [r["basis"] for r in data["rows"]][1:] == ["random SAE features", "shuffled labels"]
    assert main(["controls", "--policy", str(policy_file), "--bases", "nope"]) == 2


def test_bot_description_carries_the_run_card_summary(lm, sae, tmp_path):
    from bots.llm.policy import load_policy

    path = tmp_path / "policy.json"
    _policy(sae).save(path)
    policy = load_policy(path)
    assert LLMBot(lm, sae=sae, policy=policy).description.endswith(f"policy {policy.digest}")  # no card: no claim
    (tmp_path / "policy.card.json").write_text(json.dumps({"summary": "in-sample, masked reading only"}))
    assert LLMBot(lm, sae=sae, policy=policy).description.endswith(
        f"policy {policy.digest}: in-sample, masked reading only"
    )


def test_ppo_fitter_plugs_into_the_equal_effort_controls(lm, sae):
    """The RL trainer is a fitter like the search: same budget and seed on another basis."""
    from training.bases import BASIS_NAMES
    from training.controls import PPOFitter, run_controls
    from training.rl.ppo import TrainConfig

    policy = _policy(sae, features=(0, 3, 5, 7), coefs=(1.0, -1.0, 0.5, 0.0))
    cfg = TrainConfig(
        n_envs=4,
        n_steps=16,
        batch_size=32,
        total_steps=64,
        eval_every=64,
        warm=False,
        net_arch=[8],
        budget_seconds=60.0,
        via="local",
        mode="masked",
    )
    fitter = PPOFitter(cfg)
    report = run_controls(
        lm, sae, policy, fitter, bases=["features", "labels"], seeds=[0], heldout=False, log=lambda s: None
    )
    rows = report["rows"]
    assert [r["basis"] for r in rows[1:]] == [BASIS_NAMES["features"], BASIS_NAMES["labels"]]
    assert report["budget"]["total_steps"] == 64
    for r in rows[1:]:
        assert (
            len(r["features"]) == 4
            and not set(r["features"]) & set(policy.features)
            or r["basis"] != BASIS_NAMES["features"]
        )
        e = r["in_sample"]["masked"]["X"]["exact"]
        assert e["win"] + e["draw"] + e["loss"] == pytest.approx(1.0)
