"""docs/RESULTS.md and the README's headline table, generated from the result files.

Every figure in docs/RESULTS.md is read from a JSON file that a command wrote
(``docs/results/*.json``, the run cards next to the shipped artifacts), so the numbers
cannot drift from their files: ``autosteer-train report --results-md docs/RESULTS.md
--readme README.md`` rewrites both, and ``tests/test_results_md.py`` fails when the
committed files differ from what the JSON gives.

A section is a :class:`Section`: the files it reads (paths from the repository root) and a
function from those files, loaded, to markdown lines. A section whose file is absent is
left out, and the report says which file it missed. :data:`SECTIONS` lists them in order;
a new result (e.g. a new learned steering policy) is a new function and one more entry in
the marked place of that list.

>>> _pct(0.5)
'50.0 %'
>>> _thousands(19264.87)
'19,265'
"""

from __future__ import annotations

import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from training.outputs import REPO

ROOT = REPO
RESULTS = "docs/results"
LEARNED_CARD = "bots/llm/artifacts/learned_policy.card.json"
WHOLE_GAME = f"{RESULTS}/ppo_whole_game.json"
WHOLE_GAME_RUNS = (
    ("the recipe (labelled features, keep-margin reward, training phrasings `grid`, `rows`, `moves`)", WHOLE_GAME),
    (
        "… the same, in-process (`--via local`): the same policies (equal digests)",
        f"{RESULTS}/ppo_whole_game_in_process.json",
    ),
    (
        "result-only reward (`--shaping none --margin-reward 0 --gamma 0.95 --gae-lambda 0.95 --curriculum uniform`; "
        "in-process)",
        f"{RESULTS}/ppo_result_only.json",
    ),
    ("control: 27 random SAE features (`--pick random`; in-process)", f"{RESULTS}/ppo_control_random_features.json"),
    ("control: shuffled labels (`--pick shuffled`; in-process)", f"{RESULTS}/ppo_control_shuffled.json"),
    ("control: 27 random directions (`--basis directions`; in-process)", f"{RESULTS}/ppo_control_directions.json"),
    (
        "ablation: a fourth training phrasing (`--phrasings grid,rows,moves,string`; in-process)",
        f"{RESULTS}/ppo_ablation_four_phrasings.json",
    ),
    ("ablation: two training phrasings (`--phrasings grid,rows`)", f"{RESULTS}/ppo_ablation_two_phrasings.json"),
    (
        "… and at those settings: result-only reward (`--shaping none --gamma 0.95 --gae-lambda 0.95 "
        "--curriculum uniform`; in-process)",
        f"{RESULTS}/ppo_result_only_two_phrasings.json",
    ),
    (
        "… and at those settings: 27 random SAE features (`--pick random`; in-process)",
        f"{RESULTS}/ppo_control_random_features_two_phrasings.json",
    ),
    (
        "… and at those settings: shuffled labels (`--pick shuffled`; in-process)",
        f"{RESULTS}/ppo_control_shuffled_two_phrasings.json",
    ),
    (
        "… and at those settings: 27 random directions (`--basis directions`; in-process)",
        f"{RESULTS}/ppo_control_directions_two_phrasings.json",
    ),
    (
        "… and at those settings: each move judged in both training phrasings (`--judge phrasings`; in-process)",
        f"{RESULTS}/ppo_ablation_judge_phrasings.json",
    ),
    (
        "ablation: two training phrasings and curriculum floor 0.05 (`--phrasings grid,rows --curriculum-floor 0.05`)",
        f"{RESULTS}/ppo_ablation_floor005.json",
    ),
    (
        "… and at those settings: 27 random SAE features (`--pick random`; in-process)",
        f"{RESULTS}/ppo_control_random_features_floor005.json",
    ),
    (
        "… and at those settings: shuffled labels (`--pick shuffled`; in-process)",
        f"{RESULTS}/ppo_control_shuffled_floor005.json",
    ),
    (
        "… and at those settings: 20 PPO epochs per update (`--n-epochs 20`; in-process)",
        f"{RESULTS}/ppo_ablation_epochs_margin.json",
    ),
    (
        "… and at those settings: 20 epochs and a margin reward of 0.1 (`--n-epochs 20 --margin-reward 0.1`; "
        "in-process)",
        f"{RESULTS}/ppo_ablation_epochs_margin01.json",
    ),
    (
        "ablation: two training phrasings, curriculum floor 0.05, no margin reward (`--phrasings grid,rows "
        "--curriculum-floor 0.05 --margin-reward 0`)",
        f"{RESULTS}/ppo_ablation_no_margin.json",
    ),
    (
        "… and at those settings: 27 random SAE features (`--pick random`; in-process)",
        f"{RESULTS}/ppo_control_random_features_no_margin.json",
    ),
    (
        "… and at those settings: shuffled labels (`--pick shuffled`; in-process)",
        f"{RESULTS}/ppo_control_shuffled_no_margin.json",
    ),
    (
        "… and at those settings: 27 random directions (`--basis directions`; in-process)",
        f"{RESULTS}/ppo_control_directions_no_margin.json",
    ),
    (
        "… and at those settings: 20 PPO epochs per update (`--n-epochs 20`; in-process, machine shared)",
        f"{RESULTS}/ppo_ablation_epochs.json",
    ),
    (
        "… and at those settings: a constant learning rate (`--lr-schedule constant`; in-process)",
        f"{RESULTS}/ppo_ablation_constant_lr.json",
    ),
    (
        "… and at those settings: a third training phrasing (`--phrasings grid,rows,moves`; in-process)",
        f"{RESULTS}/ppo_ablation_third_phrasing.json",
    ),
    (
        "… and at those settings: twice the steps (`--total-steps 786432`; in-process)",
        f"{RESULTS}/ppo_ablation_longer.json",
    ),
    (
        "… and at those settings: the `features` observation (`--obs features`; in-process)",
        f"{RESULTS}/ppo_ablation_features_obs.json",
    ),
    (
        "ablation: two training phrasings, no margin reward, no start positions, constant learning rate "
        "(`--phrasings grid,rows --margin-reward 0 --start-positions 0 --lr-schedule constant`)",
        f"{RESULTS}/ppo_ablation_no_start_positions.json",
    ),
    (
        "… and at those settings: result-only reward",
        f"{RESULTS}/ppo_result_only_no_start_positions.json",
    ),
    (
        "… and at those settings: 27 random SAE features",
        f"{RESULTS}/ppo_control_random_features_no_start_positions.json",
    ),
    ("… and at those settings: shuffled labels", f"{RESULTS}/ppo_control_shuffled_no_start_positions.json"),
    ("… and at those settings: 27 random directions", f"{RESULTS}/ppo_control_directions_no_start_positions.json"),
    (
        "… and at those settings: broader coverage (`--opponents minimax,hard,medium,easy,random:3 "
        "--random-openings 0.75 --max-random-moves 4`)",
        f"{RESULTS}/ppo_ablation_coverage.json",
    ),
    (
        "… and at those settings: a board-independent baseline (`--baseline constant`, 131,072 steps)",
        f"{RESULTS}/ppo_ablation_constant_baseline.json",
    ),
)
REACH = f"{RESULTS}/actuator_reach.json"
SAE_CARD = "bots/llm/artifacts/sae/RUN_CARD.json"
SERVER_LOAD = f"{RESULTS}/server_load_2026-11-29.json"
SERVER_LOAD_NO_STORING = f"{RESULTS}/server_load_no_storing_2026-11-29.json"
TOURNAMENT_LLM = f"{RESULTS}/tournament_llm/tournament.json"
COMMAND = "autosteer-train report --results-md docs/RESULTS.md --readme README.md"
HEADLINE_BEGIN = "<!-- headline table: generated by `autosteer-train report --readme README.md`; do not edit -->"
HEADLINE_END = "<!-- end of the generated headline table -->"

