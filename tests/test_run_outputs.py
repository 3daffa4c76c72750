"""`autosteer-train sae`, `label` and `search-vector` write to a new run folder by default and
never overwrite the shipped artifacts or docs unless `--out` names them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHIPPED = [
    REPO / "bots" / "llm" / "artifacts" / "policy.json",
    REPO / "bots" / "llm" / "artifacts" / "policy.card.md",
    REPO / "docs" / "steering_budget.png",
    REPO / "docs" / "SAE.md",
    REPO / "docs" / "FEATURES.md",
    REPO / "bots" / "llm" / "artifacts" / "sae" / "features.json",
]


def _digests() -> dict[Path, str | None]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None for p in SHIPPED}


@pytest.fixture
def runs(tmp_path, monkeypatch):
    import training.outputs as outputs

    monkeypatch.setattr(outputs, "RUNS", tmp_path / "runs")
    return tmp_path / "runs"


def test_new_run_folders_are_distinct(runs):
    from training.outputs import docs_folder, new_run_folder

    a, b = new_run_folder("sae"), new_run_folder("sae")
    assert a != b and a.parent == b.parent == runs and a.is_dir() and b.is_dir()
    shipped = REPO / "bots" / "llm" / "artifacts" / "sae"
    assert docs_folder(a / "sae", shipped, "") == a / "docs"
    assert docs_folder(shipped, shipped, "") == REPO / "docs"
    assert docs_folder(shipped, shipped, "/elsewhere") == Path("/elsewhere")


def test_search_vector_writes_a_run_folder_by_default(runs, tmp_path, monkeypatch):
    import bots.llm.model as model_mod
    from bots.llm.testing import tiny_language_model, tiny_sae
    from training.cli import main

    lm = tiny_language_model()
    monkeypatch.setattr(model_mod, "load_model", lambda *a, **k: lm)
    tiny_sae(lm, folder=tmp_path / "sae")
    before = _digests()
    rc = main(
        [
            "search-vector",
            "--sae",
            str(tmp_path / "sae"),
            "--features",
            "1,2",
            "--iterations",
            "1",
            "--population",
            "2",
            "--elite",
            "2",
        ]
    )
    assert rc == 0
    assert _digests() == before  # nothing shipped was touched
    (folder,) = list(runs.iterdir())
    assert folder.name.endswith("-search-vector")
    assert {p.name for p in folder.iterdir()} >= {
        "policy.json",
        "policy.card.json",
        "policy.card.md",
        "steering_budget.png",
    }
    assert json.loads((folder / "policy.json").read_text())["features"] == [1, 2]


def test_sae_defaults_to_a_run_folder_and_ships_only_when_named(runs, monkeypatch):
    import training.features.sae as sae_mod
    from training.cli import main

    seen = []
    monkeypatch.setattr(sae_mod, "_run", lambda cfg: seen.append(cfg) or 0)
    assert main(["sae", "--quick"]) == 0
    out = Path(seen[-1].out)
    assert out.parent.parent == runs and out.name == "sae" and Path(seen[-1].docs) == out.parent / "docs"
    assert main(["sae", "--quick", "--out", str(sae_mod.DEFAULT_OUT)]) == 0  # shipping is a choice
    assert Path(seen[-1].out) == sae_mod.DEFAULT_OUT and Path(seen[-1].docs) == REPO / "docs"


def test_label_of_the_shipped_sae_goes_to_a_copy(runs, tmp_path):
    from training.features.label_features import DEFAULT_SAE, _label_out

    if not (DEFAULT_SAE / "cfg.json").is_file():
        pytest.skip("no shipped SAE")
    out = _label_out(DEFAULT_SAE, "")
    assert out.parent.parent == runs and (out / "cfg.json").is_file()  # a complete SAE folder
    other = tmp_path / "mine"
    other.mkdir()
    assert _label_out(other, "") == other  # a run folder of one's own is labelled in place
    named = _label_out(other, str(tmp_path / "named"))
    assert named == tmp_path / "named" and named.is_dir()
