"""Which single (feature, strength) actions keep the solved value on the early positions
(at most two pieces) where a learned steering policy fails, in `grid` and `rows`: one model
call per action and position.

    python scripts/rl_failing_positions.py bots/llm/artifacts/learned_policy.json

Prints one line per failing position (the number of the 217 single-slot actions that keep
the value in each phrasing, and in both) and a total.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from bots.llm.cli import load_sae_arg
from bots.llm.learned import LearnedSteeringPolicy
from bots.llm.model import load_model
from server.game import Board
from server.solver import value_preserving_cells
from training.evaluation.heldout import open_positions
from training.rl.actuator import MoveOutcome
from training.rl.evaluation import policy_moves
from training.rl.ppo import TrainConfig, build_actuators, warm_actuators


def keeps(board: Board, move: MoveOutcome) -> bool:
    return move.legal and move.cell in value_preserving_cells(board)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policy", help="a learned policy JSON")
    parser.add_argument("--min-free", type=int, default=7, help="positions with at least this many empty cells")
    args = parser.parse_args()
    torch.set_num_threads(1)
    lm = load_model("smollm2")
    sae = load_sae_arg("auto", lm)
    policy = LearnedSteeringPolicy.from_dict(json.loads(open(args.policy).read()), args.policy)
    boards = [b for b in open_positions() if len(b.legal_cells()) >= args.min_free]
    actuators = build_actuators(lm, sae, TrainConfig(), policy.features, phrasings=["grid", "rows"])
    warm_actuators(actuators, lm, lm.weights_hash(), threads=1, progress=False, store=False, boards=boards)
    kept = {p: [keeps(b, m) for b, m in zip(boards, policy_moves(policy, act, boards))] for p, act in actuators.items()}
    n_actions = next(iter(actuators.values())).codec.nvec[0]
    single = np.array([[a, 0] for a in range(n_actions)])
    failing = fixable = 0
    for i, board in enumerate(boards):
        if all(kept[p][i] for p in kept):
            continue
        failing += 1
        works = {
            p: np.array([keeps(board, m) for m in act.act([board] * n_actions, single)]) for p, act in actuators.items()
        }
        both = works["grid"] & works["rows"]
        fixable += bool(both.any())
        print(
            board.code,
            board.turn.value,
            *(f"{p} {'ok' if kept[p][i] else 'FAIL'}" for p in kept),
            f"single actions that keep the value: grid {int(works['grid'].sum())}, rows {int(works['rows'].sum())}, "
            f"both {int(both.sum())}",
            flush=True,
        )
    print(
        f"{len(boards)} positions; the policy fails on {failing}; one single action keeps the value in both "
        f"phrasings on {fixable} of them"
    )


if __name__ == "__main__":
    main()
