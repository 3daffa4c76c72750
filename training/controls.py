"""``autosteer-train controls``: equal-effort controls for a searched or trained steering policy.

A control must get the same search or training budget as the thing it controls for. An
unoptimised perturbation of a searched vector (``evaluate --control``) shows only that the
search found *something*; the question a claim must answer is whether the *specific*
features matter, and for that the same fitter, with the same budget and seeds, is given
other things to steer with — a :class:`~training.bases.Basis` (``training/bases.py``): the
policy's own features, random SAE features, random directions, or features picked after
the labels were shuffled.

A *fitter* turns (an LLM bot steering along a basis, a seed) into a policy over the basis's
features (:class:`Fitter`). :class:`CEMFitter` is the cross-entropy search of
``training/vector_search.py``; :class:`PPOFitter` wraps ``training.rl.ppo.train_ppo`` (the
learned policy's trainer, SAE features only: it builds its own actuator, so the
random-directions basis is not available to it). Any object with ``name``, ``budget()`` and
``fit(bot, seed, progress)`` plugs in (``docs/EVALUATION.md``).

Each fitted policy is then measured like any policy: the exact probabilities against
minimax (the fitting objective: in-sample), the steering budget on the boards it meets, and
the held-out checks of ``training/evaluation/heldout.py`` (phrasings, opponents; every position with
``--positions``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from training.bases import BASES, Basis, make_basis
from training.evaluation.tables import controls_table


class Fitter(Protocol):
    """Fits a steering policy over a basis. ``bot`` is an ``LLMBot`` whose policy names the
    basis's features (zero coefficients) and whose steering uses the basis's directions;
    the returned policy must steer those features (in that order). ``budget()`` says what
    one fit costs (iterations, samples, steps): the same for every basis."""

    name: str

    def budget(self) -> dict[str, Any]: ...

    def fit(self, bot: Any, seed: int, progress: Callable[[], None] | None = None) -> Any: ...


@dataclass
class CEMFitter:
    """The fixed-vector cross-entropy search (``training.vector_search.run_search``)."""

    config: Any  # vector_search.SearchConfig (its seed is replaced by fit's)
    name: str = "cem"
    last: dict[str, Any] = field(default_factory=dict)

    def budget(self) -> dict[str, Any]:
        c = self.config
        return {
            "fitter": "cross-entropy method (exact objective vs minimax)",
            "iterations": c.iterations,
            "population": c.population,
            "elite": c.elite,
            "bound": c.bound,
            "init_std": c.init_std,
            "l1": c.l1,
            "mode": c.mode,
            "line_search": "30 scales of the best vector",
            "vectors_scored": c.iterations * c.population + 31,
        }

    def fit(self, bot: Any, seed: int, progress: Callable[[], None] | None = None) -> Any:
        from dataclasses import replace

        from bots.llm.policy import FixedSteeringPolicy
        from training.vector_search import run_search

        cfg = replace(self.config, seed=seed, features=list(bot.policy.features))
        bot.set_mode(cfg.mode)
        result = run_search(bot, cfg, progress=progress)
        self.last = {"best": result["best"], "history": result["history"]}
        return FixedSteeringPolicy(
            list(bot.policy.features),
            result["best"]["coefficients"],
            hook_name=bot.sae.hook_name,
            d_sae=bot.sae.d_sae,
            source=f"{self.name} fit, seed {seed}",
        )

    def total(self) -> int:
        return self.config.iterations * self.config.population


@dataclass
class PPOFitter:
    """PPO (``training.rl.ppo.train_ppo``) with the learned policy's config, on the basis's
    features and the given seed; returns the best policy it found (kind ``learned``)."""

    config: Any  # training.rl.ppo.TrainConfig
    name: str = "ppo"

    def budget(self) -> dict[str, Any]:
        c = self.config
        return {
            "fitter": "PPO (training/rl/ppo.py)",
            "total_steps": c.total_steps,
            "budget_seconds": c.budget_seconds,
            "n_envs": c.n_envs,
            "obs": c.obs,
            "action": c.action,
            "mode": c.mode,
            "via": c.via,
        }

    def picker(self, sae: Any, k: int) -> list[int]:
        """How the trainer picks features by label (for the shuffled-labels basis)."""
        from dataclasses import replace

        from training.rl.ppo import pick_features

        return pick_features(sae, replace(self.config, features=[], n_features=k))

    def fit(self, bot: Any, seed: int, progress: Callable[[], None] | None = None) -> Any:
        from dataclasses import replace

        from training.rl.ppo import train_ppo

        if bot.steering is not None and bot.steering.replaced:
            raise ValueError(
                "the PPO trainer steers SAE features only (it builds its own actuator); "
                "leave 'directions' out of --bases"
            )
        cfg = replace(self.config, seed=seed, features=list(bot.policy.features))
        policy, _ = train_ppo(cfg, bot.lm, bot.sae, progress=False, log=lambda *_: None)
        if progress is not None:
            progress()
        return policy

    def total(self) -> int:
        return 1


# --------------------------------------------------------------------------- measuring a fitted policy
def basis_bot(
    lm: Any,
    sae: Any,
    basis: Basis,
    policy: Any = None,
    *,
    mode: str = "masked",
    cache_boards: int = 2000,
    reader: Any = None,
) -> Any:
    """An ``LLMBot`` steering along ``basis`` with ``policy`` (default: zero coefficients),
    reading through ``reader`` when given (shared, so boards are prefilled once)."""
    from bots.llm.bot import LLMBot
    from bots.llm.policy import FixedSteeringPolicy

    policy = policy or FixedSteeringPolicy(
        basis.features, [0.0] * len(basis.features), hook_name=sae.hook_name, d_sae=sae.d_sae, source="basis"
    )
    bot = LLMBot(
        lm,
        sae=sae,
        policy=policy,
        mode=mode,
        top_k=0,
        cache_boards=1 if reader is not None else cache_boards,
        digit_mass=True,
        directions=basis.directions,
    )
    if reader is not None:
        bot.reader = reader
    return bot


def exact_with_budget(
    bot: Any, seats: Sequence[str] = ("X", "O"), modes: Sequence[str] = ("strict", "masked"), opponent: str = "minimax"
) -> dict[str, Any]:
    """Exact probabilities per mode and seat, with the steering budget over the boards met
    (each distinct board once: the tree walk reads every board once)."""
    from training.evaluation.evaluate import ArmResult, BudgetTally, exact_probabilities
    from training.evaluation.heldout import BUDGET_KEYS

    out: dict[str, Any] = {}
    for mode in modes:
        bot.set_mode(mode)
        out[mode] = {}
        for seat in seats:
            strength = BudgetTally()
            play = bot.play

            def recording(boards: Any, coefficients: Any = None) -> Any:
                moves = play(boards, coefficients)
                strength.add(moves)
                return moves

            bot.play = recording
            try:
                exact = exact_probabilities(bot, seat, opponent)
            finally:
                del bot.play  # back to the method
            arm = ArmResult(opponent, seat, mode)
            strength.into(arm)
            out[mode][seat] = {"exact": exact, "budget": {k: getattr(arm, k) for k in BUDGET_KEYS}}
    return out


def run_controls(
    lm: Any,
    sae: Any,
    policy: Any,
    fitter: Fitter,
    *,
    bases: Sequence[str] = BASES,
    seeds: Sequence[int] = (0,),
    heldout: bool = True,
    positions: bool = False,
    cache_boards: int = 2000,
    progress: Any = None,
    log: Callable[[str], None] = print,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Fit ``fitter`` on each basis and seed, and measure every fitted policy (and the
    policy itself, unfitted) the same way. Returns ``{"budget", "rows": [...]}``.

    One answer reader per phrasing (caching ``cache_boards`` boards) serves every fit and
    measurement, so each board's prompt runs once in the whole run. ``on_row(report so far)``
    is called after each row (the command saves partial results with it)."""
    from training.evaluation.heldout import heldout_report, shared_reader

    rows: list[dict[str, Any]] = []
    readers = {p: shared_reader(lm, sae, p, cache_boards) for p in ("grid", "rows", "list")}
    grid = readers["grid"]

    def measure(label: str, basis: Basis, fitted: Any, seed: int | None, seconds: float) -> dict[str, Any]:
        bot = basis_bot(lm, sae, basis, fitted, reader=grid)
        row = {
            "basis": label,
            "seed": seed,
            **{k: v for k, v in basis.describe().items() if k != "name"},
            "coefficients": [round(c, 4) for c in fitted.coefficients([_empty()])[0]]
            if hasattr(fitted, "coefs")
            else None,
            "policy_digest": fitted.digest,
            "fit_seconds": round(seconds, 1),
            "in_sample": exact_with_budget(bot),
        }
        if heldout:
            rep = heldout_report(
                lm,
                sae,
                {label: fitted},
                positions=positions,
                readers=readers,
                directions={label: basis.directions} if basis.directions is not None else None,
            )
            row["heldout"] = {
                "phrasings": {p: v[label] for p, v in rep["phrasings"].items()},
                "opponents": rep["opponents"][label],
                "positions": rep["positions"].get(label),
            }
        return row

    log(f"measuring the policy itself ({policy.digest})")
    rows.append(measure("the policy (as given)", Basis("the policy", list(policy.features)), policy, None, 0.0))
    if on_row is not None:
        on_row({"budget": fitter.budget(), "rows": rows, "complete": False})
    for seed in seeds:
        for kind in bases:
            basis = make_basis(kind, sae, policy, seed, getattr(fitter, "picker", None))
            log(f"fitting on {basis.name} (seed {seed}): {basis.note}")
            bot = basis_bot(lm, sae, basis, reader=grid)
            t0 = time.perf_counter()
            grid.digit_mass = False  # the fit needs no digit mass: a full unembedding per answer is saved
            try:
                fitted = fitter.fit(bot, seed, progress=progress)
            finally:
                grid.digit_mass = True
            seconds = time.perf_counter() - t0
            rows.append(measure(basis.name, basis, fitted, seed, seconds))
            log(summary_line(rows[-1]))
            if on_row is not None:
                on_row({"budget": fitter.budget(), "rows": rows, "complete": False})
    return {"budget": fitter.budget(), "rows": rows, "complete": True}


