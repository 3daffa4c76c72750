"""``autosteer-train ppo``: learn a board-dependent steering policy with stable-baselines3 PPO
by playing the server's house bots over the whole game, then evaluate it exactly and ship it.

The defaults are the documented recipe (docs/RL.md); flags are for ablations. The method is
:func:`training.rl.ppo.train_ppo` (see that module); this command runs it once per seed and
then, on each final policy (every figure exact, :mod:`training.rl.evaluation`): value kept
on every open position in each training phrasing, the tree walks against minimax and the
random player, the digits' share of the next-token distribution, ``--server-games`` games
through a server, and the held-out ``--heldout-phrasings``.

Outputs in ``--out``: ``policy.json`` (kind ``learned``), ``run_card.json``/``.md``
(command, seeds, features, obs/action modes, hyper-parameters, wall and CPU time and where
it went, evaluations, model and SAE weight hashes before and after), ``train.csv``,
``eval.csv``; the learning curve PNG (``--plot``). With several ``--seeds`` one run per seed
goes to ``--out/seed-N`` and ``--summary`` gathers their final evaluations (mean and
spread). ``--ship`` copies one final policy and its card to ``bots/llm/artifacts/``: the
first seed's with no illegal move in the bot's phrasing (:func:`training.rl.cards.to_ship`).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Sequence

from training.rl.cards import (
    SHIPPED_NAME,
    curve_title,
    kept_line,
    plot_learning_curve,
    ship_recipe,
    summarize,
    write_card_md,
)
from training.rl.evaluation import digit_mass_check, evaluate_exact, evaluate_positions, play_server_games
from training.rl.ppo import ROOT, TrainConfig, build_actuators, pick_features, train_ppo, warm_actuators

DEFAULT_PLOT = ROOT / "docs" / "rl_learning_curve.png"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags; each knob's default is the recipe's (:class:`TrainConfig`)."""
    d = TrainConfig()
    g = parser.add_argument
    _add_steering_flags(g, d)
    _add_game_flags(g, d)
    _add_ppo_flags(g, d)
    _add_stop_flags(g, d)
    _add_run_flags(g, d)


def _add_steering_flags(g: Callable[..., Any], d: TrainConfig) -> None:
    """Flags of the model, the SAE, the features steered and the action space."""
    g("--model", default="smollm2", help="model to steer (see autosteer-bot run --help)")
    g("--sae", default="auto", help="SAE folder, registry id, or 'auto' (the shipped one)")
    g("--features", default="", help="comma-separated feature indices to steer (default: picked, see --pick)")
    g(
        "--pick",
        choices=("labels", "random", "shuffled"),
        default=d.pick,
        help="how features are picked when --features is not given (random, shuffled: equal-effort controls)",
    )
    g("--n-features", type=int, default=d.n_features, help="features to steer when picking")
    g(
        "--basis",
        choices=("sae", "directions"),
        default=d.basis,
        help="sae: steer along the features' decoder rows; directions: seeded random residual directions of the same "
        "norms instead (the non-SAE control; the policy is then not shippable)",
    )
    g(
        "--obs",
        choices=("board", "board+model", "features"),
        default=d.obs,
        help="observation: the board; the board and the model's own unsteered move distribution; or the SAE activations "
        "of the labelled features",
    )
    g(
        "--action",
        choices=("sparse", "dense"),
        default=d.action,
        help="sparse: feature+strength per slot; dense: a coefficient per feature",
    )
    g(
        "--strengths",
        default=",".join(f"{s:g}" for s in d.strengths),
        help="sparse: the signed coefficients a slot can apply",
    )
    g("--slots", type=int, default=d.slots, help="sparse: distinct features steered per move at most")
    g("--bound", type=float, default=d.bound, help="dense: coefficients lie in [-bound, bound]")