Files = dict[str, Any]


@dataclass(frozen=True)
class Section:
    """One part of docs/RESULTS.md: its title, the files it needs, and its renderer."""

    title: str
    needs: tuple[str, ...]
    render: Callable[[Files], list[str]]
    optional: tuple[str, ...] = ()


# --------------------------------------------------------------------------- formatting
def _pct(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{100 * x:.{digits}f} %"


def _commands(command: str | list[str]) -> str:
    """``Command: `a``` or, for runs made one seed at a time, ``Commands: `a`; `b```."""
    if isinstance(command, str):
        return f"Command: `{command}`"
    return "Commands: " + "; ".join(f"`{c}`" for c in dict.fromkeys(command))  # seeds of one command: once


def _num(x: float | None, fmt: str = ".2f") -> str:
    return "—" if x is None else format(x, fmt)


def _thousands(x: float) -> str:
    return f"{x:,.0f}"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]


def _sources(paths: tuple[str, ...]) -> str:
    return "Source: " + ", ".join(f"`{p}`" for p in paths)


# --------------------------------------------------------------------------- sections
def fixed_vector_vs_minimax_and_random(f: Files) -> list[str]:
    """The unsteered model and the shipped fixed vector, 1,000 games per arm, with held-out cells."""
    from training.evaluation.tables import headline_table, random_table

    evaluations = [f[f"{RESULTS}/llm_baseline_unsteered.json"], f[f"{RESULTS}/llm_steered_fixed.json"]]
    held = f.get(f"{RESULTS}/heldout_fixed.json")
    names = {"unsteered": "none", "policy 29752848": "auto"}  # the names the held-out JSON stores
    return (
        [
            "Commands: `autosteer-train evaluate [--policy bots/llm/artifacts/policy.json] --games 1000 --seed 0 "
            "--cache-boards 3000 --json FILE` and `autosteer-train heldout --policy bots/llm/artifacts/policy.json "
            '--policy none`. "policy 29752848" is the shipped fixed vector (`bots/llm/artifacts/policy.json`). '
            "Held-out columns: exact draw probability against minimax in the `rows` / `list` phrasings, exact "
            "probability of not losing against a random player and against ε-greedy minimax (ε = 0.1), and the "
            "share of all open positions where its move keeps the game's value.",
            "",
            "**Against minimax**",
            "",
        ]
        + headline_table(evaluations, held, held_names=names)
        + ["", "**Against a uniformly random player** (the perfect player wins 99.48 % as X, 91.64 % as O)", ""]
        + random_table(evaluations)
    )


