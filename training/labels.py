"""Label SAE features by what they do in the game (``autosteer-train label``).

A feature is labelled on two counts, never by how often it fires:

* **as a detector** of board concepts at the answer position: for every concept (cell k
  is mine / the opponent's / empty, I can win now, I must block, a fork is available,
  cell k is a best move, the position is won / lost, I play X, ...; and, when the
  activations come with the unsteered model's cell logits, the model's own move is
  illegal / keeps the game's value / is cell k) its precision
  P(concept | feature fires) and recall P(feature fires | concept), and F1; the concept
  with the best F1 names the feature;
* **as an actuator**: the change of the move distribution when the feature's decoder
  direction is added at the answer position with a fixed push (by default a vector as long
  as the mean answer-position residual, the same for every feature; one typical activation
  is too weak to move the distribution): which cells it promotes or suppresses, the KL
  divergence from the unsteered move, and the steering coefficient that push equals.

The concept table and the precision/recall maths are pure functions (tested on hand-made
data); ``run`` loads the model, the shipped SAE and the activations cached by
``autosteer-train sae`` and writes ``features.json`` and ``docs/FEATURES.md``.
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

LINES = ((1, 2, 3), (4, 5, 6), (7, 8, 9), (1, 4, 7), (2, 5, 8), (3, 6, 9), (1, 5, 9), (3, 5, 7))
CORNERS = (1, 3, 7, 9)
EDGES = (2, 4, 6, 8)


class LabelError(ValueError):
    """Bad input to labelling (file, shapes); the message names it."""


def _threat_cells(board: Board, piece: str) -> set[int]:
    """Empty cells that would complete a line of ``piece``."""
    out = set()
    for line in LINES:
        vals = [board.code[c - 1] for c in line]
        if vals.count(piece) == 2 and vals.count(".") == 1:
            out.add(line[vals.index(".")])
    return out


def _concept_descriptions() -> dict[str, str]:
    d: dict[str, str] = {}
    for k in range(1, 10):
        d[f"mine_{k}"] = f"cell {k} holds my mark"
        d[f"theirs_{k}"] = f"cell {k} holds the opponent's mark"
        d[f"empty_{k}"] = f"cell {k} is empty"
    d.update({
        "can_win": "I can win with this move",
        "opponent_threatens": "the opponent threatens to complete a line",
        "must_block": "I must block the opponent's line (and cannot win at once)",
        "fork_available": "I can make a fork (two threats at once)",
        "plays_x": "I play X",
        "opening": "the board is empty (first move)",
        "late_game": "at most three cells are empty",
        "centre_taken": "the centre is taken",
        "position_won": "the position is won for me with perfect play",
        "position_lost": "the position is lost for me with perfect play",
    })
    for k in range(1, 10):
        d[f"optimal_{k}"] = f"cell {k} is a best move (in minimax's choice set)"
    return d


def _model_concept_descriptions() -> dict[str, str]:
    d = {"model_move_illegal": "the unsteered model would name an occupied cell",
         "model_move_optimal": "the unsteered model's move keeps the game's value"}
    for k in range(1, 10):
        d[f"model_picks_{k}"] = f"the unsteered model would pick cell {k}"
    return d


#: board concepts, from the rules and the solved game
BOARD_CONCEPTS: dict[str, str] = _concept_descriptions()
#: concepts about the unsteered model's own move (need its cell logits)
MODEL_CONCEPTS: dict[str, str] = _model_concept_descriptions()
CONCEPTS: dict[str, str] = {**BOARD_CONCEPTS, **MODEL_CONCEPTS}
CONCEPT_NAMES: tuple[str, ...] = tuple(BOARD_CONCEPTS)


def board_concepts(board: Board) -> dict[str, bool]:
    """Every concept of ``CONCEPTS`` for a position, seen from the side to move.

    >>> c = board_concepts(Board.from_moves([1, 4, 2]))   # O to move; X threatens 3
    >>> c["must_block"], c["can_win"], c["mine_4"], c["theirs_1"], c["optimal_3"]
    (True, False, True, True, True)
    """
    from server.solver import optimal_cells, solve

    if board.is_over:
        raise LabelError(f"board {board.code!r} is over: it has no answer position")
    me = board.turn.value
    them = board.turn.other.value
    out: dict[str, bool] = {}
    for k in range(1, 10):
        c = board.code[k - 1]
        out[f"mine_{k}"] = c == me
        out[f"theirs_{k}"] = c == them
        out[f"empty_{k}"] = c == "."
    my_threats = _threat_cells(board, me)
    their_threats = _threat_cells(board, them)
    out["can_win"] = bool(my_threats)
    out["opponent_threatens"] = bool(their_threats)
    out["must_block"] = bool(their_threats) and not my_threats
    fork = False
    if not my_threats:
        for cell in board.empty_cells():
            if len(_threat_cells(board.play(cell), me)) >= 2:
                fork = True
                break
    out["fork_available"] = fork
    out["plays_x"] = me == "X"
    out["opening"] = board.ply == 0
    out["late_game"] = len(board.empty_cells()) <= 3
    out["centre_taken"] = board.code[4] != "."
    value = solve()[board.code].value
    out["position_won"] = value > 0
    out["position_lost"] = value < 0
    best = set(optimal_cells(board))
    for k in range(1, 10):
        out[f"optimal_{k}"] = k in best
    return out


def model_concepts(board: Board, model_cell: int) -> dict[str, bool]:
    """Concepts about the unsteered model's move ``model_cell`` (argmax over cells 1-9).

    >>> c = model_concepts(Board.from_moves([5]), 5)
    >>> c["model_move_illegal"], c["model_move_optimal"], c["model_picks_5"]
    (True, False, True)
    """
    from server.solver import value_preserving_cells

    if not 1 <= model_cell <= 9:
        raise LabelError(f"model cell {model_cell!r} is not in 1..9")
    out = {"model_move_illegal": board.code[model_cell - 1] != ".",
           "model_move_optimal": model_cell in value_preserving_cells(board)}
    for k in range(1, 10):
        out[f"model_picks_{k}"] = model_cell == k
    return out


def concept_names(with_model: bool) -> tuple[str, ...]:
    return CONCEPT_NAMES + (tuple(MODEL_CONCEPTS) if with_model else ())


def concept_matrix(boards: Sequence[Board], model_cells: Sequence[int] | None = None) -> np.ndarray:
    """``[n_boards, n_concepts]`` booleans in ``concept_names(model_cells is not None)``
    order; ``model_cells`` are the unsteered model's moves, one per board."""
    if model_cells is not None and len(model_cells) != len(boards):
        raise LabelError(f"{len(model_cells)} model moves for {len(boards)} boards")
    names = concept_names(model_cells is not None)
    rows = []
    for i, b in enumerate(boards):
        c = board_concepts(b)
        if model_cells is not None:
            c.update(model_concepts(b, int(model_cells[i])))
        rows.append([c[n] for n in names])
    return np.asarray(rows, dtype=bool).reshape(len(rows), len(names))