def _add_game_flags(g: Callable[..., Any], d: TrainConfig) -> None:
    """Flags of the training games: seats, reading, reward, opponents, openings, phrasings."""
    g("--seat", choices=("X", "O", "both"), default=d.seat, help="the LLM's seat in training games")
    g("--p-o", type=float, default=d.p_o, help="share of training games as O when --seat both")
    g("--mode", choices=("strict", "masked"), default=d.mode, help="move reading (strict is the headline)")
    g("--push-cost", type=float, default=d.push_cost, help="reward cost per move per unit of ||added||/||residual||")
    g(
        "--shaping",
        choices=("value", "none"),
        default=d.shaping,
        help="value: each move paid the change of the solved game's value it makes; none: the game's result only (needs --gamma > 0)",
    )
    g(
        "--margin-reward",
        type=float,
        default=d.margin_reward,
        help="value shaping: each move also earns this x clip(keep margin / --margin-cap, -1, 1), the keep margin being "
        "log p(best value-keeping cell) - log p(best other digit)",
    )
    g("--margin-cap", type=float, default=d.margin_cap, help="nats of keep margin that earn the whole margin reward")
    g(
        "--judge",
        choices=("game", "phrasings"),
        default=d.judge,
        help="value shaping: judge a move in its game's phrasing, or play its action in every training phrasing "
        "(value change: their mean; keep margin: their least)",
    )
    g(
        "--opponents",
        default=d.opponents,
        help="house bots the training games are drawn against, name[:weight], comma-separated",
    )
    g(
        "--random-openings",
        type=float,
        default=d.random_openings,
        help="chance that a game opens with random moves of the LLM's side (played by the environment)",
    )
    g("--max-random-moves", type=int, default=d.max_random_moves, help="such an opening has 1..this many random moves")
    g(
        "--start-positions",
        type=float,
        default=d.start_positions,
        help="chance that a game starts from an open position (the LLM's side to move) drawn by --curriculum, "
        "sent to the server as the challenge's opening",
    )
    g(
        "--curriculum",
        choices=("prioritized", "uniform"),
        default=d.curriculum,
        help="how start positions are drawn: prioritized (by the policy's recent value losses there) or uniform",
    )
    g(
        "--curriculum-floor",
        type=float,
        default=d.curriculum_floor,
        help="prioritized: added to every (position, phrasing) failure score before drawing (lower: more games where "
        "the policy still fails)",
    )
    g(
        "--phrasings",
        default=",".join(d.phrasings),
        help="training prompt phrasings (comma list of grid, rows, moves, string, list)",
    )


def _add_ppo_flags(g: Callable[..., Any], d: TrainConfig) -> None:
    """Flags of PPO's hyper-parameters and networks."""
    g("--n-envs", type=int, default=d.n_envs, help="games played at once (one batched LLM call per step)")
    g("--n-steps", type=int, default=d.n_steps, help="PPO rollout length per game slot")
    g("--batch-size", type=int, default=d.batch_size, help="PPO minibatch size")
    g("--n-epochs", type=int, default=d.n_epochs, help="PPO epochs per update")
    g("--lr", type=float, default=d.learning_rate, help="PPO learning rate")
    g(
        "--lr-schedule",
        choices=("constant", "linear"),
        default=d.lr_schedule,
        help="constant, or linear: annealed to 0 over --total-steps",
    )
    g("--gamma", type=float, default=d.gamma, help="discount")
    g("--gae-lambda", type=float, default=d.gae_lambda, help="GAE lambda")
    g("--ent-coef", type=float, default=d.ent_coef, help="entropy bonus")
    g("--clip-range", type=float, default=d.clip_range, help="PPO clip range")
    g(
        "--baseline",
        choices=("state", "constant"),
        default=d.baseline,
        help="the advantage's baseline: state (a learned V(board)) or constant (one learned number for every board)",
    )
    g(
        "--net-arch",
        default=",".join(str(n) for n in d.net_arch),
        help="hidden layer sizes of the policy and value nets",
    )
    g(
        "--none-bias",
        default=",".join(f"{b:g}" for b in d.none_bias),
        help="sparse: added to each slot's 'no steering' logit at the start (comma list, one per slot; the last repeats)",
    )


