"""The evaluation harness on a tiny random model: local and through a real server."""

from __future__ import annotations

import pytest

from bots.llm.bot import LLMBot
from bots.llm.policy import FixedSteeringPolicy
from bots.llm.testing import tiny_sae
from training.evaluation.evaluate import ArmResult, play_arm_local, play_arm_server, wilson_interval

pytestmark = pytest.mark.timeout(120)


class _Bar:
    def __init__(self) -> None:
        self.n = 0

    def update(self, k: int) -> None:
        self.n += k


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(10, 100)
    assert (round(lo, 4), round(hi, 4)) == (0.0552, 0.1744)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    lo, hi = wilson_interval(1000, 1000)
    assert hi == 1.0 and 0.996 < lo < 0.997


@pytest.mark.parametrize(
    "opponent, seat, mode", [("minimax", "X", "strict"), ("random", "O", "masked"), ("random", "X", "strict")]
)
def test_local_arm_counts_and_is_reproducible(lm, opponent, seat, mode):
    results = []
    for _ in range(2):
        bot = LLMBot(lm, mode=mode)
        arm, bar = ArmResult(opponent, seat, mode), _Bar()
        play_arm_local(bot, arm, 30, seed=7, concurrency=8, progress=bar)
        arm.finish()
        results.append(arm)
        assert bar.n == arm.games == 30
        assert arm.wins + arm.draws + arm.losses == 30 and arm.other == 0
        assert arm.illegal <= arm.losses
        if mode == "masked":
            assert arm.illegal == 0
        if opponent == "minimax":
            assert arm.wins == 0  # nobody beats the solved game
        assert arm.intervals["wins"][0] <= arm.wins / 30 <= arm.intervals["wins"][1]
    a, b = results
    assert (a.wins, a.draws, a.losses, a.illegal) == (b.wins, b.draws, b.losses, b.illegal)


def test_local_arm_reports_steering_strength(lm, tmp_path):
    sae = tiny_sae(lm, folder=tmp_path / "sae")
    bot = LLMBot(lm, sae=sae, policy=FixedSteeringPolicy([1, 2], [0.5, -1.0]), mode="masked")
    arm = ArmResult("random", "X", "masked")
    play_arm_local(bot, arm, 10, seed=1, concurrency=4, progress=_Bar())
    assert arm.llm_moves > 10
    assert arm.mean_abs_coef == pytest.approx(0.75)
    assert arm.mean_norm_ratio > 0 and arm.mean_kl >= 0


async def test_server_arm_plays_through_the_arena(lm):
    bot = LLMBot(lm, mode="strict")
    for seat in ("X", "O"):
        arm, bar = ArmResult("random", seat, "strict"), _Bar()
        await play_arm_server(bot, arm, 12, seed=3, concurrency=4, progress=bar)
        assert bar.n == arm.games == 12 and arm.other == 0
        assert arm.wins + arm.draws + arm.losses == 12
        assert arm.llm_moves > 0
    # a strict bot on an untrained model names occupied cells; the server records the forfeit
    arm = ArmResult("minimax", "O", "strict")
    await play_arm_server(bot, arm, 8, seed=3, concurrency=8, progress=_Bar())
    assert arm.wins == 0 and arm.games == 8


@pytest.mark.parametrize("opponent", ["random", "minimax"])
async def test_server_arm_is_exactly_reproducible_with_per_game_seeds(lm, opponent):
    """Each arranged game carries its own seed, so two runs play the same games (whatever
    order the concurrent games finish in), and another --seed plays other games."""
    runs = []
    for seed in (5, 5, 6):
        games: dict[str, list[int]] = {}
        arm = ArmResult(opponent, "O", "masked")
        await play_arm_server(
            LLMBot(lm, mode="masked"), arm, 16, seed=seed, concurrency=8, progress=_Bar(), games=games
        )
        assert len(games) == 16 and all(games.values())
        assert set(games) == {f"{arm.name}#{i}" for i in range(16)}
        runs.append((games, (arm.wins, arm.draws, arm.losses)))
    assert runs[0] == runs[1]
    if opponent == "random":
        assert runs[0][0] != runs[2][0]


def test_game_seeds_fit_the_protocol():
    from training.evaluation.evaluate import _game_seed

    arm = ArmResult("minimax", "X", "strict")
    seeds = [_game_seed(0, arm, i) for i in range(200)]
    assert all(0 <= s < 2**63 for s in seeds) and len(set(seeds)) == 200


@pytest.mark.parametrize("opponent, seat, mode", [("random", "X", "strict"), ("minimax", "O", "masked")])
async def test_local_and_server_play_the_same_games(lm, opponent, seat, mode):
    """Both ways seed game i's opponent alike, so they play identical games."""
    local: dict[str, list[int]] = {}
    served: dict[str, list[int]] = {}
    a_local, a_server = ArmResult(opponent, seat, mode), ArmResult(opponent, seat, mode)
    play_arm_local(LLMBot(lm, mode=mode), a_local, 16, seed=11, concurrency=8, progress=_Bar(), games=local)
    await play_arm_server(LLMBot(lm, mode=mode), a_server, 16, seed=11, concurrency=8, progress=_Bar(), games=served)
    assert local == served
    assert (a_local.wins, a_local.draws, a_local.losses, a_local.illegal) == (
        a_server.wins,
        a_server.draws,
        a_server.losses,
        a_server.illegal,
    )