@dataclass(frozen=True)
class DetectorScores:
    """Precision, recall and F1 of every feature (rows) as a detector of every concept."""

    precision: np.ndarray  # [n_features, n_concepts]
    recall: np.ndarray
    f1: np.ndarray
    mcc: np.ndarray  # Matthews correlation: 0 for a feature that fires regardless of the concept
    fires: np.ndarray  # [n_features] how many samples each feature fires on
    support: np.ndarray  # [n_concepts] how many samples have each concept
    n_samples: int = 0


def detector_scores(fires: np.ndarray, concepts: np.ndarray) -> DetectorScores:
    """Score boolean feature firings ``[n_samples, n_features]`` against boolean concepts
    ``[n_samples, n_concepts]``. A feature that never fires has precision 0; a concept
    never present has recall 0. F1 flatters a feature that fires everywhere when the
    concept is common (it gets recall 1 and precision = the base rate); the Matthews
    correlation ``mcc`` gives such a feature 0, so features are named by ``mcc``.

    >>> s = detector_scores(np.array([[1], [1], [0], [0]], bool), np.array([[1], [0], [1], [0]], bool))
    >>> float(s.precision[0, 0]), float(s.recall[0, 0]), float(s.f1[0, 0]), float(s.mcc[0, 0])
    (0.5, 0.5, 0.5, 0.0)
    """
    fires = np.asarray(fires, dtype=bool)
    concepts = np.asarray(concepts, dtype=bool)
    if fires.ndim != 2 or concepts.ndim != 2 or fires.shape[0] != concepts.shape[0]:
        raise LabelError(f"fires {fires.shape} and concepts {concepts.shape} must be [n_samples, *] with the same n_samples")
    tp = fires.T.astype(np.float64) @ concepts.astype(np.float64)  # [F, C]
    n_fire = fires.sum(0).astype(np.float64)
    n_conc = concepts.sum(0).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(n_fire[:, None] > 0, tp / n_fire[:, None], 0.0)
        recall = np.where(n_conc[None, :] > 0, tp / n_conc[None, :], 0.0)
        denom = precision + recall
        f1 = np.where(denom > 0, 2 * precision * recall / np.where(denom > 0, denom, 1), 0.0)
        n = float(fires.shape[0])
        fp = n_fire[:, None] - tp
        fn = n_conc[None, :] - tp
        tn = n - tp - fp - fn
        den = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        mcc = np.where(den > 0, (tp * tn - fp * fn) / np.where(den > 0, den, 1), 0.0)
    return DetectorScores(precision, recall, f1, mcc, n_fire.astype(np.int64), n_conc.astype(np.int64),
                          int(fires.shape[0]))


