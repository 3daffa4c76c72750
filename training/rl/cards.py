"""What PPO runs leave for readers: the run card's markdown (:func:`write_card_md`), the
summary of several seeds' final evaluations with mean and spread (:func:`summarize`,
:func:`kept_line`), the learning curve (:func:`plot_learning_curve`, :func:`curve_title`)
and which run of a recipe ships to the bot (:func:`to_ship`, :func:`ship`).
``autosteer-train ppo`` and ``ppo-summary`` both write them."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Sequence

from training.outputs import REPO

ARTIFACTS = REPO / "bots" / "llm" / "artifacts"
SHIPPED_NAME = "learned_policy.json"

#: where a move's value change and keep margin are read, by the run's ``judge``
JUDGED = {"game": "its game's phrasing", "phrasings": "every training phrasing (mean value change, least margin)"}


def plot_learning_curve(runs: dict[str, list[dict[str, Any]]], path: Path, title: str) -> None:
    """Value kept on every open position (min over training phrasings) and exact draws vs
    minimax, per side, against PPO steps: one line per run (seed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=110, sharey=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, evals) in enumerate(runs.items()):
        xs = [r["step"] for r in evals]
        c = colours[i % len(colours)]
        for ax, side, style in ((axes[0], "x", "-"), (axes[1], "o", "-")):
            kept = [
                100 * min(v for k, v in r.items() if k.startswith("kept_") and k.endswith("_" + side)) for r in evals
            ]
            draw = [100 * r["draw_" + side] for r in evals]
            ax.plot(
                xs,
                kept,
                style,
                color=c,
                marker="o",
                ms=3,
                label=f"{name}: value kept, worst training phrasing (all open positions)",
            )
            ax.plot(xs, draw, ":", color=c, marker="s", ms=3, label=f"{name}: draws vs minimax (exact)")
    for ax, side in ((axes[0], "X"), (axes[1], "O")):
        ax.set_title(f"LLM as {side}", fontsize=9)
        ax.set_xlabel("PPO steps (LLM moves)")
        ax.axhline(99, color="grey", lw=0.8, ls="--")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x / 1000:,.0f}k"))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("% (strict reading)")
    axes[1].legend(fontsize=6, loc="lower right")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def curve_title(model: str, cfg: dict[str, Any], seeds: Sequence[int]) -> str:
    """The learning-curve plot's title: the recipe's knobs that tell runs apart."""
    return (
        f"{model}: PPO steering policy, {cfg['obs']} obs, {cfg['action']} action ({cfg['slots']} slots), "
        f"{cfg['mode']} reading, via {cfg['via']}, phrasings {','.join(cfg['phrasings'])}, seeds {','.join(map(str, seeds))}"
    )


def kept_line(over_seeds: dict[str, Any]) -> str:
    """``grid_X 82.7 % [82.0–83.5], ...``: value kept, mean [min–max] over seeds."""
    return ", ".join(
        f"{k[5:]} {100 * v['mean']:.1f} % [{100 * v['min']:.1f}–{100 * v['max']:.1f}]"
        for k, v in over_seeds.items()
        if k.startswith("kept_")
    )


