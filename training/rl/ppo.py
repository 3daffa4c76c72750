"""``autosteer-train ppo``: learn a board-dependent steering policy with stable-baselines3 PPO
by playing the server's house bots over the whole game, then evaluate it exactly and ship it.

The defaults are the documented recipe (docs/RL.md); flags are for ablations.

Method, in the order the code runs:

1. **Features to steer.** ``labels`` (default): for each cell, the labelled SAE features
   whose measured steering effect (``features.json``: ``effect.mean_delta_prob``) moves
   that cell's probability most, up or down, taken round-robin over the cells until
   ``n_features``; ``random``: seeded random labelled features (the equal-effort control);
   ``shuffled``: the labels pick's rule applied to a seeded shuffle of the labels (the
   features it names carry other features' effects); or an explicit list.
2. **Warm-up.** The prompt of every open position (4,520), in each training phrasing, is
   run through the model once (prefix-tree batched, :meth:`LlamaAnswerPath.prefill_tree`)
   and kept on disk (``~/.cache/autosteer-arena/prompts/``, checked against the weights);
   after that a step costs ~1-2 ms per new (board, action) and microseconds for a
   repeated one.
3. **PPO** (SB3, ``MlpPolicy``) on :class:`training.rl.env.SteeringVecEnv`: ``n_envs``
   games at once through ONE protocol connection to an arena server (``--via server``,
   the default; ``local`` is the in-process fast path). Opponents, phrasings, random
   openings and rewards: see ``env.py``. Each slot's "no steering" choice starts likely
   (``none_bias`` added to its logit).
4. **Exact evaluation** every ``eval_every`` steps of the deterministic policy (the exported
   numpy net, the very code the bot runs): on every open position in each training
   phrasing, the share where the steered strict move keeps the solved value (per side),
   and the exact tree walk against minimax as X and as O. Rows go to ``eval.csv``.
   Training stops when the last ``stable_evals`` evaluations all meet ``target`` (value
   kept on both sides in every training phrasing, and draws against minimax), or at the
   step budget. The policy returned and shipped is the **final** one: no snapshot is
   selected on the metric reported.
5. **Outputs** in ``--out``: ``policy.json`` (kind ``learned``), ``run_card.json``/``.md``
   (command, seeds, features, obs/action modes, hyper-parameters, wall and CPU time and
   where it went, evaluations, model and SAE weight hashes before and after),
   ``train.csv``, ``eval.csv``; the learning curve PNG (``--plot``). With several
   ``--seeds`` one run per seed goes to ``--out/seed-N`` and ``--summary`` gathers their
   final evaluations (mean and spread). ``--ship`` copies the first seed's policy and its
   card to ``bots/llm/artifacts/``.

``train_ppo(config, lm, sae)`` is the whole method as one call, so controls can re-run it
with other features and the same number of steps.
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
from typing import Any, Callable, Sequence, cast


from server.game import Board, Seat
from bots.house import HOUSE_NAMES

ROOT = Path(__file__).resolve().parent.parent.parent
ARTIFACTS = ROOT / "bots" / "llm" / "artifacts"
SHIPPED_NAME = "learned_policy.json"
DEFAULT_PLOT = ROOT / "docs" / "rl_learning_curve.png"


@dataclass
class TrainConfig:
    """Every knob of a run; all are CLI flags and go to the run card. The defaults are the
    headline recipe."""

    seed: int = 0
    features: list[int] = field(default_factory=list)  # explicit features to steer (else picked)
    pick: str = "labels"  # labels | random | shuffled
    basis: str = "sae"  # sae: the features' decoder rows | directions: seeded random residual directions (a control)
    n_features: int = 27
    obs: str = "board+model"  # board | board+model | features
    action: str = "sparse"  # sparse | dense
    strengths: list[float] = field(default_factory=lambda: [-8.0, -4.0, -2.0, -1.0, 1.0, 2.0, 4.0, 8.0])
    slots: int = 2  # sparse: at most this many distinct features per move
    bound: float = 4.0  # dense: coefficients in [-bound, bound]
    seat: str = "both"
    p_o: float = 0.5  # share of games as O when seat is both
    mode: str = "strict"
    push_cost: float = 0.1
    shaping: str = "value"  # value (the change of the solved value a move makes) | none (result only)
    opponents: str = ",".join(HOUSE_NAMES)  # house bots the games are drawn against, name[:weight]
    random_openings: float = 0.5  # chance a game opens with 1..max_random_moves random moves of the LLM's side
    max_random_moves: int = 3
    phrasings: list[str] = field(default_factory=lambda: ["grid", "rows"])  # training phrasings
    n_envs: int = 64
    n_steps: int = 32
    batch_size: int = 512
    n_epochs: int = 10
    learning_rate: float = 3e-3
    gamma: float = 0.0
    gae_lambda: float = 0.0
    ent_coef: float = 0.003
    clip_range: float = 0.2
    baseline: str = "state"  # state: SB3's learned V(board) | constant: one learned scalar, the same on every board
    net_arch: list[int] = field(default_factory=lambda: [256, 256])
    none_bias: list[float] = field(default_factory=lambda: [3.0, 6.0])  # added to each slot's "no steering" logit at the start
    total_steps: int = 393_216  # 192 PPO updates of 64 games x 32 moves
    budget_seconds: float = 7200.0  # wall clock (a safety stop; runs are compared at equal steps)
    eval_every: int = 32_768
    target: float = 0.99  # value kept (both sides, every training phrasing) and draws vs minimax
    stable_evals: int = 5  # stop once this many evaluations in a row meet the target
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
    if cfg.pick == "shuffled":  # the labels pick's rule on labels dealt to other features
        dealt = labelled[:]
        random.Random(cfg.seed).shuffle(dealt)
        labels = {new: labels[old] for old, new in zip(labelled, dealt)}
    elif cfg.pick != "labels":
        raise ValueError(f"unknown feature pick {cfg.pick!r}; expected labels, random or shuffled")
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
def build_actuator(lm: Any, sae: Any, cfg: TrainConfig, features: Sequence[int], cache_boards: int = 6000,
                   phrasing: str = "grid") -> Any:
    from bots.llm.bot import LLMBot
    from bots.llm.learned import ActionCodec
    from bots.llm.policy import FixedSteeringPolicy
    from training.rl.actuator import LLMActuator

    zero = FixedSteeringPolicy(list(features), [0.0] * len(features), hook_name=sae.hook_name, d_sae=sae.d_sae)
    directions = None
    if cfg.basis == "directions":  # the non-SAE control: random directions with the features' decoder norms
        from training.controls import random_direction_basis

        directions = random_direction_basis(sae, features, cfg.seed).directions
    elif cfg.basis != "sae":
        raise ValueError(f"unknown steering basis {cfg.basis!r}; expected sae or directions")
    bot = LLMBot(lm, sae=sae, policy=zero, mode=cfg.mode, top_k=0, cache_boards=cache_boards, phrasing=phrasing,
                 directions=directions)
    codec = ActionCodec(cfg.action, len(features), strengths=cfg.strengths, slots=cfg.slots, bound=cfg.bound)
    return LLMActuator(bot, codec, cfg.obs, obs_observed(sae) if cfg.obs == "features" else ())


def build_actuators(lm: Any, sae: Any, cfg: TrainConfig, features: Sequence[int],
                    phrasings: Sequence[str] | None = None, readers: dict[str, Any] | None = None) -> dict[str, Any]:
    """One actuator per phrasing (the same features and action; its own answer reader, or
    the one in ``readers`` for that phrasing: the prompt cache does not depend on the
    features steered, so runs with other features can share it)."""
    out = {}
    for p in (phrasings or cfg.phrasings):
        act = build_actuator(lm, sae, cfg, features, phrasing=p)
        if readers is not None and p in readers:
            act.bot.reader = readers[p]
        out[p] = act
    return out


def warm_actuators(actuators: dict[str, Any], lm: Any, weights_hash: str, *, store: bool = True,
                   progress: bool = True, boards: Sequence[Board] | None = None, threads: int = 2) -> dict[str, Any]:
    """Run (or load from the prompt store) the prompt of every open position in each
    actuator's phrasing, with ``threads`` torch threads (the prefill is large matrix work:
    both cores pay; training's small steps run best on one); returns what was done per phrasing."""
    import torch

    from training.heldout import open_positions
    from training.rl.actuator import prompt_store_path

    boards = list(boards) if boards is not None else open_positions()
    out: dict[str, Any] = {}
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        for name, act in actuators.items():
            path = prompt_store_path(lm, act.bot.reader, weights_hash) if store else None
            info: dict[str, Any] = {}
            _with_bar(progress, len(boards), f"warm-up: prompts of every open position ({name})",
                      lambda step: info.update(act.warm(boards, progress=step, store=path)))
            out[name] = {**info, "threads": threads}
    finally:
        torch.set_num_threads(before)
    return out


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
def _budget(moves: Sequence[Any]) -> dict[str, Any]:
    n = max(1, len(moves))
    return {"mean_push": sum(m.norm_ratio for m in moves) / n,
            "max_push": max((m.norm_ratio for m in moves), default=0.0),
            "mean_kl": sum(m.kl for m in moves) / n,
            "mean_features_steered": sum(m.n_steered for m in moves) / n,
            "max_features_steered": max((m.n_steered for m in moves), default=0),
            "steered_share": sum(m.n_steered > 0 for m in moves) / n,
            "changed_share": sum(m.changed for m in moves) / n,
            "mean_abs_coef_sum": sum(m.abs_coef for m in moves) / n}