def fixed_vector_unoptimised_controls(f: Files) -> list[str]:
    from training.evaluation.tables import compact_table

    order = ["llm_steered_fixed", "llm_control_zero", "llm_control_negate", "llm_control_shuffle", "llm_control_random"]
    return [
        "The vector's coefficients zeroed, negated, put on other random features, or one fixed random "
        "direction at the vector's norm (`autosteer-train evaluate --policy bots/llm/artifacts/policy.json "
        "--control C --opponent minimax --games 1000 --seed 0`); sampled draws, exact in brackets, then the "
        "distinct games.",
        "",
    ] + compact_table([f[f"{RESULTS}/{n}.json"] for n in order])


def fixed_vector_equal_effort_controls(f: Files) -> list[str]:
    from training.evaluation.tables import controls_table

    return [
        "The same cross-entropy search, budget and seeds as the vector's run card, given other things to steer "
        "with (`autosteer-train controls --policy bots/llm/artifacts/policy.json --seeds 0,1`); exact values. "
        'The first row is the shipped vector; "policy features" re-runs its search.',
        "",
    ] + controls_table(f[f"{RESULTS}/controls_fixed.json"])


def fixed_vector_heldout(f: Files) -> list[str]:
    from training.evaluation.heldout import markdown_summary

    held = f[f"{RESULTS}/heldout_fixed.json"]
    lines = [
        '`autosteer-train heldout --policy bots/llm/artifacts/policy.json --policy none` ("auto" is the '
        "fixed vector, the name stored in this file; exact)."
    ]
    for mode in held["meta"]["modes"]:
        lines += ["", f"**{mode.capitalize()} reading**", ""] + markdown_summary(held, mode)
    return lines


def _outcome(e: dict[str, Any]) -> str:
    return f"{_pct(e['draw'])} / {_pct(e['win'])} / {_pct(e['loss'])} ({_pct(e['illegal'])})"


def learned_policy(f: Files) -> list[str]:
    """The shipped learned policy, from its run card: every open position per phrasing, the
    exact tree walks, and games through the server."""
    card = f[LEARNED_CARD]
    cfg = card["config"]
    rows = []
    tables = [(p, "yes", v) for p, v in card["positions"].items()]
    tables += [(p, "**held out**", v["positions"]) for p, v in card.get("heldout_phrasings", {}).items()]
    for p, trained, table in tables:
        x, o = table["X"], table["O"]
        rows.append(
            [
                f"`{p}`",
                trained,
                f"{_pct(x['kept_share'])} / {_pct(o['kept_share'])}",
                f"{x['illegal']} / {o['illegal']}",
                f"{_num(x['mean_push'])} / {_num(o['mean_push'])}",
                f"{x['mean_features_steered']:.2f} / {o['mean_features_steered']:.2f}",
            ]
        )
    walks = [
        (cfg["phrasings"][0], "minimax", card["vs_minimax_exact"]),
        (cfg["phrasings"][0], "random", card["vs_random_exact"]),
    ]
    walks += [(p, "minimax", v["vs_minimax_exact"]) for p, v in card.get("heldout_phrasings", {}).items()]
    games = {(g["opponent"], g["seat"]): g for g in card.get("server_games", [])}
    wrows = []
    for p, opp, table in walks:
        for seat in ("X", "O"):
            e = table[seat]
            g = games.get((opp, seat)) if p == cfg["phrasings"][0] else None
            played = (
                (
                    f"{g['games']:,}: {g['draws']} / {g['wins']} / {g['losses']} ({g['illegal']})",
                    str(g["distinct_games"]),
                )
                if g
                else ("—", "—")
            )
            wrows.append([f"`{p}`", opp, seat, _outcome(e), str(e["games"]), *played])
    dm = card.get("digit_mass") or {}
    return (
        [
            f"`bots/llm/artifacts/learned_policy.json` (policy `{card['policy_digest']}`), the final policy of "
            f"`{card['command']}` with seed {cfg['seed']} ({card['steps']:,} PPO steps, {card['games']:,} training games "
            f"through the server, {card['wall_seconds']:.0f} s wall; stopped by {card['stopped_by']}). Observation "
            f"`{cfg['obs']}`, {cfg['slots']} distinct features per move at most from {len(card['features'])}, strict "
            f"reading. Model and SAE weights {'identical' if card['weights_unchanged'] else 'CHANGED'} before and after.",
            "",
            "Every open position (4,520), the LLM playing the side to move:",
            "",
        ]
        + _table(
            [
                "phrasing",
                "trained on",
                "value kept X / O",
                "illegal moves X / O",
                "push ‖Δ‖/‖h‖ X / O",
                "features per move X / O",
            ],
            rows,
        )
        + [
            "",
            "Exact outcome (the policy walked over the whole game tree) and games through an in-process server "
            "(the bot a remote client, seeded games):",
            "",
        ]
        + _table(
            [
                "phrasing",
                "opponent",
                "LLM seat",
                "exact: draw / win / loss (illegal)",
                "distinct games (exact)",
                "games: draws / wins / losses (illegal)",
                "distinct games (played)",
            ],
            wrows,
        )
        + (
            [
                "",
                f"Digits' share of the next-token distribution under its steering, every open position: mean "
                f"{dm['mean']:.3f}, min {dm['min']:.3f}.",
            ]
            if dm.get("boards")
            else []
        )
    )