def best_concepts(scores: DetectorScores, *, min_fires: int = 5) -> list[tuple[int, int, float]]:
    """For each feature firing at least ``min_fires`` times, ``(feature, concept, mcc)`` of
    its best concept by Matthews correlation, best first."""
    out = []
    for f in range(scores.mcc.shape[0]):
        if scores.fires[f] < min_fires:
            continue
        c = int(np.argmax(scores.mcc[f]))
        out.append((f, c, float(scores.mcc[f, c])))
    out.sort(key=lambda t: (-t[2], t[0]))
    return out


def mean_best_f1(scores: DetectorScores) -> float:
    """The mean over concepts of the best F1 any feature reaches."""
    present = scores.support > 0
    if not present.any():
        return 0.0
    return float(scores.f1.max(axis=0)[present].mean())


def mean_best_mcc(scores: DetectorScores) -> float:
    """How well the features cover the concepts: the mean over concepts (present and not
    present on every sample) of the best Matthews correlation any feature reaches (used to
    compare layers)."""
    present = (scores.support > 0) & (scores.support < scores.n_samples)
    if not present.any():
        return 0.0
    return float(scores.mcc.max(axis=0)[present].mean())


#: below this Matthews correlation a feature is not named after its best concept
MIN_MCC = 0.2


def label_text(concept: str, precision: float, recall: float, mcc: float | None = None) -> str:
    """Short human text for a detector label.

    >>> label_text("can_win", 0.912, 0.64)
    'fires when I can win with this move (P=0.91, R=0.64)'
    >>> label_text("can_win", 0.3, 0.2, mcc=0.05)
    'no clear board concept (best: I can win with this move, P=0.30, R=0.20, MCC=0.05)'
    """
    if mcc is not None and mcc < MIN_MCC:
        return f"no clear board concept (best: {CONCEPTS[concept]}, P={precision:.2f}, R={recall:.2f}, MCC={mcc:.2f})"
    return f"fires when {CONCEPTS[concept]} (P={precision:.2f}, R={recall:.2f})"


def cell_effect(delta_prob: np.ndarray, kl: np.ndarray, *, threshold: float = 0.02) -> dict[str, Any]:
    """Summarise a feature's steering effect over boards: ``delta_prob`` ``[n_boards, 9]``
    (change of each cell's probability), ``kl`` ``[n_boards]``. Cells whose mean change is
    at least ``threshold`` are promoted (or suppressed, if negative), largest first.

    >>> e = cell_effect(np.array([[0.3, -0.2, 0, 0, 0, 0, 0, 0, -0.1]]), np.array([0.4]))
    >>> e["promotes"], e["suppresses"], e["kl"]
    ([1], [2, 9], 0.4)
    """
    mean = np.asarray(delta_prob, dtype=np.float64).mean(0)
    order = np.argsort(-np.abs(mean), kind="stable")
    promotes = [int(i) + 1 for i in order if mean[i] >= threshold]
    suppresses = [int(i) + 1 for i in order if mean[i] <= -threshold]
    return {"promotes": promotes, "suppresses": suppresses, "kl": round(float(np.mean(kl)), 4),
            "mean_delta_prob": [round(float(x), 4) for x in mean]}


# ---------------------------------------------------------------- features.json


