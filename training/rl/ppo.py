"""``autosteer-train ppo``: learn a board-dependent steering policy with stable-baselines3 PPO
by playing the server's minimax, then evaluate it exactly and ship it.

Method, in the order the code runs:

1. **Features to steer.** ``labels`` (default): for each cell, the labelled SAE features
   whose measured steering effect (``features.json``: ``effect.mean_delta_prob``) moves
   that cell's probability most, up or down, taken round-robin over the cells until
   ``n_features``; ``random``: seeded random labelled features (the equal-effort control);
   or an explicit list. No model time is spent on the choice.
2. **Warm-up.** Every board the LLM can meet against minimax (1,340: 517 as X, 823 as O)
   is run through the model once, in batches (the per-board prompt cache); after that a
   step costs ~1-2 ms per new (board, action) and microseconds for a repeated one.
3. **PPO** (SB3, ``MlpPolicy``) on :class:`training.rl.env.SteeringVecEnv`: ``n_envs``
   games at once through ONE protocol connection to an arena server (``--via server``,
   the default; ``local`` is the in-process fast path). Rewards: see ``env.py``.
   The "no steering" choice starts likely (``none_bias`` added to its logit).
4. **Exact evaluation** every ``eval_every`` steps: the deterministic policy (the exported
   numpy net, the very code the bot runs) walked over the whole game tree against minimax
   as X and as O (``exact_outcome``); rows go to ``eval.csv``; the best policy so far is
   kept (higher min(draw X, draw O), then less push); training stops at ``target`` on both
   seats or at the step/second budget. Checkpoints (``checkpoint.zip``) allow ``--resume``.
5. **Outputs** in ``--out``: ``policy.json`` (kind ``learned``), ``run_card.json``/``.md``
   (command, seeds, features, obs/action modes, hyper-parameters, wall and CPU time and
   where it went, final evaluation, model and SAE weight hashes before and after),
   ``train.csv``, ``eval.csv``; the learning curve PNG (``--plot``). ``--ship`` copies the
   policy and its card to ``bots/llm/artifacts/``.

``train_ppo(config, lm, sae)`` is the whole method as one call, so controls can re-run it
with other features and the same budget.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import random
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence


from server.game import Board, Seat

ROOT = Path(__file__).resolve().parent.parent.parent
ARTIFACTS = ROOT / "bots" / "llm" / "artifacts"
SHIPPED_NAME = "learned_policy.json"
DEFAULT_PLOT = ROOT / "docs" / "rl_learning_curve.png"


@dataclass
class TrainConfig:
    """Every knob of a training run; all are CLI flags and go to the run card."""

    seed: int = 0
    features: list[int] = field(default_factory=list)  # explicit features to steer (else picked)
    pick: str = "labels"  # labels | random
    n_features: int = 27
    obs: str = "board"  # board | features
    action: str = "sparse"  # sparse | dense
    strengths: list[float] = field(default_factory=lambda: [-8.0, -4.0, -2.0, -1.0, 1.0, 2.0, 4.0, 8.0])
    slots: int = 1  # sparse: at most this many features per move
    bound: float = 4.0  # dense: coefficients in [-bound, bound]
    seat: str = "both"
    p_o: float = 0.6  # share of games as O when seat is both (O is the harder seat)
    mode: str = "strict"
    push_cost: float = 0.01
    shaping: str = "value"  # value (potential-based, the solved game's value) | none (result only)
    n_envs: int = 64
    n_steps: int = 32
    batch_size: int = 512
    n_epochs: int = 4
    learning_rate: float = 1e-3
    gamma: float = 1.0
    gae_lambda: float = 0.95
    ent_coef: float = 0.01
    clip_range: float = 0.2
    net_arch: list[int] = field(default_factory=lambda: [64, 64])
    none_bias: float = 3.0  # added to the "no steering" logit at the start
    total_steps: int = 400_000
    budget_seconds: float = 900.0  # wall clock, warm-up included
    eval_every: int = 16_384
    target: float = 1.0  # stop when the exact draw rate reaches this as X and as O
    via: str = "server"
    warm: bool = True
    prompt_store: bool = True  # keep/load the warm-up's prompt cache on disk (~/.cache/autosteer-arena/prompts)


# --------------------------------------------------------------------------- features
def pick_features(sae: Any, cfg: TrainConfig) -> list[int]:
    """The features to steer (see the module docstring)."""
    if cfg.features:
        return list(cfg.features)
    labels = getattr(sae.features, "labels", {}) if getattr(sae, "features", None) else {}
    labelled = sorted(int(k) for k, v in labels.items() if isinstance(v, dict))
    if cfg.pick == "random":
        pool = labelled or list(range(sae.d_sae))
        return sorted(random.Random(cfg.seed).sample(pool, min(cfg.n_features, len(pool))))
    if cfg.pick != "labels":
        raise ValueError(f"unknown feature pick {cfg.pick!r}; expected labels or random")
    ranked: list[list[int]] = []
    for cell in range(9):
        scored = []
        for idx in labelled:
            delta = ((labels[idx].get("effect") or {}).get("mean_delta_prob") or [])
            if len(delta) == 9:
                scored.append((-abs(float(delta[cell])), idx))
        ranked.append([i for _, i in sorted(scored)])
    picked: list[int] = []
    depth = 0
    while len(picked) < cfg.n_features and any(depth < len(r) for r in ranked):
        for r in ranked:
            if depth < len(r) and r[depth] not in picked and len(picked) < cfg.n_features:
                picked.append(r[depth])
        depth += 1
    if not picked:
        raise ValueError("the SAE has no labelled features with a measured steering effect; pass --features")
    return picked


def llm_boards(seat: Seat) -> list[Board]:
    """Every board with ``seat`` to move reachable against minimax (any LLM move, any
    optimal minimax move)."""
    from server.solver import optimal_cells

    out, frontier, seen = [], {Board.empty().code}, set()
    while frontier:
        nxt = set()
        for code in sorted(frontier):
            b = Board(code)
            if b.is_over or code in seen:
                continue
            seen.add(code)
            if b.turn is seat:
                out.append(b)
                nxt |= {b.play(c).code for c in b.legal_cells()}
            else:
                nxt |= {b.play(c).code for c in optimal_cells(b)}
        frontier = nxt
    return out


# --------------------------------------------------------------------------- build
def build_actuator(lm: Any, sae: Any, cfg: TrainConfig, features: Sequence[int], cache_boards: int = 3000,
                   phrasing: str = "grid") -> Any:
    from bots.llm.bot import LLMBot
    from bots.llm.learned import ActionCodec
    from bots.llm.policy import FixedSteeringPolicy
    from training.rl.actuator import LLMActuator

    zero = FixedSteeringPolicy(list(features), [0.0] * len(features), hook_name=sae.hook_name, d_sae=sae.d_sae)
    bot = LLMBot(lm, sae=sae, policy=zero, mode=cfg.mode, top_k=0, cache_boards=cache_boards, phrasing=phrasing)
    codec = ActionCodec(cfg.action, len(features), strengths=cfg.strengths, slots=cfg.slots, bound=cfg.bound)
    return LLMActuator(bot, codec, cfg.obs, obs_observed(sae) if cfg.obs == "features" else ())


def obs_observed(sae: Any) -> list[int]:
    """The SAE features the ``features`` observation reads: the labelled ones (readable,
    and small enough for a shipped net)."""
    labels = getattr(sae.features, "labels", {}) if getattr(sae, "features", None) else {}
    return sorted(int(k) for k in labels) or list(range(min(sae.d_sae, 256)))


def export_policy(model: Any, actuator: Any, sae: Any) -> Any:
    """The SB3 model's actor as a :class:`LearnedSteeringPolicy` (numpy forward)."""
    import torch

    from bots.llm.learned import MLP, LearnedSteeringPolicy

    layers = []
    for module in list(model.policy.mlp_extractor.policy_net) + [model.policy.action_net]:
        if isinstance(module, torch.nn.Linear):
            layers.append((module.weight.detach().cpu().numpy().copy(), module.bias.detach().cpu().numpy().copy()))
    return LearnedSteeringPolicy(actuator.bot.steering.features, obs=actuator.obs, codec=actuator.codec, net=MLP(layers, "tanh"),
                                 obs_features=actuator.obs_features, hook_name=sae.hook_name, d_sae=sae.d_sae)


