"""Learned steering policies (training/rl, bots/llm/learned.py) on the tiny model and SAE:
PPO through a real server on an ephemeral port, the shipped policy file round trip, exact
tree walk against sampled games, and that evaluation applies the learned steering."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from bots.llm.testing import tiny_language_model, tiny_sae
from server.game import Board, Seat

FEATURES = [0, 3, 5, 7]


@pytest.fixture(scope="module")
def stack():
    lm = tiny_language_model()
    return lm, tiny_sae(lm)


def small_config(**kw):
    from training.rl.ppo import TrainConfig

    base = dict(
        features=FEATURES,
        n_envs=8,
        n_steps=16,
        batch_size=64,
        total_steps=384,
        eval_every=128,
        warm=False,
        net_arch=[16],
        budget_seconds=120.0,
        n_epochs=2,
    )
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def trained(stack, tmp_path_factory):
    """A few hundred PPO steps through a real server (in-process, free loopback port)."""
    from training.rl.ppo import train_ppo

    lm, sae = stack
    out = tmp_path_factory.mktemp("ppo")
    policy, report = train_ppo(small_config(mode="masked"), lm, sae, out_dir=out, progress=False, log=lambda *_: None)
    return policy, report, out


def test_ppo_runs_through_the_server_and_records_everything(trained) -> None:
    policy, report, out = trained
    assert report["steps"] >= 384 and report["games"] > 8
    assert report["transport"]["via"] == "server" and report["transport"]["frames"] > report["games"]
    results = report["training_results"]
    assert sum(sum(v for k, v in r.items() if k != "illegal") for r in results.values()) > 0
    # the whole game: every house bot as an opponent, random openings, both training phrasings
    assert set(report["training_results_by_opponent"]) == {"minimax", "hard", "medium", "easy", "random"}
    assert report["random_opening_moves"] > 0 and report["boards_seen"] > 100
    assert {"kept_grid_x", "kept_grid_o", "kept_rows_x", "kept_rows_o", "draw_x", "draw_o"} <= set(report["final_eval"])
    # the policy returned is the final one, evaluated last
    assert report["policy_step"] == report["steps"] == report["evals"][-1]["step"]
    assert report["stopped_by"] == "the step budget"
    # weights hashed before and after, both recorded, unchanged by steering
    assert len(report["weights_before"]["model"]) == 64 and report["weights_before"] == report["weights_after"]
    assert report["weights_unchanged"] is True
    assert [r["step"] for r in report["evals"]][0] == 0 and len(report["evals"]) >= 3
    for name in ("policy.json", "eval.csv", "train.csv", "checkpoint.zip"):
        assert (out / name).is_file(), name
    assert report["policy_digest"] == policy.digest


def test_saved_policy_reloads_with_the_same_actions_as_sb3(trained, stack) -> None:
    from stable_baselines3 import PPO

    from bots.llm.policy import load_policy
    from training.rl.ppo import build_actuator, llm_boards

    policy, report, out = trained
    loaded = load_policy(out / "policy.json", d_sae=stack[1].d_sae, hook_name=stack[1].hook_name)
    assert loaded.kind == "learned" and loaded.digest == policy.digest
    model = PPO.load(out / "checkpoint.zip", device="cpu")
    boards = llm_boards(Seat.X)[:40] + llm_boards(Seat.O)[:40]
    act = build_actuator(stack[0], stack[1], small_config(mode="masked"), FEATURES)
    logits = act.bot.reader.answer(boards).base_logits  # the recipe's policy reads the model's own move
    obs = loaded.observations(boards, cell_logits=logits)
    assert np.array_equal(obs, act.observe(boards))
    sb3, _ = model.predict(obs, deterministic=True)
    assert np.array_equal(loaded.actions(obs), sb3)  # the checkpoint is the final model, the policy too
    assert np.array_equal(loaded.actions(obs), policy.actions(obs))
    assert loaded.coefficients(boards, cell_logits=logits) == policy.coefficients(boards, cell_logits=logits)


def test_exported_net_matches_sb3_exactly(stack) -> None:
    """The numpy forward of the exported net gives SB3's deterministic actions (sparse and dense)."""
    from stable_baselines3 import PPO

    from training.rl.env import EnvConfig, LocalTransport, SteeringVecEnv
    from training.rl.ppo import build_actuator, export_policy, llm_boards

    lm, sae = stack
    for action in ("sparse", "dense"):
        cfg = small_config(action=action)
        act = build_actuator(lm, sae, cfg, FEATURES)
        env = SteeringVecEnv(act, LocalTransport(), 2, EnvConfig(seed=1))
        model = PPO(
            "MlpPolicy",
            env,
            n_steps=8,
            batch_size=16,
            seed=3,
            device="cpu",
            policy_kwargs={"net_arch": {"pi": [16], "vf": [16]}},
        )
        exported = export_policy(model, act, sae)
        obs = act.observe(llm_boards(Seat.O)[:50])
        sb3, _ = model.predict(obs, deterministic=True)
        assert np.allclose(exported.actions(obs), sb3, atol=1e-5), action


