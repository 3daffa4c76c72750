"""``autosteer-train label``: label the shipped (or a given) SAE's features and write
``features.json`` and ``docs/FEATURES.md``.

It loads the model, the SAE and the answer-position activations cached by ``autosteer-train
sae``, scores every feature as a detector of board concepts and measures its effect as an
actuator, with the pure maths of :mod:`training.features.labels`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from server.game import Board
from training.features.labels import (
    CONCEPT_NAMES,
    CONCEPTS,
    MIN_MCC,
    DetectorScores,
    LabelError,
    best_concepts,
    cell_effect,
    concept_matrix,
    concept_names,
    detector_scores,
    label_text,
    load_features,
    mean_best_f1,
    mean_best_mcc,
    validate_features,
)
from training.outputs import REPO, SHIPPED_DOCS

# ---------------------------------------------------------------------------- command

DEFAULT_SAE = REPO / "bots" / "llm" / "artifacts" / "sae"
DEFAULT_DOCS = SHIPPED_DOCS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sae",
        default=str(DEFAULT_SAE),
        help="SAE folder written by `autosteer-train sae` (features.json is updated there)",
    )
    parser.add_argument("--model", default="", help="model (default: the one named in the SAE's run card)")
    parser.add_argument(
        "--activations",
        default="",
        help="answer-position activations cached by `autosteer-train sae` (default: the path in RUN_CARD.json)",
    )
    parser.add_argument(
        "--out",
        default="",
        help="folder for the labelled SAE (the SAE's files and the new features.json); default: the "
        "--sae folder itself unless that is the shipped SAE, then a new runs/<time>-label/sae folder",
    )
    parser.add_argument(
        "--docs", default="", help="folder for FEATURES.md (default: beside --out; docs/ when --out is the shipped SAE)"
    )
    parser.add_argument(
        "--min-fires",
        type=int,
        default=10,
        help="a feature is labelled only if it fires on at least this many answer positions",
    )
    parser.add_argument(
        "--effect-boards", type=int, default=16, help="boards on which each feature's steering effect is measured"
    )
    parser.add_argument(
        "--effect-push",
        type=float,
        default=1.0,
        help="push used to measure effects, in units of the mean answer-position residual norm "
        "(a push of coefficient 1, one typical activation, is far weaker: see the run card)",
    )
    parser.add_argument(
        "--effect-threshold",
        type=float,
        default=0.02,
        help="mean probability change that counts as promoting/suppressing a cell",
    )
    parser.add_argument("--top", type=int, default=30, help="rows of the FEATURES.md table")
    parser.add_argument("--seed", type=int, default=0, help="seed of the board sample for steering effects")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except (LabelError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


@dataclass
class _Effects:
    """Each live feature's steering effect on the sampled boards, and how it was pushed."""

    chosen: list[int]
    push: float
    resid_norm: float
    coef_equiv: list[float]
    dprob: np.ndarray
    kl: np.ndarray
    changed: np.ndarray