def validate_features(doc: Any, *, d_sae: int | None = None, source: str = "features.json") -> dict[str, Any]:
    """Check the ``features.json`` schema; raise ``LabelError`` naming what is wrong."""
    if not isinstance(doc, dict):
        raise LabelError(f"{source}: expected a JSON object")
    for key in ("hook_name", "d_sae", "typical_activation", "labels"):
        if key not in doc:
            raise LabelError(f"{source}: missing key {key!r}")
    n = doc["d_sae"]
    if not isinstance(n, int) or n <= 0:
        raise LabelError(f"{source}: d_sae must be a positive integer, got {n!r}")
    if d_sae is not None and n != d_sae:
        raise LabelError(f"{source}: d_sae {n} does not match the SAE's {d_sae}")
    ta = doc["typical_activation"]
    if not isinstance(ta, list) or len(ta) != n or not all(isinstance(x, (int, float)) and x > 0 for x in ta):
        raise LabelError(f"{source}: typical_activation must be {n} positive numbers")
    if not isinstance(doc["labels"], dict):
        raise LabelError(f"{source}: labels must be an object keyed by feature index")
    for key, lab in doc["labels"].items():
        if not key.isdigit() or not 0 <= int(key) < n:
            raise LabelError(f"{source}: label key {key!r} is not a feature index in 0..{n - 1}")
        for field_name in ("label", "concept", "precision", "recall", "f1", "effect"):
            if field_name not in lab:
                raise LabelError(f"{source}: label {key} lacks {field_name!r}")
        eff = lab["effect"]
        if not isinstance(eff, dict) or not {"promotes", "suppresses", "kl"} <= set(eff):
            raise LabelError(f"{source}: label {key} effect needs promotes, suppresses and kl")
    return doc


def load_features(path: str | Path, *, d_sae: int | None = None) -> dict[str, Any]:
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except FileNotFoundError:
        raise LabelError(f"no features file at {p}") from None
    except json.JSONDecodeError as exc:
        raise LabelError(f"{p} is not valid JSON: {exc}") from None
    return validate_features(doc, d_sae=d_sae, source=str(p))


# ---------------------------------------------------------------------------- command