def _empty() -> Any:
    from server.game import Board

    return Board.empty()


def summary_line(row: dict[str, Any], mode: str = "masked") -> str:
    e = row["in_sample"][mode]
    x, o = e["X"]["exact"], e["O"]["exact"]
    return (
        f"{row['basis']} (seed {row['seed']}): exact draw vs minimax {100 * x['draw']:.1f} % as X, "
        f"{100 * o['draw']:.1f} % as O ({mode}); ‖Δ‖/‖h‖ {e['X']['budget']['mean_norm_ratio']:.2f}/"
        f"{e['O']['budget']['mean_norm_ratio']:.2f}, KL {e['X']['budget']['mean_kl']:.2f}/{e['O']['budget']['mean_kl']:.2f}"
    )


# --------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    from training.vector_search import SearchConfig

    d = SearchConfig()
    parser.add_argument("--policy", default="auto", help="the policy to control for: a policy file or 'auto' (shipped)")
    parser.add_argument(
        "--fitter",
        choices=("auto", "cem", "ppo"),
        default="auto",
        help="how policies are fitted: cem = the fixed-vector search, ppo = training/rl's PPO; "
        "auto = ppo for a learned policy, else cem",
    )
    parser.add_argument(
        "--card",
        default="auto",
        help="run card whose config gives the budget ('auto': <policy>.card.json or run_card.json "
        "next to the policy; 'none': the flags below, cem only)",
    )
    parser.add_argument(
        "--bases",
        default=",".join(BASES),
        help="comma list: policy (its own features, re-fitted), features (random SAE features), "
        "directions (random non-SAE directions), labels (labels shuffled, picked by label)",
    )
    parser.add_argument("--seeds", default="0", help="comma list of seeds (each draws the bases and seeds the fit)")
    parser.add_argument("--iterations", type=int, default=d.iterations, help="CEM iterations (when no run card)")
    parser.add_argument("--population", type=int, default=d.population, help="CEM vectors per iteration (no run card)")
    parser.add_argument("--elite", type=int, default=d.elite, help="CEM elite size (no run card)")
    parser.add_argument("--bound", type=float, default=d.bound, help="coefficient bound (no run card)")
    parser.add_argument("--mode", choices=("strict", "masked"), default=d.mode, help="fitting mode (no run card)")
    parser.add_argument("--no-heldout", action="store_true", help="skip the held-out phrasings and opponents")
    parser.add_argument(
        "--positions", action="store_true", help="also check every open position (slow on a real model)"
    )
    parser.add_argument("--model", default="smollm2", help="model spec")
    parser.add_argument("--sae", default="auto", help="SAE folder or registry id ('auto': the shipped SAE)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument(
        "--cache-boards",
        type=int,
        default=5000,
        help="boards whose prompt state is kept per phrasing, shared by every fit and measurement "
        "(about 0.9 MB a board for SmolLM2)",
    )
    parser.add_argument("--json", dest="json_out", default=None, metavar="PATH", help="write the report as JSON")


