"""Start positions of training games (training/rl/curriculum.py): the opening that reaches
each open position, uniform and prioritized draws, and games in the environment that start
from drawn positions, in-process and through a real server on an ephemeral port."""

from __future__ import annotations

import numpy as np
import pytest

from server.game import Board, Seat, opening_of, reachable_positions
from training.rl.curriculum import SCORE_FLOOR, StartPositions

FEATURES = [0, 3, 5, 7]


def open_boards() -> list[Board]:
    return [b for b in reachable_positions() if not b.is_over]


def test_the_opening_of_every_open_position_reaches_it() -> None:
    boards = open_boards()
    assert len(boards) == 4520
    for board in boards:
        moves = opening_of(board)
        assert len(moves) == 9 - len(board.legal_cells())
        assert Board.from_moves(moves) == board


def test_uniform_draws_cover_the_positions_of_the_seat_to_move() -> None:
    starts = StartPositions("uniform", seed=1, phrasings=["grid", "rows"])
    for seat in Seat:
        pairs = [starts.draw(seat) for _ in range(6000)]
        drawn = [b for b, _ in pairs]
        assert all(b.turn is seat and not b.is_over for b in drawn)
        assert len({b.code for b in drawn}) > 0.85 * len(starts.boards[seat])
        assert 0.45 < sum(p == "grid" for _, p in pairs) / len(pairs) < 0.55
    summary = starts.summary()
    assert summary["games_from_positions"] == 12000 and summary["curriculum"] == "uniform"
    assert len(starts.boards[Seat.X]) + len(starts.boards[Seat.O]) == 4520


@pytest.mark.parametrize("floor", [SCORE_FLOOR, 0.05])
def test_prioritized_draws_follow_the_positions_the_policy_still_loses(floor: float) -> None:
    starts = StartPositions("prioritized", seed=2, phrasings=["grid", "rows"], floor=floor)
    xs = starts.boards[Seat.X]
    failing = {b.code for b in xs[:20]}
    for _ in range(30):  # every X position steered: 20 of them keep failing in grid, the rest are kept
        for board in xs:
            starts.update(board, "grid", board.code in failing)
            starts.update(board, "rows", False)
    pairs = [starts.draw(Seat.X) for _ in range(4000)]
    drawn = [b.code for b, _ in pairs]
    share = sum(code in failing for code in drawn) / len(drawn)
    # 20 pairs at score ~1 against the other pairs at the floor, where a uniform draw gives 20 / len(xs)
    expected = 20 * (1 + floor) / (20 * (1 + floor) + (2 * len(xs) - 20) * floor)
    in_grid = sum(p == "grid" for b, p in pairs if b.code in failing) / max(1, sum(c in failing for c in drawn))
    assert in_grid > 0.9  # a failing position is played in the phrasing it fails in
    assert abs(share - expected) < 0.03 and share > 8 * 20 / len(xs)
    assert len(set(drawn) - failing) > 100  # the floor keeps the others in the mix
    assert starts.summary()["mean_failure_score"]["O"] == 1.0  # O's positions untouched: unseen


def test_a_kept_position_loses_priority_and_a_finished_board_is_ignored() -> None:
    starts = StartPositions("prioritized")
    board = Board.from_moves([5, 1])
    i = starts.index[board.code]
    starts.update(board, "grid", False)
    starts.update(board, "grid", False)
    starts.update(board, "list", True)  # not a phrasing of these start positions: ignored
    assert starts.score[Seat.X][i, 0] == pytest.approx(0.49)
    starts.update(Board.from_moves([1, 4, 2, 5, 3]), "grid", True)  # over: not an open position
    with pytest.raises(ValueError, match="curriculum"):
        StartPositions("hardest-first")
    with pytest.raises(ValueError, match="floor"):
        StartPositions("prioritized", floor=0.0)


def test_the_environment_config_checks_start_positions() -> None:
    from training.rl.env import EnvConfig

    with pytest.raises(ValueError, match="start_positions"):
        EnvConfig(start_positions=1.5)
    with pytest.raises(ValueError, match="curriculum"):
        EnvConfig(start_positions=0.5, curriculum="hardest-first")
    with pytest.raises(ValueError, match="uniform"):
        EnvConfig(start_positions=0.5, shaping="none")
    with pytest.raises(ValueError, match="curriculum_floor"):
        EnvConfig(start_positions=0.5, curriculum_floor=-0.1)
    EnvConfig(start_positions=0.5, shaping="none", curriculum="uniform")


def _env(lm, sae, transport, n_envs: int, **kw):
    from training.rl.env import EnvConfig, SteeringVecEnv
    from training.rl.ppo import TrainConfig, build_actuator

    cfg = TrainConfig(features=FEATURES, mode="masked")
    return SteeringVecEnv(build_actuator(lm, sae, cfg, FEATURES), transport, n_envs, EnvConfig(mode="masked", **kw))


def test_games_start_from_drawn_positions_and_score_every_steered_board(lm, sae) -> None:
    from training.rl.env import LocalTransport

    env = _env(lm, sae, LocalTransport(), 16, seed=4, start_positions=1.0)
    env.reset()
    assert sum(b.ply > 0 for b in env.boards) >= 12
    assert all(b.turn is seat for b, seat in zip(env.boards, env.seats))
    for _ in range(20):
        env.step(np.zeros((16, 2), dtype=np.int64))
    summary = env.starts.summary()
    assert summary["games_from_positions"] == env.games_started and env.random_moves == 0
    scored = sum(int((s < 1.0).sum()) for s in env.starts.score.values())
    assert scored > 0  # the steered boards' scores moved off the unseen 1.0
    env.close()


def test_games_from_start_positions_are_the_same_through_the_server_and_in_process(lm, sae) -> None:
    """The server sets up each drawn position from the challenge's opening: boards, rewards
    and ends equal the in-process games', seeded alike."""
    from training.rl.env import BackgroundServer, LocalTransport, ServerTransport

    actions = np.random.default_rng(6).integers(0, 1 + len(FEATURES) * 8, size=(25, 6, 2))
    runs = []
    with BackgroundServer(seed=9) as srv:
        for transport in (LocalTransport(), ServerTransport(srv.url, forfeit=False)):
            env = _env(lm, sae, transport, 6, seed=8, start_positions=0.7, random_openings=0.5)
            out = [env.reset().tolist()]
            for a in actions:
                obs, rewards, dones, _ = env.step(a)
                out.append((obs.tolist(), rewards.tolist(), dones.tolist()))
            runs.append((out, env.log.results, env.starts.summary()))
            env.close()
    assert runs[0] == runs[1]
    assert runs[0][2]["games_from_positions"] > 10