# --------------------------------------------------------------------------- exact evaluation
def evaluate_exact(policy: Any, actuator: Any, opponent: str = "minimax") -> dict[str, Any]:
    """Exact outcome of the deterministic ``policy`` (its numpy forward) as X and as O
    against ``opponent``, with the steering it used on the boards it met (mean over the
    LLM boards of the walked tree)."""
    from training.vector_search import exact_outcome

    out: dict[str, Any] = {}
    for seat in Seat:
        moves: list[Any] = []

        def choose(boards: list[Board]) -> list[int | None]:
            obs = actuator.observe(boards)
            acts = policy.actions(obs)
            res = actuator.act(boards, acts)
            moves.extend(res)
            return [m.cell if m.legal else None for m in res]

        o = exact_outcome(choose, seat, opponent=opponent)
        n = max(1, len(moves))
        out[seat.value] = {**asdict(o), "mean_push": sum(m.norm_ratio for m in moves) / n,
                           "max_push": max((m.norm_ratio for m in moves), default=0.0),
                           "mean_kl": sum(m.kl for m in moves) / n,
                           "mean_features_steered": sum(m.n_steered for m in moves) / n,
                           "max_features_steered": max((m.n_steered for m in moves), default=0),
                           "steered_share": sum(m.n_steered > 0 for m in moves) / n,
                           "changed_share": sum(m.changed for m in moves) / n,
                           "mean_abs_coef_sum": sum(m.abs_coef for m in moves) / n}
    return out