def test_check_env_passes_for_every_observation_and_action(stack) -> None:
    from stable_baselines3.common.env_checker import check_env

    from training.rl.env import EnvConfig, SteeringGameEnv
    from training.rl.ppo import build_actuator

    lm, sae = stack
    for obs, action in (("board", "sparse"), ("features", "dense"), ("features", "sparse")):
        cfg = small_config(obs=obs, action=action)
        env = SteeringGameEnv(build_actuator(lm, sae, cfg, FEATURES), EnvConfig(seed=2))
        check_env(env)


def test_exact_tree_walk_agrees_with_games_through_the_server(trained, stack) -> None:
    """For the deterministic learned policy the exact outcome is the truth; sampled games
    through the server (the bot loading the policy itself) agree with it."""
    from training.rl.evaluation import evaluate_exact, play_server_games
    from training.rl.ppo import build_actuator

    policy, report, _ = trained
    lm, sae = stack
    act = build_actuator(lm, sae, small_config(mode="masked"), FEATURES)
    exact = evaluate_exact(policy, act)
    rows = play_server_games(policy, act, 300, seed=5)
    for row in rows:
        p = exact[row["seat"]]["draw"]
        se = max((p * (1 - p) / row["games"]) ** 0.5, 1 / row["games"])
        assert row["games"] == 300 and row["other"] == 0
        assert abs(row["draws"] / row["games"] - p) <= 4 * se + 1e-9, (row, exact[row["seat"]])
        assert row["distinct_games"] <= exact[row["seat"]]["games"]


def test_evaluation_applies_the_learned_steering_of_the_shipped_file(trained, stack, tmp_path) -> None:
    """The bot built from the policy file steers (logits differ from unsteered on the same
    prompt), and the policy it plays is the file's (digest in every trace)."""
    import torch

    from bots.llm.bot import LLMBot
    from bots.llm.learned import LearnedSteeringPolicy
    from bots.llm.policy import load_policy

    policy, _, out = trained
    lm, sae = stack
    edited = load_policy(out / "policy.json")
    # make sure this policy steers on the empty board: its first choice off "none", onto
    # (feature 0, strength 1)
    w, b = edited.net.layers[-1]
    b = b.copy()
    b[0], b[2] = -50.0, 50.0
    edited.net.layers[-1] = (w, b)
    path = tmp_path / "steer.json"
    edited.save(path)
    assert json.loads(path.read_text())["layers"][-1]["shape"] == list(w.shape)
    loaded = load_policy(path)
    assert isinstance(loaded, LearnedSteeringPolicy)
    bot = LLMBot(lm, sae=sae, policy=loaded, mode="strict", top_k=0)
    plain = LLMBot(lm, sae=sae, mode="strict", top_k=0)
    board = Board.empty()
    steered = bot.play([board])[0]
    assert steered.trace["policy"] == loaded.digest == load_policy(path).digest
    assert steered.norm_ratio > 0 and steered.trace["steering"]
    base = plain.reader.answer([board]).logits
    coefs = loaded.coefficients([board], cell_logits=plain.reader.answer([board]).base_logits)
    logits = bot.reader.answer([board], bot.steering.vectors(torch.tensor(coefs))).logits
    assert not torch.allclose(base, logits)


def test_features_observation_reads_the_unsteered_sae_code(stack) -> None:
    """A features-observing policy gets the SAE activations from the bot (interface
    extension) and picks the same coefficients as the training actuator's observation."""
    from bots.llm.bot import LLMBot
    from bots.llm.learned import MLP, ActionCodec, LearnedSteeringPolicy
    from training.rl.ppo import build_actuator, obs_observed

    lm, sae = stack
    observed = obs_observed(sae)
    rng = np.random.default_rng(0)
    codec = ActionCodec("dense", len(FEATURES), bound=2.0)
    net = MLP(
        [(rng.normal(size=(8, len(observed) + 1)), rng.normal(size=8)), (rng.normal(size=(4, 8)), rng.normal(size=4))]
    )
    policy = LearnedSteeringPolicy(
        FEATURES, obs="features", codec=codec, net=net, obs_features=observed, hook_name=sae.hook_name, d_sae=sae.d_sae
    )
    assert policy.needs_features
    bot = LLMBot(lm, sae=sae, policy=policy, mode="masked", top_k=0)
    boards = [Board.empty(), Board.from_moves([5]), Board.from_moves([1, 5, 9])]
    moves = bot.play(boards)
    act = build_actuator(lm, sae, small_config(obs="features", action="dense", bound=2.0, mode="masked"), FEATURES)
    acts = policy.actions(act.observe(boards))
    ref = act.act(boards, acts)
    assert [m.reading.cell for m in moves] == [r.cell for r in ref]
    assert [round(m.norm_ratio, 5) for m in moves] == [round(r.norm_ratio, 5) for r in ref]
    with pytest.raises(ValueError, match="activations"):
        policy.coefficients(boards)


