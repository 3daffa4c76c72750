"""Exact evaluation of a learned steering policy (its deterministic numpy forward, the very
code the bot runs), used during PPO training and on the final policy:

- :func:`evaluate_positions`: on every open position (4,520), in one prompt phrasing, the
  share where the steered strict move keeps the solved value, per side to move, with the
  illegal moves and the steering budget (push ‖added‖/‖residual‖, KL, features steered);
- :func:`evaluate_exact`: the exact tree walk against minimax (uniformly random tie-breaks)
  or the random player, as X and as O;
- :func:`evaluation_row` / :func:`meets`: one evaluation during training (a row of
  ``eval.csv``) and whether it reaches the target;
- :func:`digit_mass_check`: the digits' share of the full next-token distribution under the
  policy's steering;
- :func:`play_server_games`: seeded games through an in-process server, the bot as a remote
  client playing the policy itself.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any, Sequence

from server.game import Board, Seat


def _budget(moves: Sequence[Any]) -> dict[str, Any]:
    n = max(1, len(moves))
    return {
        "mean_push": sum(m.norm_ratio for m in moves) / n,
        "max_push": max((m.norm_ratio for m in moves), default=0.0),
        "mean_kl": sum(m.kl for m in moves) / n,
        "mean_features_steered": sum(m.n_steered for m in moves) / n,
        "max_features_steered": max((m.n_steered for m in moves), default=0),
        "steered_share": sum(m.n_steered > 0 for m in moves) / n,
        "changed_share": sum(m.changed for m in moves) / n,
        "mean_abs_coef_sum": sum(m.abs_coef for m in moves) / n,
    }


def policy_moves(policy: Any, actuator: Any, boards: Sequence[Board], chunk: int = 512) -> list[Any]:
    """The deterministic policy's steered move on each board (chunks bound the memory)."""
    out: list[Any] = []
    for i in range(0, len(boards), chunk):
        part = list(boards[i : i + chunk])
        out.extend(actuator.act(part, policy.actions(actuator.observe(part))))
    return out


def evaluate_positions(policy: Any, actuator: Any, boards: Sequence[Board] | None = None) -> dict[str, Any]:
    """On every open position (or ``boards``), the LLM playing the side to move under the
    policy's steering: per side, the share of positions where the move keeps the solved
    value (an illegal move does not), the illegal moves, and the steering budget."""
    from server.solver import value_preserving_cells
    from training.evaluation.heldout import open_positions

    boards = list(boards) if boards is not None else open_positions()
    moves = policy_moves(policy, actuator, boards)
    out: dict[str, Any] = {}
    for seat in Seat:
        idx = [i for i, b in enumerate(boards) if b.turn is seat]
        kept = sum(1 for i in idx if moves[i].legal and moves[i].cell in value_preserving_cells(boards[i]))
        illegal = sum(1 for i in idx if not moves[i].legal)
        out[seat.value] = {
            "positions": len(idx),
            "kept": kept,
            "kept_share": kept / max(1, len(idx)),
            "illegal": illegal,
            **_budget([moves[i] for i in idx]),
        }
    return out


def evaluate_exact(policy: Any, actuator: Any, opponent: str = "minimax") -> dict[str, Any]:
    """Exact outcome of the deterministic ``policy`` (its numpy forward) as X and as O
    against ``opponent``, with the steering it used on the boards it met (mean over the
    LLM boards of the walked tree)."""
    from training.vector_search import exact_outcome

    out: dict[str, Any] = {}
    for seat in Seat:
        moves: list[Any] = []

        def choose(boards: list[Board]) -> list[int | None]:
            res = policy_moves(policy, actuator, boards)
            moves.extend(res)
            return [m.cell if m.legal else None for m in res]

        o = exact_outcome(choose, seat, opponent=opponent)
        out[seat.value] = {**asdict(o), **_budget(moves)}
    return out


def evaluation_row(policy: Any, actuators: dict[str, Any]) -> dict[str, Any]:
    """One evaluation during training: value kept on every open position in each training
    phrasing, and the exact draws against minimax in the first."""
    row: dict[str, Any] = {}
    for name, act in actuators.items():
        pos = evaluate_positions(policy, act)
        for side in ("X", "O"):
            row[f"kept_{name}_{side.lower()}"] = round(pos[side]["kept_share"], 6)
            row[f"illegal_{name}_{side.lower()}"] = pos[side]["illegal"]
            row[f"push_{name}_{side.lower()}"] = round(pos[side]["mean_push"], 4)
    ex = evaluate_exact(policy, next(iter(actuators.values())))
    row.update(draw_x=round(ex["X"]["draw"], 6), draw_o=round(ex["O"]["draw"], 6))
    return row


def meets(row: dict[str, Any], target: float) -> bool:
    """Whether an evaluation row reaches ``target`` on every value-kept and draw column."""
    keys = [k for k in row if k.startswith("kept_") or k in ("draw_x", "draw_o")]
    return bool(keys) and all(row[k] >= target for k in keys)


def digit_mass_check(policy: Any, actuator: Any, boards: Sequence[Board], chunk: int = 256) -> dict[str, float]:
    """The digits' share of the full next-token distribution under the policy's steering
    on ``boards`` (a full unembedding per answer): mean and min."""
    reader = actuator.bot.reader
    was = getattr(reader, "digit_mass", None)
    if was is None:
        return {}
    reader.digit_mass = True
    masses: list[float] = []
    try:
        for i in range(0, len(boards), chunk):
            part = list(boards[i : i + chunk])
            coefs = actuator.codec.coefficients(policy.actions(actuator.observe(part)))
            masses += [m.digit_mass for m in actuator.bot.play(part, coefs) if m.digit_mass is not None]
    finally:
        reader.digit_mass = was
    return {"boards": len(masses), "mean": sum(masses) / max(1, len(masses)), "min": min(masses, default=float("nan"))}


def play_server_games(
    policy: Any, actuator: Any, games: int, seed: int, opponent: str = "minimax", concurrency: int = 64
) -> list[dict[str, Any]]:
    """``games`` games per seat through an in-process server (``training.evaluation.evaluate``'s
    ``play_arm_server``: the LLM bot as a remote client, games arranged with seeds), the bot
    playing ``policy`` itself (its own ``coefficients``: the shipped code path); it shares
    the actuator's prompt cache. Returns one row per seat with the distinct games."""
    import asyncio

    from bots.llm.bot import LLMBot
    from training.evaluation.evaluate import ArmResult, play_arm_server

    class _Quiet:
        def update(self, n: int) -> None:
            pass

    bot = LLMBot(actuator.bot.lm, sae=actuator.bot.sae, policy=policy, mode=actuator.bot.mode, top_k=0, cache_boards=8)
    bot.reader = actuator.bot.reader  # same model, hook and prompts: reuse the warm cache
    rows = []
    for seat in ("X", "O"):
        arm = ArmResult(opponent=opponent, seat=seat, mode=bot.mode)
        record: dict[str, list[int]] = {}
        t = time.perf_counter()
        asyncio.run(play_arm_server(bot, arm, games, seed, concurrency, _Quiet(), games=record))
        arm.seconds = round(time.perf_counter() - t, 1)
        arm.finish()
        rows.append(
            {**asdict(arm), "distinct_games": len({tuple(v) for v in record.values()}), "policy_digest": policy.digest}
        )
    return rows
