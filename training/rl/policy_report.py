"""``autosteer-train rl-report``: what a learned steering policy does, in game terms.

On every open position (4,520; the LLM playing the side to move) it records the
coefficients the policy applies and the push they make.
Boards are grouped into *situations* (seat × phase, and the board concepts "I can win",
"I must block", "centre empty"); the report gives, per situation, the mean coefficient of
each steered feature (a heatmap, rows labelled from ``features.json``), how often the policy
steers at all, how many features it steers per move, and the push ‖added‖/‖residual‖.

Outputs ``docs/POLICY.md`` (tables, generated) and ``docs/policy_heatmap.png``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from server.game import Board, Seat

ROOT = Path(__file__).resolve().parent.parent.parent
LINES = ((1, 2, 3), (4, 5, 6), (7, 8, 9), (1, 4, 7), (2, 5, 8), (3, 6, 9), (1, 5, 9), (3, 5, 7))


def threats(board: Board, seat: Seat) -> int:
    """Cells where ``seat`` would complete a line."""
    out = set()
    for line in LINES:
        pieces = [board[c] for c in line]
        if pieces.count(seat) == 2 and pieces.count(None) == 1:
            out.add(line[pieces.index(None)])
    return len(out)


def situations(board: Board) -> list[str]:
    """The groups a board (the LLM to move) belongs to."""
    me = board.turn
    phase = "opening" if board.ply <= 1 else "middle" if board.ply <= 4 else "late"
    out = [f"{me.value} {phase}"]
    if threats(board, me):
        out.append("can win")
    elif threats(board, me.other):
        out.append("must block")
    if board[5] is None:
        out.append("centre empty")
    return out


def position_rows(policy: Any, actuator: Any, boards: list[Board] | None = None) -> list[tuple[Board, Any, Any]]:
    """(board, coefficients, move) for every open position (or ``boards``), the LLM to move."""
    from training.evaluation.heldout import open_positions

    boards = list(boards) if boards is not None else open_positions()
    out: list[tuple[Board, Any, Any]] = []
    for i in range(0, len(boards), 512):
        part = boards[i : i + 512]
        acts = policy.actions(actuator.observe(part))
        out += list(zip(part, actuator.codec.coefficients(acts), actuator.act(part, acts)))
    return out


def build_report(
    policy: Any, actuator: Any, labels: dict[int, str], boards: list[Board] | None = None
) -> dict[str, Any]:
    """What the policy does on every open position (or ``boards``): mean coefficient per
    feature and situation, and its steering budget."""
    rows = position_rows(policy, actuator, boards)
    feats = list(policy.features)
    groups: dict[str, list[np.ndarray]] = {}
    for b, row, _ in rows:
        for s in situations(b):
            groups.setdefault(s, []).append(row)
    order = [f"{s} {p}" for s in ("X", "O") for p in ("opening", "middle", "late")] + [
        "can win",
        "must block",
        "centre empty",
    ]
    names = [g for g in order if g in groups]
    mean = np.stack([np.mean(groups[g], axis=0) for g in names]) if names else np.zeros((0, len(feats)))
    used = [i for i in range(len(feats)) if np.any(mean[:, i] != 0)] if len(mean) else []
    n_steered = np.array([m.n_steered for _, _, m in rows])
    push = np.array([m.norm_ratio for _, _, m in rows])
    return {
        "boards": len(rows),
        "situations": names,
        "counts": {g: len(groups[g]) for g in names},
        "features": feats,
        "labels": {f: labels.get(f, "") for f in feats},
        "mean": mean,
        "used": used,
        "steered_share": float((n_steered > 0).mean()) if len(rows) else 0.0,
        "features_per_move": {int(k): int((n_steered == k).sum()) for k in sorted(set(n_steered.tolist()))},
        "push_mean": float(push.mean()) if len(rows) else 0.0,
        "push_max": float(push.max()) if len(rows) else 0.0,
        "push_p90": float(np.percentile(push, 90)) if len(rows) else 0.0,
        "changed_share": float(np.mean([m.changed for _, _, m in rows])) if rows else 0.0,
        "use_counts": {feats[i]: int(sum(1 for _, r, _ in rows if r[i] != 0)) for i in range(len(feats))},
        "illegal": int(sum(not m.legal for _, _, m in rows)),
    }


def digit_mass(
    lm: Any, hook_name: str, reader: Any, boards: list[Board], added: Any, batch: int = 16, progress: Any = None
) -> np.ndarray:
    """The digits' share of the FULL next-token distribution at the answer position with
    ``added[b]`` added at ``hook_name`` (last position, as the bot steers): one full forward
    per board through the TransformerLens model, batched and right-padded."""
    import torch

    from bots.llm.hooks import steering_hooks

    out = []
    for i in range(0, len(boards), batch):
        chunk = boards[i : i + batch]
        ids = [reader.prompt_ids(b) for b in chunk]
        lengths = torch.tensor([len(x) for x in ids])
        tokens = torch.zeros(len(ids), int(lengths.max()), dtype=torch.long)
        for j, x in enumerate(ids):
            tokens[j, : len(x)] = torch.as_tensor(x)
        with torch.no_grad(), steering_hooks(lm.model, hook_name, added[i : i + batch], lengths, "last"):
            logits = lm.model(tokens)
        probs = torch.softmax(logits[torch.arange(len(ids)), lengths - 1].float(), dim=-1)
        out.append(probs[:, lm.cell_token_ids].sum(-1).numpy())
        if progress is not None:
            progress(len(chunk))
    return np.concatenate(out) if out else np.zeros(0)


def plot_heatmap(rep: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    used = rep["used"] or list(range(min(8, len(rep["features"]))))
    data = rep["mean"][:, used].T if len(rep["mean"]) else np.zeros((len(used), 1))
    fig, ax = plt.subplots(figsize=(2 + 0.9 * max(1, len(rep["situations"])), 1.2 + 0.32 * len(used)), dpi=110)
    lim = max(1e-6, float(np.abs(data).max()))
    im = ax.imshow(data, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(
        range(len(rep["situations"])), [f"{s}\n(n={rep['counts'][s]})" for s in rep["situations"]], fontsize=7
    )
    ylabels = [f"{rep['features'][i]}: {(rep['labels'].get(rep['features'][i]) or '—')[:48]}" for i in used]
    ax.set_yticks(range(len(used)), ylabels, fontsize=7)
    fig.colorbar(im, ax=ax, label="mean coefficient")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def write_markdown(
    rep: dict[str, Any], path: Path, policy: Any, source: str, heatmap: str, command: str, card: dict[str, Any] | None
) -> None:
    lines = [
        "# The learned steering policy",
        "",
        f"Generated by `{command}` from `{source}` (policy `{policy.digest}`, kind `{policy.kind}`, "
        f"observation `{policy.obs}`, action `{policy.codec.kind}`).",
        "",
    ]
    if rep.get("exact"):
        lines += [
            f"Exact outcome of this file (tree walk, {policy.digest}), strict reading:",
            "",
            "| opponent | seat | draw | win | loss | illegal | distinct games | mean push | mean KL |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for opp, table in rep["exact"].items():
            for seat in ("X", "O"):
                r = table[seat]
                lines.append(
                    f"| {opp} | {seat} | {100 * r['draw']:.2f} % | {100 * r['win']:.2f} % | {100 * r['loss']:.2f} % | "
                    f"{100 * r['illegal']:.2f} % | {r['games']} | {r['mean_push']:.3f} | {r['mean_kl']:.3f} |"
                )
        lines.append("")
    lines += [
        "## Steering budget per move",
        "",
        f"- Open positions (the LLM to move, X and O): {rep['boards']}; illegal moves on them: {rep['illegal']}",
        f"- Moves it steers at all: {100 * rep['steered_share']:.1f} %; moves whose cell the steering changes: "
        f"{100 * rep['changed_share']:.1f} %",
        "- Features steered per move: " + ", ".join(f"{k}: {v} boards" for k, v in rep["features_per_move"].items()),
        f"- Push ‖added‖/‖residual‖ per move: mean {rep['push_mean']:.3f}, 90th percentile {rep['push_p90']:.3f}, "
        f"max {rep['push_max']:.3f} (unweighted over boards)",
    ]
    if rep.get("digit_mass"):
        d = rep["digit_mass"]
        lines.append(
            f"- Digits' share of the full next-token distribution (full forward, {d['boards']} open positions, seeded sample): "
            f"steered mean {d['steered_mean']:.3f} (min {d['steered_min']:.3f}); unsteered mean "
            f"{d['unsteered_mean']:.3f} (min {d['unsteered_min']:.3f})"
        )
    lines += [
        "",
        "## Which features it pushes, where",
        "",
        f"![mean coefficient per feature and situation]({heatmap})",
        "",
        "Mean coefficient per situation (0 where it never steers that feature there); "
        "situations: seat × phase (opening ply ≤ 1, middle ≤ 4, late), and the board concepts "
        "*can win* (a line of mine needs one cell), *must block* (the opponent's does, mine does not), "
        "*centre empty*.",
        "",
        "| feature | label | used on boards | " + " | ".join(rep["situations"]) + " |",
        "|---|---|---|" + "---|" * len(rep["situations"]),
    ]
    for i in sorted(rep["used"], key=lambda i: -rep["use_counts"][rep["features"][i]]):
        f = rep["features"][i]
        cells = " | ".join(
            f"{rep['mean'][j, i]:+.2f}" if rep["mean"][j, i] else "·" for j in range(len(rep["situations"]))
        )
        lines.append(f"| {f} | {(rep['labels'].get(f) or '—')[:70]} | {rep['use_counts'][f]} | {cells} |")
    unused = [rep["features"][i] for i in range(len(rep["features"])) if i not in rep["used"]]
    if unused:
        lines += ["", f"Never steered on any open position: {', '.join(map(str, unused))}."]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--policy",
        default=str(ROOT / "bots" / "llm" / "artifacts" / "learned_policy.json"),
        help="the learned policy JSON",
    )
    parser.add_argument("--model", default="smollm2", help="model the policy steers")
    parser.add_argument("--sae", default="auto", help="SAE folder or 'auto' (the shipped one)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "POLICY.md", help="Markdown report")
    parser.add_argument("--heatmap", type=Path, default=ROOT / "docs" / "policy_heatmap.png", help="heatmap PNG")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument(
        "--no-digit-mass",
        dest="digit_mass",
        action="store_false",
        help="skip the full forwards that measure the digits' share of the next-token distribution",
    )
    parser.add_argument(
        "--digit-mass-boards",
        type=int,
        default=200,
        help="open positions (a seeded sample) whose full next-token distribution is measured",
    )


def run(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(max(1, args.threads))
    t = time.perf_counter()
    try:
        policy, lm, sae = load_learned(args.policy, args.model, args.sae, "the report")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    actuator = policy_actuator(lm, sae, policy)
    labels = {f: sae.label(f) or "" for f in policy.features}
    rep = build_report(policy, actuator, labels)
    from training.rl.evaluation import evaluate_exact

    rep["exact"] = {"minimax": evaluate_exact(policy, actuator), "random": evaluate_exact(policy, actuator, "random")}
    if args.digit_mass:
        rep["digit_mass"] = _digit_mass_summary(lm, sae, policy, actuator, args.digit_mass_boards)
    plot_heatmap(rep, args.heatmap, f"policy {policy.digest}: mean coefficient per situation")
    _write_report_markdown(args, rep, policy)
    print(
        f"done: {args.out} and {args.heatmap} ({rep['boards']} boards, steers {100 * rep['steered_share']:.0f} % "
        f"of moves, mean push {rep['push_mean']:.3f}) in {time.perf_counter() - t:.0f} s"
    )
    return 0


def load_learned(path: str, model: str, sae_arg: str, reader: str) -> tuple[Any, Any, Any]:
    """The learned policy at ``path``, the model and the SAE it steers, checked against each
    other; a ``ValueError`` says what is wrong (``reader`` names the command in it)."""
    from bots.llm.cli import load_sae_arg
    from bots.llm.learned import LearnedSteeringPolicy
    from bots.llm.model import load_model
    from bots.llm.policy import PolicyError, load_policy

    try:
        policy = load_policy(path)
    except PolicyError as exc:
        raise ValueError(str(exc)) from None
    if not isinstance(policy, LearnedSteeringPolicy):
        raise ValueError(f"{path} is a {policy.kind} policy; {reader} reads learned policies")
    lm = load_model(model)
    sae = load_sae_arg(sae_arg, lm)
    if sae is None:
        raise ValueError("no SAE; pass --sae")
    policy.check_sae(sae.d_sae, sae.hook_name)
    return policy, lm, sae


def policy_actuator(
    lm: Any,
    sae: Any,
    policy: Any,
    phrasing: str = "grid",
    boards: list[Board] | None = None,
    weights_hash: str | None = None,
) -> Any:
    """The actuator the learned policy was trained with (its features, observation and
    action codec) in ``phrasing``, warmed on ``boards`` (default: every open position) when
    a prompt store is at hand."""
    from training.evaluation.heldout import open_positions
    from training.rl.actuator import prompt_store_path
    from training.rl.ppo import TrainConfig, build_actuator

    c = policy.codec
    cfg = TrainConfig(
        features=list(policy.features),
        obs=policy.obs,
        action=c.kind,
        strengths=list(c.strengths),
        slots=c.slots,
        bound=c.bound,
    )
    actuator = build_actuator(lm, sae, cfg, policy.features, phrasing=phrasing)
    store = prompt_store_path(lm, actuator.bot.reader, weights_hash or lm.weights_hash())
    if store is not None:
        actuator.warm(open_positions() if boards is None else boards, store=store)
    return actuator


def _digit_mass_summary(lm: Any, sae: Any, policy: Any, actuator: Any, max_boards: int) -> dict[str, Any]:
    """The digits' share of the next-token distribution with and without the policy's
    steering, on (a seeded sample of at most ``max_boards``) positions it reaches."""
    import torch

    rows = position_rows(policy, actuator)
    if len(rows) > max_boards:  # a seeded sample keeps the full forwards bounded
        import random

        rows = random.Random(0).sample(rows, max_boards)
    boards = [b for b, _, _ in rows]
    added = actuator.bot.steering.vectors(torch.tensor(np.stack([r for _, r, _ in rows])))
    mass = digit_mass(lm, sae.hook_name, actuator.bot.reader, boards, added)
    base = digit_mass(lm, sae.hook_name, actuator.bot.reader, boards, torch.zeros_like(added))
    return {
        "steered_mean": float(mass.mean()),
        "steered_min": float(mass.min()),
        "unsteered_mean": float(base.mean()),
        "unsteered_min": float(base.min()),
        "boards": len(boards),
    }


def _write_report_markdown(args: argparse.Namespace, rep: dict[str, Any], policy: Any) -> None:
    """The report's markdown at ``--out``, with the policy's run card when it has one."""
    import json

    card_path = Path(args.policy).with_name(Path(args.policy).stem + ".card.json")
    card = json.loads(card_path.read_text()) if card_path.is_file() else None
    try:
        heat_rel = str(args.heatmap.resolve().relative_to(args.out.resolve().parent))
    except ValueError:
        heat_rel = str(args.heatmap)
    command = (
        "autosteer-train rl-report " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "autosteer-train rl-report"
    )
    write_markdown(rep, args.out, policy, _rel(args.policy), heat_rel, command, card)


def _rel(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return path