def _over(st: dict[str, Any], key: str, pct: bool = True, fmt: str = ".2f") -> str:
    """``mean [min–max]`` over seeds of one figure of a ``--summary`` JSON."""
    v = st.get(key)
    if v is None:
        return "—"
    if pct:
        one = f"{100 * v['mean']:.1f}"
        return one if v["min"] == v["max"] else f"{one} [{100 * v['min']:.1f}–{100 * v['max']:.1f}]"
    one = format(v["mean"], fmt)
    return one if v["min"] == v["max"] else f"{one} [{format(v['min'], fmt)}–{format(v['max'], fmt)}]"


def _pair(st: dict[str, Any], a: str, b: str, pct: bool = True, fmt: str = ".2f") -> str:
    return f"{_over(st, a, pct, fmt)} / {_over(st, b, pct, fmt)}"


def whole_game_policies(f: Files) -> list[str]:
    """The learned policies trained over the whole game (``--summary`` JSONs): the recipe
    over three seeds, the result-only reward and the equal-step controls, each figure the
    mean [min–max] over seeds of the final policies."""
    head = f[WHOLE_GAME]
    train = head["config"]["phrasings"]
    held = sorted({k.split("_")[2] for k in head["over_seeds"] if k.startswith("heldout_kept_")})
    # a column for every phrasing some run trained on: the recipe's first, then the others'
    shown = list(train)
    for _, path in WHOLE_GAME_RUNS:
        for p in (f.get(path) or {}).get("config", {}).get("phrasings", []):
            if p not in shown and p not in held:
                shown.append(p)
    cols = [
        "run",
        "seeds",
        "steps",
        *[f"value kept `{p}` X / O (%)" for p in shown],
        *[f"**held out** `{p}`: value kept X / O (%)" for p in held],
        "illegal moves (all phrasings)",
        f"vs minimax draws X / O (%, `{train[0]}`)",
        "vs random wins X / O (%)",
        "push ‖Δ‖/‖h‖ X / O",
        "features per move X / O",
        "min digit mass",
    ]
    rows = []
    for name, path in WHOLE_GAME_RUNS:
        data = f.get(path)
        if data is None:
            continue
        st = data["over_seeds"]
        illegal = sum(v["mean"] for k, v in st.items() if "illegal" in k and "random" not in k)
        rows.append(
            [
                name,
                ", ".join(map(str, data["seeds"])),
                _over(st, "steps", False, ",.0f"),
                *[_pair(st, f"kept_{p}_X", f"kept_{p}_O") for p in shown],
                *[_pair(st, f"heldout_kept_{p}_X", f"heldout_kept_{p}_O") for p in held],
                f"{illegal:.1f}",
                _pair(st, "draw_minimax_X", "draw_minimax_O"),
                _pair(st, "win_random_X", "win_random_O"),
                _pair(st, f"push_{train[0]}_X", f"push_{train[0]}_O", False),
                _pair(st, f"features_{train[0]}_X", f"features_{train[0]}_O", False),
                _over(st, "digit_mass_min", False, ".3f"),
            ]
        )
    runs = head["runs"]
    per_seed = [
        [
            str(r["seed"]),
            r["policy_digest"],
            f"{r['steps']:,}",
            r["stopped_by"],
            f"{r['wall_seconds']:.0f}",
            *[f"{100 * r[f'kept_{p}_X']:.1f} / {100 * r[f'kept_{p}_O']:.1f}" for p in train],
            *[f"{100 * r[f'heldout_kept_{p}_X']:.1f} / {100 * r[f'heldout_kept_{p}_O']:.1f}" for p in held],
            f"{100 * r['draw_minimax_X']:.1f} / {100 * r['draw_minimax_O']:.1f}",
            f"{100 * r['win_random_X']:.2f} / {100 * r['win_random_O']:.2f}",
        ]
        for r in runs
    ]
    return (
        [
            f"{_commands(head['command'])}. Strict reading (an occupied cell loses). Every figure is exact: value kept "
            f"= the share of all 4,520 open positions (per side to move) where the steered move keeps the solved "
            f"game's value; draws / wins = the policy walked over the whole game tree against minimax (uniform "
            f"tie-breaks) / a uniform random player. Final policies (no snapshot selection); mean [min–max] over "
            f"seeds. Training phrasings {', '.join(f'`{p}`' for p in train)}; held out: "
            f"{', '.join(f'`{p}`' for p in held) or 'none'}. Model and SAE weights "
            f"{'identical' if head['weights_unchanged'] else 'CHANGED'} before and after every run (sha256 in the "
            f"JSON). Reference: house minimax wins 96.78 % / 77.75 % against random as X / O.",
            "",
        ]
        + _table(cols, rows)
        + ["", "Each seed of the recipe:", ""]
        + _table(
            [
                "seed",
                "policy",
                "steps",
                "stopped by",
                "wall s",
                *[f"kept `{p}` X / O" for p in train],
                *[f"held out `{p}` X / O" for p in held],
                "vs minimax draws X / O",
                "vs random wins X / O",
            ],
            per_seed,
        )
    )