def policy_moves(policy: Any, actuator: Any, boards: Sequence[Board], chunk: int = 512) -> list[Any]:
    """The deterministic policy's steered move on each board (chunks bound the memory)."""
    out: list[Any] = []
    for i in range(0, len(boards), chunk):
        part = list(boards[i:i + chunk])
        out.extend(actuator.act(part, policy.actions(actuator.observe(part))))
    return out


def evaluate_positions(policy: Any, actuator: Any, boards: Sequence[Board] | None = None) -> dict[str, Any]:
    """On every open position (or ``boards``), the LLM playing the side to move under the
    policy's steering: per side, the share of positions where the move keeps the solved
    value (an illegal move does not), the illegal moves, and the steering budget."""
    from server.solver import value_preserving_cells
    from training.heldout import open_positions

    boards = list(boards) if boards is not None else open_positions()
    moves = policy_moves(policy, actuator, boards)
    out: dict[str, Any] = {}
    for seat in Seat:
        idx = [i for i, b in enumerate(boards) if b.turn is seat]
        kept = sum(1 for i in idx if moves[i].legal and moves[i].cell in value_preserving_cells(boards[i]))
        illegal = sum(1 for i in idx if not moves[i].legal)
        out[seat.value] = {"positions": len(idx), "kept": kept, "kept_share": kept / max(1, len(idx)),
                           "illegal": illegal, **_budget([moves[i] for i in idx])}
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


def _make_transport(cfg: TrainConfig, server_url: str | None, log: Any) -> tuple[Any, Any]:
    from training.rl.env import BackgroundServer, LocalTransport, ServerTransport

    if cfg.via == "server":
        server = None
        if server_url is None:
            server = BackgroundServer(seed=cfg.seed).start()
            server_url = server.url
        log(f"[ppo] playing {cfg.opponents} through the server at {server_url} ({cfg.n_envs} games at once, one connection)")
        return ServerTransport(server_url, forfeit=cfg.mode == "strict"), server
    if cfg.via == "local":
        log(f"[ppo] playing {cfg.opponents} in-process (--via local, {cfg.n_envs} games at once)")
        return LocalTransport(), None
    raise ValueError(f"unknown --via {cfg.via!r}; expected server or local")


