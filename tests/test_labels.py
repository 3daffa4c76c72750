"""Feature labelling: board concepts, precision/recall maths, effects, features.json schema, the command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from server.game import Board, reachable_positions
from training.features.labels import (
    CONCEPT_NAMES,
    CONCEPTS,
    LabelError,
    best_concepts,
    board_concepts,
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


def concepts_true(moves):
    c = board_concepts(Board.from_moves(moves))
    return {k for k, v in c.items() if v and not k.startswith(("mine_", "theirs_", "empty_"))}


def test_concepts_are_seen_from_the_side_to_move():
    c = board_concepts(Board.from_moves([1, 4, 2]))  # X: 1, 2; O: 4; O to move
    assert c["mine_4"] and c["theirs_1"] and c["theirs_2"] and c["empty_3"] and not c["plays_x"]
    assert concepts_true([1, 4, 2]) == {"opponent_threatens", "must_block", "position_lost", "optimal_3"}


def test_can_win_overrides_must_block():
    # X: 1, 2; O: 4, 5; X to move wins at 3 although O threatens 6
    assert concepts_true([1, 4, 2, 5]) == {
        "can_win",
        "opponent_threatens",
        "plays_x",
        "centre_taken",
        "position_won",
        "optimal_3",
    }


def test_fork_and_opening():
    # X: 1, 9; O: 2, 5; X must block 8, and could fork with 7
    assert {"must_block", "fork_available", "optimal_8"} <= concepts_true([1, 2, 9, 5])
    assert concepts_true([]) == {"plays_x", "opening"} | {f"optimal_{k}" for k in range(1, 10)}


def test_concepts_over_all_positions_are_consistent():
    boards = [b for b in reachable_positions() if not b.is_over]
    m = concept_matrix(boards)
    assert m.shape == (4520, len(CONCEPT_NAMES))
    col = {n: m[:, i] for i, n in enumerate(CONCEPT_NAMES)}
    for k in range(1, 10):  # every cell is exactly one of mine / theirs / empty
        assert (col[f"mine_{k}"].astype(int) + col[f"theirs_{k}"] + col[f"empty_{k}"] == 1).all()
        assert not (col[f"optimal_{k}"] & ~col[f"empty_{k}"]).any()  # an optimal move is a legal one
    assert not (col["must_block"] & col["can_win"]).any()
    assert not (col["position_won"] & col["position_lost"]).any()
    assert col["opening"].sum() == 1
    with pytest.raises(LabelError, match="XXX"):
        board_concepts(Board.parse("XXXOO...."))


def test_model_concepts():
    boards = [Board.from_moves([5]), Board.from_moves([1, 4, 2])]
    m = concept_matrix(boards, model_cells=[1, 3])
    names = concept_names(True)
    row = dict(zip(names, m[0]))
    assert (
        not row["model_move_illegal"] and row["model_picks_1"] and row["model_move_optimal"]
    )  # a corner vs centre draws
    row = dict(zip(names, m[1]))
    assert row["model_picks_3"] and not row["model_move_illegal"] and row["model_move_optimal"]
    assert dict(zip(names, concept_matrix(boards, [2, 1])[1]))["model_move_illegal"]
    with pytest.raises(LabelError, match="2 model moves for 1 boards"):
        concept_matrix(boards[:1], [1, 2])


def test_detector_scores_by_hand():
    # 6 samples; feature 0 fires on 0-2, feature 1 on 0 and 5, feature 2 never
    fires = np.zeros((6, 3), dtype=bool)
    fires[[0, 1, 2], 0] = True
    fires[[0, 5], 1] = True
    # concept A on 0-3, concept B never
    concepts = np.zeros((6, 2), dtype=bool)
    concepts[[0, 1, 2, 3], 0] = True
    s = detector_scores(fires, concepts)
    assert s.precision[0, 0] == pytest.approx(1.0)
    assert s.recall[0, 0] == pytest.approx(0.75)
    assert s.f1[0, 0] == pytest.approx(2 * 0.75 / 1.75)
    assert s.precision[1, 0] == pytest.approx(0.5) and s.recall[1, 0] == pytest.approx(0.25)
    assert s.f1[1, 0] == pytest.approx(2 * 0.5 * 0.25 / 0.75)
    assert s.precision[2].tolist() == [0, 0] and s.f1[2].tolist() == [0, 0]  # never fires
    assert s.recall[:, 1].tolist() == [0, 0, 0]  # concept never present
    assert s.fires.tolist() == [3, 2, 0] and s.support.tolist() == [4, 0]
    # MCC by hand: feature 0: tp 3, fp 0, fn 1, tn 2 -> 6 / sqrt(3 * 4 * 2 * 3)
    assert s.mcc[0, 0] == pytest.approx(6 / np.sqrt(72))
    # feature 1: tp 1, fp 1, fn 3, tn 1 -> (1 - 3) / sqrt(2 * 4 * 4 * 2)
    assert s.mcc[1, 0] == pytest.approx(-2 / 8)
    assert best_concepts(s, min_fires=2) == [(0, 0, pytest.approx(6 / np.sqrt(72))), (1, 1, 0.0)]
    assert best_concepts(s, min_fires=3) == [(0, 0, pytest.approx(6 / np.sqrt(72)))]
    assert mean_best_f1(s) == pytest.approx(6 / 7)  # concept B has no support and is not averaged
    assert mean_best_mcc(s) == pytest.approx(6 / np.sqrt(72))
    with pytest.raises(LabelError, match="same n_samples"):
        detector_scores(fires, concepts[:5])


def test_mcc_does_not_flatter_a_feature_that_always_fires():
    concepts = np.array([[1], [1], [1], [0]], dtype=bool)  # a common concept
    always = np.ones((4, 1), dtype=bool)
    s = detector_scores(always, concepts)
    assert s.f1[0, 0] == pytest.approx(6 / 7) and s.mcc[0, 0] == 0.0
    assert label_text("must_block", 0.75, 1.0, mcc=0.0).startswith("no clear board concept")


def test_label_text_and_cell_effect():
    assert label_text("must_block", 0.912, 0.64) == (
        "fires when I must block the opponent's line (and cannot win at once) (P=0.91, R=0.64)"
    )
    dp = np.array([[0.10, -0.05, 0, 0, 0, 0, 0, 0, -0.05], [0.30, -0.15, 0.01, 0, 0, 0, 0, 0, -0.16]])
    e = cell_effect(dp, np.array([0.1, 0.3]))
    assert e["promotes"] == [1] and e["suppresses"] == [9, 2] and e["kl"] == pytest.approx(0.2)
    assert e["mean_delta_prob"][0] == pytest.approx(0.2)


def _doc(n=4, **over):
    doc = {
        "hook_name": "blocks.12.hook_resid_post",
        "d_sae": n,
        "typical_activation": [1.0] * n,
        "labels": {
            "2": {
                "label": "x",
                "concept": "can_win",
                "precision": 0.5,
                "recall": 0.5,
                "f1": 0.5,
                "effect": {"promotes": [5], "suppresses": [], "kl": 0.1},
            }
        },
    }
    doc.update(over)
    return doc


def test_features_schema_errors_name_the_problem(tmp_path):
    assert validate_features(_doc())["d_sae"] == 4
    with pytest.raises(LabelError, match="missing key 'labels'"):
        validate_features({k: v for k, v in _doc().items() if k != "labels"})
    with pytest.raises(LabelError, match="4 positive numbers"):
        validate_features(_doc(typical_activation=[1.0, 0.0, 1.0, 1.0]))
    with pytest.raises(LabelError, match="'7' is not a feature index"):
        validate_features(_doc(labels={"7": _doc()["labels"]["2"]}))
    with pytest.raises(LabelError, match="does not match the SAE's 8"):
        validate_features(_doc(), d_sae=8)
    with pytest.raises(LabelError, match="effect needs"):
        validate_features(_doc(labels={"1": dict(_doc()["labels"]["2"], effect={"kl": 0})}))
    bad = tmp_path / "features.json"
    bad.write_text("{nope")
    with pytest.raises(LabelError, match="features.json is not valid JSON"):
        load_features(bad)


@pytest.fixture(scope="module")
def quick_sae(tmp_path_factory):
    pytest.importorskip("torch")
    from training import cli
    from training.features.activations import make_tiny_llama

    root = tmp_path_factory.mktemp("label")
    folder = make_tiny_llama(root / "model")
    out = root / "sae"
    rc = cli.main(
        [
            "sae",
            "--quick",
            "--model",
            str(folder),
            "--layers",
            "2",
            "--out",
            str(out),
            "--docs",
            str(root / "docs"),
            "--cache-dir",
            str(root / "cache"),
        ]
    )
    assert rc == 0
    return out


def test_label_command_writes_labels_and_table(quick_sae, tmp_path):
    from training import cli

    rc = cli.main(
        ["label", "--sae", str(quick_sae), "--docs", str(tmp_path), "--min-fires", "2", "--effect-boards", "3"]
    )
    assert rc == 0
    doc = load_features(quick_sae / "features.json", d_sae=128)
    assert doc["labels"], "some feature fires on two answer positions"
    for key, lab in doc["labels"].items():
        assert lab["concept"] in CONCEPTS
        assert 0 <= lab["precision"] <= 1 and 0 <= lab["recall"] <= 1
        assert lab["label"].startswith(("fires when", "no clear board concept"))
        assert -1 <= lab["mcc"] <= 1
        assert lab["effect"]["kl"] >= 0 and len(lab["effect"]["mean_delta_prob"]) == 9
    assert len(doc["labelling"]["effect_boards"]) == 3
    table = (tmp_path / "FEATURES.md").read_text()
    assert "| feature | label |" in table


def test_label_command_bad_sae_folder(tmp_path, capsys):
    from training import cli

    rc = cli.main(["label", "--sae", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err
    assert rc == 2 and "nowhere" in err and "Traceback" not in err


def test_shipped_features_have_labels_when_present():
    folder = Path(__file__).resolve().parent.parent / "bots" / "llm" / "artifacts" / "sae"
    if not (folder / "features.json").is_file():
        pytest.skip("no shipped features.json yet")
    doc = load_features(folder / "features.json")
    for lab in doc["labels"].values():
        assert lab["concept"] in CONCEPTS
    json.dumps(doc)
