"""SAE training pipeline: activation collection, last-token steering probe, quick end-to-end run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from bots.llm.prompt import render_prompt  # noqa: E402
from server.game import Board  # noqa: E402
from training import cli  # noqa: E402
from training.features.activations import (  # noqa: E402
    ActivationError,
    ActivationSet,
    LastTokenSteering,
    PromptRecord,
    collect_activations,
    hook_layer,
    make_tiny_llama,
    move_shift,
    tokenize,
)
from training.features.corpus import chat_texts, stdlib_docstrings  # noqa: E402
from training.features.labels import validate_features  # noqa: E402
from training.features.sae import parse_layers  # noqa: E402
from training.features.sae_training import SAETrainingError, choose_layer  # noqa: E402

SHIPPED = Path(__file__).resolve().parent.parent / "bots" / "llm" / "artifacts" / "sae"


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return make_tiny_llama(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def tiny_lm(tiny_folder):
    from bots.llm.model import load_model

    return load_model(str(tiny_folder), verbose=False)


def _records(lm, boards, phrasings=("grid", "list")):
    return [PromptRecord("game", render_prompt(lm.tokenizer, b, ph), b.code, ph) for b in boards for ph in phrasings]


BOARDS = [Board.empty(), Board.from_moves([5]), Board.from_moves([1, 5, 9]), Board.from_moves([1, 2, 5, 9])]


def test_batched_collection_equals_one_prompt_at_a_time(tiny_lm):
    recs = _records(tiny_lm, BOARDS)
    hooks = ["blocks.1.hook_resid_post", "blocks.3.hook_resid_post"]
    batched = collect_activations(tiny_lm, recs, hooks, other_fraction=0.3, max_batch_tokens=100_000, progress=False)
    single = collect_activations(tiny_lm, recs, hooks, other_fraction=0.3, max_batch_tokens=1, progress=False)
    assert np.array_equal(batched.prompt_index, single.prompt_index)
    assert np.array_equal(batched.position, single.position)
    for h in hooks:
        assert torch.allclose(batched.acts[h].float(), single.acts[h].float(), atol=1e-3)
    # exactly one answer position per prompt, and it is the last token
    lengths = [len(t) for t in tokenize(tiny_lm.tokenizer, [r.text for r in recs])]
    assert batched.is_answer.sum() == len(recs)
    for i in range(len(recs)):
        pos = batched.position[batched.prompt_index == i]
        assert pos.max() == lengths[i] - 1
        assert batched.is_answer[(batched.prompt_index == i) & (batched.position == lengths[i] - 1)].all()


def test_collected_activation_matches_a_plain_cached_run(tiny_lm):
    rec = _records(tiny_lm, [Board.from_moves([5, 1])], ("rows",))
    s = collect_activations(tiny_lm, rec, ["blocks.2.hook_resid_post"], tail=1, other_fraction=0.0, progress=False)
    toks = torch.tensor(tokenize(tiny_lm.tokenizer, [rec[0].text]))
    _, cache = tiny_lm.model.run_with_cache(toks, names_filter=lambda n: n == "blocks.2.hook_resid_post")
    want = cache["blocks.2.hook_resid_post"][0, -1]
    assert len(s) == 1 and s.is_answer[0]
    assert torch.allclose(s.acts["blocks.2.hook_resid_post"][0].float(), want, atol=2e-3)


def test_activation_set_round_trip_and_bad_file(tiny_lm, tmp_path):
    s = collect_activations(tiny_lm, _records(tiny_lm, BOARDS[:2]), ["blocks.0.hook_resid_post"], progress=False)
    s.save(tmp_path / "a.pt")
    back = ActivationSet.load(tmp_path / "a.pt")
    assert back.records == s.records and torch.equal(
        back.acts["blocks.0.hook_resid_post"], s.acts["blocks.0.hook_resid_post"]
    )
    (tmp_path / "bad.pt").write_bytes(b"not a torch file")
    with pytest.raises(ActivationError, match="bad.pt"):
        ActivationSet.load(tmp_path / "bad.pt")
    with pytest.raises(ActivationError, match="no activation file"):
        ActivationSet.load(tmp_path / "missing.pt")


def test_bad_hooks_are_named():
    with pytest.raises(ActivationError, match="blocks.3.attn"):
        hook_layer("blocks.3.attn.hook_z")
    with pytest.raises(ActivationError, match="layers 0..3"):
        hook_layer("blocks.9.hook_resid_post", 4)
    with pytest.raises(SAETrainingError, match=r"\[40\]"):
        parse_layers("6,40", 30)
    with pytest.raises(SAETrainingError, match="integers"):
        parse_layers("six", 30)


def test_last_token_steering_cached_equals_full_forward(tiny_lm):
    steer = LastTokenSteering(tiny_lm, "blocks.1.hook_resid_post", max_batch=3)
    assert steer.uses_kv_cache
    ids = tokenize(tiny_lm.tokenizer, [render_prompt(tiny_lm.tokenizer, Board.from_moves([1, 5]), "grid")])[0]
    g = torch.Generator().manual_seed(0)
    deltas = torch.randn(7, tiny_lm.d_model, generator=g) * 4
    deltas[2] = 0
    cached = steer.cell_log_probs(ids, deltas)
    full = steer._full(ids, deltas)
    assert cached.shape == (8, 9)
    assert torch.allclose(cached, full, atol=1e-4)
    # zero steering leaves the move distribution unchanged, non-zero steering changes it
    assert torch.allclose(cached[3], cached[0], atol=1e-6)
    shift = move_shift(cached)
    assert shift["kl"][2] < 1e-8 and shift["kl"][0] > 1e-6
    assert torch.allclose(shift["delta_prob"].sum(-1), torch.zeros(7), atol=1e-5)


def test_last_token_steering_rejects_wrong_shape(tiny_lm):
    steer = LastTokenSteering(tiny_lm, "blocks.1.hook_resid_post")
    with pytest.raises(ActivationError, match=r"\[B, 64\]"):
        steer.cell_log_probs([1, 2, 3], torch.zeros(2, 5))


def test_chat_corpus_is_seeded_and_mixed(tiny_lm):
    a = chat_texts(tiny_lm.tokenizer, 30, seed=3)
    b = chat_texts(tiny_lm.tokenizer, 30, seed=3)
    c = chat_texts(tiny_lm.tokenizer, 30, seed=4)
    assert a == b and a != c and len(a) == 30
    assert {s for s, _ in a} == {"questions", "docstrings"}
    assert all(t.startswith("<|im_start|>system") for _, t in a)
    assert len(stdlib_docstrings()) > 100


def test_choose_layer_rule():
    rows = [
        {"layer": 6, "ev": 0.95, "dead": 0.0, "concept_mcc": 0.4, "steer_kl": 0.01},
        {"layer": 12, "ev": 0.85, "dead": 0.1, "concept_mcc": 0.6, "steer_kl": 0.03},
        {"layer": 18, "ev": 0.5, "dead": 0.1, "concept_mcc": 0.9, "steer_kl": 0.9},
    ]
    assert choose_layer(rows)[0] == 12  # 18 fails the reconstruction bar
    assert choose_layer([dict(r, ev=0.1) for r in rows])[0] == 6  # nobody passes: highest EV


def _run_quick(folder, out_root: Path, seed: int = 0) -> Path:
    out = out_root / "sae"
    rc = cli.main(
        [
            "sae",
            "--quick",
            "--model",
            str(folder),
            "--layers",
            "1,2",
            "--out",
            str(out),
            "--docs",
            str(out_root / "docs"),
            "--cache-dir",
            str(out_root / "cache"),
            "--seed",
            str(seed),
        ]
    )
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def quick_run(tiny_folder, tmp_path_factory):
    return _run_quick(tiny_folder, tmp_path_factory.mktemp("quick"))


def test_quick_run_writes_a_loadable_sae_lens_sae(quick_run):
    from safetensors import safe_open
    from sae_lens import SAE

    sae = SAE.load_from_disk(str(quick_run))
    assert sae.cfg.d_in == 64 and sae.cfg.d_sae == 128
    assert sae.cfg.metadata.hook_name in ("blocks.1.hook_resid_post", "blocks.2.hook_resid_post")
    assert sae.W_dec.dtype == torch.float32  # stored as float16, loaded as float32
    with safe_open(str(quick_run / "sae_weights.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    x = torch.randn(5, 64)
    feats = sae.encode(x)
    assert feats.shape == (5, 128) and ((feats > 0).sum(-1) <= 8).all()


def test_quick_run_card_and_features(quick_run):
    card = json.loads((quick_run / "RUN_CARD.json").read_text())
    for key in ("hook_name", "seed", "steps", "quality", "ce_loss", "data", "seconds", "command", "layer_comparison"):
        assert key in card
    q = card["quality"]
    assert 0 < q["l0"] <= 8 and 0 <= q["dead_fraction"] <= 1 and q["explained_variance"] <= 1
    ce = card["ce_loss"]
    assert ce["clean"] < ce["zero"] and np.isfinite(ce["recovered"])
    assert card["command"].startswith("autosteer-train sae --quick")
    assert [r["layer"] for r in card["layer_comparison"]] == [1, 2]
    assert card["data"]["game_prompts"] == {"grid": 24, "rows": 8, "list": 8}
    md = (quick_run / "RUN_CARD.md").read_text()
    assert "CE loss recovered" in md and "explained variance" in md and card["command"] in md
    feats = validate_features(json.loads((quick_run / "features.json").read_text()), d_sae=128)
    assert feats["hook_name"] == card["hook_name"]
    docs = quick_run.parent / "docs"
    assert (docs / "sae_layers.png").stat().st_size > 1000
    assert "| layer |" in (docs / "SAE.md").read_text()
    assert Path(card["activation_cache"]).is_file()


def test_quick_run_is_reproducible(quick_run, tiny_folder, tmp_path):
    from safetensors.torch import load_file

    again = _run_quick(tiny_folder, tmp_path)
    a = load_file(str(quick_run / "sae_weights.safetensors"))
    b = load_file(str(again / "sae_weights.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_cli_bad_layer_is_a_clear_error(tiny_folder, tmp_path, capsys):
    rc = cli.main(
        [
            "sae",
            "--quick",
            "--model",
            str(tiny_folder),
            "--layers",
            "1,9",
            "--out",
            str(tmp_path / "o"),
            "--docs",
            str(tmp_path / "d"),
            "--cache-dir",
            str(tmp_path / "c"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "--layers [9]" in err and "Traceback" not in err


def test_shipped_sae_matches_its_features_file():
    if not (SHIPPED / "cfg.json").is_file():
        pytest.skip("no shipped SAE yet")
    from sae_lens import SAE

    sae = SAE.load_from_disk(str(SHIPPED))
    feats = validate_features(json.loads((SHIPPED / "features.json").read_text()), d_sae=sae.cfg.d_sae)
    assert feats["hook_name"] == sae.cfg.metadata.hook_name
    card = json.loads((SHIPPED / "RUN_CARD.json").read_text())
    assert card["hook_name"] == feats["hook_name"] and card["d_sae"] == sae.cfg.d_sae
    total = sum(p.stat().st_size for p in SHIPPED.iterdir() if p.is_file())
    assert total < 12_000_000


def test_answer_cell_logits_equal_the_full_forward(tiny_lm):
    recs = _records(tiny_lm, BOARDS, ("grid",))
    s = collect_activations(
        tiny_lm, recs, ["blocks.1.hook_resid_post"], answer_logits=True, progress=False, max_batch_tokens=100_000
    )
    plain = collect_activations(tiny_lm, recs, ["blocks.1.hook_resid_post"], progress=False)
    assert plain.answer_cell_logits is None
    assert torch.equal(s.acts["blocks.1.hook_resid_post"], plain.acts["blocks.1.hook_resid_post"])
    for i, ids in enumerate(tokenize(tiny_lm.tokenizer, [r.text for r in recs])):
        logits = tiny_lm.model(torch.tensor([ids]), return_type="logits")[0, -1, tiny_lm.cell_token_ids]
        assert np.allclose(s.answer_cell_logits[i], logits.numpy(), atol=1e-4)


@pytest.mark.slow
def test_shipped_sae_on_the_real_model():
    """The shipped SAE reconstructs SmolLM2's activations at its hook, and the cached
    last-token steering probe equals a full forward on the real model."""
    if not (SHIPPED / "cfg.json").is_file():
        pytest.skip("no shipped SAE yet")
    from bots.llm.model import load_model
    from training.features.sae_training import evaluate_sae, load_shipped_sae

    lm = load_model(verbose=False)
    sae = load_shipped_sae(SHIPPED)
    hook = sae.cfg.metadata.hook_name
    recs = _records(lm, [Board.from_moves([5, 1]), Board.from_moves([1, 2, 5])], ("grid", "list"))
    acts = collect_activations(lm, recs, [hook], tail=8, other_fraction=0.2, progress=False)
    q = evaluate_sae(sae, acts.acts[hook])
    assert q.explained_variance > 0.8 and q.l0 <= sae.cfg.k
    steer = LastTokenSteering(lm, hook)
    assert steer.uses_kv_cache
    ids = tokenize(lm.tokenizer, [recs[0].text])[0]
    deltas = 300 * sae.W_dec.detach()[[0, 1]] / sae.W_dec.detach()[[0, 1]].norm(dim=-1, keepdim=True)
    assert torch.allclose(steer.cell_log_probs(ids, deltas), steer._full(ids, deltas), atol=2e-3)