def find_card(args: argparse.Namespace, policy: Any) -> Path | None:
    """The policy's run card: ``--card``, else ``<policy>.card.json`` or ``run_card.json``
    beside the policy file (``autosteer-train search-vector`` / ``ppo`` write them)."""
    if args.card == "none":
        return None
    if args.card != "auto":
        card = Path(args.card)
        if not card.is_file():
            raise ValueError(f"--card {args.card}: no such file")
        return card
    source = Path(getattr(policy, "source", "") or "")
    for candidate in (source.with_suffix(".card.json"), source.with_name("run_card.json")):
        if str(source) and candidate.is_file():
            return candidate
    return None


def make_fitter(args: argparse.Namespace, policy: Any) -> tuple[Any, str]:
    """The fitter and its config: the policy's run card's (the same budget the policy had),
    else the flags (cem only); and a sentence saying which."""
    from training.vector_search import SearchConfig

    kind = args.fitter if args.fitter != "auto" else ("ppo" if policy.kind == "learned" else "cem")
    card = find_card(args, policy)
    cfg = (json.loads(card.read_text()).get("config") or {}) if card is not None else None
    if kind == "ppo":
        from training.rl.ppo import TrainConfig

        if cfg is None:
            raise ValueError("--fitter ppo needs the policy's run card (its PPO config is the budget): pass --card")
        known = {k: v for k, v in cfg.items() if k in TrainConfig.__dataclass_fields__}
        return PPOFitter(TrainConfig(**known)), f"the PPO config of the policy's run card {card}"
    if cfg is not None:
        known = {k: v for k, v in cfg.items() if k in SearchConfig.__dataclass_fields__ and k != "features"}
        return CEMFitter(SearchConfig(**known)), f"the budget of the policy's run card {card}"
    return CEMFitter(
        SearchConfig(
            n_features=len(policy.features),
            iterations=args.iterations,
            population=args.population,
            elite=args.elite,
            bound=args.bound,
            mode=args.mode,
        )
    ), "the budget given by the flags"