def test_bad_learned_policy_files_are_refused(tmp_path) -> None:
    from bots.llm.policy import PolicyError, load_policy

    good = {
        "kind": "learned",
        "features": [1, 2],
        "obs": "board",
        "action": {"kind": "sparse", "strengths": [-1, 1], "slots": 1},
        "activation": "tanh",
        "layers": [{"weight": [[0.0] * 28] * 4, "bias": [0.0] * 4}, {"weight": [[0.0] * 4] * 5, "bias": [0.0] * 5}],
    }
    p = tmp_path / "p.json"
    p.write_text(json.dumps(good))
    assert load_policy(p).coefficients([Board.empty()]) == [[0.0, 0.0]]
    for broken, match in (
        ({"layers": [{"weight": [[0.0] * 27] * 4, "bias": [0.0] * 4}]}, "inputs"),
        ({"obs": "pixels"}, "observation"),
        ({"action": {"kind": "sparse"}}, "action"),
        ({"layers": [{"weight": [[float("nan")] * 28] * 5, "bias": [0.0] * 5}]}, "non-finite"),
        ({"layers": [{"shape": [4, 28], "weight_f32": "not base64!", "bias_f32": ""}]}, "bad layer"),
        ({"layers": [{"shape": [5, 28], "weight_f32": "AAAA", "bias_f32": ""}]}, "bad layer"),
    ):
        p.write_text(json.dumps({**good, **broken}))
        with pytest.raises(PolicyError, match=match):
            load_policy(p)


def test_resume_continues_from_the_checkpoint(stack, tmp_path) -> None:
    from training.rl.ppo import train_ppo

    lm, sae = stack
    cfg = small_config(total_steps=128, eval_every=128, via="local")
    _, first = train_ppo(cfg, lm, sae, out_dir=tmp_path, progress=False, log=lambda *_: None)
    cfg.total_steps = 256
    _, second = train_ppo(cfg, lm, sae, out_dir=tmp_path, resume=True, progress=False, log=lambda *_: None)
    assert first["steps"] == 128 and second["steps"] == 256
    with pytest.raises(ValueError, match="checkpoint"):
        train_ppo(cfg, lm, sae, out_dir=tmp_path / "empty", resume=True, progress=False, log=lambda *_: None)


def test_prompt_store_round_trip_gives_the_same_answers(stack, tmp_path) -> None:
    import torch

    from training.rl.ppo import build_actuator, llm_boards

    lm, sae = stack
    boards = llm_boards(Seat.O)[:30]
    store = tmp_path / "prompts.pt"
    first = build_actuator(lm, sae, small_config(), FEATURES)
    info = first.warm(boards, store=store)
    assert info["computed"] == 30 and info["from_store"] == 0 and store.is_file()
    second = build_actuator(lm, sae, small_config(), FEATURES)
    info2 = second.warm(boards, store=store)
    assert info2["from_store"] == 30 and info2["computed"] == 0
    vec = second.bot.steering.vectors(torch.ones(len(boards), len(FEATURES)))
    assert torch.allclose(first.bot.reader.answer(boards, vec).logits, second.bot.reader.answer(boards, vec).logits)
    store.write_bytes(b"not a store")  # a damaged store is recomputed, never trusted
    assert build_actuator(lm, sae, small_config(), FEATURES).warm(boards[:3], store=store)["computed"] == 3


def test_policy_report_tables_and_heatmap(trained, stack, tmp_path) -> None:
    from training.rl.ppo import build_actuator
    from training.rl.policy_report import build_report, plot_heatmap, situations, write_markdown

    assert situations(Board.from_moves([1, 5, 2])) == ["O middle", "must block"]
    assert situations(Board.from_moves([1, 5, 2, 9])) == ["X middle", "can win"]
    policy, _, _ = trained
    lm, sae = stack
    act = build_actuator(lm, sae, small_config(mode="masked"), FEATURES)
    rep = build_report(policy, act, {f: f"label {f}" for f in FEATURES})
    assert rep["boards"] > 0 and rep["mean"].shape == (len(rep["situations"]), len(FEATURES))
    assert sum(rep["features_per_move"].values()) == rep["boards"] and max(rep["features_per_move"]) <= 2
    plot_heatmap(rep, tmp_path / "h.png", "t")
    write_markdown(rep, tmp_path / "P.md", policy, "p.json", "h.png", "cmd", None)
    text = (tmp_path / "P.md").read_text()
    assert "Steering budget per move" in text and (tmp_path / "h.png").stat().st_size > 1000


def test_digit_mass_full_forward_steers_like_the_cached_path(stack) -> None:
    import torch

    from training.rl.ppo import build_actuator, llm_boards
    from training.rl.policy_report import digit_mass

    lm, sae = stack
    act = build_actuator(lm, sae, small_config(), FEATURES)
    boards = llm_boards(Seat.X)[:6]
    added = act.bot.steering.vectors(torch.full((len(boards), len(FEATURES)), 2.0))
    mass = digit_mass(lm, sae.hook_name, act.bot.reader, boards, added, batch=4)
    base = digit_mass(lm, sae.hook_name, act.bot.reader, boards, torch.zeros_like(added), batch=4)
    assert mass.shape == (6,) and np.all((mass > 0) & (mass < 1)) and not np.allclose(mass, base)