DEFAULT_SAE = Path(__file__).resolve().parent.parent / "bots" / "llm" / "artifacts" / "sae"
DEFAULT_DOCS = Path(__file__).resolve().parent.parent / "docs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sae", default=str(DEFAULT_SAE), help="SAE folder written by `autosteer-train sae` (features.json is updated there)")
    parser.add_argument("--model", default="", help="model (default: the one named in the SAE's run card)")
    parser.add_argument("--activations", default="", help="answer-position activations cached by `autosteer-train sae` (default: the path in RUN_CARD.json)")
    parser.add_argument("--out", default="",
                        help="folder for the labelled SAE (the SAE's files and the new features.json); default: the "
                             "--sae folder itself unless that is the shipped SAE, then a new runs/<time>-label/sae folder")
    parser.add_argument("--docs", default="", help="folder for FEATURES.md (default: beside --out; docs/ when --out "
                                                   "is the shipped SAE)")
    parser.add_argument("--min-fires", type=int, default=10, help="a feature is labelled only if it fires on at least this many answer positions")
    parser.add_argument("--effect-boards", type=int, default=16, help="boards on which each feature's steering effect is measured")
    parser.add_argument("--effect-push", type=float, default=1.0,
                        help="push used to measure effects, in units of the mean answer-position residual norm "
                             "(a push of coefficient 1, one typical activation, is far weaker: see the run card)")
    parser.add_argument("--effect-threshold", type=float, default=0.02, help="mean probability change that counts as promoting/suppressing a cell")
    parser.add_argument("--top", type=int, default=30, help="rows of the FEATURES.md table")
    parser.add_argument("--seed", type=int, default=0, help="seed of the board sample for steering effects")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except (LabelError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console
    from tqdm.auto import tqdm

    from bots.llm.model import ModelLoadError, load_model
    from training.activations import ActivationError, ActivationSet, LastTokenSteering, move_shift, tokenize
    from training.outputs import docs_folder
    from training.sae import SAETrainingError, load_shipped_sae

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
    boards = [Board(acts.records[i].board) for i in acts.prompt_index[rows]]
    console.print(f"[bold]detectors[/]: {len(boards)} answer positions, {len(CONCEPT_NAMES)} concepts, d_sae {sae.cfg.d_sae}")
    x = acts.acts[hook][torch.from_numpy(rows)].float()
    with torch.no_grad():
        f_acts = torch.cat([sae.encode(x[s:s + 4096]) for s in range(0, x.shape[0], 4096)])
    fires = (f_acts > 0).numpy()
    model_cells = None
    if acts.answer_cell_logits is not None:
        model_cells = [int(np.argmax(acts.answer_cell_logits[i])) + 1 for i in acts.prompt_index[rows]]
    names = concept_names(model_cells is not None)
    concepts = concept_matrix(boards, model_cells)
    scores = detector_scores(fires, concepts)
    ranked = best_concepts(scores, min_fires=args.min_fires)
    live = [f for f, _, _ in ranked]

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
    console.print(f"[bold]effects[/]: {len(live)} features pushed by {args.effect_push:g} × the answer residual norm "
                  f"({push:.1f}) on {len(chosen)} grid boards "
                  f"({'prefix K/V cached' if steer.uses_kv_cache else 'full forwards'})")
    for b, tok_ids in enumerate(tqdm(ids, desc="steering effects", unit="board")):
        lp = steer.cell_log_probs(tok_ids, deltas)
        shift = move_shift(lp)
        dprob[b] = shift["delta_prob"].numpy()
        kl[b] = shift["kl"].numpy()
        changed[b] = shift["argmax_changed"].numpy()

    labels: dict[str, Any] = {}
    for j, (f, c, mcc) in enumerate(ranked):
        concept = names[c]
        p, r, f1 = float(scores.precision[f, c]), float(scores.recall[f, c]), float(scores.f1[f, c])
        eff = cell_effect(dprob[:, j], kl[:, j], threshold=args.effect_threshold)
        eff["argmax_changed"] = round(float(changed[:, j].mean()), 4)
        eff["coefficient_equivalent"] = round(float(coef_equiv[j]), 3)
        top3 = np.argsort(-scores.mcc[f], kind="stable")[:3]
        labels[str(f)] = {
            "label": label_text(concept, p, r, mcc), "concept": concept,
            "precision": round(p, 4), "recall": round(r, 4), "f1": round(f1, 4), "mcc": round(mcc, 4),
            "fires": int(scores.fires[f]), "fire_rate": round(float(scores.fires[f]) / len(boards), 4),
            "other_concepts": [{"concept": names[int(i)], "mcc": round(float(scores.mcc[f, int(i)]), 4),
                                "f1": round(float(scores.f1[f, int(i)]), 4)} for i in top3[1:]],
            "effect": eff,
        }
    features["labels"] = labels
    features["labelling"] = {
        "answer_positions": len(boards), "concepts": {n: CONCEPTS[n] for n in names}, "min_fires": args.min_fires,
        "unsteered_model_illegal_rate": (round(float(np.mean([b.code[c - 1] != "." for b, c in zip(boards, model_cells)])), 4)
                                         if model_cells is not None else None),
        "effect_boards": [acts.records[i].board for i in chosen], "effect_push_norm": round(push, 3),
        "effect_push_in_residual_norms": args.effect_push, "answer_residual_norm": round(resid_norm, 3),
        "effect_threshold": args.effect_threshold, "mean_best_f1": round(mean_best_f1(scores), 4),
        "mean_best_mcc": round(mean_best_mcc(scores), 4), "min_mcc_for_a_name": MIN_MCC,
        "command": f"autosteer-train label --sae {args.sae}" if Path(args.sae).resolve() != DEFAULT_SAE.resolve() else "autosteer-train label",
    }
    validate_features(features, d_sae=sae.cfg.d_sae)
    out = _label_out(folder, args.out)
    (out / "features.json").write_text(json.dumps(features) + "\n")
    docs = docs_folder(out, DEFAULT_SAE, args.docs)
    docs.mkdir(parents=True, exist_ok=True)
    (docs / "FEATURES.md").write_text(render_features_doc(features, scores, args.top, names))
    console.print(f"[bold green]done[/]: {len(labels)} features labelled in {time.perf_counter() - t0:.0f} s; "
                  f"wrote {out / 'features.json'} and {docs / 'FEATURES.md'}")
    return 0


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
        "tactics (can win, opponent threatens, must block, fork, won / lost)":
            ("can_win", "opponent_threatens", "must_block", "fork_available", "position_won", "position_lost"),
        "best move k": ("optimal_",),
        "the unsteered model's own move": ("model_",),
    }
    parts = []
    means = {}
    for title, prefixes in families.items():
        vals = sorted((float(scores.mcc[:, c].max()), n) for c, n in enumerate(names)
                      if n.startswith(prefixes) and 0 < scores.support[c] < scores.n_samples)
        if not vals:
            continue
        means[title] = float(np.mean([v for v, _ in vals]))
        parts.append(f"{title} {means[title]:.2f} (best {vals[-1][1]} {vals[-1][0]:.2f}, worst {vals[0][1]} "
                     f"{vals[0][0]:.2f})")
    clear = [t for t, v in means.items() if v >= MIN_MCC]
    weak = [t for t, v in means.items() if v < MIN_MCC]
    text = "Reading (per family of concepts, the mean of the best MCC any feature reaches): " + "; ".join(parts) + "."
    if clear:
        text += f" At or above MCC {MIN_MCC} on average: {', '.join(clear)}."
    if weak:
        text += f" Below it (no single feature is a good detector at this hook): {', '.join(weak)}."
    return text