def _add_stop_flags(g: Callable[..., Any], d: TrainConfig) -> None:
    """Flags of the step budget, evaluations and the stopping rule."""
    g("--total-steps", type=int, default=d.total_steps, help="PPO steps (LLM moves) at most")
    g("--budget-seconds", type=float, default=d.budget_seconds, help="wall-clock budget, warm-up included")
    g("--eval-every", type=int, default=d.eval_every, help="steps between exact evaluations")
    g(
        "--target",
        type=float,
        default=d.target,
        help="goal of an evaluation: value kept on both sides in every training phrasing, and draws vs minimax",
    )
    g("--stable-evals", type=int, default=d.stable_evals, help="stop once this many evaluations in a row meet --target")


def _add_run_flags(g: Callable[..., Any], d: TrainConfig) -> None:
    """Flags of seeds, the server, warm-up, after-training evaluation, outputs, MQTT and shipping."""
    g(
        "--seeds",
        default="",
        help="comma-separated seeds: one run each (in --out/seed-N, sharing the prompt cache); default: --seed alone",
    )
    g(
        "--summary",
        type=Path,
        default=None,
        help="JSON gathering the runs' final evaluations (mean and spread over seeds)",
    )
    g(
        "--via",
        choices=("server", "local"),
        default=d.via,
        help="server: through an arena server (headline); local: in-process",
    )
    g("--server", default=None, help="URL of a running arena server (default: start one in-process on a free port)")
    g("--seed", type=int, default=d.seed, help="seed of PPO, the seats and the minimax games")
    g("--no-warm", action="store_true", help="do not run every LLM board's prompt before training")
    g(
        "--no-prompt-store",
        action="store_true",
        help="do not load/save the warm-up's prompt cache on disk "
        "(~/.cache/autosteer-arena/prompts; a pure function of weights and prompts)",
    )
    g(
        "--server-games",
        type=int,
        default=0,
        help="after training, also play this many games per seat vs minimax "
        "and vs random through a server with the final policy",
    )
    g(
        "--heldout-phrasings",
        default="list",
        help="after training, also evaluate exactly on these prompt phrasings (comma list; not trained on)",
    )
    g(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads for training (1 is fastest: small steps, a server beside)",
    )
    g("--warm-threads", type=int, default=2, help="torch CPU threads for the warm-up's prefill (large matrix work)")
    g(
        "--out",
        type=Path,
        default=ROOT / "var" / "rl" / "run",
        help="folder for the policy, logs, checkpoint and run card",
    )
    g("--resume", action="store_true", help="continue from the checkpoint in --out")
    g("--plot", type=Path, default=DEFAULT_PLOT, help="learning-curve PNG")
    g(
        "--mqtt",
        metavar="URL",
        default=None,
        help="publish each exact evaluation and the final summary to this MQTT broker, mqtt://host[:port][/prefix] "
        "(topics P/training/RUN/progress|summary; 'autosteer-server watch' prints them)",
    )
    g(
        "--run-id",
        default=None,
        help="the run's name on the broker (default: ppo-UNIXTIME; -seedN added with several seeds)",
    )
    g(
        "--ship",
        action="store_true",
        help=f"copy a final policy and its run card to bots/llm/artifacts/{SHIPPED_NAME}: the first seed's "
        "with no illegal move on any open position in the bot's phrasing (else the first seed's)",
    )


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    def floats(text: str) -> list[float]:
        return [float(x) for x in text.split(",") if x.strip()]

    return TrainConfig(
        seed=args.seed,
        features=[int(x) for x in args.features.split(",") if x.strip()],
        pick=args.pick,
        n_features=args.n_features,
        basis=args.basis,
        obs=args.obs,
        action=args.action,
        strengths=floats(args.strengths),
        slots=args.slots,
        bound=args.bound,
        seat=args.seat,
        p_o=args.p_o,
        mode=args.mode,
        push_cost=args.push_cost,
        shaping=args.shaping,
        n_envs=args.n_envs,
        n_steps=args.n_steps,
        batch_size=args.batch_size,
        n_epochs=args.n_epochs,
        learning_rate=args.lr,
        lr_schedule=args.lr_schedule,
        gamma=args.gamma,
        gae_lambda=args.gae_lambda,
        ent_coef=args.ent_coef,
        clip_range=args.clip_range,
        baseline=args.baseline,
        net_arch=[int(x) for x in args.net_arch.split(",") if x.strip()],
        none_bias=floats(args.none_bias) or [0.0],
        total_steps=args.total_steps,
        budget_seconds=args.budget_seconds,
        eval_every=args.eval_every,
        target=args.target,
        via=args.via,
        warm=not args.no_warm,
        prompt_store=not args.no_prompt_store,
        opponents=args.opponents,
        random_openings=args.random_openings,
        max_random_moves=args.max_random_moves,
        start_positions=args.start_positions,
        curriculum=args.curriculum,
        margin_reward=args.margin_reward,
        margin_cap=args.margin_cap,
        judge=args.judge,
        curriculum_floor=args.curriculum_floor,
        phrasings=[p.strip() for p in args.phrasings.split(",") if p.strip()],
        stable_evals=args.stable_evals,
    )


