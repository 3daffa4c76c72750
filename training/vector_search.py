"""``autosteer-train search-vector``: find one fixed steering vector that makes the LLM bot
draw more often against minimax, by the cross-entropy method over labelled SAE features.

This is *not* the RL of :mod:`training.rl`: the vector is the same on every board (a
``FixedSteeringPolicy``), found by black-box search. It exists so that the demo's bot is a
steered one whose effect is measured, and as a baseline for learned, board-dependent
policies.

The objective is exact, not sampled. With argmax move reading the LLM's move on a board is
deterministic, and minimax picks uniformly among its optimal moves, so the probability of
each result against minimax follows from walking the game tree once per seat: the LLM's
boards at each ply are read in one batch, minimax's probability mass is split over its
optimal cells. The score of a vector is the mean draw probability as X and as O minus
``l1 * mean |coefficient|`` (a cost on steering strength: prefer the weakest steering that
draws). The search reads only boards the LLM can reach, so the per-board prompt cache of
the bot makes it cheap.

Outputs: the policy JSON (``--out``; default a new ``runs/<time>-search-vector/policy.json``,
never the shipped ``bots/llm/artifacts/policy.json`` unless ``--out`` names it), a run
card next to it (``<out>.card.json`` and ``.md``: data, seeds, time, metrics, command) and
a plot of draw probability against steering budget (the vector scaled by 0 … 1.5; beside
the policy, or ``docs/steering_budget.png`` for the shipped one).

What the objective makes of the result: it is *in-sample* (the search maximises the very
exact draw probability it reports), for one move-reading mode and one prompt phrasing, and
the search budget is part of the claim: ``autosteer-train controls`` gives the same budget
to random features and directions (``docs/EVALUATION.md``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from server.game import Board, Result, Seat

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "bots" / "llm" / "artifacts" / "policy.json"
DEFAULT_PLOT = Path(__file__).resolve().parent.parent / "docs" / "steering_budget.png"


@dataclass
class Outcome:
    """Exact probabilities of each result for the LLM against minimax from the empty board."""

    win: float = 0.0
    draw: float = 0.0
    loss: float = 0.0
    illegal: float = 0.0  # part of ``loss``: lost by an illegal move (strict mode)
    boards_read: int = 0
    games: int = 0  # distinct games (leaves of the walked tree) with a non-zero probability


def opponent_distribution(name: str) -> Callable[[Board], dict[int, float]]:
    """The move distribution of a house opponent by name: ``minimax`` (uniform over its
    optimal moves), ``random`` (uniform over legal moves) or ``eps<ε>`` (ε-greedy minimax,
    e.g. ``eps0.1``; :func:`server.solver.epsilon_minimax_cells`).

    >>> opponent_distribution("eps0.3")(Board.from_moves([1, 2, 4]))[7]
    0.75
    """
    from server.solver import epsilon_minimax_cells

    if name == "minimax":
        return lambda board: epsilon_minimax_cells(board, 0.0)
    if name == "random":
        return lambda board: epsilon_minimax_cells(board, 1.0)
    if name.startswith("eps"):
        try:
            eps = float(name[3:])
        except ValueError:
            eps = -1.0
        if 0.0 <= eps <= 1.0:
            return lambda board: epsilon_minimax_cells(board, eps)
    raise ValueError(f"unknown opponent {name!r}; expected minimax, random or eps<ε> with 0 <= ε <= 1 (e.g. eps0.1)")


def exact_outcome(
    choose: Callable[[list[Board]], list[int | None]], llm_seat: Seat, opponent: str = "minimax"
) -> Outcome:
    """Walk the game tree against ``opponent`` (default minimax, uniform over its optimal
    moves; see :func:`opponent_distribution`).

    ``choose(boards)`` returns the LLM's cell for each board, or ``None`` for an illegal
    move (which loses). Boards are batched ply by ply. Exact for any policy whose move is
    a function of the board (argmax reading of a deterministic steering policy).

    >>> from server.solver import choose_cell
    >>> perfect = lambda boards: [choose_cell(b, tiebreak="first") for b in boards]
    >>> o = exact_outcome(perfect, Seat.X); (o.draw, o.loss)
    (1.0, 0.0)
    >>> exact_outcome(perfect, Seat.O, "random").loss
    0.0
    """
    moves_of = opponent_distribution(opponent)
    out = Outcome()
    frontier: dict[str, float] = {Board.empty().code: 1.0}
    paths: dict[str, int] = {Board.empty().code: 1}  # distinct move sequences reaching each board
    while frontier:
        nxt: dict[str, float] = {}
        nxt_paths: dict[str, int] = {}
        boards = [Board(code) for code in frontier]
        llm_boards = [b for b in boards if b.turn is llm_seat]
        cells = dict(zip((b.code for b in llm_boards), choose(llm_boards))) if llm_boards else {}
        out.boards_read += len(llm_boards)
        for board in boards:
            p = frontier[board.code]
            if board.turn is llm_seat:
                cell = cells[board.code]
                if cell is None or board[cell] is not None:
                    out.loss += p
                    out.illegal += p
                    out.games += paths[board.code]
                    continue
                children = [(board.play(cell), p)]
            else:
                children = [(board.play(c), p * q) for c, q in moves_of(board).items()]
            for child, q in children:
                result = child.result
                if result is None:
                    nxt[child.code] = nxt.get(child.code, 0.0) + q
                    nxt_paths[child.code] = nxt_paths.get(child.code, 0) + paths[board.code]
                    continue
                out.games += paths[board.code]
                if result is Result.DRAW:
                    out.draw += q
                elif result is Result.win_for(llm_seat):
                    out.win += q
                else:
                    out.loss += q
        frontier, paths = nxt, nxt_paths
    return out


@dataclass
class SearchConfig:
    """Every knob of the search; all shown in ``--help`` and written to the run card."""

    n_features: int = 16
    bound: float = 3.0  # coefficients are searched in [-bound, bound]
    population: int = 24
    elite: int = 6
    iterations: int = 8
    init_std: float = 1.5
    l1: float = 0.02
    mode: str = "masked"
    seed: int = 0
    features: list[int] = field(default_factory=list)  # explicit feature list (else picked from labels)


def pick_features(sae: Any, n: int, min_f1: float = 0.5) -> list[int]:
    """``n`` labelled features that are both readable and strong actuators: among features
    whose label detects a board concept with F1 >= ``min_f1``, those whose steering moves
    the move distribution most (largest KL in the label's ``effect``); then, if too few
    are labelled, the most active features by typical activation."""
    labels = getattr(sae.features, "labels", {}) if getattr(sae, "features", None) else {}
    scored = []
    for idx, entry in labels.items():
        if not isinstance(entry, dict):
            continue
        f1 = float(entry.get("f1") or 0.0)
        effect = entry.get("effect") or {}
        kl = float(effect.get("kl") or 0.0) if isinstance(effect, dict) else 0.0
        scored.append((f1 >= min_f1, kl, f1, int(idx)))
    scored.sort(reverse=True)
    picked = [i for *_, i in scored[:n]]
    if len(picked) < n:
        typical = (sae.features.typical_activation if getattr(sae, "features", None) else None) or []
        order = sorted(range(len(typical)), key=lambda i: -typical[i])
        picked += [i for i in order if i not in picked][: n - len(picked)]
    if not picked:
        raise ValueError("the SAE has no labels and no typical activations to pick features from; pass --features")
    return picked


def run_search(bot: Any, cfg: SearchConfig, progress: Any = None) -> dict[str, Any]:
    """Cross-entropy method over coefficient vectors; returns the best and its history."""
    import torch

    n = len(bot.policy.features)
    gen = torch.Generator().manual_seed(cfg.seed)

    def evaluate(coefs: Sequence[float]) -> tuple[float, Outcome, Outcome]:
        row = torch.tensor([list(coefs)], dtype=torch.float32)

        def choose(boards: list[Board]) -> list[int | None]:
            moves = bot.play(boards, row.expand(len(boards), n))
            return [m.reading.cell if m.reading.legal else None for m in moves]

        ox, oo = exact_outcome(choose, Seat.X), exact_outcome(choose, Seat.O)
        mean_abs = float(sum(abs(c) for c in coefs) / max(1, n))
        return (ox.draw + oo.draw) / 2 - cfg.l1 * mean_abs, ox, oo

    zero = [0.0] * n
    best_score, bx, bo = evaluate(zero)
    best: dict[str, Any] = {"coefficients": zero, "score": best_score, "x": asdict(bx), "o": asdict(bo)}
    baseline = dict(best)
    history: list[dict[str, Any]] = [{"iteration": 0, "best_score": best_score, "mean_score": best_score}]
    mean = torch.zeros(n)
    std = torch.full((n,), cfg.init_std)
    for it in range(1, cfg.iterations + 1):
        samples = (mean + std * torch.randn(cfg.population, n, generator=gen)).clamp(-cfg.bound, cfg.bound)
        scored = []
        for s in samples:
            coefs = [round(float(c), 4) for c in s]
            score, ox, oo = evaluate(coefs)
            scored.append((score, coefs))
            if score > best["score"]:
                best = {"coefficients": coefs, "score": score, "x": asdict(ox), "o": asdict(oo)}
            if progress is not None:
                progress()
        scored.sort(key=lambda t: -t[0])
        elite = torch.tensor([c for _, c in scored[: cfg.elite]])
        mean = elite.mean(0)
        std = elite.std(0).clamp(min=0.05)
        history.append(
            {
                "iteration": it,
                "best_score": best["score"],
                "mean_score": sum(s for s, _ in scored) / len(scored),
                "elite_mean_score": sum(s for s, _ in scored[: cfg.elite]) / cfg.elite,
            }
        )
    # Line search along the best direction: the draw rate is not monotone in the vector's
    # length, and the l1 cost prefers the shortest vector that draws as often.
    direction = list(best["coefficients"])
    for i in range(1, 31):
        scale = i / 20  # 0.05 … 1.5
        coefs = [round(c * scale, 4) for c in direction]
        if max((abs(c) for c in coefs), default=0.0) > cfg.bound:
            break
        score, ox, oo = evaluate(coefs)
        if score > best["score"]:
            best = {"coefficients": coefs, "score": score, "x": asdict(ox), "o": asdict(oo), "line_search_scale": scale}
    history.append({"iteration": "line search", "best_score": best["score"]})
    return {"best": best, "baseline": baseline, "history": history, "evaluate": evaluate}


def budget_curve(
    evaluate: Callable[[Sequence[float]], tuple[float, Outcome, Outcome]],
    coefs: Sequence[float],
    scales: Sequence[float] = (0.0, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5),
) -> list[dict[str, float]]:
    """Draw probability (as X, as O) with the vector scaled by each factor."""
    rows = []
    for s in scales:
        _, ox, oo = evaluate([c * s for c in coefs])
        rows.append(
            {
                "scale": s,
                "mean_abs_coef": s * sum(abs(c) for c in coefs) / max(1, len(coefs)),
                "draw_x": ox.draw,
                "draw_o": oo.draw,
                "illegal_x": ox.illegal,
                "illegal_o": oo.illegal,
            }
        )
    return rows


def plot_budget(rows: list[dict[str, float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    xs = [r["mean_abs_coef"] for r in rows]
    ax.plot(xs, [100 * r["draw_x"] for r in rows], "o-", label="LLM as X")
    ax.plot(xs, [100 * r["draw_o"] for r in rows], "s-", label="LLM as O")
    ax.set_xlabel("steering budget: mean |coefficient| (vector scaled 0…1.5×)")
    ax.set_ylabel("exact draw probability vs minimax (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


# --------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = SearchConfig()
    parser.add_argument("--model", default="smollm2", help="model to steer (see autosteer-bot run --help)")
    parser.add_argument("--sae", default="auto", help="SAE folder, registry id, or 'auto' (the shipped one)")
    parser.add_argument(
        "--features", default="", help="comma-separated feature indices (default: the best-labelled ones)"
    )
    parser.add_argument(
        "--n-features", type=int, default=d.n_features, help="features to steer when picking from labels"
    )
    parser.add_argument("--bound", type=float, default=d.bound, help="coefficients are searched in [-bound, bound]")
    parser.add_argument("--population", type=int, default=d.population, help="vectors sampled per iteration")
    parser.add_argument("--elite", type=int, default=d.elite, help="best vectors the next distribution is fitted to")
    parser.add_argument("--iterations", type=int, default=d.iterations, help="cross-entropy iterations")
    parser.add_argument("--init-std", type=float, default=d.init_std, help="initial standard deviation of coefficients")
    parser.add_argument("--l1", type=float, default=d.l1, help="score cost per unit of mean |coefficient|")
    parser.add_argument(
        "--mode", choices=("strict", "masked"), default=d.mode, help="move reading the vector is searched for"
    )
    parser.add_argument("--seed", type=int, default=d.seed, help="seed of the search")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--cache-boards", type=int, default=2000, help="boards whose prompt state is cached")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"where to write the policy JSON (default: a new runs/<time>-search-vector/ folder; "
        f"the shipped policy is {DEFAULT_OUT.relative_to(DEFAULT_OUT.parents[3])})",
    )
    parser.add_argument(
        "--plot",
        type=Path,
        default=None,
        help="PNG of draw probability against steering budget (default: beside the policy; "
        "docs/steering_budget.png when --out is the shipped policy)",
    )


def run(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console

    from bots.llm.bot import LLMBot
    from bots.llm.cli import load_sae_arg
    from bots.llm.model import load_model
    from bots.llm.policy import FixedSteeringPolicy

    console = Console(stderr=True)
    torch.set_num_threads(args.threads)
    cfg = SearchConfig(
        n_features=args.n_features,
        bound=args.bound,
        population=args.population,
        elite=args.elite,
        iterations=args.iterations,
        init_std=args.init_std,
        l1=args.l1,
        mode=args.mode,
        seed=args.seed,
    )
    if cfg.elite < 2 or cfg.elite > cfg.population:
        console.print(f"[red]--elite must be between 2 and --population ({cfg.population}), got {cfg.elite}")
        return 2
    from training.outputs import new_run_folder, same_path

    if args.out is None:
        args.out = new_run_folder("search-vector") / "policy.json"
    if args.plot is None:
        args.plot = DEFAULT_PLOT if same_path(args.out, DEFAULT_OUT) else args.out.with_name("steering_budget.png")
    console.print(f"writing to {args.out} and {args.plot}")
    started = time.time()
    lm = load_model(args.model)
    sae = load_sae_arg(args.sae, lm)
    if sae is None:
        console.print("[red]no SAE: train one with `autosteer-train sae` or pass --sae FOLDER")
        return 2
    try:
        features = [int(x) for x in args.features.split(",") if x.strip()] or pick_features(sae, cfg.n_features)
    except ValueError as exc:
        console.print(f"[red]bad --features: {exc}")
        return 2
    cfg.features = features
    seed_policy = FixedSteeringPolicy(
        features, [0.0] * len(features), hook_name=sae.hook_name, d_sae=sae.d_sae, source="search"
    )
    seed_policy.check_sae(sae.d_sae, sae.hook_name)
    bot = LLMBot(lm, sae=sae, policy=seed_policy, mode=cfg.mode, top_k=0, cache_boards=args.cache_boards)
    console.print(
        f"searching a fixed vector over {len(features)} features of {sae.hook_name} "
        f"({cfg.mode} move reading, {cfg.iterations}×{cfg.population} vectors, exact outcomes vs minimax)"
    )
    result = _search_with_progress(bot, cfg, console)
    best = result["best"]
    curve = budget_curve(result["evaluate"], best["coefficients"])
    policy = FixedSteeringPolicy(features, best["coefficients"], hook_name=sae.hook_name, d_sae=sae.d_sae)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    policy.save(args.out)
    elapsed = time.time() - started
    card = _search_card(lm, sae, cfg, result, curve, policy, elapsed, torch_version=torch.__version__)
    card_path = args.out.with_suffix(".card.json")
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    _write_card_md(card, args.out.with_suffix(".card.md"))
    plot_budget(curve, args.plot, f"{lm.name}, fixed vector {policy.digest}, {cfg.mode} reading")
    _print_draws(console, result, n_features=len(features))
    print(f"wrote {args.out} (policy {policy.digest}), {card_path}, {args.plot} in {elapsed:.0f} s")
    return 0


def _search_with_progress(bot: Any, cfg: SearchConfig, console: Any) -> dict[str, Any]:
    """:func:`run_search` with a progress bar over the vectors evaluated."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    total = cfg.iterations * cfg.population
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as bar:
        task = bar.add_task("vectors", total=total)
        return run_search(bot, cfg, progress=lambda: bar.advance(task))


def _search_card(
    lm: Any,
    sae: Any,
    cfg: SearchConfig,
    result: dict[str, Any],
    curve: list[dict[str, float]],
    policy: Any,
    elapsed: float,
    *,
    torch_version: str,
) -> dict[str, Any]:
    """The run card of a search: what was searched, how, and what it found."""
    features = cfg.features
    labels = {i: sae.label(i) or "" for i in features}
    return {
        "what": "fixed steering vector found by the cross-entropy method (not RL)",
        "summary": f"one vector on every board, searched in-sample against minimax for {cfg.mode} reading; "
        "not yet checked with equal-effort controls or held out (docs/EVALUATION.md)",
        "command": "autosteer-train search-vector " + " ".join(sys.argv[2:])
        if len(sys.argv) > 2
        else "autosteer-train search-vector",
        "model": lm.name,
        "sae": _relative(sae.source),
        "hook_name": sae.hook_name,
        "config": asdict(cfg),
        "objective": "mean exact draw probability vs minimax (uniform over optimal moves) as X and O "
        f"minus {cfg.l1} × mean |coefficient|",
        "data": "every board the LLM reaches against minimax from the empty board, both seats (exact tree walk)",
        "baseline_zero_steering": result["baseline"],
        "best": result["best"],
        "history": result["history"],
        "budget_curve": curve,
        "policy_digest": policy.digest,
        "features": [{"index": i, "label": labels[i]} for i in features],
        "seconds": round(elapsed, 1),
        "torch": torch_version,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }


def _print_draws(console: Any, result: dict[str, Any], *, n_features: int) -> None:
    """The draw probabilities without steering and with the best vector."""
    best = result["best"]
    bx, bo, zx, zo = best["x"], best["o"], result["baseline"]["x"], result["baseline"]["o"]
    console.print(f"zero steering: draw {100 * zx['draw']:.1f} % as X, {100 * zo['draw']:.1f} % as O")
    console.print(
        f"best vector:   draw {100 * bx['draw']:.1f} % as X, {100 * bo['draw']:.1f} % as O "
        f"(mean |coef| {sum(abs(c) for c in best['coefficients']) / n_features:.2f})"
    )


def _relative(path: Any) -> str:
    """A path relative to the repository when it lies inside it (run cards travel)."""
    root = Path(__file__).resolve().parent.parent
    try:
        return str(Path(str(path)).resolve().relative_to(root))
    except ValueError:
        return str(path)


def _write_card_md(card: dict[str, Any], path: Path) -> None:
    best, base = card["best"], card["baseline_zero_steering"]
    lines = [
        "# Run card: fixed steering vector",
        "",
        f"- What: {card['what']}",
        f"- Command: `{card['command']}`",
        f"- Model / SAE: {card['model']} / `{card['sae']}` at `{card['hook_name']}`",
        f"- Objective: {card['objective']}",
        f"- Data: {card['data']}",
        f"- Seed: {card['config']['seed']}; {card['config']['iterations']} iterations × {card['config']['population']} vectors; "
        f"time {card['seconds']} s; {card['date']}",
        f"- Policy digest: `{card['policy_digest']}`",
        f"- Mode: **{card['config']['mode']}** move reading, `grid` phrasing — every figure below is for that mode "
        "and phrasing only",
        "- **In-sample**: the figures below are the search's own objective (exact draw probability against "
        "minimax), maximised over the candidates; they are not evidence that the features matter. "
        "Equal-effort controls: `autosteer-train controls`; held-out phrasings, opponents and positions: "
        "`autosteer-train heldout` (docs/EVALUATION.md).",
        "",
        "| | draw as X | draw as O | illegal as X | illegal as O |",
        "|---|---|---|---|---|",
        f"| zero steering | {100 * base['x']['draw']:.1f} % | {100 * base['o']['draw']:.1f} % | "
        f"{100 * base['x']['illegal']:.1f} % | {100 * base['o']['illegal']:.1f} % |",
        f"| best vector | {100 * best['x']['draw']:.1f} % | {100 * best['o']['draw']:.1f} % | "
        f"{100 * best['x']['illegal']:.1f} % | {100 * best['o']['illegal']:.1f} % |",
        "",
        "Exact probabilities against minimax with uniformly random tie-breaks (tree walk, not sampled).",
        "",
        "| feature | label | coefficient |",
        "|---|---|---|",
    ]
    for f, c in zip(card["features"], best["coefficients"]):
        lines.append(f"| {f['index']} | {f['label'] or '—'} | {c:+.2f} |")
    lines += [
        "",
        "Draw probability against steering budget (the vector scaled):",
        "",
        "| scale | mean abs coef | draw as X | draw as O |",
        "|---|---|---|---|",
    ]
    for r in card["budget_curve"]:
        lines.append(
            f"| {r['scale']:.2f} | {r['mean_abs_coef']:.2f} | {100 * r['draw_x']:.1f} % | {100 * r['draw_o']:.1f} % |"
        )
    path.write_text("\n".join(lines) + "\n")