def actuator_reach(f: Files) -> list[str]:
    """What one steered feature, or a pair, can do per position (``autosteer-train reach``), and how
    well each way of picking among the steerings that work in the training phrasings
    carries over to the held-out phrasing."""
    r = f[REACH]
    train, held = r["training_phrasings"], r["heldout_phrasing"]
    sample = f"{r['boards']} open positions" + (
        f" drawn with seed {r['sample_seed']}" if r.get("sample_seed") is not None else " (all)"
    )
    rows = [
        [
            f"`{p}`" + (" (held out)" if p == held else ""),
            *[_pct(v[s]["unsteered_kept"]) for s in ("X", "O")],
            *[_pct(v[s]["reachable"]) for s in ("X", "O")],
        ]
        for p, v in r["per_phrasing"].items()
    ]
    tog, pick = r["together"], r["transfer_of_a_pick"]
    rows2 = [
        [
            "one action keeps the value in every training phrasing",
            *[_pct(tog[s]["every_training_phrasing"]) for s in ("X", "O")],
        ],
        [
            f"… and in `{held}` too (the best a one-feature policy can do there)",
            *[_pct(tog[s]["training_and_heldout"]) for s in ("X", "O")],
        ],
        [
            f"`{held}` kept by a random one of the training phrasings' actions",
            *[_pct(pick[s]["random_training_action"]) for s in ("X", "O")],
        ],
        [
            f"`{held}` kept by the one with the largest keep margin",
            *[_pct(pick[s]["largest_margin"]) for s in ("X", "O")],
        ],
        [f"`{held}` kept by the one with the smallest push", *[_pct(pick[s]["smallest_push"]) for s in ("X", "O")]],
    ]
    pairs = r.get("with_pairs")
    if pairs is not None:
        at = "±{" + ", ".join(f"{x:g}" for x in r["pair_strengths"] if x > 0) + "}"
        rows2 += [
            [
                f"one action or a pair of distinct features at {at} keeps it in every training phrasing",
                *[_pct(pairs[s]["every_training_phrasing"]) for s in ("X", "O")],
            ],
            [
                f"… and in `{held}` too (the best a two-feature policy can do there, at least)",
                *[_pct(pairs[s]["training_and_heldout"]) for s in ("X", "O")],
            ],
            [
                f"`{held}` alone, one action or such a pair",
                *[_pct(pairs[s]["heldout_alone"]) for s in ("X", "O")],
            ],
        ]
    buckets = [
        [
            f"{b['margin_from']:g}–{b['margin_to']:g}" if b["margin_to"] is not None else f"≥ {b['margin_from']:g}",
            f"{b['pairs']:,}",
            _pct(b["heldout_kept"]),
        ]
        for b in r["margin_buckets"]
    ]
    return (
        [
            f"`{r['command']}`: on {sample}, every single action of the shipped policy's action space "
            f"({r['actions']}: no steering, or one of its {len(r['features'])} features at one of "
            f"±{{{', '.join(f'{abs(x):g}' for x in r['strengths'] if x > 0)}}}), strict reading, exact; no policy is "
            f"trained. Training phrasings {', '.join(f'`{p}`' for p in train)}, held out `{held}`. The picks are "
            f"scored on the positions where some action keeps the value in every training phrasing. Keep margin: "
            f"log p(best value-keeping cell) − log p(best other digit), the smaller over the training phrasings. "
            f"Model and SAE weights {'identical' if r['weights_unchanged'] else 'CHANGED'} before and after.",
            "",
        ]
        + _table(["phrasing", "unsteered keeps X (%)", "O (%)", "some action keeps X (%)", "O (%)"], rows)
        + [""]
        + _table(["steering per move", "X (%)", "O (%)"], rows2)
        + ["", "Actions that keep the value in every training phrasing, by their keep margin there:", ""]
        + _table(["keep margin (nats)", "(position, action) pairs", f"also keep it in `{held}` (%)"], buckets)
    )


# Learned steering policies: a new result goes here, as one more function above this line
# and one more Section in SECTIONS below (in the block marked "learned steering policies").