def _check(cfg: TrainConfig, args: argparse.Namespace) -> list[int]:
    from bots.llm.prompt import PHRASINGS
    from training.rl.env import parse_opponents

    if cfg.n_envs < 1 or cfg.n_steps < 1 or cfg.total_steps < 1 or cfg.slots < 1 or cfg.stable_evals < 1:
        raise ValueError("--n-envs, --n-steps, --total-steps, --slots and --stable-evals must be at least 1")
    if args.threads < 1:
        raise ValueError("--threads must be at least 1")
    parse_opponents(cfg.opponents)
    held = [p.strip() for p in args.heldout_phrasings.split(",") if p.strip()]
    for p in [*cfg.phrasings, *held]:
        if p not in PHRASINGS:
            raise ValueError(f"unknown phrasing {p!r}; expected one of {', '.join(PHRASINGS)}")
    if not cfg.phrasings:
        raise ValueError("--phrasings names no phrasing")
    if set(held) & set(cfg.phrasings):
        raise ValueError(
            f"a held-out phrasing cannot also be a training phrasing: {sorted(set(held) & set(cfg.phrasings))}"
        )
    seeds = [int(x) for x in args.seeds.split(",") if x.strip()] if args.seeds else [cfg.seed]
    if len(set(seeds)) != len(seeds):
        raise ValueError("--seeds repeats a seed")
    return seeds


def after_training(policy: Any, report: dict[str, Any], cfg: TrainConfig, args: argparse.Namespace) -> None:
    """The final policy on what it was trained on, and on the random player (every figure
    exact); the held-out phrasings come later (:func:`heldout_phrasings`)."""
    from training.evaluation.heldout import open_positions

    actuators = report.pop("_actuators")
    first = next(iter(actuators.values()))
    t = time.perf_counter()
    report["positions"] = {name: evaluate_positions(policy, act) for name, act in actuators.items()}
    report["vs_minimax_exact"] = evaluate_exact(policy, first)
    report["vs_random_exact"] = evaluate_exact(policy, first, opponent="random")
    report["digit_mass"] = digit_mass_check(policy, first, open_positions())
    if args.server_games:
        report["server_games"] = [
            *play_server_games(policy, first, args.server_games, cfg.seed, "minimax"),
            *play_server_games(policy, first, args.server_games, cfg.seed, "random"),
        ]
    report["after_training_seconds"] = round(time.perf_counter() - t, 1)