def _score(ev: dict[str, Any]) -> tuple[float, float]:
    x, o = ev["X"], ev["O"]
    return (min(x["draw"], o["draw"]), -(x["mean_push"] + o["mean_push"]))


# --------------------------------------------------------------------------- training
class Timer:
    """Wall and CPU seconds since start, and named sections."""

    def __init__(self) -> None:
        self.wall0 = time.perf_counter()
        self.cpu0 = time.process_time()
        self.sections: dict[str, float] = {}

    @property
    def wall(self) -> float:
        return time.perf_counter() - self.wall0

    @property
    def cpu(self) -> float:
        return time.process_time() - self.cpu0

    def add(self, name: str, seconds: float) -> None:
        self.sections[name] = self.sections.get(name, 0.0) + seconds


def train_ppo(cfg: TrainConfig, lm: Any, sae: Any, *, out_dir: Path | None = None, resume: bool = False,
              progress: bool = True, server_url: str | None = None, log: Any = print,
              on_eval: Callable[[dict[str, Any]], None] | None = None) -> tuple[Any, dict[str, Any]]:
    """Train, evaluate exactly, and return ``(best policy, report)``; with ``out_dir`` also
    write the CSV logs, checkpoint and policy there (see the module docstring). ``on_eval``
    is handed each exact evaluation's row (step, wall and CPU seconds, draw/illegal/push as X
    and O) as it is made, e.g. to publish it to an MQTT broker (``--mqtt``)."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback

    from training.rl.env import BackgroundServer, EnvConfig, LocalTransport, ServerTransport, SteeringVecEnv

    timer = Timer()
    torch.manual_seed(cfg.seed)
    hashes_before = {"model": lm.weights_hash(), "sae": sae.weights_hash()}
    features = pick_features(sae, cfg)
    actuator = build_actuator(lm, sae, cfg, features)
    log(f"[ppo] steering {len(features)} features of {sae.hook_name} ({cfg.pick if not cfg.features else 'given'}): "
        f"{features}; obs {cfg.obs}, action {cfg.action}, {cfg.mode} reading")
    warm: dict[str, Any] = {}
    if cfg.warm:
        from training.rl.actuator import prompt_store_path

        boards = llm_boards(Seat.X) + llm_boards(Seat.O)
        store = prompt_store_path(lm, actuator.bot.reader, hashes_before["model"]) if cfg.prompt_store else None
        t = time.perf_counter()
        _with_bar(progress, len(boards), "warm-up: prompts of every LLM board",
                  lambda step: warm.update(actuator.warm(boards, progress=step, store=store)))
        timer.add("warm-up (prompt cache of every LLM board)", time.perf_counter() - t)
        log(f"[ppo] warm-up: {warm['computed']} prompts run, {warm['from_store']} loaded from {store} in {warm['seconds']} s")
    env_cfg = EnvConfig(seat=cfg.seat, p_o=cfg.p_o, mode=cfg.mode, push_cost=cfg.push_cost, shaping=cfg.shaping,
                        seed=cfg.seed)
    server = None
    if cfg.via == "server":
        if server_url is None:
            server = BackgroundServer(seed=cfg.seed).start()
            server_url = server.url
        transport: Any = ServerTransport(server_url, forfeit=cfg.mode == "strict")
        log(f"[ppo] playing minimax through the server at {server_url} ({cfg.n_envs} games at once, one connection)")
    elif cfg.via == "local":
        transport = LocalTransport()
        log(f"[ppo] playing minimax in-process (--via local, {cfg.n_envs} games at once)")
    else:
        raise ValueError(f"unknown --via {cfg.via!r}; expected server or local")
    env = SteeringVecEnv(actuator, transport, cfg.n_envs, env_cfg)
    out_dir = Path(out_dir) if out_dir is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    ckpt = out_dir / "checkpoint.zip" if out_dir is not None else None
    if resume:
        if ckpt is None or not ckpt.is_file():
            raise ValueError(f"--resume: no checkpoint at {ckpt}; train without --resume first")
        model = PPO.load(ckpt, env=env, device="cpu")
        log(f"[ppo] resumed from {ckpt} at step {model.num_timesteps}")
    else:
        model = PPO("MlpPolicy", env, n_steps=cfg.n_steps, batch_size=cfg.batch_size, n_epochs=cfg.n_epochs,
                    learning_rate=cfg.learning_rate, gamma=cfg.gamma, gae_lambda=cfg.gae_lambda, ent_coef=cfg.ent_coef,
                    clip_range=cfg.clip_range, seed=cfg.seed, device="cpu", verbose=0,
                    policy_kwargs={"net_arch": {"pi": list(cfg.net_arch), "vf": list(cfg.net_arch)}})
        if cfg.action == "sparse" and cfg.none_bias:
            with torch.no_grad():
                for slot in range(cfg.slots):  # each slot's "no steering" choice starts likely
                    model.policy.action_net.bias[slot * (1 + len(features) * len(cfg.strengths))] += cfg.none_bias
    state: dict[str, Any] = {"best": None, "best_eval": None, "best_step": 0, "evals": [], "train": [],
                             "reached": None, "stop": False}

    def evaluate(step: int) -> bool:
        t = time.perf_counter()
        policy = export_policy(model, actuator, sae)
        ev = evaluate_exact(policy, actuator)
        timer.add("exact evaluation (tree walks)", time.perf_counter() - t)
        row = {"step": step, "wall_s": round(timer.wall, 1), "cpu_s": round(timer.cpu, 1),
               "draw_x": round(ev["X"]["draw"], 6), "draw_o": round(ev["O"]["draw"], 6),
               "illegal_x": round(ev["X"]["illegal"], 6), "illegal_o": round(ev["O"]["illegal"], 6),
               "push_x": round(ev["X"]["mean_push"], 4), "push_o": round(ev["O"]["mean_push"], 4),
               "steered_x": round(ev["X"]["steered_share"], 4), "steered_o": round(ev["O"]["steered_share"], 4)}
        state["evals"].append(row)
        if on_eval is not None:
            on_eval(row)
        if state["best_eval"] is None or _score(ev) > _score(state["best_eval"]):
            state.update(best=policy, best_eval=ev, best_step=step)
        if state["reached"] is None and min(ev["X"]["draw"], ev["O"]["draw"]) >= cfg.target:
            state["reached"] = {"step": step, "wall_s": round(timer.wall, 1), "cpu_s": round(timer.cpu, 1)}
        log(f"[ppo] step {step:>7}: exact draw X {100 * ev['X']['draw']:.1f} % O {100 * ev['O']['draw']:.1f} % "
            f"(illegal {100 * ev['X']['illegal']:.1f} / {100 * ev['O']['illegal']:.1f} %), push "
            f"{ev['X']['mean_push']:.3f} / {ev['O']['mean_push']:.3f}, {timer.wall:.0f} s")
        if out_dir is not None:
            _write_csv(out_dir / "eval.csv", state["evals"])
            model.save(ckpt)
        return state["reached"] is None

    class Callback(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.next_eval = model.num_timesteps + cfg.eval_every
            self.t_rollout = time.perf_counter()
            self.bar = None

        def _on_training_start(self) -> None:
            if progress:
                from tqdm import tqdm

                self.bar = tqdm(total=cfg.total_steps, initial=model.num_timesteps, desc="PPO steps", unit="step",
                                file=sys.stderr, dynamic_ncols=True, mininterval=5.0)

        def _on_step(self) -> bool:
            return timer.wall < cfg.budget_seconds and not state["stop"]

        def _on_rollout_start(self) -> None:
            self.t_rollout = time.perf_counter()

        def _on_rollout_end(self) -> None:
            timer.add("rollouts (LLM moves + server games)", time.perf_counter() - self.t_rollout)
            lg = env.log
            state["train"].append({"step": model.num_timesteps, "wall_s": round(timer.wall, 1),
                                   "cpu_s": round(timer.cpu, 1), "games": env.games_started,
                                   "recent_draw_x": round(lg.recent_draw_rate("X"), 4),
                                   "recent_draw_o": round(lg.recent_draw_rate("O"), 4),
                                   "mean_push": round(lg.push / max(1, lg.moves), 4),
                                   "llm_boards": actuator.llm_boards})
            if self.bar is not None:
                self.bar.update(model.num_timesteps - self.bar.n)
                self.bar.set_postfix(draw_x=f"{lg.recent_draw_rate('X'):.2f}", draw_o=f"{lg.recent_draw_rate('O'):.2f}")
            if out_dir is not None:
                _write_csv(out_dir / "train.csv", state["train"])
            if model.num_timesteps >= self.next_eval:
                self.next_eval = model.num_timesteps + cfg.eval_every
                state["stop"] = not evaluate(model.num_timesteps)  # reached the target

        def _on_training_end(self) -> None:
            if self.bar is not None:
                self.bar.close()

    t = time.perf_counter()
    try:
        evaluate(model.num_timesteps)  # the starting point (zero-ish steering)
        if state["reached"] is None:
            model.learn(total_timesteps=max(0, cfg.total_steps - model.num_timesteps), callback=Callback(),
                        reset_num_timesteps=not resume, progress_bar=False)
            if state["evals"][-1]["step"] != model.num_timesteps:
                evaluate(model.num_timesteps)
    finally:
        env.close()
        if server is not None:
            server.stop()
    timer.add("PPO updates and the rest", max(0.0, time.perf_counter() - t - sum(
        v for k, v in timer.sections.items() if not k.startswith("warm"))))
    hashes_after = {"model": lm.weights_hash(), "sae": sae.weights_hash()}
    best = state["best"]
    report = {
        "config": asdict(cfg), "features": [{"index": f, "label": sae.label(f) or ""} for f in features],
        "obs_features": len(actuator.obs_features), "policy_digest": best.digest, "best_step": state["best_step"],
        "steps": int(model.num_timesteps), "games": env.games_started, "reached_target": state["reached"],
        "final_eval": state["best_eval"], "evals": state["evals"],
        "training_results": env.log.results,
        "wall_seconds": round(timer.wall, 1), "cpu_seconds": round(timer.cpu, 1),
        "time": {k: round(v, 1) for k, v in timer.sections.items()},
        "env_seconds": {k: round(v, 1) for k, v in env.seconds.items()},
        "warm_up": warm, "actuator": actuator.stats(), "transport": {"via": cfg.via, "frames": getattr(transport, "frames", 0)},
        "weights_before": hashes_before, "weights_after": hashes_after,
        "weights_unchanged": hashes_before == hashes_after,
    }
    if out_dir is not None:
        best.save(out_dir / "policy.json")
    report["_actuator"] = actuator  # for the caller's further evaluation; dropped from the card
    return best, report


def _with_bar(progress: bool, total: int, desc: str, fn: Any) -> None:
    if not progress:
        fn(None)
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=desc, unit="board", file=sys.stderr, dynamic_ncols=True) as bar:
        fn(bar.update)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def plot_learning_curve(evals: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=110, sharey=True)
    for ax, key, label in ((axes[0], "step", "PPO steps (LLM moves)"), (axes[1], "wall_s", "wall time (s, warm-up included)")):
        xs = [r[key] for r in evals]
        ax.plot(xs, [100 * r["draw_x"] for r in evals], "o-", label="LLM as X")
        ax.plot(xs, [100 * r["draw_o"] for r in evals], "s-", label="LLM as O")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("exact draw rate vs minimax (%)")
    axes[0].legend()
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


# --------------------------------------------------------------------------- server games
def play_server_games(policy: Any, actuator: Any, games: int, seed: int, opponent: str = "minimax",
                      concurrency: int = 64) -> list[dict[str, Any]]:
    """``games`` games per seat through an in-process server (``training.evaluate``'s
    ``play_arm_server``: the LLM bot as a remote client, games arranged with seeds), the bot
    playing ``policy`` itself (its own ``coefficients``: the shipped code path); it shares
    the actuator's prompt cache. Returns one row per seat with the distinct games."""
    import asyncio

    from bots.llm.bot import LLMBot
    from training.evaluate import ArmResult, play_arm_server

    class _Quiet:
        def update(self, n: int) -> None:
            pass

    bot = LLMBot(actuator.bot.lm, sae=actuator.bot.sae, policy=policy, mode=actuator.bot.mode, top_k=0,
                 cache_boards=8)
    bot.reader = actuator.bot.reader  # same model, hook and prompts: reuse the warm cache
    rows = []
    for seat in ("X", "O"):
        arm = ArmResult(opponent=opponent, seat=seat, mode=bot.mode)
        record: dict[str, list[int]] = {}
        t = time.perf_counter()
        asyncio.run(play_arm_server(bot, arm, games, seed, concurrency, _Quiet(), games=record))
        arm.seconds = round(time.perf_counter() - t, 1)
        arm.finish()
        rows.append({**asdict(arm), "distinct_games": len({tuple(v) for v in record.values()}),
                     "policy_digest": policy.digest})
    return rows