def _run(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console

    from training.outputs import docs_folder
    from training.features.sae_training import SAETrainingError, load_shipped_sae

    console = Console(stderr=True)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    folder = Path(args.sae)
    try:
        sae = load_shipped_sae(folder)
    except SAETrainingError as exc:
        raise LabelError(str(exc)) from None
    card_path = folder / "RUN_CARD.json"
    card = json.loads(card_path.read_text()) if card_path.is_file() else {}
    features = load_features(folder / "features.json", d_sae=sae.cfg.d_sae)
    hook = features["hook_name"]
    acts, rows = _answer_activations(args, card, card_path, hook)
    boards = [Board(acts.records[i].board) for i in acts.prompt_index[rows]]
    console.print(
        f"[bold]detectors[/]: {len(boards)} answer positions, {len(CONCEPT_NAMES)} concepts, d_sae {sae.cfg.d_sae}"
    )
    x = acts.acts[hook][torch.from_numpy(rows)].float()
    with torch.no_grad():
        f_acts = torch.cat([sae.encode(x[s : s + 4096]) for s in range(0, x.shape[0], 4096)])
    fires = (f_acts > 0).numpy()
    model_cells = None
    if acts.answer_cell_logits is not None:
        model_cells = [int(np.argmax(acts.answer_cell_logits[i])) + 1 for i in acts.prompt_index[rows]]
    names = concept_names(model_cells is not None)
    concepts = concept_matrix(boards, model_cells)
    scores = detector_scores(fires, concepts)
    ranked = best_concepts(scores, min_fires=args.min_fires)
    live = [f for f, _, _ in ranked]

    effects = _steering_effects(args, card, console, sae, features, hook, acts, rows, x, live)
    labels = _feature_labels(args, ranked, names, scores, effects, n_boards=len(boards))
    features["labels"] = labels
    features["labelling"] = _labelling_record(args, names, boards, model_cells, scores, acts, effects)
    validate_features(features, d_sae=sae.cfg.d_sae)
    out = _label_out(folder, args.out)
    (out / "features.json").write_text(json.dumps(features) + "\n")
    docs = docs_folder(out, DEFAULT_SAE, args.docs)
    docs.mkdir(parents=True, exist_ok=True)
    (docs / "FEATURES.md").write_text(render_features_doc(features, scores, args.top, names))
    console.print(
        f"[bold green]done[/]: {len(labels)} features labelled in {time.perf_counter() - t0:.0f} s; "
        f"wrote {out / 'features.json'} and {docs / 'FEATURES.md'}"
    )
    return 0


def _answer_activations(
    args: argparse.Namespace, card: dict[str, Any], card_path: Path, hook: str
) -> tuple[Any, np.ndarray]:
    """The cached activations (``--activations``, else the run card's cache) and the rows of
    their answer positions of game prompts."""
    from training.features.activations import ActivationError, ActivationSet

    act_path = args.activations or card.get("activation_cache", "")
    if not act_path:
        raise LabelError(f"no --activations given and {card_path} names none; run `autosteer-train sae` first")
    try:
        acts = ActivationSet.load(act_path)
    except ActivationError as exc:
        raise LabelError(str(exc)) from None
    if hook not in acts.acts:
        raise LabelError(f"{act_path} holds {acts.hook_names}, not the SAE's hook {hook!r}")
    is_game = np.array([r.kind == "game" for r in acts.records])
    rows = np.nonzero(acts.is_answer & is_game[acts.prompt_index])[0]
    if rows.size == 0:
        raise LabelError(f"{act_path} has no answer positions of game prompts")
    return acts, rows


def _steering_effects(
    args: argparse.Namespace,
    card: dict[str, Any],
    console: Any,
    sae: Any,
    features: dict[str, Any],
    hook: str,
    acts: Any,
    rows: np.ndarray,
    x: Any,
    live: list[int],
) -> _Effects:
    """Load the model and push each live feature's decoder direction into the answer residual
    of a sample of (grid) boards, recording how the model's cell distribution shifts."""
    import torch
    from tqdm.auto import tqdm

    from bots.llm.model import ModelLoadError, load_model
    from training.features.activations import LastTokenSteering, move_shift, tokenize

    model_name = args.model or card.get("config", {}).get("model") or "smollm2"
    try:
        lm = load_model(model_name)
    except ModelLoadError as exc:
        raise LabelError(str(exc)) from None
    steer = LastTokenSteering(lm, hook, max_batch=32)
    rng = np.random.default_rng(args.seed)
    grid_prompts = sorted({int(i) for i in acts.prompt_index[rows] if acts.records[int(i)].phrasing == "grid"})
    pool = grid_prompts or sorted({int(i) for i in acts.prompt_index[rows]})
    chosen = [pool[int(i)] for i in rng.permutation(len(pool))[: args.effect_boards]]
    ids = tokenize(lm.tokenizer, [acts.records[i].text for i in chosen])
    typical = torch.tensor(features["typical_activation"], dtype=torch.float32)
    w = sae.W_dec.detach().float()
    resid_norm = float(x.norm(dim=-1).mean())
    push = args.effect_push * resid_norm
    w_norm = w[live].norm(dim=-1).clamp(min=1e-12)
    deltas = push * w[live] / w_norm[:, None]
    # the steering coefficient that would add the same vector (coefficient × typical × W_dec)
    coef_equiv = (push / (typical[live] * w_norm)).tolist()
    dprob = np.zeros((len(chosen), len(live), 9))
    kl = np.zeros((len(chosen), len(live)))
    changed = np.zeros((len(chosen), len(live)))
    console.print(
        f"[bold]effects[/]: {len(live)} features pushed by {args.effect_push:g} × the answer residual norm "
        f"({push:.1f}) on {len(chosen)} grid boards "
        f"({'prefix K/V cached' if steer.uses_kv_cache else 'full forwards'})"
    )
    for b, tok_ids in enumerate(tqdm(ids, desc="steering effects", unit="board")):
        lp = steer.cell_log_probs(tok_ids, deltas)
        shift = move_shift(lp)
        dprob[b] = shift["delta_prob"].numpy()
        kl[b] = shift["kl"].numpy()
        changed[b] = shift["argmax_changed"].numpy()
    return _Effects(chosen, push, resid_norm, coef_equiv, dprob, kl, changed)


def _feature_labels(
    args: argparse.Namespace,
    ranked: list[tuple[int, int, float]],
    names: Sequence[str],
    scores: DetectorScores,
    effects: _Effects,
    *,
    n_boards: int,
) -> dict[str, Any]:
    """``features.json``'s ``labels``: each ranked feature's best concept, detector scores and effect."""
    labels: dict[str, Any] = {}
    for j, (f, c, mcc) in enumerate(ranked):
        concept = names[c]
        p, r, f1 = float(scores.precision[f, c]), float(scores.recall[f, c]), float(scores.f1[f, c])
        eff = cell_effect(effects.dprob[:, j], effects.kl[:, j], threshold=args.effect_threshold)
        eff["argmax_changed"] = round(float(effects.changed[:, j].mean()), 4)
        eff["coefficient_equivalent"] = round(float(effects.coef_equiv[j]), 3)
        top3 = np.argsort(-scores.mcc[f], kind="stable")[:3]
        labels[str(f)] = {
            "label": label_text(concept, p, r, mcc),
            "concept": concept,
            "precision": round(p, 4),
            "recall": round(r, 4),
            "f1": round(f1, 4),
            "mcc": round(mcc, 4),
            "fires": int(scores.fires[f]),
            "fire_rate": round(float(scores.fires[f]) / n_boards, 4),
            "other_concepts": [
                {
                    "concept": names[int(i)],
                    "mcc": round(float(scores.mcc[f, int(i)]), 4),
                    "f1": round(float(scores.f1[f, int(i)]), 4),
                }
                for i in top3[1:]
            ],
            "effect": eff,
        }
    return labels


def _labelling_record(
    args: argparse.Namespace,
    names: Sequence[str],
    boards: list[Board],
    model_cells: list[int] | None,
    scores: DetectorScores,
    acts: Any,
    effects: _Effects,
) -> dict[str, Any]:
    """``features.json``'s ``labelling``: how the labels were made."""
    return {
        "answer_positions": len(boards),
        "concepts": {n: CONCEPTS[n] for n in names},
        "min_fires": args.min_fires,
        "unsteered_model_illegal_rate": (
            round(float(np.mean([b.code[c - 1] != "." for b, c in zip(boards, model_cells)])), 4)
            if model_cells is not None
            else None
        ),
        "effect_boards": [acts.records[i].board for i in effects.chosen],
        "effect_push_norm": round(effects.push, 3),
        "effect_push_in_residual_norms": args.effect_push,
        "answer_residual_norm": round(effects.resid_norm, 3),
        "effect_threshold": args.effect_threshold,
        "mean_best_f1": round(mean_best_f1(scores), 4),
        "mean_best_mcc": round(mean_best_mcc(scores), 4),
        "min_mcc_for_a_name": MIN_MCC,
        "command": f"autosteer-train label --sae {args.sae}"
        if Path(args.sae).resolve() != DEFAULT_SAE.resolve()
        else "autosteer-train label",
    }


def _label_out(folder: Path, out_arg: str) -> Path:
    """Where the labelled SAE goes: ``--out``, else the SAE folder itself unless it is the
    shipped one, else a new run folder. A folder other than the SAE's gets a copy of the
    SAE's files first, so that it is a complete SAE folder with the new labels."""
    import shutil

    from training.outputs import new_run_folder, same_path

    if out_arg:
        out = Path(out_arg)
    elif not same_path(folder, DEFAULT_SAE):
        return folder
    else:
        out = new_run_folder("label") / "sae"
    if not same_path(out, folder):
        shutil.copytree(folder, out, dirs_exist_ok=True)
    return out


def _reading(scores: DetectorScores, names: Sequence[str]) -> str:
    """A measured summary: how well the best feature detects each family of concepts."""
    families = {
        "cell k empty": ("empty_",),
        "cell k mine / the opponent's": ("mine_", "theirs_"),
        "tactics (can win, opponent threatens, must block, fork, won / lost)": (
            "can_win",
            "opponent_threatens",
            "must_block",
            "fork_available",
            "position_won",
            "position_lost",
        ),
        "best move k": ("optimal_",),
        "the unsteered model's own move": ("model_",),
    }
    parts = []
    means = {}
    for title, prefixes in families.items():
        vals = sorted(
            (float(scores.mcc[:, c].max()), n)
            for c, n in enumerate(names)
            if n.startswith(prefixes) and 0 < scores.support[c] < scores.n_samples
        )
        if not vals:
            continue
        means[title] = float(np.mean([v for v, _ in vals]))
        parts.append(
            f"{title} {means[title]:.2f} (best {vals[-1][1]} {vals[-1][0]:.2f}, worst {vals[0][1]} {vals[0][0]:.2f})"
        )
    clear = [t for t, v in means.items() if v >= MIN_MCC]
    weak = [t for t, v in means.items() if v < MIN_MCC]
    text = "Reading (per family of concepts, the mean of the best MCC any feature reaches): " + "; ".join(parts) + "."
    if clear:
        text += f" At or above MCC {MIN_MCC} on average: {', '.join(clear)}."
    if weak:
        text += f" Below it (no single feature is a good detector at this hook): {', '.join(weak)}."
    return text


def render_features_doc(
    features: dict[str, Any], scores: DetectorScores, top: int, names: Sequence[str] = CONCEPT_NAMES
) -> str:
    labels = features["labels"]
    meta = features.get("labelling", {})
    by_f1 = sorted(labels.items(), key=lambda kv: (-kv[1].get("mcc", kv[1]["f1"]), int(kv[0])))[:top]
    by_kl = sorted(labels.items(), key=lambda kv: (-kv[1]["effect"]["kl"], int(kv[0])))[: max(10, top // 3)]

    def cells(xs: list[int]) -> str:
        return ", ".join(str(x) for x in xs[:4]) or "-"

    out = [
        "# Labelled SAE features",
        "",
        f"Written by `{meta.get('command', 'autosteer-train label')}` for `{features['hook_name']}` "
        f"(d_sae {features['d_sae']}). Labels come from what features do in the game, not from how often they fire:",
        "",
        f"- **detector**: at the answer position of {meta.get('answer_positions', '?')} game prompts, precision "
        "P(concept | fires) and recall P(fires | concept) for every board concept (seen from the side to move) and "
        "for the unsteered model's own move; the concept with the best Matthews correlation (MCC) names the "
        'feature (F1 alone would crown features that fire on every board for common concepts such as "the '
        f'opponent threatens a line"); below MCC {meta.get("min_mcc_for_a_name", MIN_MCC)} a feature is labelled '
        '"no clear board concept";',
        f"- **effect**: the feature's unit decoder direction × {meta.get('effect_push_norm', '?')} (= "
        f"{meta.get('effect_push_in_residual_norms', '?')} × the mean answer-position residual norm) added at the "
        f"answer position on {len(meta.get('effect_boards', []))} grid boards: cells whose probability rises "
        f"(promotes) or falls (suppresses) by at least {meta.get('effect_threshold', 0.02)} on average, the mean KL "
        "of the move distribution from the unsteered one, and the share of boards whose argmax cell changes. "
        "`coef` is the steering coefficient (× typical activation) that equals this push.",
        "",
        f"{len(labels)} features fire on at least {meta.get('min_fires', '?')} answer positions and are labelled; "
        f"mean over concepts of the best MCC reached: {meta.get('mean_best_mcc', float('nan')):.3f} (best F1: "
        f"{meta.get('mean_best_f1', float('nan')):.3f}).",
        "",
        _reading(scores, names),
        "",
        "## Best detectors",
        "",
        "| feature | label | MCC | F1 | fire rate | promotes | suppresses | KL | coef |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for k, lab in by_f1:
        e = lab["effect"]
        out.append(
            f"| {k} | {lab['label']} | {lab.get('mcc', float('nan')):.2f} | {lab['f1']:.2f} | {lab['fire_rate']:.2f} | {cells(e['promotes'])} | "
            f"{cells(e['suppresses'])} | {e['kl']:.3f} | {e.get('coefficient_equivalent', float('nan')):.1f} |"
        )
    out += [
        "",
        "## Strongest actuators (same push for every feature)",
        "",
        "| feature | KL | argmax changed | promotes | suppresses | detector label |",
        "|---|---|---|---|---|---|",
    ]
    for k, lab in by_kl:
        e = lab["effect"]
        out.append(
            f"| {k} | {e['kl']:.3f} | {e.get('argmax_changed', 0):.2f} | {cells(e['promotes'])} | "
            f"{cells(e['suppresses'])} | {lab['label']} |"
        )
    out += [
        "",
        "## Per concept, the best detector (by MCC)",
        "",
        "| concept | feature | P | R | F1 | MCC | boards with the concept |",
        "|---|---|---|---|---|---|---|",
    ]
    for c, name in enumerate(names):
        if scores.support[c] == 0:
            continue
        f = int(np.argmax(scores.mcc[:, c]))
        out.append(
            f"| {name} | {f} | {scores.precision[f, c]:.2f} | {scores.recall[f, c]:.2f} | {scores.f1[f, c]:.2f} | "
            f"{scores.mcc[f, c]:.2f} | {scores.support[c]} |"
        )
    return "\n".join(out) + "\n"