def _new_model(cfg: TrainConfig, env: Any, n_choices: int) -> Any:
    import torch
    from stable_baselines3 import PPO

    if cfg.baseline not in ("state", "constant"):
        raise ValueError(f"unknown baseline {cfg.baseline!r}; expected state or constant")
    model = PPO("MlpPolicy", env, n_steps=cfg.n_steps, batch_size=cfg.batch_size, n_epochs=cfg.n_epochs,
                learning_rate=cfg.learning_rate, gamma=cfg.gamma, gae_lambda=cfg.gae_lambda, ent_coef=cfg.ent_coef,
                clip_range=cfg.clip_range, seed=cfg.seed, device="cpu", verbose=0,
                policy_kwargs={"net_arch": {"pi": list(cfg.net_arch),
                                            "vf": list(cfg.net_arch) if cfg.baseline == "state" else []}})
    if cfg.action == "sparse" and cfg.none_bias:
        with torch.no_grad():
            for slot in range(cfg.slots):  # each slot's "no steering" choice starts likely (a later slot more so)
                head = cast(torch.nn.Linear, model.policy.action_net)  # MlpPolicy's action head over a MultiDiscrete space
                head.bias[slot * n_choices] += cfg.none_bias[min(slot, len(cfg.none_bias) - 1)]
    if cfg.baseline == "constant":
        constant_baseline(model)
    return model


def constant_baseline(model: Any) -> None:
    """Make the critic a single learned number, the same on every board: its input weights
    are zero and frozen, its bias learns the mean reward. With γ = 0 every step is a bandit
    pull, and a learned V(board) that has learned "this board loses" (V ≈ −1) leaves the
    losing action there an advantage of ≈ 0: nothing pushes the policy off it. Against a
    board-independent baseline that action keeps a negative advantage until another one
    works. (Called again after a checkpoint is loaded: loading resets the freeze.)"""
    import torch

    with torch.no_grad():
        model.policy.value_net.weight.zero_()
    model.policy.value_net.weight.requires_grad_(False)