# --------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    g = parser.add_argument
    g("--model", default="smollm2", help="model to steer (see autosteer-bot run --help)")
    g("--sae", default="auto", help="SAE folder, registry id, or 'auto' (the shipped one)")
    g("--features", default="", help="comma-separated feature indices to steer (default: picked, see --pick)")
    g("--pick", choices=("labels", "random"), default=d.pick, help="how features are picked when --features is not given")
    g("--n-features", type=int, default=d.n_features, help="features to steer when picking")
    g("--obs", choices=("board", "features"), default=d.obs, help="observation: the board, or the SAE activations of the labelled features")
    g("--action", choices=("sparse", "dense"), default=d.action, help="sparse: feature+strength per slot; dense: a coefficient per feature")
    g("--strengths", default=",".join(f"{s:g}" for s in d.strengths), help="sparse: the signed coefficients a slot can apply")
    g("--slots", type=int, default=d.slots, help="sparse: features steered per move at most")
    g("--bound", type=float, default=d.bound, help="dense: coefficients lie in [-bound, bound]")
    g("--seat", choices=("X", "O", "both"), default=d.seat, help="the LLM's seat in training games")
    g("--p-o", type=float, default=d.p_o, help="share of training games as O when --seat both")
    g("--mode", choices=("strict", "masked"), default=d.mode, help="move reading (strict is the headline)")
    g("--push-cost", type=float, default=d.push_cost, help="reward cost per move per unit of ||added||/||residual||")
    g("--shaping", choices=("value", "none"), default=d.shaping,
      help="value: potential-based shaping with the solved game's value (same total per game: the result); none: result only")
    g("--n-envs", type=int, default=d.n_envs, help="games played at once (one batched LLM call per step)")
    g("--n-steps", type=int, default=d.n_steps, help="PPO rollout length per game slot")
    g("--batch-size", type=int, default=d.batch_size, help="PPO minibatch size")
    g("--n-epochs", type=int, default=d.n_epochs, help="PPO epochs per update")
    g("--lr", type=float, default=d.learning_rate, help="PPO learning rate")
    g("--gamma", type=float, default=d.gamma, help="discount")
    g("--gae-lambda", type=float, default=d.gae_lambda, help="GAE lambda")
    g("--ent-coef", type=float, default=d.ent_coef, help="entropy bonus")
    g("--clip-range", type=float, default=d.clip_range, help="PPO clip range")
    g("--net-arch", default=",".join(str(n) for n in d.net_arch), help="hidden layer sizes of the policy and value nets")
    g("--none-bias", type=float, default=d.none_bias, help="sparse: added to the 'no steering' logit at the start")
    g("--total-steps", type=int, default=d.total_steps, help="PPO steps (LLM moves) at most")
    g("--budget-seconds", type=float, default=d.budget_seconds, help="wall-clock budget, warm-up included")
    g("--eval-every", type=int, default=d.eval_every, help="steps between exact evaluations")
    g("--target", type=float, default=d.target, help="stop when the exact draw rate reaches this as X and as O")
    g("--via", choices=("server", "local"), default=d.via, help="server: through an arena server (headline); local: in-process")
    g("--server", default=None, help="URL of a running arena server (default: start one in-process on a free port)")
    g("--seed", type=int, default=d.seed, help="seed of PPO, the seats and the minimax games")
    g("--no-warm", action="store_true", help="do not run every LLM board's prompt before training")
    g("--no-prompt-store", action="store_true", help="do not load/save the warm-up's prompt cache on disk "
                                                     "(~/.cache/autosteer-arena/prompts; a pure function of weights and prompts)")
    g("--server-games", type=int, default=0, help="after training, also play this many games per seat vs minimax "
                                                   "and vs random through a server with the best policy")
    g("--heldout-phrasings", default="", help="after training, also evaluate exactly on these prompt phrasings "
                                               "(comma list of rows, list: not trained on)")
    g("--threads", type=int, default=1, help="torch CPU threads")
    g("--out", type=Path, default=ROOT / "var" / "rl" / "run", help="folder for the policy, logs, checkpoint and run card")
    g("--resume", action="store_true", help="continue from the checkpoint in --out")
    g("--plot", type=Path, default=DEFAULT_PLOT, help="learning-curve PNG")
    g("--mqtt", metavar="URL", default=None,
      help="publish each exact evaluation and the final summary to this MQTT broker, mqtt://host[:port][/prefix] "
           "(topics P/training/RUN/progress|summary; 'autosteer-server watch' prints them)")
    g("--run-id", default=None, help="the run's name on the broker (default: ppo-UNIXTIME)")
    g("--ship", action="store_true", help=f"copy the policy and its run card to bots/llm/artifacts/{SHIPPED_NAME}")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    def floats(text: str) -> list[float]:
        return [float(x) for x in text.split(",") if x.strip()]

    return TrainConfig(seed=args.seed, features=[int(x) for x in args.features.split(",") if x.strip()], pick=args.pick,
                       n_features=args.n_features, obs=args.obs, action=args.action, strengths=floats(args.strengths),
                       slots=args.slots, bound=args.bound, seat=args.seat, p_o=args.p_o, mode=args.mode,
                       push_cost=args.push_cost, shaping=args.shaping, n_envs=args.n_envs, n_steps=args.n_steps, batch_size=args.batch_size,
                       n_epochs=args.n_epochs, learning_rate=args.lr, gamma=args.gamma, gae_lambda=args.gae_lambda,
                       ent_coef=args.ent_coef, clip_range=args.clip_range,
                       net_arch=[int(x) for x in args.net_arch.split(",") if x.strip()], none_bias=args.none_bias,
                       total_steps=args.total_steps, budget_seconds=args.budget_seconds, eval_every=args.eval_every,
                       target=args.target, via=args.via, warm=not args.no_warm,
                       prompt_store=not args.no_prompt_store)


