"""``autosteer-train heldout``: how a steering policy plays on what it was not fitted to.
Every number is exact (tree walks and the solved game), none is sampled.

Three checks, each for every ``--policy`` given (any policy file, ``auto`` for the shipped
one, ``none`` for the unsteered model), in each move-reading mode:

* **phrasings**: the exact probabilities against minimax, as X and as O, with the game
  prompt worded in each phrasing of ``bots.llm.prompt.PHRASINGS``. A policy searched or
  trained on ``grid`` meets ``rows`` and ``list`` here for the first time.
* **opponents**: the exact probabilities against ``random`` and ε-greedy minimax
  (``eps0.1``, ``eps0.3``), as X and as O, in the ``grid`` phrasing; ``minimax`` (the
  opponent of the search) is listed beside them for reference.
* **positions**: every reachable position that is not over (4,520), the LLM playing the
  side to move: the share where its move keeps the game-theoretic value
  (``server.solver.value_preserving_cells``), per side and per phase (pieces on the board:
  opening 0–2, middle 3–5, end 6–8). An illegal move (strict) does not keep it. Steering
  budget over all of them is reported too.

The policies share one answer reader per phrasing, and positions are walked in chunks that
every policy plays in turn, so each board's prompt runs once whatever the number of policies.
Weights are hashed before and after, both stored in the result JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any, Sequence

from server.game import Board

PHASES: tuple[tuple[str, int, int], ...] = (("opening", 0, 2), ("middle", 3, 5), ("end", 6, 8))
HELD_OUT_OPPONENTS = ("minimax", "random", "eps0.1", "eps0.3")


def phase_of(board: Board) -> str:
    """The phase of a position by the pieces on it.

    >>> phase_of(Board.empty()), phase_of(Board.from_moves([1, 5, 9])), phase_of(Board.from_moves([1, 2, 3, 5, 4, 6]))
    ('opening', 'middle', 'end')
    """
    pieces = 9 - len(board.legal_cells())
    return next(name for name, lo, hi in PHASES if lo <= pieces <= hi)


def open_positions() -> list[Board]:
    """Every reachable position that is not over, in a fixed order."""
    from server.game import reachable_positions

    return sorted((b for b in reachable_positions() if not b.is_over), key=lambda b: (9 - len(b.legal_cells()), b.code))


class PositionTally:
    """Counts of value-preserving and illegal moves per mode, side to move and phase."""

    def __init__(self, modes: Sequence[str]) -> None:
        self.counts: dict[str, dict[str, dict[str, list[int]]]] = {
            m: {side: {p: [0, 0, 0] for p, *_ in PHASES} for side in ("X", "O")} for m in modes
        }

    def add(self, board: Board, probs: Sequence[float], mode: str) -> None:
        from bots.llm.readers import read_move
        from server.solver import value_preserving_cells

        # the argmax of the log-probabilities is the argmax of the logits (same tie rule)
        reading = read_move(board, [math.log(p) if p > 0 else -1e300 for p in probs], mode)
        row = self.counts[mode][board.turn.value][phase_of(board)]
        row[0] += 1
        if not reading.legal:
            row[2] += 1
        elif reading.cell in value_preserving_cells(board):
            row[1] += 1

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for mode, sides in self.counts.items():
            out[mode] = {}
            for side, phases in sides.items():
                rows: dict[str, dict[str, Any]]
                rows = {
                    p: {"positions": n, "preserving": ok, "illegal": bad, "share": round(ok / n, 4) if n else None}
                    for p, (n, ok, bad) in phases.items()
                }
                n = sum(r["positions"] for r in rows.values())
                ok = sum(r["preserving"] for r in rows.values())
                bad = sum(r["illegal"] for r in rows.values())
                rows["all"] = {
                    "positions": n,
                    "preserving": ok,
                    "illegal": bad,
                    "share": round(ok / n, 4) if n else None,
                }
                out[mode][side] = rows
        return out


def position_check(
    bots: dict[str, Any], modes: Sequence[str], chunk: int = 256, progress: Any = None
) -> dict[str, Any]:
    """Play every open position with each bot (the side to move is the LLM) and count
    value-preserving moves (:class:`PositionTally`) and the steering budget over them."""
    from training.evaluation.evaluate import ArmResult, BudgetTally

    boards = open_positions()
    tallies = {name: PositionTally(modes) for name in bots}
    budgets = {name: BudgetTally() for name in bots}
    for start in range(0, len(boards), chunk):
        part = boards[start : start + chunk]
        for name, bot in bots.items():
            moves = bot.play(part)
            budgets[name].add(moves)
            for move in moves:
                for mode in modes:
                    tallies[name].add(move.board, move.reading.probs, mode)
        if progress is not None:
            progress(len(part))
    out = {}
    for name in bots:
        arm = ArmResult("all positions", "side to move", "both")
        budgets[name].into(arm)
        out[name] = {"positions": tallies[name].summary(), "budget": {k: getattr(arm, k) for k in BUDGET_KEYS}}
    return out


BUDGET_KEYS = (
    "llm_moves",
    "mean_abs_coef",
    "mean_norm_ratio",
    "max_norm_ratio",
    "mean_kl",
    "mean_digit_mass",
    "min_digit_mass",
    "mean_base_digit_mass",
    "mean_features_active",
    "changed_fraction",
)


def exact_grid(bots: dict[str, Any], modes: Sequence[str], opponents: Sequence[str]) -> dict[str, Any]:
    """Exact probabilities for each bot, mode, seat and opponent."""
    from training.evaluation.evaluate import exact_probabilities

    out: dict[str, Any] = {}
    for name, bot in bots.items():
        out[name] = {}
        for mode in modes:
            bot.set_mode(mode)
            out[name][mode] = {
                opp: {seat: exact_probabilities(bot, seat, opp) for seat in ("X", "O")} for opp in opponents
            }
    return out


def shared_reader(lm: Any, sae: Any, phrasing: str = "grid", cache_boards: int = 5000) -> Any:
    """An answer reader for ``phrasing`` that measures digit mass, to share among bots: with
    ``cache_boards`` above the number of boards met (4,520 open positions in all), each
    board's prompt runs once per process (about 0.9 MB a board for SmolLM2)."""
    from bots.llm.readers import make_reader

    hook = sae.hook_name if sae is not None else None
    return make_reader(lm, hook, phrasing=phrasing, cache_boards=cache_boards, steerable=True, digit_mass=True)