def test_policy_auto_prefers_the_shipped_learned_policy(trained, tmp_path, monkeypatch) -> None:
    import shutil

    import bots.llm.sae as sae_mod
    from bots.llm import cli
    from bots.llm.policy import FixedSteeringPolicy

    policy, _, out = trained
    monkeypatch.setattr(sae_mod, "ARTIFACTS_DIR", tmp_path)
    FixedSteeringPolicy([1, 4], [0.5, -0.5]).save(tmp_path / "policy.json")
    assert cli.load_policy_arg("auto")[0].kind == "fixed"
    shutil.copyfile(out / "policy.json", tmp_path / "learned_policy.json")
    chosen, note = cli.load_policy_arg("auto")
    assert chosen.kind == "learned" and chosen.digest == policy.digest and "learned_policy.json" in note


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_shipped_learned_policy_plays_as_its_run_card_says_with_smollm2() -> None:
    """The shipped file, played by the bot itself on SmolLM2 (strict reading): the exact
    outcome against minimax is its run card's, as X and as O; on 300 open positions drawn
    off the tree (seeded) it names an occupied cell on no more boards than the card counts
    over all 4,520 (the policy is deterministic, so the sample's illegal boards are among
    the card's); every move's trace names the file's digest; the weights are unchanged."""
    import random

    import torch

    from bots.llm.bot import LLMBot
    from bots.llm.cli import find_shipped_policy, load_sae_arg
    from bots.llm.model import load_model
    from bots.llm.policy import load_policy
    from training.evaluation.heldout import open_positions
    from training.vector_search import exact_outcome

    torch.set_num_threads(1)
    path = find_shipped_policy()
    assert path is not None and path.name == "learned_policy.json"
    card = json.loads(path.with_name("learned_policy.card.json").read_text())
    policy = load_policy(path)
    assert policy.digest == card["policy_digest"]
    lm = load_model("smollm2")
    sae = load_sae_arg("auto", lm, quiet=True)
    before = lm.weights_hash()
    bot = LLMBot(lm, sae=sae, policy=policy, mode="strict", top_k=0, cache_boards=2000)
    traces = []

    def choose(boards):
        moves = bot.play(boards)
        traces.extend(m.trace for m in moves)
        return [m.reading.cell if m.reading.legal else None for m in moves]

    for seat in Seat:
        o = exact_outcome(choose, seat)
        want = card["vs_minimax_exact"][seat.value]
        assert abs(o.draw - want["draw"]) < 1e-9 and abs(o.illegal - want["illegal"]) < 1e-9, (seat, o, want)
    sample = random.Random(2026).sample(open_positions(), 300)
    moves = [m for i in range(0, len(sample), 100) for m in bot.play(sample[i : i + 100])]
    illegal = [m.board.code for m in moves if not m.reading.legal]
    card_illegal = sum(card["positions"]["grid"][seat]["illegal"] for seat in ("X", "O"))
    assert len(illegal) <= card_illegal, (illegal, card_illegal)
    assert {t["policy"] for t in traces} == {policy.digest}
    assert lm.weights_hash() == before


def test_server_and_local_transports_play_the_same_games(stack) -> None:
    """With the same seed and actions, games through the server and in-process give the same
    boards, rewards and ends (minimax draws each game's tie-breaks from the game's seed)."""
    from training.rl.env import BackgroundServer, EnvConfig, LocalTransport, ServerTransport, SteeringVecEnv
    from training.rl.ppo import build_actuator

    lm, sae = stack
    cfg = small_config(mode="masked")
    rng = np.random.default_rng(4)
    actions = rng.integers(0, 1 + len(FEATURES) * len(cfg.strengths), size=(40, 6, cfg.slots))
    runs = []
    with BackgroundServer(seed=9) as srv:
        for transport in (LocalTransport(), ServerTransport(srv.url, forfeit=False)):
            env = SteeringVecEnv(
                build_actuator(lm, sae, cfg, FEATURES),
                transport,
                6,
                EnvConfig(seed=3, mode="masked", random_openings=0.5),
            )
            out = [env.reset().tolist()]
            for a in actions:
                obs, rewards, dones, _ = env.step(a)
                out.append((obs.tolist(), rewards.tolist(), dones.tolist()))
            runs.append((out, env.log.results, env.log.by_opponent, env.random_moves))
            env.close()
    assert runs[0] == runs[1]
    assert sum(r["draw"] + r["loss"] + r["win"] for r in runs[0][1].values()) > 10
    assert len(runs[0][2]) >= 4 and runs[0][3] > 0  # several house bots, random openings played


def test_opponent_mix_is_checked_and_parsed() -> None:
    from training.rl.env import EnvConfig, parse_opponents

    assert parse_opponents("minimax,hard:2") == {"minimax": 1.0, "hard": 2.0}
    for bad, match in (
        ("stockfish", "unknown opponent"),
        ("random:-1", "positive"),
        ("random:x", "bad weight"),
        ("", "no opponents"),
    ):
        with pytest.raises(ValueError, match=match):
            parse_opponents(bad)
    with pytest.raises(ValueError, match="random_openings"):
        EnvConfig(random_openings=1.5)