def summarize(cards: list[dict[str, Any]]) -> dict[str, Any]:
    """The runs' final evaluations side by side, with mean and spread (min, max, sample
    standard deviation) over seeds of each figure."""
    import statistics

    rows = []
    for c in cards:
        row: dict[str, Any] = {
            "seed": c["config"]["seed"],
            "policy_digest": c["policy_digest"],
            "steps": c["steps"],
            "stopped_by": c["stopped_by"],
            "wall_seconds": c["wall_seconds"],
            "stable_target": c["stable_target"],
            "reached_target": c["reached_target"],
        }
        for name, pos in c["positions"].items():
            for side in ("X", "O"):
                row[f"kept_{name}_{side}"] = pos[side]["kept_share"]
                row[f"illegal_{name}_{side}"] = pos[side]["illegal"]
                row[f"push_{name}_{side}"] = pos[side]["mean_push"]
                row[f"features_{name}_{side}"] = pos[side]["mean_features_steered"]
        for name, h in (c.get("heldout_phrasings") or {}).items():
            for side in ("X", "O"):
                row[f"heldout_kept_{name}_{side}"] = h["positions"][side]["kept_share"]
                row[f"heldout_illegal_{name}_{side}"] = h["positions"][side]["illegal"]
                row[f"heldout_draw_minimax_{name}_{side}"] = h["vs_minimax_exact"][side]["draw"]
        for side in ("X", "O"):
            row[f"draw_minimax_{side}"] = c["vs_minimax_exact"][side]["draw"]
            row[f"games_minimax_{side}"] = c["vs_minimax_exact"][side]["games"]
            row[f"win_random_{side}"] = c["vs_random_exact"][side]["win"]
            row[f"illegal_random_{side}"] = c["vs_random_exact"][side]["illegal"]
            row[f"games_random_{side}"] = c["vs_random_exact"][side]["games"]
        for name, w in (c.get("warm_up") or {}).items():  # the prompt cache: prompts run (not loaded) and seconds
            row[f"warm_up_computed_{name}"] = w["computed"]
            row[f"warm_up_seconds_{name}"] = w["seconds"]
        if c.get("digit_mass"):
            row["digit_mass_min"] = c["digit_mass"]["min"]
            row["digit_mass_mean"] = c["digit_mass"]["mean"]
        rows.append(row)
    stats: dict[str, Any] = {}
    for key in rows[0] if rows else []:
        vals = [r.get(key) for r in rows]
        nums = [v for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if len(nums) == len(vals) and key != "seed":
            stats[key] = {
                "mean": statistics.fmean(nums),
                "min": min(nums),
                "max": max(nums),
                "sd": statistics.stdev(nums) if len(nums) > 1 else 0.0,
            }
    return {"seeds": [r["seed"] for r in rows], "runs": rows, "over_seeds": stats}


def write_card_md(card: dict[str, Any], path: Path) -> None:
    """The run card as markdown: the recipe, time and weights, then the tables of the
    final policy's exact evaluation and the features it steers."""
    lines = [*_card_header(card), *_card_positions(card), *_card_walks(card), *_card_extras(card)]
    path.write_text("\n".join(lines) + "\n")


def _starts_line(cfg: dict[str, Any], starts: dict[str, Any] | None) -> str:
    """The run card's line on games started from drawn open positions."""
    share = cfg.get("start_positions", 0.0)
    if not share or not starts:
        return "- Start positions: none (every game starts from the empty board)"
    return (
        f"- Start positions: {share} of the games start from an open position drawn by the "
        f"`{starts['curriculum']}` curriculum ({starts['games_from_positions']} games, "
        f"{starts['distinct_start_positions']} distinct positions; mean failure score at the end "
        f"X {starts['mean_failure_score']['X']}, O {starts['mean_failure_score']['O']})"
    )


def _card_header(card: dict[str, Any]) -> list[str]:
    cfg = card["config"]
    return [
        "# Run card: learned steering policy (PPO)",
        "",
        f"- Command: `{card['command']}`",
        f"- Model / SAE: {card['model']} / `{card['sae']}` at `{card['hook_name']}`",
        f"- Observation `{cfg['obs']}`, action `{cfg['action']}` (strengths {cfg['strengths']}, {cfg['slots']} distinct "
        f"features at most), `{cfg['mode']}` reading, played via `{cfg['via']}`; seed {cfg['seed']}",
        f"- Games: opponents `{cfg['opponents']}` (equal weights unless given), training phrasings {cfg['phrasings']}, "
        f"random openings {cfg['random_openings']} (1-{cfg['max_random_moves']} random moves of the LLM's side; "
        f"{card['random_opening_moves']} played), LLM seat {cfg['seat']} (O with p {cfg['p_o']})",
        _starts_line(cfg, card.get("start_positions")),
        f"- Reward: shaping `{cfg['shaping']}` (value: each move paid the change of the solved value it makes; none: "
        f"the result only), keep-margin reward {cfg.get('margin_reward', 0.0)} (cap {cfg.get('margin_cap', 3.0)} nats), "
        f"each move judged in {JUDGED[cfg.get('judge', 'game')]}, minus {cfg['push_cost']} × ‖added‖/‖residual‖ per move",
        f"- PPO: n_envs {cfg['n_envs']}, n_steps {cfg['n_steps']}, batch {cfg['batch_size']}, epochs {cfg['n_epochs']}, "
        f"lr {cfg['learning_rate']} ({cfg.get('lr_schedule', 'constant')}), gamma {cfg['gamma']}, GAE λ {cfg['gae_lambda']}, entropy {cfg['ent_coef']}, "
        f"clip {cfg['clip_range']}, net {cfg['net_arch']}, none bias {cfg['none_bias']}, baseline {cfg.get('baseline', 'state')}",
        f"- Steps {card['steps']} ({card['games']} games, {card['boards_seen']} distinct boards steered); stopped by "
        f"{card['stopped_by']}; the policy is the final one (step {card['policy_step']}); target {cfg['target']} first "
        f"met: {card['reached_target'] or 'no'}",
        f"- Time: {card['wall_seconds']} s wall, {card['cpu_seconds']} s CPU ({card['cpus']} CPUs); "
        f"sections: {card['time']}; env: {card['env_seconds']}",
        f"- Policy digest: `{card['policy_digest']}`",
        f"- Weights (sha256 prefix) before: model `{card['weights_before']['model'][:16]}`, SAE `{card['weights_before']['sae'][:16]}`; "
        f"after: model `{card['weights_after']['model'][:16]}`, SAE `{card['weights_after']['sae'][:16]}` "
        f"(unchanged: {card['weights_unchanged']})",
        "",
    ]


def _card_positions(card: dict[str, Any]) -> list[str]:
    lines = [
        "Every open position (4,520), the LLM playing the side to move, strict reading:",
        "",
        "| phrasing | trained on | side | positions | value kept | illegal | mean push ‖Δ‖/‖h‖ | features/move (max) | mean KL |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    tables = [(p, "yes", v) for p, v in (card.get("positions") or {}).items()]
    tables += [(p, "**held out**", v["positions"]) for p, v in (card.get("heldout_phrasings") or {}).items()]
    for p, trained, table in tables:
        for side in ("X", "O"):
            r = table[side]
            lines.append(
                f"| {p} | {trained} | {side} | {r['positions']} | {100 * r['kept_share']:.2f} % | {r['illegal']} | "
                f"{r['mean_push']:.3f} | {r['mean_features_steered']:.2f} ({r['max_features_steered']}) | "
                f"{r['mean_kl']:.3f} |"
            )
    return lines


def _card_walks(card: dict[str, Any]) -> list[str]:
    cfg = card["config"]
    lines = [
        "",
        "Exact outcome (tree walk; minimax with uniformly random tie-breaks), strict reading:",
        "",
        "| phrasing | opponent | seat | draw | win | loss | illegal | distinct games | mean push |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    walks = [
        (cfg["phrasings"][0], "minimax", card.get("vs_minimax_exact") or {}),
        (cfg["phrasings"][0], "random", card.get("vs_random_exact") or {}),
    ]
    walks += [(p, "minimax", v["vs_minimax_exact"]) for p, v in (card.get("heldout_phrasings") or {}).items()]
    for p, opp, table in walks:
        for seat in ("X", "O"):
            if seat in table:
                r = table[seat]
                lines.append(
                    f"| {p} | {opp} | {seat} | {100 * r['draw']:.2f} % | {100 * r['win']:.2f} % | {100 * r['loss']:.2f} % | "
                    f"{100 * r['illegal']:.2f} % | {r['games']} | {r['mean_push']:.3f} |"
                )
    return lines


def _card_extras(card: dict[str, Any]) -> list[str]:
    """The digits' share, the games through the server (when played) and the features."""
    cfg = card["config"]
    lines: list[str] = []
    if card.get("digit_mass"):
        dm = card["digit_mass"]
        lines += [
            "",
            f"Digits' share of the next-token distribution under the policy's steering, every open position "
            f"({cfg['phrasings'][0]}): mean {dm['mean']:.3f}, min {dm['min']:.3f}.",
        ]
    if card.get("server_games"):
        lines += [
            "",
            "Games through the server (in-process arena, the bot as a remote client, seeded games):",
            "",
            "| opponent | seat | games | distinct | wins | draws | losses | illegal | mean push |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for a in card["server_games"]:
            lines.append(
                f"| {a['opponent']} | {a['seat']} | {a['games']} | {a['distinct_games']} | {a['wins']} | {a['draws']} | "
                f"{a['losses']} | {a['illegal']} | {a['mean_norm_ratio']:.3f} |"
            )
    lines += ["", "| feature | label |", "|---|---|"]
    lines += [f"| {f['index']} | {f['label'] or '—'} |" for f in card["features"]]
    return lines


def to_ship(cards: Sequence[dict[str, Any]]) -> int:
    """Which run of one recipe ships (its index in ``cards``, in seed order): the first whose
    final policy names a legal cell on every open position in the bot's phrasing, the
    condition the bot's strict default rests on; the first run when none does. A gate, not a
    ranking: no other figure is compared, and every run stays in the summary over seeds.

    >>> ok = {"positions": {"grid": {"X": {"illegal": 0}, "O": {"illegal": 0}}}}
    >>> one = {"positions": {"grid": {"X": {"illegal": 0}, "O": {"illegal": 1}}}}
    >>> to_ship([one, ok, ok]), to_ship([one, one])
    (1, 0)
    """
    from bots.llm.prompt import DEFAULT_PHRASING

    for i, card in enumerate(cards):
        seats = card.get("positions", {}).get(DEFAULT_PHRASING)
        if seats and all(seats[s]["illegal"] == 0 for s in ("X", "O")):
            return i
    return 0


def ship_recipe(cards: Sequence[dict[str, Any]], run_dirs: Sequence[Path]) -> str:
    """Ship one run of a recipe (:func:`to_ship`; ``run_dirs[i]`` holds ``cards[i]``'s run) and
    say which. Raises ``ValueError`` for a policy over random directions: the bot steers SAE
    features."""
    if cards[0]["config"].get("basis", "sae") != "sae":
        raise ValueError("a policy over random directions cannot be shipped (the bot steers SAE features)")
    i = to_ship(cards)
    ship(run_dirs[i])
    return (
        f"shipped {ARTIFACTS / SHIPPED_NAME} (policy {cards[i]['policy_digest']}, seed {cards[i]['config']['seed']}, "
        "final: the first seed with no illegal move in the bot's phrasing)"
    )


def ship(run_dir: Path) -> None:
    """Copy a run's policy and its card to ``bots/llm/artifacts/``."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run_dir / "policy.json", ARTIFACTS / SHIPPED_NAME)
    shutil.copyfile(run_dir / "run_card.json", ARTIFACTS / SHIPPED_NAME.replace(".json", ".card.json"))
    shutil.copyfile(run_dir / "run_card.md", ARTIFACTS / SHIPPED_NAME.replace(".json", ".card.md"))