def heldout_phrasings(
    runs: list[tuple[Any, dict[str, Any], TrainConfig]],
    phrasings: Sequence[str],
    lm: Any,
    sae: Any,
    progress: bool = True,
    threads: int = 2,
) -> None:
    """Each run's final policy on the prompt phrasings it was not trained on: value kept on
    every open position and the exact walk against minimax. One phrasing's prompt cache at a
    time (about 4 GB for SmolLM2), shared by the runs."""
    for phrasing in phrasings:
        reader = None
        for policy, report, cfg in runs:
            act = build_actuators(
                lm,
                sae,
                cfg,
                policy.features,
                phrasings=[phrasing],
                readers={phrasing: reader} if reader is not None else None,
            )[phrasing]
            if reader is None and cfg.warm:
                warm_actuators(
                    {phrasing: act},
                    lm,
                    report["weights_before"]["model"],
                    store=cfg.prompt_store,
                    progress=progress,
                    threads=threads,
                )
            reader = act.bot.reader
            t = time.perf_counter()
            report.setdefault("heldout_phrasings", {})[phrasing] = {
                "positions": evaluate_positions(policy, act),
                "vs_minimax_exact": evaluate_exact(policy, act),
            }
            report["heldout_seconds"] = round(report.get("heldout_seconds", 0.0) + time.perf_counter() - t, 1)
        del reader