def test_value_reward_pays_the_change_of_the_solved_value_the_move_makes() -> None:
    from server.solver import value_preserving_cells
    from training.evaluation.heldout import open_positions
    from training.rl.env import move_reward, potential

    for board in open_positions()[::97]:
        keep = set(value_preserving_cells(board))
        for cell in board.legal_cells():
            r = move_reward(board, cell, board.turn, False)
            assert (r == 0.0) == (cell in keep) and r <= 0.0
        assert move_reward(board, board.legal_cells()[0], board.turn, True) == -1.0 - potential(board, board.turn)


def test_random_openings_reach_positions_off_every_house_bots_tree(stack) -> None:
    """With random openings and the mixed opponents the policy is asked to steer boards that
    no game against minimax reaches."""
    from training.rl.env import EnvConfig, LocalTransport, SteeringVecEnv
    from training.rl.ppo import build_actuator, llm_boards

    lm, sae = stack
    cfg = small_config(mode="masked")
    env = SteeringVecEnv(
        build_actuator(lm, sae, cfg, FEATURES),
        LocalTransport(),
        16,
        EnvConfig(seed=5, mode="masked", random_openings=1.0),
    )
    env.reset()
    for _ in range(30):
        env.step(np.zeros((16, cfg.slots), dtype=np.int64))
    tree = {b.code for b in llm_boards(Seat.X) + llm_boards(Seat.O)}
    assert env.random_moves > 0 and len(env.boards_seen - tree) > 50
    env.close()


def test_position_evaluation_counts_kept_values_and_illegal_moves(stack) -> None:
    """The evaluation over open positions agrees with the solver board by board, and a run
    stops on the stability rule only when the last evaluations all meet the target."""
    from bots.llm.policy import FixedSteeringPolicy
    from server.solver import value_preserving_cells
    from training.rl.evaluation import evaluate_positions, meets, policy_moves
    from training.rl.ppo import build_actuator

    lm, sae = stack
    act = build_actuator(lm, sae, small_config(), FEATURES)
    zero = FixedSteeringPolicy(FEATURES, [0.0] * len(FEATURES))

    class Zero:  # the "no steering" action everywhere
        digest = "zero"

        def actions(self, obs):
            return np.zeros((len(obs), 2), dtype=np.int64)

    from training.evaluation.heldout import open_positions

    boards = open_positions()[::37]
    ev = evaluate_positions(Zero(), act, boards)
    moves = policy_moves(Zero(), act, boards)
    for seat in ("X", "O"):
        idx = [i for i, b in enumerate(boards) if b.turn.value == seat]
        assert ev[seat]["positions"] == len(idx)
        assert ev[seat]["kept"] == sum(
            moves[i].legal and moves[i].cell in value_preserving_cells(boards[i]) for i in idx
        )
        assert ev[seat]["illegal"] == sum(not moves[i].legal for i in idx)
        assert ev[seat]["mean_push"] == 0.0 and ev[seat]["max_features_steered"] == 0
    assert zero.kind == "fixed"
    assert meets({"kept_grid_x": 0.995, "kept_grid_o": 0.99, "draw_x": 1.0, "draw_o": 0.99}, 0.99)
    assert not meets({"kept_grid_x": 0.995, "kept_grid_o": 0.98, "draw_x": 1.0, "draw_o": 1.0}, 0.99)


def _run_card(seed: int, kept: float = 0.99, illegal_o: int = 0, **config: Any) -> dict[str, Any]:
    """A PPO run card with what the summary over seeds reads: ``kept`` the value kept in `grid`
    by each side, ``illegal_o`` the positions where O names an occupied cell there, ``config``
    the settings beside the seed."""
    side = {"kept_share": kept, "illegal": 0, "mean_push": 0.1, "mean_features_steered": 1.0}
    exact = {"draw": 1.0, "win": 0.5, "illegal": 0.0, "games": 10}
    return {
        "config": {"seed": seed, **config},
        "policy_digest": f"p{seed}",
        "steps": 100,
        "stopped_by": "the step budget",
        "wall_seconds": 1.0,
        "stable_target": None,
        "reached_target": None,
        "positions": {"grid": {"X": side, "O": {**side, "illegal": illegal_o}}},
        "vs_minimax_exact": {"X": exact, "O": exact},
        "vs_random_exact": {"X": exact, "O": exact},
        "command": f"autosteer-train ppo --seeds {seed}",
        "model": "tiny",
        "hook_name": "h",
        "weights_unchanged": True,
        "weights_before": "a",
        "weights_after": "a",
        "evals": [{"step": 0, "kept_grid_x": kept, "kept_grid_o": kept, "draw_x": 1.0, "draw_o": 1.0}],
    }


