"""The PPO method: learn a board-dependent steering policy with stable-baselines3 PPO by
playing the server's house bots over the whole game, evaluating it exactly as it learns.
The command that runs it per seed, evaluates the final policy further and ships it is
``autosteer-train ppo`` (:mod:`training.rl.cli`); the defaults are the documented recipe
(docs/RL.md).

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
   numpy net, the very code the bot runs; :mod:`training.rl.evaluation`): on every open
   position in each training phrasing, the share where the steered strict move keeps the
   solved value (per side), and the exact tree walk against minimax as X and as O. Rows go
   to ``eval.csv``. Training stops when the last ``stable_evals`` evaluations all meet
   ``target`` (value kept on both sides in every training phrasing, and draws against
   minimax), or at the step budget. The policy returned and shipped is the **final** one:
   no snapshot is selected on the metric reported.
5. **Outputs** in ``out_dir``: ``policy.json`` (kind ``learned``), ``checkpoint.zip``,
   ``train.csv``, ``eval.csv``; and the report (features, hyper-parameters, wall and CPU
   time and where it went, evaluations, model and SAE weight hashes before and after) that
   the command completes into the run card.

``train_ppo(config, lm, sae)`` is the whole method as one call, so controls can re-run it
with other features and the same number of steps.
"""

from __future__ import annotations

import csv
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence, cast


from server.game import Board, Seat
from server.players.house import HOUSE_NAMES
from training.rl.curriculum import SCORE_FLOOR

ROOT = Path(__file__).resolve().parent.parent.parent


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
    margin_reward: float = 0.3  # value shaping: weight of the keep-margin reward per move
    margin_cap: float = 3.0  # nats of keep margin that earn the whole margin reward
    judge: str = "game"  # value shaping: judge a move in its game's phrasing (game) or in every training phrasing
    opponents: str = ",".join(HOUSE_NAMES)  # house bots the games are drawn against, name[:weight]
    random_openings: float = 0.5  # chance a game opens with 1..max_random_moves random moves of the LLM's side
    max_random_moves: int = 3
    start_positions: float = 0.9  # chance a game starts from an open position drawn by the curriculum
    curriculum: str = "prioritized"  # how start positions are drawn: prioritized (recent failures) | uniform
    curriculum_floor: float = SCORE_FLOOR  # prioritized: added to every failure score before drawing
    phrasings: list[str] = field(default_factory=lambda: ["grid", "rows", "moves"])  # training phrasings
    n_envs: int = 64
    n_steps: int = 32
    batch_size: int = 512
    n_epochs: int = 10
    learning_rate: float = 3e-3
    lr_schedule: str = "linear"  # linear (annealed to 0 over total_steps) | constant
    gamma: float = 0.0
    gae_lambda: float = 0.0
    ent_coef: float = 0.003
    clip_range: float = 0.2
    baseline: str = "state"  # state: SB3's learned V(board) | constant: one learned scalar, the same on every board
    net_arch: list[int] = field(default_factory=lambda: [256, 256])
    none_bias: list[float] = field(
        default_factory=lambda: [3.0, 6.0]
    )  # added to each slot's "no steering" logit at the start
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
            delta = (labels[idx].get("effect") or {}).get("mean_delta_prob") or []
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
def build_actuator(
    lm: Any, sae: Any, cfg: TrainConfig, features: Sequence[int], cache_boards: int = 6000, phrasing: str = "grid"
) -> Any:
    from bots.llm.bot import LLMBot
    from bots.llm.learned import ActionCodec
    from bots.llm.policy import FixedSteeringPolicy
    from training.rl.actuator import LLMActuator

    zero = FixedSteeringPolicy(list(features), [0.0] * len(features), hook_name=sae.hook_name, d_sae=sae.d_sae)
    directions = None
    if cfg.basis == "directions":  # the non-SAE control: random directions with the features' decoder norms
        from training.bases import random_direction_basis

        directions = random_direction_basis(sae, features, cfg.seed).directions
    elif cfg.basis != "sae":
        raise ValueError(f"unknown steering basis {cfg.basis!r}; expected sae or directions")
    bot = LLMBot(
        lm,
        sae=sae,
        policy=zero,
        mode=cfg.mode,
        top_k=0,
        cache_boards=cache_boards,
        phrasing=phrasing,
        directions=directions,
    )
    codec = ActionCodec(cfg.action, len(features), strengths=cfg.strengths, slots=cfg.slots, bound=cfg.bound)
    return LLMActuator(bot, codec, cfg.obs, obs_observed(sae) if cfg.obs == "features" else ())