def tournament_llm(f: Files) -> list[str]:
    t = f[TOURNAMENT_LLM]
    wdl: dict[tuple[str, str], str] = {}
    for p in t["pairings"]:
        wdl[(p["a"], p["b"])] = f"{p['wins']} / {p['draws']} / {p['losses']}"
        wdl[(p["b"], p["a"])] = f"{p['losses']} / {p['draws']} / {p['wins']}"
    rows = []
    for rank, r in enumerate(sorted(t["ratings"]["ratings"], key=lambda r: -r["elo"]), 1):
        rows.append(
            [
                str(rank),
                r["name"],
                f"{r['elo']:.0f} [{r['low']:.0f}–{r['high']:.0f}]",
                _pct(r["score_rate"]),
                wdl.get((r["name"], "minimax"), "—"),
                wdl.get((r["name"], "random"), "—"),
            ]
        )
    return [
        f"`scripts/llm_tournament.sh {t['games_per_pairing']} docs/results/tournament_llm {t['seed']}`: one "
        f"server, the LLM bots as remote bots in their own processes, all strict (an occupied cell forfeits), "
        f"{t['games_per_pairing']} games per pairing with sides alternating, every game seeded; Elo by maximum "
        f"likelihood with {100 * t['ratings']['confidence']:.0f} % bootstrap intervals "
        f"([cross table](results/tournament_llm/tournament.md)). llm-unsteered: no steering; llm-fixed: the fixed "
        f"vector; llm-learned: the learned policy.",
        "",
    ] + _table(["rank", "bot", "Elo [95 %]", "score", "vs minimax (W/D/L)", "vs random (W/D/L)"], rows)


def sae(f: Files) -> list[str]:
    c = f[SAE_CARD]
    q, ce = c["quality"], c["ce_loss"]
    rows = [
        ["hook", f"`{c['hook_name']}`"],
        ["architecture", f"{c['architecture']}, d_sae {c['d_sae']}, k {c['k']}"],
        ["explained variance (held out)", _num(q["explained_variance"], ".3f")],
        ["L0", _num(q["l0"], ".0f")],
        ["dead fraction", _num(q["dead_fraction"], ".3f")],
        ["CE loss recovered", _num(ce["recovered"], ".3f")],
        ["training activations", f"{c['data']['train_activations']:,}"],
        ["time", f"{c['seconds']['total'] / 60:.0f} min, torch threads: {c['threads']}"],
    ]
    return [f"`{c['command']}` ({c['model']}); details in [SAE.md](SAE.md).", ""] + _table(["", "value"], rows)


def _median_client_cpu(load: dict[str, Any], connections: int) -> float | None:
    vals = [
        r["client_cpu_us_per_msg"]
        for r in load["runs"]
        if r["server"] == "arena"
        and r["connections"] == connections
        and not r["paced"]
        and r.get("client_cpu_us_per_msg") is not None
    ]
    return statistics.median(vals) if vals else None


def server_load(f: Files) -> list[str]:
    """Arena against a plain websockets echo server, medians of the repeats, with the two bounds."""
    load = f[SERVER_LOAD]
    cores = load.get("cores")
    rows = []
    for s in load["summary"]:
        conns = f"{s['connections']:,}" + (", a move a second each" if s["paced"] else "")
        if s["paced"]:
            rows.append(
                [
                    conns,
                    "–",
                    _thousands(s["arena_msgs"]),
                    _thousands(s["echo_msgs"]),
                    f"**{s['arena_p50']:.1f} / {s['arena_p99']:.1f} ms**",
                    f"{s['arena_cpu_us']:.0f} / {s['echo_cpu_us']:.0f} µs",
                    "–",
                    "–",
                    "p99 ≤ 10 ms",
                ]
            )
            continue
        client = _median_client_cpu(load, s["connections"])
        machine = (
            "–"
            if not (cores and client)
            else (
                f"{_thousands(cores * 1e6 / (s['arena_cpu_us'] + client))} ({s['arena_cpu_us']:.0f} + {client:.0f} µs)"
            )
        )
        rows.append(
            [
                conns,
                f"**{s['ratio']:.2f}** ({', '.join(f'{r:.2f}' for r in s['ratios_per_repeat'])})",
                _thousands(s["arena_msgs"]),
                _thousands(s["echo_msgs"]),
                f"{s['arena_p50']:.1f} / {s['arena_p99']:.1f} ms",
                f"{s['arena_cpu_us']:.0f} / {s['echo_cpu_us']:.0f} µs",
                _thousands(s["arena_main_bound"]) if s.get("arena_main_bound") else "–",
                machine,
                _thousands(0.6 * s["echo_msgs"]),
            ]
        )
    argv = [a for a in load["argv"]]
    for flag in ("--json", "--plot"):
        if flag in argv:
            i = argv.index(flag)
            del argv[i : i + 2]
    lines = [
        f"`python bench/server_load.py {' '.join(argv)}` on a {cores}-core machine; N connections play random "
        "legal moves against the house random bot, medians of the repeats (each repeat in brackets). Method, "
        "bounds and the goal: [PERFORMANCE.md](PERFORMANCE.md).",
        "",
    ] + _table(
        [
            "connections",
            "arena / echo, requests/s",
            "arena requests/s",
            "echo requests/s",
            "arena p50 / p99",
            "server CPU per request, arena / echo",
            "bound: the event loop",
            f"bound: {cores} cores (arena + client)",
            "the goal (0.6 × echo) needs",
        ],
        rows,
    )
    nostore = f.get(SERVER_LOAD_NO_STORING)
    if nostore:
        s = next((s for s in nostore["summary"] if s["connections"] == 100 and not s["paced"]), None)
        if s:
            lines += [
                "",
                f"Without storing (`--arena-arg=--db=:memory:`, `{SERVER_LOAD_NO_STORING}`, before the "
                f"warm-up existed): {_thousands(s['arena_msgs'])} requests/s at 100 connections, "
                f"{s['ratio']:.2f} of the echo server's {_thousands(s['echo_msgs'])}.",
            ]
    return lines