def test_summary_gives_mean_and_spread_over_seeds() -> None:
    from training.rl.cards import summarize

    s = summarize([_run_card(0, 0.9), _run_card(1, 1.0), _run_card(2, 0.95)])
    assert s["seeds"] == [0, 1, 2]
    k = s["over_seeds"]["kept_grid_X"]
    assert abs(k["mean"] - 0.95) < 1e-12 and k["min"] == 0.9 and k["max"] == 1.0 and abs(k["sd"] - 0.05) < 1e-12


def test_a_policy_that_reads_the_models_move_plays_through_the_bot_as_in_training(stack, tmp_path) -> None:
    """``board+model``: the bot hands the policy the unsteered cell logits, and the saved file
    steers each board exactly as the training actuator did."""
    from stable_baselines3 import PPO

    from bots.llm.bot import LLMBot
    from bots.llm.policy import load_policy
    from training.rl.env import EnvConfig, LocalTransport, SteeringVecEnv
    from training.rl.ppo import build_actuator, export_policy, llm_boards

    lm, sae = stack
    cfg = small_config(obs="board+model")
    act = build_actuator(lm, sae, cfg, FEATURES)
    env = SteeringVecEnv(act, LocalTransport(), 2, EnvConfig(seed=1))
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=8,
        batch_size=16,
        seed=4,
        device="cpu",
        policy_kwargs={"net_arch": {"pi": [16], "vf": [16]}},
    )
    policy = export_policy(model, act, sae)
    policy.save(tmp_path / "p.json")
    loaded = load_policy(tmp_path / "p.json", d_sae=sae.d_sae, hook_name=sae.hook_name)
    assert loaded.needs_model and loaded.digest == policy.digest
    boards = llm_boards(Seat.O)[:12]
    obs = act.observe(boards)
    assert obs.shape == (12, 37) and np.allclose(obs[:, 28:].sum(axis=1), 1.0, atol=1e-5)
    bot = LLMBot(lm, sae=sae, policy=loaded, mode="masked", top_k=0)
    moves = bot.play(boards)
    expected = act.act(boards, policy.actions(obs))
    assert [m.reading.cell for m in moves] == [e.cell for e in expected]
    assert {m.trace["policy"] for m in moves} == {policy.digest}


def test_constant_baseline_gives_every_board_one_value_through_training_and_resume(stack, tmp_path) -> None:
    from stable_baselines3 import PPO

    from training.rl.ppo import train_ppo

    lm, sae = stack
    cfg = small_config(total_steps=128, eval_every=128, via="local", baseline="constant")
    train_ppo(cfg, lm, sae, out_dir=tmp_path, progress=False, log=lambda *_: None)
    cfg.total_steps = 256
    train_ppo(cfg, lm, sae, out_dir=tmp_path, resume=True, progress=False, log=lambda *_: None)
    model = PPO.load(tmp_path / "checkpoint.zip", device="cpu")
    assert float(model.policy.value_net.weight.detach().abs().max()) == 0.0  # frozen through both runs
    boards = np.stack(
        [np.random.default_rng(s).normal(size=model.observation_space.shape).astype(np.float32) for s in range(3)]
    )
    import torch

    with torch.no_grad():
        values = model.policy.predict_values(torch.as_tensor(boards)).flatten().tolist()
    assert values[0] == values[1] == values[2]
    with pytest.raises(ValueError, match="baseline"):
        from training.rl.ppo import TrainConfig, _new_model

        _new_model(TrainConfig(baseline="board"), None, 0)


def test_ppo_summary_gathers_one_recipes_seeds_and_refuses_mixed_recipes(tmp_path) -> None:
    from training.rl.summary import add_arguments, gather, run

    def card(seed, kept, lr=3e-3):
        return _run_card(seed, kept, learning_rate=lr)

    s = gather([card(0, 0.9), card(1, 1.0)])
    assert s["seeds"] == [0, 1] and s["command"] == ["autosteer-train ppo --seeds 0", "autosteer-train ppo --seeds 1"]
    assert abs(s["over_seeds"]["kept_grid_X"]["mean"] - 0.95) < 1e-12
    with pytest.raises(ValueError, match="learning_rate"):
        gather([card(0, 0.9), card(1, 1.0, lr=1e-3)])
    with pytest.raises(ValueError, match="twice"):
        gather([card(0, 0.9), card(0, 1.0)])
    # a card without a knob its code did not have ran at that knob's old value, not today's default
    assert s["config"]["start_positions"] == 0.0 and s["config"]["lr_schedule"] == "constant"
    named = card(1, 1.0)
    named["config"].update(start_positions=0.0, lr_schedule="constant")
    assert gather([card(0, 0.9), named])["seeds"] == [0, 1]
    paths = []
    for seed in (1, 0):
        paths.append(tmp_path / f"card{seed}.json")
        paths[-1].write_text(json.dumps(card(seed, 0.9 + seed / 10)))
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        [*map(str, paths), "--summary", str(tmp_path / "s.json"), "--plot", str(tmp_path / "c.png")]
    )
    assert run(args) == 0
    assert json.loads((tmp_path / "s.json").read_text())["seeds"] == [0, 1] and (tmp_path / "c.png").stat().st_size > 0