def run(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console

    from bots.llm.cli import load_sae_arg
    from bots.llm.model import load_model

    console = Console(stderr=True)
    try:
        cfg = config_from_args(args)
        seeds = _check(cfg, args)
    except ValueError as exc:
        console.print(f"[red]error:[/] {exc}")
        return 2
    torch.set_num_threads(args.threads)
    command = "autosteer-train ppo " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "autosteer-train ppo"
    lm = load_model(args.model)
    sae = load_sae_arg(args.sae, lm)
    if sae is None:
        console.print("[red]error:[/] no SAE: train one with `autosteer-train sae` or pass --sae FOLDER")
        return 2
    out_root = Path(args.out)
    readers: dict[str, Any] = {}
    runs: list[tuple[Any, dict[str, Any], TrainConfig]] = []
    weights_hash = lm.weights_hash()
    for seed in seeds:
        run_cfg = TrainConfig(**{**asdict(cfg), "seed": seed})
        out = out_root / f"seed-{seed}" if len(seeds) > 1 else out_root
        done = train_seed(run_cfg, args, lm, sae, out, readers, weights_hash, command, several=len(seeds) > 1)
        if isinstance(done, str):
            console.print(f"[red]error:[/] {done}")
            return 1
        policy, report = done
        runs.append((policy, report, run_cfg))
        (out / "run_card.json").write_text(json.dumps(report, indent=2) + "\n")  # again with the held-out figures
        console.print(seed_line(seed, policy.digest, report))
    readers.clear()  # the training phrasings' prompt caches: free them before the held-out ones
    heldout_phrasings(
        runs, [p.strip() for p in args.heldout_phrasings.split(",") if p.strip()], lm, sae, threads=args.warm_threads
    )
    cards = write_cards([report for _, report, _ in runs])
    plot_learning_curve(
        {f"seed {r[2].seed}": r[1]["evals"] for r in runs}, args.plot, curve_title(lm.name, asdict(cfg), seeds)
    )
    summary = {
        "command": command,
        "config": asdict(cfg),
        "model": lm.name,
        "hook_name": sae.hook_name,
        "weights_unchanged": all(c["weights_unchanged"] for c in cards),
        "weights_before": cards[0]["weights_before"],
        "weights_after": cards[-1]["weights_after"],
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "cpus": _cpus(),
        **summarize(cards),
    }
    if args.summary is not None:
        args.summary.parent.mkdir(parents=True, exist_ok=True)
        args.summary.write_text(json.dumps(summary, indent=2) + "\n")
    if args.ship:
        try:
            console.print(ship_recipe(cards, [out_root / f"seed-{s}" if len(seeds) > 1 else out_root for s in seeds]))
        except ValueError as exc:
            console.print(f"[red]error:[/] {exc}")
            return 2
    st = summary["over_seeds"]
    print(
        f"done: {kept_line(st)} value kept over {len(seeds)} seed(s); weights unchanged: {summary['weights_unchanged']}"
    )
    return 0


def train_seed(
    cfg: TrainConfig,
    args: argparse.Namespace,
    lm: Any,
    sae: Any,
    out: Path,
    readers: dict[str, Any],
    weights_hash: str,
    command: str,
    several: bool,
) -> tuple[Any, dict[str, Any]] | str:
    """One seed's run: pick the features, build the actuators (on the prompt caches in
    ``readers``, which gets this run's), warm them up, train with each evaluation published
    to ``--mqtt``, then evaluate the final policy (:func:`after_training`). Returns the
    policy and its run card, or the error that stopped the training."""
    import torch

    from training.progress import progress_publisher

    features = pick_features(sae, cfg)
    actuators = build_actuators(lm, sae, cfg, features, readers=readers)
    if cfg.warm:
        warm = warm_actuators(actuators, lm, weights_hash, store=cfg.prompt_store, threads=args.warm_threads)
    readers.update({p: a.bot.reader for p, a in actuators.items()})
    run_id = args.run_id or f"ppo-{int(time.time())}"
    published = progress_publisher(args.mqtt, run=run_id + (f"-seed{cfg.seed}" if several else ""))
    try:
        policy, report = train_ppo(
            cfg,
            lm,
            sae,
            out_dir=out,
            resume=args.resume,
            server_url=args.server,
            on_eval=lambda row: None if published.progress(force=True, **row) else None,
            actuators=actuators,
        )
    except (ValueError, RuntimeError, OSError) as exc:
        published.close()
        return str(exc)
    if cfg.warm:
        report["warm_up"] = warm
    after_training(policy, report, cfg, args)
    report.update(
        command=command,
        model=lm.name,
        sae=_relative(sae.source),
        hook_name=sae.hook_name,
        torch=torch.__version__,
        python=platform.python_version(),
        cpus=_cpus(),
        date=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        out=str(out),
    )
    published.summary(
        {
            "policy": policy.digest,
            "final_eval": report["final_eval"],
            "stopped_by": report["stopped_by"],
            "wall_seconds": report["wall_seconds"],
            "weights_unchanged": report["weights_unchanged"],
            "done": True,
        }
    )
    published.close()
    return policy, report


def seed_line(seed: int, digest: str, report: dict[str, Any]) -> str:
    """What a seed's run reached: value kept per training phrasing and side, draws vs minimax."""
    pos = report["positions"]
    return (
        f"seed {seed}: policy {digest} ({report['stopped_by']}, step {report['steps']}): value kept "
        + ", ".join(
            f"{p} {100 * v['X']['kept_share']:.1f} / {100 * v['O']['kept_share']:.1f} %" for p, v in pos.items()
        )
        + f"; vs minimax draws {100 * report['vs_minimax_exact']['X']['draw']:.1f} / "
        f"{100 * report['vs_minimax_exact']['O']['draw']:.1f} %"
    )


def write_cards(cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each run's final card, held-out phrasings' time included, as ``run_card.json`` and
    ``.md`` in the run's folder (its ``out``, dropped from the card)."""
    for report in cards:
        out = Path(report.pop("out"))
        report["time"]["held-out phrasings"] = report.pop("heldout_seconds", 0.0)
        (out / "run_card.json").write_text(json.dumps(report, indent=2) + "\n")
        write_card_md(report, out / "run_card.md")
    return cards


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 0)


def _relative(path: Any) -> str:
    try:
        return str(Path(str(path)).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)