def build_actuators(
    lm: Any,
    sae: Any,
    cfg: TrainConfig,
    features: Sequence[int],
    phrasings: Sequence[str] | None = None,
    readers: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One actuator per phrasing (the same features and action; its own answer reader, or
    the one in ``readers`` for that phrasing: the prompt cache does not depend on the
    features steered, so runs with other features can share it)."""
    out = {}
    for p in phrasings or cfg.phrasings:
        act = build_actuator(lm, sae, cfg, features, phrasing=p)
        if readers is not None and p in readers:
            act.bot.reader = readers[p]
        out[p] = act
    return out


def warm_actuators(
    actuators: dict[str, Any],
    lm: Any,
    weights_hash: str,
    *,
    store: bool = True,
    progress: bool = True,
    boards: Sequence[Board] | None = None,
    threads: int = 2,
) -> dict[str, Any]:
    """Run (or load from the prompt store) the prompt of every open position in each
    actuator's phrasing, with ``threads`` torch threads (the prefill is large matrix work:
    both cores pay; training's small steps run best on one); returns what was done per phrasing."""
    import torch

    from training.evaluation.heldout import open_positions
    from training.rl.actuator import prompt_store_path

    boards = list(boards) if boards is not None else open_positions()
    out: dict[str, Any] = {}
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        for name, act in actuators.items():
            path = prompt_store_path(lm, act.bot.reader, weights_hash) if store else None
            info: dict[str, Any] = {}
            _with_bar(
                progress,
                len(boards),
                f"warm-up: prompts of every open position ({name})",
                lambda step: info.update(act.warm(boards, progress=step, store=path)),
            )
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
    return LearnedSteeringPolicy(
        actuator.bot.steering.features,
        obs=actuator.obs,
        codec=actuator.codec,
        net=MLP(layers, "tanh"),
        obs_features=actuator.obs_features,
        hook_name=sae.hook_name,
        d_sae=sae.d_sae,
    )


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
        log(
            f"[ppo] playing {cfg.opponents} through the server at {server_url} ({cfg.n_envs} games at once, one connection)"
        )
        return ServerTransport(server_url, forfeit=cfg.mode == "strict"), server
    if cfg.via == "local":
        log(f"[ppo] playing {cfg.opponents} in-process (--via local, {cfg.n_envs} games at once)")
        return LocalTransport(), None
    raise ValueError(f"unknown --via {cfg.via!r}; expected server or local")


def learning_rate_schedule(cfg: TrainConfig) -> Any:
    """PPO's learning rate: ``cfg.learning_rate`` throughout, or annealed linearly to 0 over
    the run's steps (SB3 calls it with the share of the steps still to go).

    >>> f = learning_rate_schedule(TrainConfig(learning_rate=0.002, lr_schedule="linear"))
    >>> f(1.0), f(0.25)
    (0.002, 0.0005)
    """
    if cfg.lr_schedule == "constant":
        return cfg.learning_rate
    if cfg.lr_schedule == "linear":
        from stable_baselines3.common.utils import LinearSchedule

        return LinearSchedule(cfg.learning_rate, 0.0, 1.0)
    raise ValueError(f"unknown learning-rate schedule {cfg.lr_schedule!r}; expected constant or linear")


def _new_model(cfg: TrainConfig, env: Any, n_choices: int) -> Any:
    import torch
    from stable_baselines3 import PPO

    if cfg.baseline not in ("state", "constant"):
        raise ValueError(f"unknown baseline {cfg.baseline!r}; expected state or constant")
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=cfg.n_steps,
        batch_size=cfg.batch_size,
        n_epochs=cfg.n_epochs,
        learning_rate=learning_rate_schedule(cfg),
        gamma=cfg.gamma,
        gae_lambda=cfg.gae_lambda,
        ent_coef=cfg.ent_coef,
        clip_range=cfg.clip_range,
        seed=cfg.seed,
        device="cpu",
        verbose=0,
        policy_kwargs={
            "net_arch": {"pi": list(cfg.net_arch), "vf": list(cfg.net_arch) if cfg.baseline == "state" else []}
        },
    )
    if cfg.action == "sparse" and cfg.none_bias:
        with torch.no_grad():
            for slot in range(cfg.slots):  # each slot's "no steering" choice starts likely (a later slot more so)
                head = cast(
                    torch.nn.Linear, model.policy.action_net
                )  # MlpPolicy's action head over a MultiDiscrete space
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