def run(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console

    from bots.llm.cli import load_sae_arg
    from bots.llm.model import load_model

    console = Console(stderr=True)
    try:
        cfg = config_from_args(args)
        if cfg.n_envs < 1 or cfg.n_steps < 1 or cfg.total_steps < 1 or cfg.slots < 1:
            raise ValueError("--n-envs, --n-steps, --total-steps and --slots must be at least 1")
        if args.threads < 1:
            raise ValueError("--threads must be at least 1")
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
    from server.progress import progress_publisher

    published = progress_publisher(args.mqtt, run=args.run_id or f"ppo-{int(time.time())}")
    try:
        policy, report = train_ppo(cfg, lm, sae, out_dir=args.out, resume=args.resume, server_url=args.server,
                                   on_eval=lambda row: published.progress(force=True, **row))
    except (ValueError, RuntimeError, OSError) as exc:
        console.print(f"[red]error:[/] {exc}")
        published.close()
        return 1
    actuator = report.pop("_actuator")
    t = time.perf_counter()
    report["vs_random_exact"] = evaluate_exact(policy, actuator, opponent="random")
    if args.server_games:
        report["server_games"] = [*play_server_games(policy, actuator, args.server_games, cfg.seed, "minimax"),
                                  *play_server_games(policy, actuator, args.server_games, cfg.seed, "random")]
    for phrasing in [p for p in args.heldout_phrasings.split(",") if p.strip()]:
        other = build_actuator(lm, sae, cfg, policy.features, cache_boards=800, phrasing=phrasing.strip())
        report.setdefault("heldout_phrasings", {})[phrasing] = evaluate_exact(policy, other)
        print(f"[ppo] held-out phrasing {phrasing}: exact draw X "
              f"{100 * report['heldout_phrasings'][phrasing]['X']['draw']:.1f} %, O "
              f"{100 * report['heldout_phrasings'][phrasing]['O']['draw']:.1f} %", flush=True)
    report["after_training_seconds"] = round(time.perf_counter() - t, 1)
    report.update(command=command, model=lm.name, sae=_relative(sae.source), hook_name=sae.hook_name,
                  torch=torch.__version__, python=platform.python_version(), cpus=_cpus(),
                  date=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()))
    out = Path(args.out)
    (out / "run_card.json").write_text(json.dumps(report, indent=2) + "\n")
    write_card_md(report, out / "run_card.md")
    plot_learning_curve(report["evals"], args.plot, f"{lm.name}: PPO steering policy {policy.digest}, "
                        f"{cfg.obs} obs, {cfg.action} action, {cfg.mode} reading, via {cfg.via}")
    if args.ship:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / "policy.json", ARTIFACTS / SHIPPED_NAME)
        shutil.copyfile(out / "run_card.json", ARTIFACTS / SHIPPED_NAME.replace(".json", ".card.json"))
        shutil.copyfile(out / "run_card.md", ARTIFACTS / SHIPPED_NAME.replace(".json", ".card.md"))
        console.print(f"shipped {ARTIFACTS / SHIPPED_NAME} (policy {policy.digest})")
    ev = report["final_eval"]
    published.summary({"policy": policy.digest, "final_eval": ev, "reached": report.get("reached_target"),
                       "wall_seconds": report["wall_seconds"], "cpu_seconds": report["cpu_seconds"],
                       "weights_unchanged": report["weights_unchanged"], "done": True})
    published.close()
    if published.enabled:
        console.print(f"published progress to {args.mqtt} as run {published.run} ({published.sent} messages, "
                      f"{published.dropped} dropped)")
    print(f"done: policy {policy.digest} in {out / 'policy.json'}: exact strict draws vs minimax "
          f"{100 * ev['X']['draw']:.1f} % as X, {100 * ev['O']['draw']:.1f} % as O; training {report['wall_seconds']:.0f} s "
          f"wall, {report['cpu_seconds']:.0f} s CPU; weights unchanged: {report['weights_unchanged']}")
    return 0


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 0)