def test_ppo_summary_ships_the_first_seed_with_no_illegal_move_in_the_bots_phrasing(tmp_path, monkeypatch) -> None:
    import argparse

    import training.rl.cards as cards_mod
    from training.rl.summary import add_arguments, run

    paths = []
    for seed, illegal_o in ((2, 0), (0, 1), (1, 0)):  # seed 0 names an occupied cell once as O
        run_dir = tmp_path / f"seed-{seed}"
        run_dir.mkdir()
        (run_dir / "policy.json").write_text(json.dumps({"seed": seed}))
        (run_dir / "run_card.md").write_text(f"seed {seed}")
        paths.append(run_dir / "run_card.json")
        paths[-1].write_text(json.dumps(_run_card(seed, illegal_o=illegal_o)))
    monkeypatch.setattr(cards_mod, "ARTIFACTS", tmp_path / "artifacts")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert run(parser.parse_args([*map(str, paths), "--summary", str(tmp_path / "s.json"), "--ship"])) == 0
    shipped = tmp_path / "artifacts"
    assert json.loads((shipped / "learned_policy.json").read_text()) == {"seed": 1}
    assert json.loads((shipped / "learned_policy.card.json").read_text())["policy_digest"] == "p1"
    assert (shipped / "learned_policy.card.md").read_text() == "seed 1"
    directions = tmp_path / "directions" / "run_card.json"
    directions.parent.mkdir()
    directions.write_text(json.dumps(_run_card(3, basis="directions")))
    args = parser.parse_args([str(directions), "--summary", str(tmp_path / "d.json"), "--ship"])
    assert run(args) == 2  # the bot steers SAE features: a policy over random directions is not shipped
    assert json.loads((shipped / "learned_policy.json").read_text()) == {"seed": 1}


def test_margin_reward_pays_the_keep_margin_of_each_move(stack) -> None:
    from server.solver import value_preserving_cells
    from training.rl.actuator import keep_margin
    from training.rl.env import EnvConfig, SteeringGameEnv, margin_bonus, move_reward
    from training.rl.ppo import build_actuator

    lm, sae = stack
    act = build_actuator(lm, sae, small_config(), FEATURES)
    env = SteeringGameEnv(
        act, EnvConfig(seed=4, seat="X", opponents="random", mode="strict", margin_reward=0.5, margin_cap=2.0)
    )
    env.reset(seed=4)
    board = env._vec.boards[0]
    action = np.array([1 + 2, 0])  # the first feature at the third strength, one slot
    expected = act.act([board], action[None])[0]
    _, reward, *_ = env.step(action)
    illegal = not expected.legal
    assert expected.margin == pytest.approx(
        keep_margin(board, act.bot.play([board], act.codec.coefficients(action))[0].reading.probs)
    )
    assert (expected.margin > 0) == (expected.legal and expected.cell in value_preserving_cells(board))
    want = (
        move_reward(board, expected.cell, Seat.X, illegal)
        + margin_bonus(expected.margin, 0.5, 2.0)
        - env._vec.config.push_cost * expected.norm_ratio
    )
    assert reward == pytest.approx(want, abs=1e-5)
    with pytest.raises(ValueError, match="margin"):
        EnvConfig(margin_reward=0.3, shaping="none", start_positions=0.0)
    with pytest.raises(ValueError, match="margin"):
        EnvConfig(margin_reward=0.3, margin_cap=0.0)


def test_judging_in_every_phrasing_pays_the_mean_value_change_and_the_least_margin(stack) -> None:
    from training.rl.env import EnvConfig, LocalTransport, SteeringVecEnv, margin_bonus, move_reward
    from training.rl.ppo import build_actuator

    lm, sae = stack
    acts = {p: build_actuator(lm, sae, small_config(), FEATURES, phrasing=p) for p in ("grid", "rows")}
    cfg = EnvConfig(seed=5, seat="X", opponents="random", margin_reward=0.5, margin_cap=2.0, judge="phrasings")
    env = SteeringVecEnv(acts, LocalTransport(), 4, cfg)
    env.reset()
    boards, phrasing = list(env.boards), list(env.phrasing)
    actions = np.array([[1 + 3, 0], [2 + 5, 0], [0, 0], [3 + 7, 1 + 1]])
    _, rewards, dones, _ = env.step(actions)
    for e in range(4):
        outs = {p: a.act([boards[e]], actions[e][None])[0] for p, a in acts.items()}
        change = sum(move_reward(boards[e], o.cell, Seat.X, not o.legal) for o in outs.values()) / 2
        margin = min(o.margin for o in outs.values())
        push = cfg.push_cost * outs[phrasing[e]].norm_ratio
        assert rewards[e] == pytest.approx(change + margin_bonus(margin, 0.5, 2.0) - push, abs=1e-5)
        if not dones[e]:  # the game went on with its own phrasing's move
            assert env.boards[e][outs[phrasing[e]].cell] is Seat.X
    with pytest.raises(ValueError, match="judge"):
        EnvConfig(judge="all")
    with pytest.raises(ValueError, match="judg"):
        EnvConfig(judge="phrasings", shaping="none", start_positions=0.0)