def policy_bots(
    lm: Any,
    sae: Any,
    policies: dict[str, Any],
    *,
    phrasing: str = "grid",
    cache_boards: int = 256,
    directions: dict[str, Any] | None = None,
    reader: Any = None,
) -> dict[str, Any]:
    """One ``LLMBot`` per policy (None: unsteered), all sharing one answer reader for
    ``phrasing`` (``reader``, or a new one caching ``cache_boards`` boards), so each board's
    prompt runs once. ``directions[name]`` replaces that policy's SAE decoder rows (a control)."""
    from bots.llm.bot import LLMBot

    if reader is None:
        reader = shared_reader(lm, sae, phrasing, cache_boards)
    out = {}
    for name, policy in policies.items():
        bot = LLMBot(
            lm,
            sae=sae if policy is not None else None,
            policy=policy,
            mode="masked",
            top_k=0,
            phrasing=phrasing,
            cache_boards=1,
            digit_mass=True,
            directions=(directions or {}).get(name),
        )
        bot.reader = reader
        out[name] = bot
    return out


def heldout_report(
    lm: Any,
    sae: Any,
    policies: dict[str, Any],
    *,
    modes: Sequence[str] = ("strict", "masked"),
    phrasings: Sequence[str] = ("grid", "rows", "list"),
    opponents: Sequence[str] = HELD_OUT_OPPONENTS,
    positions: bool = True,
    chunk: int = 256,
    cache_boards: int = 5000,
    directions: dict[str, Any] | None = None,
    progress: Any = None,
    readers: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """All three held-out checks for ``policies`` (name → policy or None), as one dict:
    ``{"phrasings": {phrasing: {policy: {mode: {"minimax": {seat: exact}}}}},
    "opponents": {policy: {mode: {opponent: {seat: exact}}}}, "positions": {policy: …}}``.
    ``readers`` (phrasing → :func:`shared_reader`) lets several reports share their boards."""
    out: dict[str, Any] = {"phrasings": {}, "opponents": {}, "positions": {}}
    for phrasing in phrasings:
        reader = (readers or {}).get(phrasing)
        bots = policy_bots(
            lm, sae, policies, phrasing=phrasing, cache_boards=cache_boards, directions=directions, reader=reader
        )
        opps = list(opponents) if phrasing == "grid" else ["minimax"]
        grid = exact_grid(bots, modes, opps)
        out["phrasings"][phrasing] = {n: {m: {"minimax": g[m]["minimax"]} for m in modes} for n, g in grid.items()}
        if phrasing == "grid":
            out["opponents"] = grid
            if positions:
                out["positions"] = position_check(bots, modes, chunk=chunk, progress=progress)
        if reader is None:
            for bot in bots.values():
                bot.close()
    return out


def markdown_summary(report: dict[str, Any], mode: str = "masked") -> list[str]:
    """Rows of a markdown table: per policy, exact draw (+win) rates as X / O on the held-out
    phrasings and opponents, and the value-preserving share over all positions."""

    def pct(e: dict[str, float] | None, key: str = "draw") -> str:
        return "—" if not e else f"{100 * e[key]:.1f}"

    def nonloss(e: dict[str, float] | None) -> str:
        return "—" if not e else f"{100 * (e['win'] + e['draw']):.1f}"

    phrasings = list(report["phrasings"])
    first: dict[str, Any] = next(iter(report["opponents"].values()), {})
    opponents = [o for o in first.get(mode, {}) if o != "minimax"]
    head = (
        ["policy"]
        + [f"{p} vs minimax: draw X / O" for p in phrasings]
        + [f"vs {o}: not lost X / O" for o in opponents]
        + ["value-preserving, all positions: X / O"]
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in report["opponents"]:
        cells = [name]
        for p in phrasings:
            g = report["phrasings"][p][name][mode]["minimax"]
            cells.append(f"{pct(g['X'])} / {pct(g['O'])} %")
        for o in opponents:
            g = report["opponents"][name][mode][o]
            cells.append(f"{nonloss(g['X'])} / {nonloss(g['O'])} %")
        pos = report.get("positions", {}).get(name)
        if pos:
            s = pos["positions"][mode]
            cells.append(f"{100 * s['X']['all']['share']:.1f} / {100 * s['O']['all']['share']:.1f} %")
        else:
            cells.append("—")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


# --------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--policy",
        action="append",
        default=None,
        metavar="PATH",
        help="policy to check (repeatable): a policy file, 'auto' (the shipped one) or 'none' "
        "(unsteered); default: auto and none",
    )
    parser.add_argument("--model", default="smollm2", help="model spec (see autosteer-bot run --kind llm)")
    parser.add_argument("--sae", default="auto", help="SAE folder or registry id ('auto': the shipped SAE)")
    parser.add_argument("--mode", default="strict,masked", help="comma list of move-reading modes")
    parser.add_argument("--phrasings", default="grid,rows,list", help="comma list of prompt phrasings")
    parser.add_argument(
        "--opponents",
        default=",".join(HELD_OUT_OPPONENTS),
        help="comma list of opponents for the exact walk (minimax, random, eps<ε>)",
    )
    parser.add_argument("--no-positions", action="store_true", help="skip the all-positions check (4,520 boards)")
    parser.add_argument("--chunk", type=int, default=256, help="positions played per chunk")
    parser.add_argument(
        "--cache-boards",
        type=int,
        default=5000,
        help="boards whose prompt state is kept (5,000 holds every open position: each prompt runs once; "
        "about 0.9 MB a board for SmolLM2)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--json", dest="json_out", default=None, metavar="PATH", help="write the report as JSON")


def load_policies(specs: Sequence[str], sae: Any) -> dict[str, Any]:
    """``{name: policy or None}`` for ``--policy`` values (names: 'none', 'auto' or the path)."""
    from bots.llm.cli import load_policy_arg

    out: dict[str, Any] = {}
    for spec in specs:
        policy, _ = load_policy_arg(spec)
        if policy is not None:
            if sae is None:
                raise ValueError(f"--policy {spec} needs the SAE whose features it steers (--sae)")
            policy.check_sae(sae.d_sae, sae.hook_name)
        out["none" if policy is None else spec] = policy
    return out


def run(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console
    from tqdm import tqdm

    from bots.llm.cli import load_sae_arg
    from bots.llm.model import load_model
    from training.evaluation.evaluate import prepare_json_out
    from training.evaluation.evidence import snapshots_agree, weights_snapshot

    console = Console() if sys.stdout.isatty() else Console(width=200)
    modes = [m.strip() for m in args.mode.split(",") if m.strip()]
    phrasings = [p.strip() for p in args.phrasings.split(",") if p.strip()]
    opponents = [o.strip() for o in args.opponents.split(",") if o.strip()]
    try:
        _check_choices(modes, phrasings, opponents, args.chunk)
        json_out = prepare_json_out(args.json_out) if args.json_out else None
        torch.set_num_threads(max(1, args.threads))
        lm = load_model(args.model)
        sae = load_sae_arg(args.sae, lm)
        policies = load_policies(args.policy or ["auto", "none"], sae)
    except (ValueError, OSError) as exc:
        console.print(f"[red]error:[/] {exc}")
        return 2
    before = {n: weights_snapshot(lm, sae, p) for n, p in policies.items()}
    console.print(
        f"held-out checks of {', '.join(policies)} on {lm.name}: phrasings {', '.join(phrasings)}; "
        f"opponents {', '.join(opponents)}; modes {', '.join(modes)}"
        + ("" if args.no_positions else "; every open position (4,520)")
    )
    t0 = time.perf_counter()
    with tqdm(
        total=0 if args.no_positions else len(open_positions()), desc="positions", unit="board", file=sys.stderr
    ) as bar:
        report = heldout_report(
            lm,
            sae,
            policies,
            modes=modes,
            phrasings=phrasings,
            opponents=opponents,
            positions=not args.no_positions,
            chunk=args.chunk,
            cache_boards=args.cache_boards,
            progress=bar.update,
        )
    after = {n: weights_snapshot(lm, sae, p) for n, p in policies.items()}
    unchanged = all(snapshots_agree(before[n], after[n]) for n in policies)
    elapsed = time.perf_counter() - t0
    for mode in modes:
        console.print(f"\n[b]{mode} reading[/] (exact; % of games / positions)")
        for line in markdown_summary(report, mode):
            console.print(line, markup=False)
    console.print("weights before and after: " + ("identical" if unchanged else "[red]CHANGED[/]"))
    if json_out is not None:
        meta = {
            "model": lm.name,
            "sae": getattr(sae, "source", None),
            "policies": {n: (p.digest if p else None) for n, p in policies.items()},
            "modes": modes,
            "phrasings": phrasings,
            "opponents": opponents,
            "seconds": round(elapsed, 1),
            "weights_before": before,
            "weights_after": after,
            "weights_unchanged": unchanged,
            "command": "autosteer-train heldout " + " ".join(sys.argv[2:]),
        }
        json_out.write_text(json.dumps({"meta": meta, **report}, indent=2) + "\n")
        console.print(f"wrote {json_out}")
    console.print(f"done: held-out checks of {len(policies)} policies in {elapsed:.0f} s")
    return 0 if unchanged else 1


def _check_choices(modes: Sequence[str], phrasings: Sequence[str], opponents: Sequence[str], chunk: int) -> None:
    """A ``ValueError`` naming the first unknown mode, phrasing or opponent, a missing grid
    phrasing or a ``--chunk`` below 1."""
    from bots.llm.readers import MODES
    from bots.llm.prompt import PHRASINGS
    from training.vector_search import opponent_distribution

    for m in modes:
        if m not in MODES:
            raise ValueError(f"unknown mode {m!r}; expected {', '.join(MODES)}")
    for p in phrasings:
        if p not in PHRASINGS:
            raise ValueError(f"unknown phrasing {p!r}; expected {', '.join(PHRASINGS)}")
    if "grid" not in phrasings:
        raise ValueError("--phrasings must include grid (the phrasing play uses; opponents and positions use it)")
    for o in opponents:
        opponent_distribution(o)
    if chunk < 1:
        raise ValueError("--chunk must be at least 1")
