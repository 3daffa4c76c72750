"""``autosteer-train ppo-summary``: gather PPO run cards of one configuration, trained as
separate processes (one seed each), into the summary ``autosteer-train ppo --seeds ...
--summary`` writes: every run's final evaluation, and mean and spread over seeds.

The cards must share every setting but the seed (a summary over seeds of *different*
recipes would be no summary); the plot gets one learning curve per card.

    autosteer-train ppo-summary var/rl/whole-game/seed-*/run_card.json \\
        --summary docs/results/ppo_whole_game.json --plot docs/rl_learning_curve.png --ship

``--ship`` ships one of the runs as ``autosteer-train ppo --ship`` does (:func:`training.rl.cards.to_ship`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any


#: the value a run ran at when its card does not name these knobs (its code had no such knob)
KNOBS_UNNAMED: dict[str, Any] = {
    "baseline": "state",
    "start_positions": 0.0,
    "curriculum": "prioritized",
    "lr_schedule": "constant",
    "judge": "game",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("cards", nargs="+", type=Path, help="run_card.json of each seed's run")
    parser.add_argument("--summary", type=Path, required=True, help="JSON to write (mean and spread over seeds)")
    parser.add_argument("--plot", type=Path, default=None, help="learning-curve PNG, one line per seed")
    parser.add_argument(
        "--ship",
        action="store_true",
        help="copy a final policy and its run card (the run folder of its card) to bots/llm/artifacts/: the first "
        "seed's with no illegal move on any open position in the bot's phrasing (else the first seed's)",
    )


def gather(cards: list[dict[str, Any]]) -> dict[str, Any]:
    """The summary of ``cards`` (run cards of one recipe, one seed each).

    >>> c = {"config": {"seed": 0, "lr": 1}, "command": "x", "weights_unchanged": True,
    ...      "weights_before": "h", "weights_after": "h", "model": "m", "hook_name": "k"}
    >>> gather([c, {**c, "config": {"seed": 1, "lr": 2}}])
    Traceback (most recent call last):
    ...
    ValueError: the runs differ in more than the seed: lr
    """
    from dataclasses import asdict

    from training.rl.cards import summarize
    from training.rl.ppo import TrainConfig

    if not cards:
        raise ValueError("no run cards")
    # a knob a card does not name ran at the value it had before the knob existed
    defaults = {**asdict(TrainConfig()), **KNOBS_UNNAMED}

    def knobs(card: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in {**defaults, **card["config"]}.items() if k != "seed"}

    first = knobs(cards[0])
    for card in cards[1:]:
        other = knobs(card)
        differ = sorted(k for k in first.keys() | other.keys() if first.get(k) != other.get(k))
        if differ:
            raise ValueError(f"the runs differ in more than the seed: {', '.join(differ)}")
    seeds = [c["config"]["seed"] for c in cards]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"a seed appears twice: {seeds}")
    return {
        "command": [c["command"] for c in cards],
        "config": {**first, "seed": seeds[0]},
        "model": cards[0]["model"],
        "hook_name": cards[0]["hook_name"],
        "weights_unchanged": all(c["weights_unchanged"] for c in cards),
        "weights_before": cards[0]["weights_before"],
        "weights_after": cards[-1]["weights_after"],
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "cpus": cards[0].get("cpus"),
        **summarize(cards),
    }


def run(args: argparse.Namespace) -> int:
    from training.rl.cards import curve_title, kept_line, plot_learning_curve, ship_recipe

    try:
        read = sorted(((json.loads(p.read_text()), p) for p in args.cards), key=lambda cp: cp[0]["config"]["seed"])
        cards = [c for c, _ in read]
        summary = gather(cards)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}")
        return 2
    args.summary.parent.mkdir(parents=True, exist_ok=True)
    args.summary.write_text(json.dumps(summary, indent=2) + "\n")
    if args.plot is not None:
        plot_learning_curve(
            {f"seed {c['config']['seed']}": c["evals"] for c in cards},
            args.plot,
            curve_title(summary["model"], summary["config"], summary["seeds"]),
        )
    print(f"{args.summary}: seeds {summary['seeds']}; {kept_line(summary['over_seeds'])} value kept")
    if args.ship:
        try:
            print(ship_recipe(cards, [path.parent for _, path in read]))
        except ValueError as exc:
            print(f"error: {exc}")
            return 2
    return 0