# --------------------------------------------------------------------------- the registry
SECTIONS: list[Section] = [
    # the fixed vector (cross-entropy search) and the unsteered model
    Section(
        "The LLM bot, unsteered and with the fixed vector",
        (f"{RESULTS}/llm_baseline_unsteered.json", f"{RESULTS}/llm_steered_fixed.json"),
        fixed_vector_vs_minimax_and_random,
        optional=(f"{RESULTS}/heldout_fixed.json",),
    ),
    Section(
        "Fixed vector: unoptimised controls",
        tuple(
            f"{RESULTS}/{n}.json"
            for n in (
                "llm_steered_fixed",
                "llm_control_zero",
                "llm_control_negate",
                "llm_control_shuffle",
                "llm_control_random",
            )
        ),
        fixed_vector_unoptimised_controls,
    ),
    Section(
        "Fixed vector: equal-effort controls", (f"{RESULTS}/controls_fixed.json",), fixed_vector_equal_effort_controls
    ),
    Section("Fixed vector: held out", (f"{RESULTS}/heldout_fixed.json",), fixed_vector_heldout),
    # learned steering policies (RL): add new sections in this block
    Section(
        "Learned steering policies over the whole game (RL)",
        (WHOLE_GAME,),
        whole_game_policies,
        optional=tuple(p for _, p in WHOLE_GAME_RUNS[1:]),
    ),
    Section("The shipped learned policy", (LEARNED_CARD,), learned_policy),
    Section("What one or two steered features can do, and which pick transfers", (REACH,), actuator_reach),
    # end of the learned-policy block
    Section("Tournament: minimax, random and three LLM bots", (TOURNAMENT_LLM,), tournament_llm),
    Section("The SAE", (SAE_CARD,), sae),
    Section("The server under load", (SERVER_LOAD,), server_load, optional=(SERVER_LOAD_NO_STORING,)),
]


# --------------------------------------------------------------------------- the headline
def _load(root: Path, rel: str) -> Any | None:
    path = root / rel
    return json.loads(path.read_text()) if path.is_file() else None


def _arm(data: dict[str, Any], opponent: str, seat: str, mode: str) -> dict[str, Any] | None:
    return next((a for a in data["arms"] if (a["opponent"], a["seat"], a["mode"]) == (opponent, seat, mode)), None)


def _exact_draws(data: dict[str, Any], mode: str) -> str | None:
    x, o = _arm(data, "minimax", "X", mode), _arm(data, "minimax", "O", mode)
    if not (x and o and x.get("exact") and o.get("exact")):
        return None
    return f"{_pct(x['exact']['draw'])} / {_pct(o['exact']['draw'])}"