def train_ppo(cfg: TrainConfig, lm: Any, sae: Any, *, out_dir: Path | None = None, resume: bool = False,
              progress: bool = True, server_url: str | None = None, log: Any = print,
              on_eval: Callable[[dict[str, Any]], None] | None = None,
              actuators: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
    """Train, evaluate exactly, and return ``(final policy, report)``; with ``out_dir`` also
    write the CSV logs, checkpoint and policy there (see the module docstring). ``on_eval``
    is handed each evaluation's row as it is made, e.g. to publish it to an MQTT broker
    (``--mqtt``). ``actuators`` (phrasing → actuator, from :func:`build_actuators`, warm)
    lets several runs share one prompt cache; each run starts with an empty move memo."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback

    from training.rl.env import EnvConfig, SteeringVecEnv

    timer = Timer()
    hashes_before = {"model": lm.weights_hash(), "sae": sae.weights_hash()}
    features = pick_features(sae, cfg)
    warm: dict[str, Any] = {}
    if actuators is None:
        actuators = build_actuators(lm, sae, cfg, features)
        if cfg.warm:
            t = time.perf_counter()
            warm = warm_actuators(actuators, lm, hashes_before["model"], store=cfg.prompt_store, progress=progress)
            timer.add("warm-up (prompt cache of every open position)", time.perf_counter() - t)
            for name, w in warm.items():
                log(f"[ppo] warm-up {name}: {w['computed']} prompts run, {w['from_store']} loaded in {w['seconds']} s")
    phrasings: dict[str, Any] = actuators
    for act in phrasings.values():
        if list(act.bot.steering.features) != list(features):
            raise ValueError("the given actuators steer other features than this run picks")
        act.memo.clear()
    actuator = next(iter(actuators.values()))
    log(f"[ppo] steering {len(features)} features of {sae.hook_name} ({cfg.pick if not cfg.features else 'given'}): "
        f"{features}; obs {cfg.obs}, action {cfg.action}, {cfg.mode} reading, phrasings {list(actuators)}")
    env_cfg = EnvConfig(seat=cfg.seat, p_o=cfg.p_o, mode=cfg.mode, push_cost=cfg.push_cost, shaping=cfg.shaping,
                        seed=cfg.seed, opponents=cfg.opponents, random_openings=cfg.random_openings,
                        max_random_moves=cfg.max_random_moves)
    transport, server = _make_transport(cfg, server_url, log)
    env = SteeringVecEnv(actuators, transport, cfg.n_envs, env_cfg)
    out_dir = Path(out_dir) if out_dir is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    ckpt = out_dir / "checkpoint.zip" if out_dir is not None else None
    if resume:
        if ckpt is None or not ckpt.is_file():
            raise ValueError(f"--resume: no checkpoint at {ckpt}; train without --resume first")
        model = PPO.load(ckpt, env=env, device="cpu")
        if cfg.baseline == "constant":
            constant_baseline(model)
        log(f"[ppo] resumed from {ckpt} at step {model.num_timesteps}")
    else:
        model = _new_model(cfg, env, actuator.codec.nvec[0] if cfg.action == "sparse" else 0)
    state: dict[str, Any] = {"evals": [], "train": [], "reached": None, "stable": None, "stop": False}

    def evaluate(step: int) -> None:
        t = time.perf_counter()
        policy = export_policy(model, actuator, sae)
        row = {"step": step, "policy": policy.digest, **evaluation_row(policy, actuators)}
        timer.add("evaluations (every open position, tree walks)", time.perf_counter() - t)
        row.update(wall_s=round(timer.wall, 1), cpu_s=round(timer.cpu, 1))
        state["evals"].append(row)
        if on_eval is not None:
            on_eval(row)
        ok = meets(row, cfg.target)
        if ok and state["reached"] is None:
            state["reached"] = {"step": step, "wall_s": row["wall_s"], "cpu_s": row["cpu_s"]}
        last = state["evals"][-cfg.stable_evals:]
        if len(last) == cfg.stable_evals and all(meets(r, cfg.target) for r in last):
            state["stable"] = {"step": step, "wall_s": row["wall_s"], "cpu_s": row["cpu_s"]}
            state["stop"] = True
        kept = " ".join(f"{k[5:]} {100 * v:.1f}" for k, v in row.items() if k.startswith("kept_"))
        log(f"[ppo] step {step:>7}: value kept % {kept}; exact draw vs minimax X {100 * row['draw_x']:.1f} % "
            f"O {100 * row['draw_o']:.1f} %; {timer.wall:.0f} s")
        if out_dir is not None and ckpt is not None:
            _write_csv(out_dir / "eval.csv", state["evals"])
            model.save(ckpt)

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
            if timer.wall >= cfg.budget_seconds:
                state["stopped_by"] = "wall-clock budget"
                return False
            return not state["stop"]

        def _on_rollout_start(self) -> None:
            self.t_rollout = time.perf_counter()

        def _on_rollout_end(self) -> None:
            timer.add("rollouts (LLM moves + server games)", time.perf_counter() - self.t_rollout)
            lg = env.log
            state["train"].append({"step": model.num_timesteps, "wall_s": round(timer.wall, 1),
                                   "cpu_s": round(timer.cpu, 1), "games": env.games_started,
                                   "recent_draw_x": round(lg.recent_draw_rate("X"), 4),
                                   "recent_draw_o": round(lg.recent_draw_rate("O"), 4),
                                   "recent_loss_x": round(lg.recent_loss_rate("X"), 4),
                                   "recent_loss_o": round(lg.recent_loss_rate("O"), 4),
                                   "mean_push": round(lg.push / max(1, lg.moves), 4),
                                   "boards_seen": len(env.boards_seen),
                                   "llm_boards": sum(a.llm_boards for a in phrasings.values())})
            if self.bar is not None:
                self.bar.update(model.num_timesteps - self.bar.n)
                self.bar.set_postfix(loss_x=f"{lg.recent_loss_rate('X'):.2f}", loss_o=f"{lg.recent_loss_rate('O'):.2f}",
                                     boards=len(env.boards_seen))
            if out_dir is not None:
                _write_csv(out_dir / "train.csv", state["train"])
            if model.num_timesteps >= self.next_eval:
                self.next_eval = model.num_timesteps + cfg.eval_every
                evaluate(model.num_timesteps)

        def _on_training_end(self) -> None:
            if self.bar is not None:
                self.bar.close()

    t = time.perf_counter()
    try:
        evaluate(model.num_timesteps)  # the starting point (mostly unsteered)
        if not state["stop"]:
            model.learn(total_timesteps=max(0, cfg.total_steps - model.num_timesteps), callback=Callback(),
                        reset_num_timesteps=not resume, progress_bar=False)
        if state["evals"][-1]["policy"] != export_policy(model, actuator, sae).digest:
            evaluate(model.num_timesteps)  # the final policy (after the update that follows the last rollout)
    finally:
        env.close()
        if server is not None:
            server.stop()
    stopped_by = ("the last {} evaluations met the target".format(cfg.stable_evals) if state["stable"]
                  else state.get("stopped_by") or "the step budget")
    timer.add("PPO updates and the rest", max(0.0, time.perf_counter() - t - sum(
        v for k, v in timer.sections.items() if not k.startswith("warm"))))
    hashes_after = {"model": lm.weights_hash(), "sae": sae.weights_hash()}
    policy = export_policy(model, actuator, sae)
    report = {
        "config": asdict(cfg), "features": [{"index": f, "label": sae.label(f) or ""} for f in features],
        "obs_features": len(actuator.obs_features), "policy_digest": policy.digest, "policy_step": int(model.num_timesteps),
        "steps": int(model.num_timesteps), "games": env.games_started, "random_opening_moves": env.random_moves,
        "boards_seen": len(env.boards_seen), "reached_target": state["reached"], "stable_target": state["stable"],
        "stopped_by": stopped_by, "final_eval": state["evals"][-1], "evals": state["evals"],
        "training_results": env.log.results, "training_results_by_opponent": env.log.by_opponent,
        "wall_seconds": round(timer.wall, 1), "cpu_seconds": round(timer.cpu, 1),
        "time": {k: round(v, 1) for k, v in timer.sections.items()},
        "env_seconds": {k: round(v, 1) for k, v in env.seconds.items()},
        "warm_up": warm, "actuator": {k: a.stats() for k, a in actuators.items()},
        "transport": {"via": cfg.via, "frames": getattr(transport, "frames", 0)},
        "weights_before": hashes_before, "weights_after": hashes_after,
        "weights_unchanged": hashes_before == hashes_after,
    }
    log(f"[ppo] stopped at step {report['steps']}: {stopped_by}")
    if out_dir is not None:
        policy.save(out_dir / "policy.json")
    report["_actuators"] = actuators  # for the caller's further evaluation; dropped from the card
    return policy, report


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


def plot_learning_curve(runs: dict[str, list[dict[str, Any]]], path: Path, title: str) -> None:
    """Value kept on every open position (min over training phrasings) and exact draws vs
    minimax, per side, against PPO steps: one line per run (seed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=110, sharey=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, evals) in enumerate(runs.items()):
        xs = [r["step"] for r in evals]
        c = colours[i % len(colours)]
        for ax, side, style in ((axes[0], "x", "-"), (axes[1], "o", "-")):
            kept = [100 * min(v for k, v in r.items() if k.startswith("kept_") and k.endswith("_" + side)) for r in evals]
            draw = [100 * r["draw_" + side] for r in evals]
            ax.plot(xs, kept, style, color=c, marker="o", ms=3, label=f"{name}: value kept (all open positions)")
            ax.plot(xs, draw, ":", color=c, marker="s", ms=3, label=f"{name}: draws vs minimax (exact)")
    for ax, side in ((axes[0], "X"), (axes[1], "O")):
        ax.set_title(f"LLM as {side}", fontsize=9)
        ax.set_xlabel("PPO steps (LLM moves)")
        ax.axhline(99, color="grey", lw=0.8, ls="--")
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
    return (f"{model}: PPO steering policy, {cfg['obs']} obs, {cfg['action']} action ({cfg['slots']} slots), "
            f"{cfg['mode']} reading, via {cfg['via']}, phrasings {','.join(cfg['phrasings'])}, seeds {','.join(map(str, seeds))}")


def kept_line(over_seeds: dict[str, Any]) -> str:
    """``grid_X 82.7 % [82.0–83.5], ...``: value kept, mean [min–max] over seeds."""
    return ", ".join(f"{k[5:]} {100 * v['mean']:.1f} % [{100 * v['min']:.1f}–{100 * v['max']:.1f}]"
                     for k, v in over_seeds.items() if k.startswith("kept_"))


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
            part = list(boards[i:i + chunk])
            coefs = actuator.codec.coefficients(policy.actions(actuator.observe(part)))
            masses += [m.digit_mass for m in actuator.bot.play(part, coefs) if m.digit_mass is not None]
    finally:
        reader.digit_mass = was
    return {"boards": len(masses), "mean": sum(masses) / max(1, len(masses)), "min": min(masses, default=float("nan"))}


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
    g("--pick", choices=("labels", "random", "shuffled"), default=d.pick,
      help="how features are picked when --features is not given (random, shuffled: equal-effort controls)")
    g("--n-features", type=int, default=d.n_features, help="features to steer when picking")
    g("--basis", choices=("sae", "directions"), default=d.basis,
      help="sae: steer along the features' decoder rows; directions: seeded random residual directions of the same "
           "norms instead (the non-SAE control; the policy is then not shippable)")
    g("--obs", choices=("board", "board+model", "features"), default=d.obs,
      help="observation: the board; the board and the model's own unsteered move distribution; or the SAE activations "
           "of the labelled features")
    g("--action", choices=("sparse", "dense"), default=d.action, help="sparse: feature+strength per slot; dense: a coefficient per feature")
    g("--strengths", default=",".join(f"{s:g}" for s in d.strengths), help="sparse: the signed coefficients a slot can apply")
    g("--slots", type=int, default=d.slots, help="sparse: distinct features steered per move at most")
    g("--bound", type=float, default=d.bound, help="dense: coefficients lie in [-bound, bound]")
    g("--seat", choices=("X", "O", "both"), default=d.seat, help="the LLM's seat in training games")
    g("--p-o", type=float, default=d.p_o, help="share of training games as O when --seat both")
    g("--mode", choices=("strict", "masked"), default=d.mode, help="move reading (strict is the headline)")
    g("--push-cost", type=float, default=d.push_cost, help="reward cost per move per unit of ||added||/||residual||")
    g("--shaping", choices=("value", "none"), default=d.shaping,
      help="value: each move paid the change of the solved game's value it makes; none: the game's result only (needs --gamma > 0)")
    g("--opponents", default=d.opponents, help="house bots the training games are drawn against, name[:weight], comma-separated")
    g("--random-openings", type=float, default=d.random_openings,
      help="chance that a game opens with random moves of the LLM's side (played by the environment)")
    g("--max-random-moves", type=int, default=d.max_random_moves, help="such an opening has 1..this many random moves")
    g("--phrasings", default=",".join(d.phrasings), help="training prompt phrasings (comma list of grid, rows, list)")
    g("--n-envs", type=int, default=d.n_envs, help="games played at once (one batched LLM call per step)")
    g("--n-steps", type=int, default=d.n_steps, help="PPO rollout length per game slot")
    g("--batch-size", type=int, default=d.batch_size, help="PPO minibatch size")
    g("--n-epochs", type=int, default=d.n_epochs, help="PPO epochs per update")
    g("--lr", type=float, default=d.learning_rate, help="PPO learning rate")
    g("--gamma", type=float, default=d.gamma, help="discount")
    g("--gae-lambda", type=float, default=d.gae_lambda, help="GAE lambda")
    g("--ent-coef", type=float, default=d.ent_coef, help="entropy bonus")
    g("--clip-range", type=float, default=d.clip_range, help="PPO clip range")
    g("--baseline", choices=("state", "constant"), default=d.baseline,
      help="the advantage's baseline: state (a learned V(board)) or constant (one learned number for every board)")
    g("--net-arch", default=",".join(str(n) for n in d.net_arch), help="hidden layer sizes of the policy and value nets")
    g("--none-bias", default=",".join(f"{b:g}" for b in d.none_bias),
      help="sparse: added to each slot's 'no steering' logit at the start (comma list, one per slot; the last repeats)")
    g("--total-steps", type=int, default=d.total_steps, help="PPO steps (LLM moves) at most")
    g("--budget-seconds", type=float, default=d.budget_seconds, help="wall-clock budget, warm-up included")
    g("--eval-every", type=int, default=d.eval_every, help="steps between exact evaluations")
    g("--target", type=float, default=d.target,
      help="goal of an evaluation: value kept on both sides in every training phrasing, and draws vs minimax")
    g("--stable-evals", type=int, default=d.stable_evals, help="stop once this many evaluations in a row meet --target")
    g("--seeds", default="", help="comma-separated seeds: one run each (in --out/seed-N, sharing the prompt cache); "
                                  "default: --seed alone")
    g("--summary", type=Path, default=None, help="JSON gathering the runs' final evaluations (mean and spread over seeds)")
    g("--via", choices=("server", "local"), default=d.via, help="server: through an arena server (headline); local: in-process")
    g("--server", default=None, help="URL of a running arena server (default: start one in-process on a free port)")
    g("--seed", type=int, default=d.seed, help="seed of PPO, the seats and the minimax games")
    g("--no-warm", action="store_true", help="do not run every LLM board's prompt before training")
    g("--no-prompt-store", action="store_true", help="do not load/save the warm-up's prompt cache on disk "
                                                     "(~/.cache/autosteer-arena/prompts; a pure function of weights and prompts)")
    g("--server-games", type=int, default=0, help="after training, also play this many games per seat vs minimax "
                                                   "and vs random through a server with the final policy")
    g("--heldout-phrasings", default="list", help="after training, also evaluate exactly on these prompt phrasings "
                                                  "(comma list; not trained on)")
    g("--threads", type=int, default=1, help="torch CPU threads for training (1 is fastest: small steps, a server beside)")
    g("--warm-threads", type=int, default=2, help="torch CPU threads for the warm-up's prefill (large matrix work)")
    g("--out", type=Path, default=ROOT / "var" / "rl" / "run", help="folder for the policy, logs, checkpoint and run card")
    g("--resume", action="store_true", help="continue from the checkpoint in --out")
    g("--plot", type=Path, default=DEFAULT_PLOT, help="learning-curve PNG")
    g("--mqtt", metavar="URL", default=None,
      help="publish each exact evaluation and the final summary to this MQTT broker, mqtt://host[:port][/prefix] "
           "(topics P/training/RUN/progress|summary; 'autosteer-server watch' prints them)")
    g("--run-id", default=None, help="the run's name on the broker (default: ppo-UNIXTIME; -seedN added with several seeds)")
    g("--ship", action="store_true", help=f"copy the policy and its run card to bots/llm/artifacts/{SHIPPED_NAME}")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    def floats(text: str) -> list[float]:
        return [float(x) for x in text.split(",") if x.strip()]

    return TrainConfig(seed=args.seed, features=[int(x) for x in args.features.split(",") if x.strip()], pick=args.pick,
                       n_features=args.n_features, basis=args.basis, obs=args.obs, action=args.action, strengths=floats(args.strengths),
                       slots=args.slots, bound=args.bound, seat=args.seat, p_o=args.p_o, mode=args.mode,
                       push_cost=args.push_cost, shaping=args.shaping, n_envs=args.n_envs, n_steps=args.n_steps, batch_size=args.batch_size,
                       n_epochs=args.n_epochs, learning_rate=args.lr, gamma=args.gamma, gae_lambda=args.gae_lambda,
                       ent_coef=args.ent_coef, clip_range=args.clip_range, baseline=args.baseline,
                       net_arch=[int(x) for x in args.net_arch.split(",") if x.strip()], none_bias=floats(args.none_bias) or [0.0],
                       total_steps=args.total_steps, budget_seconds=args.budget_seconds, eval_every=args.eval_every,
                       target=args.target, via=args.via, warm=not args.no_warm,
                       prompt_store=not args.no_prompt_store, opponents=args.opponents,
                       random_openings=args.random_openings, max_random_moves=args.max_random_moves,
                       phrasings=[p.strip() for p in args.phrasings.split(",") if p.strip()],
                       stable_evals=args.stable_evals)


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
        raise ValueError(f"a held-out phrasing cannot also be a training phrasing: {sorted(set(held) & set(cfg.phrasings))}")
    seeds = [int(x) for x in args.seeds.split(",") if x.strip()] if args.seeds else [cfg.seed]
    if len(set(seeds)) != len(seeds):
        raise ValueError("--seeds repeats a seed")
    return seeds


def after_training(policy: Any, report: dict[str, Any], cfg: TrainConfig, args: argparse.Namespace) -> None:
    """The final policy on what it was trained on, and on the random player (every figure
    exact); the held-out phrasings come later (:func:`heldout_phrasings`)."""
    from training.heldout import open_positions

    actuators = report.pop("_actuators")
    first = next(iter(actuators.values()))
    t = time.perf_counter()
    report["positions"] = {name: evaluate_positions(policy, act) for name, act in actuators.items()}
    report["vs_minimax_exact"] = evaluate_exact(policy, first)
    report["vs_random_exact"] = evaluate_exact(policy, first, opponent="random")
    report["digit_mass"] = digit_mass_check(policy, first, open_positions())
    if args.server_games:
        report["server_games"] = [*play_server_games(policy, first, args.server_games, cfg.seed, "minimax"),
                                  *play_server_games(policy, first, args.server_games, cfg.seed, "random")]
    report["after_training_seconds"] = round(time.perf_counter() - t, 1)


def heldout_phrasings(runs: list[tuple[Any, dict[str, Any], TrainConfig]], phrasings: Sequence[str], lm: Any,
                      sae: Any, progress: bool = True, threads: int = 2) -> None:
    """Each run's final policy on the prompt phrasings it was not trained on: value kept on
    every open position and the exact walk against minimax. One phrasing's prompt cache at a
    time (about 4 GB for SmolLM2), shared by the runs."""
    for phrasing in phrasings:
        reader = None
        for policy, report, cfg in runs:
            act = build_actuators(lm, sae, cfg, policy.features, phrasings=[phrasing],
                                  readers={phrasing: reader} if reader is not None else None)[phrasing]
            if reader is None and cfg.warm:
                warm_actuators({phrasing: act}, lm, report["weights_before"]["model"], store=cfg.prompt_store,
                               progress=progress, threads=threads)
            reader = act.bot.reader
            t = time.perf_counter()
            report.setdefault("heldout_phrasings", {})[phrasing] = {"positions": evaluate_positions(policy, act),
                                                                   "vs_minimax_exact": evaluate_exact(policy, act)}
            report["heldout_seconds"] = round(report.get("heldout_seconds", 0.0) + time.perf_counter() - t, 1)
        del reader


def summarize(cards: list[dict[str, Any]]) -> dict[str, Any]:
    """The runs' final evaluations side by side, with mean and spread (min, max, sample
    standard deviation) over seeds of each figure."""
    import statistics

    rows = []
    for c in cards:
        row: dict[str, Any] = {"seed": c["config"]["seed"], "policy_digest": c["policy_digest"], "steps": c["steps"],
                               "stopped_by": c["stopped_by"], "wall_seconds": c["wall_seconds"],
                               "stable_target": c["stable_target"], "reached_target": c["reached_target"]}
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
        if c.get("digit_mass"):
            row["digit_mass_min"] = c["digit_mass"]["min"]
            row["digit_mass_mean"] = c["digit_mass"]["mean"]
        rows.append(row)
    stats: dict[str, Any] = {}
    for key in rows[0] if rows else []:
        vals = [r.get(key) for r in rows]
        nums = [v for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if len(nums) == len(vals) and key != "seed":
            stats[key] = {"mean": statistics.fmean(nums), "min": min(nums), "max": max(nums),
                          "sd": statistics.stdev(nums) if len(nums) > 1 else 0.0}
    return {"seeds": [r["seed"] for r in rows], "runs": rows, "over_seeds": stats}


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
    from server.progress import progress_publisher

    out_root = Path(args.out)
    readers: dict[str, Any] = {}
    runs: list[tuple[Any, dict[str, Any], TrainConfig]] = []
    curves: dict[str, list[dict[str, Any]]] = {}
    weights_hash = lm.weights_hash()
    for seed in seeds:
        run_cfg = TrainConfig(**{**asdict(cfg), "seed": seed})
        out = out_root / f"seed-{seed}" if len(seeds) > 1 else out_root
        features = pick_features(sae, run_cfg)
        actuators = build_actuators(lm, sae, run_cfg, features, readers=readers)
        if run_cfg.warm:
            warm = warm_actuators(actuators, lm, weights_hash, store=run_cfg.prompt_store, threads=args.warm_threads)
        readers.update({p: a.bot.reader for p, a in actuators.items()})
        run_id = args.run_id or f"ppo-{int(time.time())}"
        published = progress_publisher(args.mqtt, run=run_id + (f"-seed{seed}" if len(seeds) > 1 else ""))
        try:
            policy, report = train_ppo(run_cfg, lm, sae, out_dir=out, resume=args.resume, server_url=args.server,
                                       on_eval=lambda row: None if published.progress(force=True, **row) else None,
                                       actuators=actuators)
        except (ValueError, RuntimeError, OSError) as exc:
            console.print(f"[red]error:[/] {exc}")
            published.close()
            return 1
        if run_cfg.warm:
            report["warm_up"] = warm
        after_training(policy, report, run_cfg, args)
        report.update(command=command, model=lm.name, sae=_relative(sae.source), hook_name=sae.hook_name,
                      torch=torch.__version__, python=platform.python_version(), cpus=_cpus(),
                      date=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), out=str(out))
        runs.append((policy, report, run_cfg))
        (out / "run_card.json").write_text(json.dumps(report, indent=2) + "\n")  # again with the held-out figures
        curves[f"seed {seed}"] = report["evals"]
        published.summary({"policy": policy.digest, "final_eval": report["final_eval"], "stopped_by": report["stopped_by"],
                           "wall_seconds": report["wall_seconds"], "weights_unchanged": report["weights_unchanged"],
                           "done": True})
        published.close()
        pos = report["positions"]
        console.print(f"seed {seed}: policy {policy.digest} ({report['stopped_by']}, step {report['steps']}): value kept "
                      + ", ".join(f"{p} {100 * v['X']['kept_share']:.1f} / {100 * v['O']['kept_share']:.1f} %"
                                  for p, v in pos.items())
                      + f"; vs minimax draws {100 * report['vs_minimax_exact']['X']['draw']:.1f} / "
                        f"{100 * report['vs_minimax_exact']['O']['draw']:.1f} %")
        del actuators
    readers.clear()  # the training phrasings' prompt caches: free them before the held-out ones
    heldout_phrasings(runs, [p.strip() for p in args.heldout_phrasings.split(",") if p.strip()], lm, sae,
                      threads=args.warm_threads)
    cards = [report for _, report, _ in runs]
    for report in cards:
        out = Path(report.pop("out"))
        report["time"]["held-out phrasings"] = report.pop("heldout_seconds", 0.0)
        (out / "run_card.json").write_text(json.dumps(report, indent=2) + "\n")
        write_card_md(report, out / "run_card.md")
    plot_learning_curve(curves, args.plot, curve_title(lm.name, asdict(cfg), seeds))
    summary = {"command": command, "config": asdict(cfg), "model": lm.name, "hook_name": sae.hook_name,
               "weights_unchanged": all(c["weights_unchanged"] for c in cards),
               "weights_before": cards[0]["weights_before"], "weights_after": cards[-1]["weights_after"],
               "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "cpus": _cpus(), **summarize(cards)}
    if args.summary is not None:
        args.summary.parent.mkdir(parents=True, exist_ok=True)
        args.summary.write_text(json.dumps(summary, indent=2) + "\n")
    if args.ship and cfg.basis != "sae":
        console.print("[red]error:[/] a policy over random directions cannot be shipped (the bot steers SAE features)")
        return 2
    if args.ship:
        first = out_root / f"seed-{seeds[0]}" if len(seeds) > 1 else out_root
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(first / "policy.json", ARTIFACTS / SHIPPED_NAME)
        shutil.copyfile(first / "run_card.json", ARTIFACTS / SHIPPED_NAME.replace(".json", ".card.json"))
        shutil.copyfile(first / "run_card.md", ARTIFACTS / SHIPPED_NAME.replace(".json", ".card.md"))
        console.print(f"shipped {ARTIFACTS / SHIPPED_NAME} (policy {cards[0]['policy_digest']}, seed {seeds[0]}, final)")
    st = summary["over_seeds"]
    print(f"done: {kept_line(st)} value kept over {len(seeds)} seed(s); weights unchanged: {summary['weights_unchanged']}")
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
    cfg = card["config"]
    lines = [
        "# Run card: learned steering policy (PPO)", "",
        f"- Command: `{card['command']}`",
        f"- Model / SAE: {card['model']} / `{card['sae']}` at `{card['hook_name']}`",
        f"- Observation `{cfg['obs']}`, action `{cfg['action']}` (strengths {cfg['strengths']}, {cfg['slots']} distinct "
        f"features at most), `{cfg['mode']}` reading, played via `{cfg['via']}`; seed {cfg['seed']}",
        f"- Games: opponents `{cfg['opponents']}` (equal weights unless given), training phrasings {cfg['phrasings']}, "
        f"random openings {cfg['random_openings']} (1-{cfg['max_random_moves']} random moves of the LLM's side; "
        f"{card['random_opening_moves']} played), LLM seat {cfg['seat']} (O with p {cfg['p_o']})",
        f"- Reward: shaping `{cfg['shaping']}` (value: each move paid the change of the solved value it makes; none: "
        f"the result only), minus {cfg['push_cost']} × ‖added‖/‖residual‖ per move",
        f"- PPO: n_envs {cfg['n_envs']}, n_steps {cfg['n_steps']}, batch {cfg['batch_size']}, epochs {cfg['n_epochs']}, "
        f"lr {cfg['learning_rate']}, gamma {cfg['gamma']}, GAE λ {cfg['gae_lambda']}, entropy {cfg['ent_coef']}, "
        f"clip {cfg['clip_range']}, net {cfg['net_arch']}, none bias {cfg['none_bias']}, baseline {cfg.get('baseline', 'state')}",
        f"- Steps {card['steps']} ({card['games']} games, {card['boards_seen']} distinct boards steered); stopped by "
        f"{card['stopped_by']}; the policy is the final one (step {card['policy_step']}); target {cfg['target']} first "
        f"met: {card['reached_target'] or 'no'}",
        f"- Time: {card['wall_seconds']} s wall, {card['cpu_seconds']} s CPU ({card['cpus']} CPUs); "
        f"sections: {card['time']}; env: {card['env_seconds']}",
        f"- Policy digest: `{card['policy_digest']}`",
        f"- Weights (sha256 prefix) before: model `{card['weights_before']['model'][:16]}`, SAE `{card['weights_before']['sae'][:16]}`; "
        f"after: model `{card['weights_after']['model'][:16]}`, SAE `{card['weights_after']['sae'][:16]}` "
        f"(unchanged: {card['weights_unchanged']})", "",
        "Every open position (4,520), the LLM playing the side to move, strict reading:", "",
        "| phrasing | trained on | side | positions | value kept | illegal | mean push ‖Δ‖/‖h‖ | features/move (max) | mean KL |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    tables = [(p, "yes", v) for p, v in (card.get("positions") or {}).items()]
    tables += [(p, "**held out**", v["positions"]) for p, v in (card.get("heldout_phrasings") or {}).items()]
    for p, trained, table in tables:
        for side in ("X", "O"):
            r = table[side]
            lines.append(f"| {p} | {trained} | {side} | {r['positions']} | {100 * r['kept_share']:.2f} % | {r['illegal']} | "
                         f"{r['mean_push']:.3f} | {r['mean_features_steered']:.2f} ({r['max_features_steered']}) | "
                         f"{r['mean_kl']:.3f} |")
    lines += ["", "Exact outcome (tree walk; minimax with uniformly random tie-breaks), strict reading:", "",
              "| phrasing | opponent | seat | draw | win | loss | illegal | distinct games | mean push |", "|---|---|---|---|---|---|---|---|---|"]
    walks = [(cfg["phrasings"][0], "minimax", card.get("vs_minimax_exact") or {}),
             (cfg["phrasings"][0], "random", card.get("vs_random_exact") or {})]
    walks += [(p, "minimax", v["vs_minimax_exact"]) for p, v in (card.get("heldout_phrasings") or {}).items()]
    for p, opp, table in walks:
        for seat in ("X", "O"):
            if seat in table:
                r = table[seat]
                lines.append(f"| {p} | {opp} | {seat} | {100 * r['draw']:.2f} % | {100 * r['win']:.2f} % | {100 * r['loss']:.2f} % | "
                             f"{100 * r['illegal']:.2f} % | {r['games']} | {r['mean_push']:.3f} |")
    if card.get("digit_mass"):
        dm = card["digit_mass"]
        lines += ["", f"Digits' share of the next-token distribution under the policy's steering, every open position "
                      f"({cfg['phrasings'][0]}): mean {dm['mean']:.3f}, min {dm['min']:.3f}."]
    if card.get("server_games"):
        lines += ["", "Games through the server (in-process arena, the bot as a remote client, seeded games):", "",
                  "| opponent | seat | games | distinct | wins | draws | losses | illegal | mean push |", "|---|---|---|---|---|---|---|---|---|"]
        for a in card["server_games"]:
            lines.append(f"| {a['opponent']} | {a['seat']} | {a['games']} | {a['distinct_games']} | {a['wins']} | {a['draws']} | "
                         f"{a['losses']} | {a['illegal']} | {a['mean_norm_ratio']:.3f} |")
    lines += ["", "| feature | label |", "|---|---|"]
    lines += [f"| {f['index']} | {f['label'] or '—'} |" for f in card["features"]]
    path.write_text("\n".join(lines) + "\n")