def _relative(path: Any) -> str:
    try:
        return str(Path(str(path)).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def write_card_md(card: dict[str, Any], path: Path) -> None:
    cfg, ev = card["config"], card["final_eval"]
    lines = [
        "# Run card: learned steering policy (PPO)", "",
        f"- Command: `{card['command']}`",
        f"- Model / SAE: {card['model']} / `{card['sae']}` at `{card['hook_name']}`",
        f"- Observation `{cfg['obs']}`, action `{cfg['action']}` (strengths {cfg['strengths']}, slots {cfg['slots']}), "
        f"`{cfg['mode']}` reading, played via `{cfg['via']}`; seed {cfg['seed']}",
        f"- Reward: win +1, draw 0, loss -1 (illegal = loss), minus {cfg['push_cost']} × ‖added‖/‖residual‖ per move; "
        f"shaping `{cfg['shaping']}` (value: paid move by move as Φ(s')−Φ(s) with Φ the solved game's value, same total)",
        f"- PPO: n_envs {cfg['n_envs']}, n_steps {cfg['n_steps']}, batch {cfg['batch_size']}, epochs {cfg['n_epochs']}, "
        f"lr {cfg['learning_rate']}, gamma {cfg['gamma']}, GAE λ {cfg['gae_lambda']}, entropy {cfg['ent_coef']}, "
        f"clip {cfg['clip_range']}, net {cfg['net_arch']}, none bias {cfg['none_bias']}",
        f"- Steps {card['steps']} ({card['games']} games); best policy at step {card['best_step']}; "
        f"target {cfg['target']} reached: {card['reached_target'] or 'no'}",
        f"- Time: {card['wall_seconds']} s wall, {card['cpu_seconds']} s CPU ({card['cpus']} CPUs, shared); "
        f"sections: {card['time']}; env: {card['env_seconds']}",
        f"- Policy digest: `{card['policy_digest']}`",
        f"- Weights (sha256 prefix) before: model `{card['weights_before']['model'][:16]}`, SAE `{card['weights_before']['sae'][:16]}`; "
        f"after: model `{card['weights_after']['model'][:16]}`, SAE `{card['weights_after']['sae'][:16]}` "
        f"(unchanged: {card['weights_unchanged']})", "",
        "Exact outcome (tree walk, minimax with uniformly random tie-breaks), strict reading:", "",
        "| opponent | seat | draw | win | loss | illegal | distinct games | mean push ‖Δ‖/‖h‖ | max push | mean KL | steered moves | features/move (max) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for opp, table in (("minimax", ev), ("random", card.get("vs_random_exact") or {})):
        for seat in ("X", "O"):
            if seat not in table:
                continue
            r = table[seat]
            lines.append(f"| {opp} | {seat} | {100 * r['draw']:.2f} % | {100 * r['win']:.2f} % | {100 * r['loss']:.2f} % | "
                         f"{100 * r['illegal']:.2f} % | {r['games']} | {r['mean_push']:.3f} | {r['max_push']:.3f} | "
                         f"{r['mean_kl']:.3f} | {100 * r['steered_share']:.0f} % | {r['max_features_steered']} |")
    for phrasing, table in (card.get("heldout_phrasings") or {}).items():
        lines += ["", f"Held out: prompt phrasing `{phrasing}` (not trained on), exact vs minimax: draw "
                      f"{100 * table['X']['draw']:.1f} % as X, {100 * table['O']['draw']:.1f} % as O; illegal "
                      f"{100 * table['X']['illegal']:.1f} % / {100 * table['O']['illegal']:.1f} %."]
    if card.get("server_games"):
        lines += ["", "Games through the server (in-process arena, the bot as a remote client, seeded games):", "",
                  "| opponent | seat | games | distinct | wins | draws | losses | illegal | mean push |", "|---|---|---|---|---|---|---|---|---|"]
        for a in card["server_games"]:
            lines.append(f"| {a['opponent']} | {a['seat']} | {a['games']} | {a['distinct_games']} | {a['wins']} | {a['draws']} | "
                         f"{a['losses']} | {a['illegal']} | {a['mean_norm_ratio']:.3f} |")
    lines += ["", "| feature | label |", "|---|---|"]
    lines += [f"| {f['index']} | {f['label'] or '—'} |" for f in card["features"]]
    path.write_text("\n".join(lines) + "\n")