def headline_rows(root: Path = ROOT) -> list[list[str]]:
    """Five to eight rows for the README: what, the figure, where its table is. A row whose
    file is absent is left out."""
    rows: list[list[str]] = []
    link = "[table](docs/RESULTS.md#{})"
    base = _load(root, f"{RESULTS}/llm_baseline_unsteered.json")
    if base and (d := _exact_draws(base, "strict")):
        rows.append(
            [
                "SmolLM2 unsteered vs minimax: exact draw X / O (strict)",
                d,
                link.format("the-llm-bot-unsteered-and-with-the-fixed-vector"),
            ]
        )
    fixed = _load(root, f"{RESULTS}/llm_steered_fixed.json")
    if fixed and (m := _exact_draws(fixed, "masked")) and (s := _exact_draws(fixed, "strict")):
        rows.append(
            [
                "fixed steering vector vs minimax: exact draw X / O (masked; strict)",
                f"{m}; {s}",
                link.format("the-llm-bot-unsteered-and-with-the-fixed-vector"),
            ]
        )
    whole = _load(root, WHOLE_GAME)
    if whole:
        st = whole["over_seeds"]
        train = whole["config"]["phrasings"]
        anchor = link.format("learned-steering-policies-over-the-whole-game-rl")
        n = len(whole["seeds"])
        rows.append(
            [
                f"learned steering policy (PPO, {n} seeds, final policies): value kept on all 4,520 open positions "
                f"X / O, `{train[0]}` (strict; goal ≥ 99 %); push ‖Δ‖/‖h‖ X / O (goal ≤ 0.15)",
                f"**{_pair(st, f'kept_{train[0]}_X', f'kept_{train[0]}_O')} %**; "
                f"{_pair(st, f'push_{train[0]}_X', f'push_{train[0]}_O', False)}",
                anchor,
            ]
        )
        held = sorted({k.split("_")[2] for k in st if k.startswith("heldout_kept_")})
        for p in held:
            rows.append(
                [
                    f"learned policy on the **held-out** phrasing `{p}`: value kept X / O (goal ≥ 90 %)",
                    f"{_pair(st, f'heldout_kept_{p}_X', f'heldout_kept_{p}_O')} %",
                    anchor,
                ]
            )
        rows.append(
            [
                "learned policy, exact: draws vs minimax X / O; wins vs random X / O (house minimax 96.8 / 77.8)",
                f"{_pair(st, 'draw_minimax_X', 'draw_minimax_O')} %; {_pair(st, 'win_random_X', 'win_random_O')} %",
                anchor,
            ]
        )
    t = _load(root, TOURNAMENT_LLM)
    if t:
        ranked = sorted(t["ratings"]["ratings"], key=lambda r: -r["elo"])
        rows.append(
            [
                "tournament Elo (strict, 40 games per pairing)",
                ", ".join(f"{r['name']} {r['elo']:.0f}" for r in ranked),
                link.format("tournament-minimax-random-and-three-llm-bots"),
            ]
        )
    c = _load(root, SAE_CARD)
    if c:
        rows.append(
            [
                f"SAE at `{c['hook_name']}`: explained variance, CE loss recovered",
                f"{c['quality']['explained_variance']:.3f}, {c['ce_loss']['recovered']:.3f}",
                link.format("the-sae"),
            ]
        )
    load = _load(root, SERVER_LOAD)
    if load:
        closed = [s for s in load["summary"] if not s["paced"]]
        paced = next((s for s in load["summary"] if s["paced"]), None)
        figure = " / ".join(f"{s['ratio']:.2f}" for s in closed)
        what = (
            "server: requests/s as a share of a websockets echo server's, at "
            + " / ".join(f"{s['connections']:,}" for s in closed)
            + " connections"
        )
        if paced:
            what += f"; p99 at {paced['connections']:,} paced"
            figure += f"; {paced['arena_p99']:.1f} ms"
        rows.append([what, figure, link.format("the-server-under-load")])
    return rows


def headline_table(root: Path = ROOT) -> list[str]:
    return _table(["result", "measured", "table"], headline_rows(root))


# --------------------------------------------------------------------------- the document
def render(root: Path = ROOT, missing: list[str] | None = None) -> str:
    """docs/RESULTS.md as text. Paths of files a section needed and did not find are appended
    to ``missing``."""
    out = [
        "# Results",
        "",
        f"Generated by `{COMMAND}` from the JSON files each section names; do not edit by hand.",
        "Every row says how it was measured; the protocol behind the LLM rows is [EVALUATION.md](EVALUATION.md).",
        "",
        "## Headline",
        "",
    ]
    out += [line.replace("(docs/RESULTS.md#", "(#") for line in headline_table(root)]
    for section in SECTIONS:
        absent = [p for p in section.needs if not (root / p).is_file()]
        if absent:
            if missing is not None:
                missing.extend(absent)
            continue
        files = {p: _load(root, p) for p in section.needs + section.optional}
        files = {p: v for p, v in files.items() if v is not None}
        out += ["", f"## {section.title}", "", _sources(tuple(files)), ""] + section.render(files)
    out += [
        "",
        "## Figures without a result file",
        "",
        "- The solved game (5,478 positions; minimax never loses; the perfect player's 99.48 % / 91.64 % wins "
        "against a random player) is exact, computed from the rules and pinned by `tests/test_solver.py`.",
        "- LLM move latency is printed by `python bench/llm_move.py` and not stored: "
        "[LLM_BOT.md](LLM_BOT.md) gives its last figures with the command.",
        "- Two servers on one broker: [SCALING.md](SCALING.md) (`python bench/cluster.py`).",
    ]
    return "\n".join(out) + "\n"


def replace_headline(readme: str, table: list[str]) -> str:
    """README text with the block between the headline markers replaced by ``table``."""
    try:
        head, rest = readme.split(HEADLINE_BEGIN, 1)
        _, tail = rest.split(HEADLINE_END, 1)
    except ValueError:
        raise ValueError(
            f"the README has no headline block: add the lines {HEADLINE_BEGIN!r} and "
            f"{HEADLINE_END!r} where the table goes"
        ) from None
    return head + HEADLINE_BEGIN + "\n" + "\n".join(table) + "\n" + HEADLINE_END + tail


def write(results_md: Path | None, readme: Path | None, root: Path = ROOT) -> int:
    """Write docs/RESULTS.md and/or the README's headline block; print what was done."""
    missing: list[str] = []
    if results_md is not None:
        results_md.write_text(render(root, missing))
        print(f"wrote {results_md} ({len(SECTIONS)} sections registered, {len(set(missing))} result file(s) absent)")
        for p in sorted(set(missing)):
            print(f"  skipped a section: {p} not found", file=sys.stderr)
    if readme is not None:
        try:
            readme.write_text(replace_headline(readme.read_text(), headline_table(root)))
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"wrote the headline table in {readme}")
    return 0