def test_reach_tables_agree_with_the_actuator_and_bound_every_pick(stack) -> None:
    from training.evaluation.reach import action_table, sample_positions, summarize
    from training.rl.ppo import build_actuator

    lm, sae = stack
    boards = sample_positions(40, seed=1)
    assert len({b.code for b in boards}) == 40 and all(not b.is_over for b in boards)
    tables = {}
    for p in ("grid", "rows", "list"):
        act = build_actuator(lm, sae, small_config(), FEATURES, phrasing=p)
        tables[p] = t = action_table(act, boards, chunk=16)
        assert t["ok"].shape == t["margin"].shape == (40, 1 + len(FEATURES) * 8)
        # the keep margin is positive exactly where the strict move keeps the value
        assert np.array_equal(t["ok"], t["margin"] > 0)
        unsteered = act.act(boards, np.zeros((40, 2), dtype=np.int64))
        assert [o.margin for o in unsteered] == pytest.approx(list(t["margin"][:, 0]))
        assert np.allclose(t["push"][:, 0], 0.0)
    rep = summarize(boards, tables, ["grid", "rows"], "list")
    for side in ("X", "O", "all"):
        for p in ("grid", "rows", "list"):
            r = rep["per_phrasing"][p][side]
            assert r["unsteered_kept"] <= r["reachable"] <= 1
        tog, pick = rep["together"][side], rep["transfer_of_a_pick"][side]
        assert tog["training_and_heldout"] <= min(tog["every_training_phrasing"], tog["heldout_alone"])
        share_with = pick["positions_with_a_training_action"] / rep["per_phrasing"]["grid"][side]["positions"]
        for k in ("random_training_action", "largest_margin", "smallest_push"):  # no pick beats the best possible
            assert pick[k] * share_with <= tog["training_and_heldout"] + 1e-3
    assert sum(b["pairs"] for b in rep["margin_buckets"]) == int((tables["grid"]["ok"] & tables["rows"]["ok"]).sum())


def test_pair_reach_adds_pairs_only_where_they_serve_every_phrasing(stack) -> None:
    from server.solver import value_preserving_cells
    from training.evaluation.reach import action_table, pair_actions, pair_reach, sample_positions, summarize
    from training.rl.ppo import build_actuator

    lm, sae = stack
    boards = sample_positions(24, seed=2)
    phrasings = ("grid", "rows", "list")
    acts = {p: build_actuator(lm, sae, small_config(), FEATURES, phrasing=p) for p in phrasings}
    tables = {p: action_table(acts[p], boards, chunk=64) for p in phrasings}
    pairs = pair_actions(acts["grid"].codec, [-8.0, 8.0])
    assert len(pairs) == len(FEATURES) * (len(FEATURES) - 1) // 2 * 4
    served = pair_reach(acts.__getitem__, boards, tables, ["grid", "rows"], "list", pairs, chunk=200)
    single = (tables["grid"]["ok"] & tables["rows"]["ok"] & tables["list"]["ok"]).any(axis=1)
    assert np.all(served["training_and_heldout"] >= single)
    assert np.all(served["training_and_heldout"] <= served["heldout_alone"] & served["every_training_phrasing"])
    # every position the pairs add is served, in all three phrasings, by one pair played here directly
    for i in np.nonzero(served["training_and_heldout"] & ~single)[0]:
        b = boards[i]
        works = np.ones(len(pairs), dtype=bool)
        for p in phrasings:
            moves = acts[p].act([b] * len(pairs), pairs)
            works &= np.array([m.legal and m.cell in value_preserving_cells(b) for m in moves])
        assert works.any()
    rep = summarize(boards, tables, ["grid", "rows"], "list", served)
    for side in ("X", "O", "all"):
        assert rep["with_pairs"][side]["training_and_heldout"] >= rep["together"][side]["training_and_heldout"]
    with pytest.raises(ValueError, match="among"):
        pair_actions(acts["grid"].codec, [3.0])


def test_the_headline_and_the_shipped_policy_were_trained_with_the_commands_defaults() -> None:
    """``autosteer-train ppo`` with no flags trains the recipe that the headline figures
    (docs/results/ppo_whole_game.json) and the shipped policy come from: every setting but
    the seed is the command's default."""
    from dataclasses import asdict

    from training.outputs import REPO
    from training.rl.cards import ARTIFACTS
    from training.rl.ppo import TrainConfig

    defaults = {k: v for k, v in asdict(TrainConfig()).items() if k != "seed"}
    for path in (REPO / "docs/results/ppo_whole_game.json", ARTIFACTS / "learned_policy.card.json"):
        config = json.loads(path.read_text())["config"]
        differ = sorted(k for k in defaults if config.get(k) != defaults[k])
        assert not differ, f"{path.name} ran with {', '.join(f'{k}={config.get(k)!r}' for k in differ)}"