def train_ppo(
    cfg: TrainConfig,
    lm: Any,
    sae: Any,
    *,
    out_dir: Path | None = None,
    resume: bool = False,
    progress: bool = True,
    server_url: str | None = None,
    log: Any = print,
    on_eval: Callable[[dict[str, Any]], None] | None = None,
    actuators: dict[str, Any] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Train, evaluate exactly, and return ``(final policy, report)``; with ``out_dir`` also
    write the CSV logs, checkpoint and policy there (see the module docstring). ``on_eval``
    is handed each evaluation's row as it is made, e.g. to publish it to an MQTT broker
    (``--mqtt``). ``actuators`` (phrasing → actuator, from :func:`build_actuators`, warm)
    lets several runs share one prompt cache; each run starts with an empty move memo."""
    from training.rl.env import SteeringVecEnv

    timer = Timer()
    hashes_before = {"model": lm.weights_hash(), "sae": sae.weights_hash()}
    features = pick_features(sae, cfg)
    actuators, warm = _ready_actuators(cfg, lm, sae, features, actuators, timer, hashes_before["model"], progress, log)
    log(
        f"[ppo] steering {len(features)} features of {sae.hook_name} ({cfg.pick if not cfg.features else 'given'}): "
        f"{features}; obs {cfg.obs}, action {cfg.action}, {cfg.mode} reading, phrasings {list(actuators)}"
    )
    transport, server = _make_transport(cfg, server_url, log)
    env = SteeringVecEnv(actuators, transport, cfg.n_envs, _env_config(cfg))
    out_dir = Path(out_dir) if out_dir is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    ckpt = out_dir / "checkpoint.zip" if out_dir is not None else None
    model = _load_or_new_model(cfg, env, ckpt, resume, next(iter(actuators.values())), log)
    state = _TrainingRun(cfg, sae, model, env, actuators, timer, out_dir, ckpt, on_eval, log)
    t = time.perf_counter()
    try:
        state.learn(resume, progress)
    finally:
        env.close()
        if server is not None:
            server.stop()
    stopped_by = (
        "the last {} evaluations met the target".format(cfg.stable_evals)
        if state.stable
        else state.stopped_by or "the step budget"
    )
    timer.add(
        "PPO updates and the rest",
        max(0.0, time.perf_counter() - t - sum(v for k, v in timer.sections.items() if not k.startswith("warm"))),
    )
    hashes_after = {"model": lm.weights_hash(), "sae": sae.weights_hash()}
    policy = export_policy(model, state.actuator, sae)
    report = {
        **_report(state, features, policy, stopped_by),
        "warm_up": warm,
        "actuator": {k: a.stats() for k, a in actuators.items()},
        "transport": {"via": cfg.via, "frames": getattr(transport, "frames", 0)},
        "weights_before": hashes_before,
        "weights_after": hashes_after,
        "weights_unchanged": hashes_before == hashes_after,
    }
    log(f"[ppo] stopped at step {report['steps']}: {stopped_by}")
    if out_dir is not None:
        policy.save(out_dir / "policy.json")
    report["_actuators"] = actuators  # for the caller's further evaluation; dropped from the card
    return policy, report


def _ready_actuators(
    cfg: TrainConfig,
    lm: Any,
    sae: Any,
    features: list[int],
    actuators: dict[str, Any] | None,
    timer: Timer,
    weights_hash: str,
    progress: bool,
    log: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run's actuators (one per training phrasing): the given ones, checked to steer
    ``features`` and with their move memos cleared, or new ones, warmed up unless the
    config says not to; and what the warm-up did."""
    warm: dict[str, Any] = {}
    if actuators is None:
        actuators = build_actuators(lm, sae, cfg, features)
        if cfg.warm:
            t = time.perf_counter()
            warm = warm_actuators(actuators, lm, weights_hash, store=cfg.prompt_store, progress=progress)
            timer.add("warm-up (prompt cache of every open position)", time.perf_counter() - t)
            for name, w in warm.items():
                log(f"[ppo] warm-up {name}: {w['computed']} prompts run, {w['from_store']} loaded in {w['seconds']} s")
    for act in actuators.values():
        if list(act.bot.steering.features) != list(features):
            raise ValueError("the given actuators steer other features than this run picks")
        act.memo.clear()
    return actuators, warm


def _env_config(cfg: TrainConfig) -> Any:
    from training.rl.env import EnvConfig

    return EnvConfig(
        seat=cfg.seat,
        p_o=cfg.p_o,
        mode=cfg.mode,
        push_cost=cfg.push_cost,
        shaping=cfg.shaping,
        margin_reward=cfg.margin_reward,
        margin_cap=cfg.margin_cap,
        judge=cfg.judge,
        seed=cfg.seed,
        opponents=cfg.opponents,
        random_openings=cfg.random_openings,
        max_random_moves=cfg.max_random_moves,
        start_positions=cfg.start_positions,
        curriculum=cfg.curriculum,
        curriculum_floor=cfg.curriculum_floor,
    )


def _load_or_new_model(cfg: TrainConfig, env: Any, ckpt: Path | None, resume: bool, actuator: Any, log: Any) -> Any:
    """The PPO model: loaded from ``ckpt`` with ``resume``, else a new one."""
    from stable_baselines3 import PPO

    if not resume:
        return _new_model(cfg, env, actuator.codec.nvec[0] if cfg.action == "sparse" else 0)
    if ckpt is None or not ckpt.is_file():
        raise ValueError(f"--resume: no checkpoint at {ckpt}; train without --resume first")
    model = PPO.load(ckpt, env=env, device="cpu")
    if cfg.baseline == "constant":
        constant_baseline(model)
    log(f"[ppo] resumed from {ckpt} at step {model.num_timesteps}")
    return model


@dataclass
class _TrainingRun:
    """One run's moving parts while PPO learns, and what it has recorded: the evaluation
    rows, the rollouts' training rows, when the target was first met and when it held."""

    cfg: TrainConfig
    sae: Any
    model: Any
    env: Any
    actuators: dict[str, Any]
    timer: Timer
    out_dir: Path | None
    ckpt: Path | None
    on_eval: Callable[[dict[str, Any]], None] | None
    log: Any
    evals: list[dict[str, Any]] = field(default_factory=list)
    train: list[dict[str, Any]] = field(default_factory=list)
    reached: dict[str, Any] | None = None
    stable: dict[str, Any] | None = None
    stop: bool = False
    stopped_by: str | None = None

    @property
    def actuator(self) -> Any:
        return next(iter(self.actuators.values()))

    def learn(self, resume: bool, progress: bool) -> None:
        """Evaluate the starting point, learn until the step budget or the stop, and
        evaluate the final policy if it changed after the last evaluation."""
        model = self.model
        self.evaluate(model.num_timesteps)  # the starting point (mostly unsteered)
        if not self.stop:
            model.learn(
                total_timesteps=max(0, self.cfg.total_steps - model.num_timesteps),
                callback=_callback(self, progress),
                reset_num_timesteps=not resume,
                progress_bar=False,
            )
        if self.evals[-1]["policy"] != export_policy(model, self.actuator, self.sae).digest:
            self.evaluate(model.num_timesteps)  # the final policy (after the update that follows the last rollout)

    def evaluate(self, step: int) -> None:
        """One exact evaluation (:func:`training.rl.evaluation.evaluation_row`): logged,
        handed to ``on_eval``, checked against the target, written with the checkpoint."""
        from training.rl.evaluation import evaluation_row, meets

        cfg, timer = self.cfg, self.timer
        t = time.perf_counter()
        policy = export_policy(self.model, self.actuator, self.sae)
        row = {"step": step, "policy": policy.digest, **evaluation_row(policy, self.actuators)}
        timer.add("evaluations (every open position, tree walks)", time.perf_counter() - t)
        row.update(wall_s=round(timer.wall, 1), cpu_s=round(timer.cpu, 1))
        self.evals.append(row)
        if self.on_eval is not None:
            self.on_eval(row)
        ok = meets(row, cfg.target)
        if ok and self.reached is None:
            self.reached = {"step": step, "wall_s": row["wall_s"], "cpu_s": row["cpu_s"]}
        last = self.evals[-cfg.stable_evals :]
        if len(last) == cfg.stable_evals and all(meets(r, cfg.target) for r in last):
            self.stable = {"step": step, "wall_s": row["wall_s"], "cpu_s": row["cpu_s"]}
            self.stop = True
        kept = " ".join(f"{k[5:]} {100 * v:.1f}" for k, v in row.items() if k.startswith("kept_"))
        self.log(
            f"[ppo] step {step:>7}: value kept % {kept}; exact draw vs minimax X {100 * row['draw_x']:.1f} % "
            f"O {100 * row['draw_o']:.1f} %; {timer.wall:.0f} s"
        )
        if self.out_dir is not None and self.ckpt is not None:
            _write_csv(self.out_dir / "eval.csv", self.evals)
            self.model.save(self.ckpt)

    def record_rollout(self) -> dict[str, Any]:
        """A training row after a rollout (recent results, push, boards seen), also
        written to ``train.csv``."""
        lg, env, timer = self.env.log, self.env, self.timer
        row = {
            "step": self.model.num_timesteps,
            "wall_s": round(timer.wall, 1),
            "cpu_s": round(timer.cpu, 1),
            "games": env.games_started,
            "recent_draw_x": round(lg.recent_draw_rate("X"), 4),
            "recent_draw_o": round(lg.recent_draw_rate("O"), 4),
            "recent_loss_x": round(lg.recent_loss_rate("X"), 4),
            "recent_loss_o": round(lg.recent_loss_rate("O"), 4),
            "mean_push": round(lg.push / max(1, lg.moves), 4),
            "boards_seen": len(env.boards_seen),
            "llm_boards": sum(a.llm_boards for a in self.actuators.values()),
        }
        self.train.append(row)
        if self.out_dir is not None:
            _write_csv(self.out_dir / "train.csv", self.train)
        return row


def _callback(run: _TrainingRun, progress: bool) -> Any:
    """The SB3 callback of a run: times the rollouts, records each one, evaluates every
    ``eval_every`` steps, shows a progress bar, and stops at the wall-clock budget or once
    the target holds."""
    from stable_baselines3.common.callbacks import BaseCallback

    cfg, model, timer, env = run.cfg, run.model, run.timer, run.env

    class Callback(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.next_eval = model.num_timesteps + cfg.eval_every
            self.t_rollout = time.perf_counter()
            self.bar = None

        def _on_training_start(self) -> None:
            if progress:
                from tqdm import tqdm

                self.bar = tqdm(
                    total=cfg.total_steps,
                    initial=model.num_timesteps,
                    desc="PPO steps",
                    unit="step",
                    file=sys.stderr,
                    dynamic_ncols=True,
                    mininterval=5.0,
                )

        def _on_step(self) -> bool:
            if timer.wall >= cfg.budget_seconds:
                run.stopped_by = "wall-clock budget"
                return False
            return not run.stop

        def _on_rollout_start(self) -> None:
            self.t_rollout = time.perf_counter()

        def _on_rollout_end(self) -> None:
            timer.add("rollouts (LLM moves + server games)", time.perf_counter() - self.t_rollout)
            run.record_rollout()
            if self.bar is not None:
                lg = env.log
                self.bar.update(model.num_timesteps - self.bar.n)
                self.bar.set_postfix(
                    loss_x=f"{lg.recent_loss_rate('X'):.2f}",
                    loss_o=f"{lg.recent_loss_rate('O'):.2f}",
                    boards=len(env.boards_seen),
                )
            if model.num_timesteps >= self.next_eval:
                self.next_eval = model.num_timesteps + cfg.eval_every
                run.evaluate(model.num_timesteps)

        def _on_training_end(self) -> None:
            if self.bar is not None:
                self.bar.close()

    return Callback()


def _report(run: _TrainingRun, features: list[int], policy: Any, stopped_by: str) -> dict[str, Any]:
    """The run's report: config, features, steps and games, evaluations, results and time."""
    model, env, timer = run.model, run.env, run.timer
    return {
        "config": asdict(run.cfg),
        "features": [{"index": f, "label": run.sae.label(f) or ""} for f in features],
        "obs_features": len(run.actuator.obs_features),
        "policy_digest": policy.digest,
        "policy_step": int(model.num_timesteps),
        "steps": int(model.num_timesteps),
        "games": env.games_started,
        "random_opening_moves": env.random_moves,
        "start_positions": env.starts.summary() if env.starts is not None else None,
        "boards_seen": len(env.boards_seen),
        "reached_target": run.reached,
        "stable_target": run.stable,
        "stopped_by": stopped_by,
        "final_eval": run.evals[-1],
        "evals": run.evals,
        "training_results": env.log.results,
        "training_results_by_opponent": env.log.by_opponent,
        "wall_seconds": round(timer.wall, 1),
        "cpu_seconds": round(timer.cpu, 1),
        "time": {k: round(v, 1) for k, v in timer.sections.items()},
        "env_seconds": {k: round(v, 1) for k, v in env.seconds.items()},
    }


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