def run(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console
    from tqdm import tqdm

    from bots.llm.cli import load_policy_arg, load_sae_arg
    from bots.llm.model import load_model
    from training.evaluation.evaluate import prepare_json_out
    from training.evaluation.evidence import snapshots_agree, weights_snapshot

    console = Console() if sys.stdout.isatty() else Console(width=200)
    try:
        bases, seeds = _bases_and_seeds(args.bases, args.seeds)
        json_out = prepare_json_out(args.json_out) if args.json_out else None
        policy, note = load_policy_arg(args.policy)
        if policy is None:
            raise ValueError("--policy names no policy: give the policy to control for")
        torch.set_num_threads(max(1, args.threads))
        lm = load_model(args.model)
        sae = load_sae_arg(args.sae, lm)
        if sae is None:
            raise ValueError("the policy needs the SAE whose features it steers (--sae)")
        policy.check_sae(sae.d_sae, sae.hook_name)
        fitter, why = make_fitter(args, policy)
        if isinstance(fitter, PPOFitter) and "directions" in bases:
            bases.remove("directions")
            console.print("note: the PPO trainer steers SAE features only; the random-directions basis is skipped")
    except (ValueError, OSError) as exc:
        console.print(f"[red]error:[/] {exc}")
        return 2
    before = weights_snapshot(lm, sae, policy)
    meta = {
        "model": lm.name,
        "sae": getattr(sae, "source", None),
        "policy": str(policy.source),
        "policy_digest": policy.digest,
        "fitter": fitter.name,
        "config": asdict(fitter.config),
        "config_from": why,
        "bases": bases,
        "seeds": seeds,
        "weights_before": before,
        "command": "autosteer-train controls " + " ".join(sys.argv[2:]),
    }

    def save(report: dict[str, Any]) -> None:  # after every row, so a long run keeps what it measured
        if json_out is not None:
            json_out.write_text(json.dumps({"meta": meta, **report}, indent=2, default=str) + "\n")

    console.print(
        f"equal-effort controls for {note}: fitter {fitter.name} with {why} "
        f"({json.dumps(fitter.budget())}); bases {', '.join(bases)}; seeds {', '.join(map(str, seeds))}"
    )
    t0 = time.perf_counter()
    with tqdm(total=len(bases) * len(seeds) * fitter.total(), desc=f"{fitter.name} fits", file=sys.stderr) as bar:
        report = run_controls(
            lm,
            sae,
            policy,
            fitter,
            bases=bases,
            seeds=seeds,
            heldout=not args.no_heldout,
            positions=args.positions,
            cache_boards=args.cache_boards,
            progress=lambda: bar.update(1),
            log=lambda s: tqdm.write(s, file=sys.stderr),
            on_row=save,
        )
    after = weights_snapshot(lm, sae, policy)
    unchanged = snapshots_agree(before, after)
    elapsed = time.perf_counter() - t0
    for line in controls_table(report):
        console.print(line, markup=False)
    console.print("weights before and after: " + ("identical" if unchanged else "[red]CHANGED[/]"))
    meta.update({"seconds": round(elapsed, 1), "weights_after": after, "weights_unchanged": unchanged})
    if json_out is not None:
        save(report)
        console.print(f"wrote {json_out}")
    console.print(f"done: {len(report['rows']) - 1} equal-effort fits in {elapsed:.0f} s")
    return 0 if unchanged else 1


def _bases_and_seeds(bases_arg: str, seeds_arg: str) -> tuple[list[str], list[int]]:
    """``--bases`` and ``--seeds`` as lists; a ``ValueError`` for an unknown basis, a seed
    that is not an integer or no seed at all."""
    bases = [b.strip() for b in bases_arg.split(",") if b.strip()]
    for b in bases:
        if b not in BASES:
            raise ValueError(f"unknown basis {b!r}; expected a comma list of {', '.join(BASES)}")
    seeds = [int(s) for s in seeds_arg.split(",") if s.strip()]
    if not seeds:
        raise ValueError("--seeds is empty")
    return bases, seeds