def render_features_doc(features: dict[str, Any], scores: DetectorScores, top: int,
                        names: Sequence[str] = CONCEPT_NAMES) -> str:
    labels = features["labels"]
    meta = features.get("labelling", {})
    by_f1 = sorted(labels.items(), key=lambda kv: (-kv[1].get("mcc", kv[1]["f1"]), int(kv[0])))[:top]
    by_kl = sorted(labels.items(), key=lambda kv: (-kv[1]["effect"]["kl"], int(kv[0])))[: max(10, top // 3)]

    def cells(xs: list[int]) -> str:
        return ", ".join(str(x) for x in xs[:4]) or "-"

    out = [
        "# Labelled SAE features", "",
        f"Written by `{meta.get('command', 'autosteer-train label')}` for `{features['hook_name']}` "
        f"(d_sae {features['d_sae']}). Labels come from what features do in the game, not from how often they fire:",
        "",
        f"- **detector**: at the answer position of {meta.get('answer_positions', '?')} game prompts, precision "
        "P(concept | fires) and recall P(fires | concept) for every board concept (seen from the side to move) and "
        "for the unsteered model's own move; the concept with the best Matthews correlation (MCC) names the "
        "feature (F1 alone would crown features that fire on every board for common concepts such as \"the "
        f"opponent threatens a line\"); below MCC {meta.get('min_mcc_for_a_name', MIN_MCC)} a feature is labelled "
        "\"no clear board concept\";",
        f"- **effect**: the feature's unit decoder direction × {meta.get('effect_push_norm', '?')} (= "
        f"{meta.get('effect_push_in_residual_norms', '?')} × the mean answer-position residual norm) added at the "
        f"answer position on {len(meta.get('effect_boards', []))} grid boards: cells whose probability rises "
        f"(promotes) or falls (suppresses) by at least {meta.get('effect_threshold', 0.02)} on average, the mean KL "
        "of the move distribution from the unsteered one, and the share of boards whose argmax cell changes. "
        "`coef` is the steering coefficient (× typical activation) that equals this push.", "",
        f"{len(labels)} features fire on at least {meta.get('min_fires', '?')} answer positions and are labelled; "
        f"mean over concepts of the best MCC reached: {meta.get('mean_best_mcc', float('nan')):.3f} (best F1: "
        f"{meta.get('mean_best_f1', float('nan')):.3f}).", "",
        _reading(scores, names), "",
        "## Best detectors", "",
        "| feature | label | MCC | F1 | fire rate | promotes | suppresses | KL | coef |", "|---|---|---|---|---|---|---|---|---|",
    ]
    for k, lab in by_f1:
        e = lab["effect"]
        out.append(f"| {k} | {lab['label']} | {lab.get('mcc', float('nan')):.2f} | {lab['f1']:.2f} | {lab['fire_rate']:.2f} | {cells(e['promotes'])} | "
                   f"{cells(e['suppresses'])} | {e['kl']:.3f} | {e.get('coefficient_equivalent', float('nan')):.1f} |")
    out += ["", "## Strongest actuators (same push for every feature)", "",
            "| feature | KL | argmax changed | promotes | suppresses | detector label |", "|---|---|---|---|---|---|"]
    for k, lab in by_kl:
        e = lab["effect"]
        out.append(f"| {k} | {e['kl']:.3f} | {e.get('argmax_changed', 0):.2f} | {cells(e['promotes'])} | "
                   f"{cells(e['suppresses'])} | {lab['label']} |")
    out += ["", "## Per concept, the best detector (by MCC)", "",
            "| concept | feature | P | R | F1 | MCC | boards with the concept |", "|---|---|---|---|---|---|---|"]
    for c, name in enumerate(names):
        if scores.support[c] == 0:
            continue
        f = int(np.argmax(scores.mcc[:, c]))
        out.append(f"| {name} | {f} | {scores.precision[f, c]:.2f} | {scores.recall[f, c]:.2f} | {scores.f1[f, c]:.2f} | "
                   f"{scores.mcc[f, c]:.2f} | {scores.support[c]} |")
    return "\n".join(out) + "\n"
