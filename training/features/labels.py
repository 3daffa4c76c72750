"""Label SAE features by what they do in the game: the concepts and the maths.

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

The concept table and the precision/recall maths here are pure functions (tested on
hand-made data), used by the SAE's layer comparison (:mod:`training.features.sae`) and by the
``label`` command (:mod:`training.features.label_features`), which loads the model, the shipped SAE and
the activations cached by ``autosteer-train sae`` and writes ``features.json`` and
``docs/FEATURES.md``.
"""

from __future__ import annotations

import json
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
    d.update(
        {
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
        }
    )
    for k in range(1, 10):
        d[f"optimal_{k}"] = f"cell {k} is a best move (in minimax's choice set)"
    return d


def _model_concept_descriptions() -> dict[str, str]:
    d = {
        "model_move_illegal": "the unsteered model would name an occupied cell",
        "model_move_optimal": "the unsteered model's move keeps the game's value",
    }
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
    out = {
        "model_move_illegal": board.code[model_cell - 1] != ".",
        "model_move_optimal": model_cell in value_preserving_cells(board),
    }
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
        raise LabelError(
            f"fires {fires.shape} and concepts {concepts.shape} must be [n_samples, *] with the same n_samples"
        )
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
    return DetectorScores(
        precision, recall, f1, mcc, n_fire.astype(np.int64), n_conc.astype(np.int64), int(fires.shape[0])
    )


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
    return {
        "promotes": promotes,
        "suppresses": suppresses,
        "kl": round(float(np.mean(kl)), 4),
        "mean_delta_prob": [round(float(x), 4) for x in mean],
    }


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
