"""Steering, the cached answer path and the LLM bot on a tiny random Llama-style model."""

from __future__ import annotations

import json

import pytest
import torch

from server.players.base import MoveRequest
from bots.llm.bot import LLMBot
from bots.llm.llama_fast import BoardCache, FastPathUnsupported, start_layer_for_hook
from bots.llm.readers import CachedAnswerReader, HookedAnswerReader, make_reader, read_move
from bots.llm.policy import FixedSteeringPolicy
from bots.llm.steering import FeatureScales, Steering, SteeringError, feature_scales, kl_divergence, steering_hooks
from bots.llm.testing import tiny_sae
from server.game import Board

BOARDS = [Board.empty(), Board.from_moves([5]), Board.from_moves([1, 2, 3, 4]), Board.from_moves([9, 5, 1])]


def _added(n: int, d: int, scale: float = 3.0, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed)) * scale


@pytest.mark.parametrize(
    "hook",
    ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre", "blocks.0.hook_resid_post", "blocks.1.hook_resid_post"],
)
def test_cached_equals_uncached(lm, hook):
    cached, hooked = make_reader(lm, hook, reader="cached"), make_reader(lm, hook, reader="hooked")
    assert isinstance(cached, CachedAnswerReader) and isinstance(hooked, HookedAnswerReader)
    added = _added(len(BOARDS), lm.d_model)
    a, b = cached.answer(BOARDS, added), hooked.answer(BOARDS, added)
    assert torch.allclose(a.logits, b.logits, atol=1e-4)
    assert torch.allclose(a.base_logits, b.base_logits, atol=1e-4)
    assert torch.allclose(a.hook_acts, b.hook_acts, atol=1e-4)
    # the prompts differ in length, so the padded batch path was exercised
    assert len({len(cached.prompt_ids(x)) for x in BOARDS}) > 1
    # a second call is served from the cache and gives the same numbers
    again = cached.answer(BOARDS, added)
    assert torch.equal(again.logits, a.logits)
    assert cached.cache.hits >= len(BOARDS)


def test_cached_equals_full_model_logits_without_hook(lm):
    reader = make_reader(lm, None, reader="cached")
    ids = [reader.prompt_ids(b) for b in BOARDS]
    with torch.no_grad():
        ref = torch.stack([lm.model(torch.tensor([x]))[0, -1, lm.cell_token_ids] for x in ids])
    assert torch.allclose(reader.answer(BOARDS).logits, ref, atol=1e-4)
    assert reader.cache._entries[BOARDS[0].code].kv.numel() == 0  # no hook: only nine logits cached


def test_steering_changes_logits_only_when_nonzero(lm, sae):
    reader = make_reader(lm, sae.hook_name, reader="cached")
    steering = Steering(sae, [0, 3, 5], feature_scales(sae))
    zero = reader.answer(BOARDS, steering.vectors(torch.zeros(len(BOARDS), 3)))
    assert torch.allclose(zero.logits, zero.base_logits, atol=1e-5)
    push = reader.answer(BOARDS, steering.vectors(torch.tensor([[1.0, -1.0, 0.5]] * len(BOARDS))))
    assert (push.logits - push.base_logits).abs().max() > 1e-3


def test_rows_get_their_own_coefficients(lm, sae):
    reader = make_reader(lm, sae.hook_name, reader="cached")
    steering = Steering(sae, [0, 3], feature_scales(sae))
    board = [BOARDS[1]] * 3
    coefs = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, -2.0]])
    batch = reader.answer(board, steering.vectors(coefs))
    for i in range(3):
        alone = reader.answer([board[0]], steering.vectors(coefs[i : i + 1]))
        assert torch.allclose(batch.logits[i], alone.logits[0], atol=1e-5)
    assert not torch.allclose(batch.logits[1], batch.logits[2], atol=1e-3)


def test_steering_vector_is_scaled_decoder_sum(sae):
    scales = feature_scales(sae)
    steering = Steering(sae, [2, 5], scales)
    v = steering.vectors(torch.tensor([[0.5, -1.0]]))[0]
    expect = 0.5 * scales.values[2] * sae.W_dec[2] - 1.0 * scales.values[5] * sae.W_dec[5]
    assert torch.allclose(v, expect, atol=1e-6)
    assert "features.json" in scales.source


def test_scales_calibrated_when_no_features_file(lm, tmp_path):
    bare = tiny_sae(lm, folder=tmp_path / "bare", features=False)
    assert bare.features is None
    reader = make_reader(lm, bare.hook_name, reader="cached")
    scales = feature_scales(bare, reader, n_boards=8)
    assert "calibrated on 8" in scales.source
    assert scales.values.shape == (bare.d_sae,) and bool((scales.values > 0).all())
    with pytest.raises(SteeringError, match="no features.json"):
        feature_scales(bare)


def test_hooks_removed_after_context_and_on_error(lm):
    hook = "blocks.1.hook_resid_pre"
    ids = torch.tensor([lm.prompt_ids(BOARDS[0])])
    with torch.no_grad():
        before = lm.model(ids)[0, -1]
        with steering_hooks(lm.model, hook, _added(1, lm.d_model), torch.tensor([ids.shape[1]])):
            during = lm.model(ids)[0, -1]
        after = lm.model(ids)[0, -1]
        with pytest.raises(RuntimeError):
            with steering_hooks(lm.model, hook, _added(1, lm.d_model), torch.tensor([ids.shape[1]])):
                raise RuntimeError("boom")
        after_error = lm.model(ids)[0, -1]
    assert not torch.allclose(before, during)
    assert torch.equal(before, after) and torch.equal(before, after_error)
    assert all(not hp.fwd_hooks for hp in lm.model.hook_dict.values())


def test_all_positions_differs_from_last_position(lm):
    hook = "blocks.0.hook_resid_post"
    last = make_reader(lm, hook, reader="hooked", positions="last")
    every = make_reader(lm, hook, positions="all")
    assert isinstance(every, HookedAnswerReader) and every.positions == "all"
    added = _added(2, lm.d_model)
    a, b = last.answer(BOARDS[:2], added), every.answer(BOARDS[:2], added)
    assert torch.allclose(a.base_logits, b.base_logits, atol=1e-5)
    assert not torch.allclose(a.logits, b.logits, atol=1e-4)
    with pytest.raises(ValueError, match="answer position"):
        make_reader(lm, hook, reader="cached", positions="all")


def test_fast_path_hook_parsing():
    assert start_layer_for_hook("blocks.15.hook_resid_pre", 30) == 15
    assert start_layer_for_hook("blocks.15.hook_resid_post", 30) == 16
    assert start_layer_for_hook("blocks.29.hook_resid_post", 30) == 30
    with pytest.raises(FastPathUnsupported):
        start_layer_for_hook("blocks.3.hook_mlp_out", 30)
    with pytest.raises(FastPathUnsupported):
        start_layer_for_hook("blocks.30.hook_resid_pre", 30)


def test_non_residual_hook_falls_back_to_hooked_reader(lm):
    reader = make_reader(lm, "blocks.0.hook_mlp_out")
    assert isinstance(reader, HookedAnswerReader)


def test_board_cache_is_bounded(lm):
    reader = CachedAnswerReader(lm, "blocks.1.hook_resid_pre", cache_boards=2)
    reader.answer(BOARDS)
    assert len(reader.cache) == 2
    assert set(reader.cache._entries) == {BOARDS[2].code, BOARDS[3].code}
    with pytest.raises(ValueError):
        BoardCache(0)


def test_read_move_modes():
    board = Board.from_moves([5, 1])  # cells 5 (X) and 1 (O) taken
    logits = [5.0, 0, 0, 0, 4.0, 0, 0, 3.0, 0]
    strict = read_move(board, logits, "strict")
    masked = read_move(board, logits, "masked")
    assert (strict.cell, strict.legal, strict.mode) == (1, False, "strict")
    assert (masked.cell, masked.legal, masked.mode) == (8, True, "masked")
    assert abs(sum(strict.probs) - 1) < 1e-9 and strict.probs == masked.probs
    with pytest.raises(ValueError, match="mode"):
        read_move(board, logits, "lenient")
    with pytest.raises(ValueError, match="over"):
        read_move(Board.from_moves([1, 4, 2, 5, 3]), logits, "strict")


def test_kl_zero_for_same_logits():
    x = torch.randn(3, 9)
    assert torch.allclose(kl_divergence(x, x), torch.zeros(3), atol=1e-6)
    assert bool((kl_divergence(x, x.flip(-1)) > 0).all())


# ---------------------------------------------------------------------------- the bot
def _requests(boards):
    return [MoveRequest(game_id=f"g{i}", board=b) for i, b in enumerate(boards)]


def test_bot_trace_contents_and_size(lm, sae):
    policy = FixedSteeringPolicy([0, 3], [0.5, -0.5])
    bot = LLMBot(lm, sae=sae, policy=policy, mode="strict", top_k=8)
    decisions = bot.choose_batch(_requests(BOARDS))
    assert bot.forfeit_on_illegal
    for board, d in zip(BOARDS, decisions):
        t = d.trace
        assert t["model"] == "tiny-llama" and t["mode"] == "strict" and t["hook"] == sae.hook_name
        assert t["chosen"] == d.cell and t["legal"] == (board[d.cell] is None)
        assert set(t["cell_probs"]) == {str(c) for c in range(1, 10)}
        assert abs(sum(t["cell_probs"].values()) - 1) < 1e-3
        assert 0 < len(t["top_features"]) <= 8
        # ranked by how far each feature is from its usual level (features.json), furthest first
        devs = [abs(f["deviation"]) for f in t["top_features"]]
        assert devs == sorted(devs, reverse=True)
        for f in t["top_features"]:
            typical = sae.features.typical_activation[f["index"]]
            assert abs(f["deviation"] - (f["activation"] - f["usual"]) / typical) < 2e-3
        assert t["steering"] == [
            {"index": 0, "coefficient": 0.5, "label": "feature zero"},
            {"index": 3, "coefficient": -0.5, "label": "cell 5 occupied by me"},
        ]
        assert t["policy"] == policy.digest
        assert t["strength"]["norm_ratio"] > 0
        assert len(json.dumps(t)) < 4096


def test_bot_masked_never_illegal_and_strict_reports_illegal(lm):
    boards = [Board(c) for c in ("XOX.O....", "XO.......", "X.O.X.O..", ".........")]
    masked = LLMBot(lm, mode="masked")
    assert not masked.forfeit_on_illegal
    for b, d in zip(boards, masked.choose_batch(_requests(boards))):
        assert b[d.cell] is None and d.trace["legal"] and "top_features" not in d.trace
    strict = LLMBot(lm, mode="strict")
    for b, d in zip(boards, strict.choose_batch(_requests(boards))):
        assert d.trace["legal"] == (b[d.cell] is None)  # sent as is, no fallback


def test_bot_weights_unchanged_by_steered_play(lm, sae):
    before_model, before_sae = lm.weights_hash(), sae.weights_hash()
    bot = LLMBot(lm, sae=sae, policy=FixedSteeringPolicy([1, 2, 3], [1.0, -1.0, 1.0]), mode="masked")
    board = Board.empty()
    while not board.is_over:
        board = board.play(bot.choose(MoveRequest("g", board)).cell)
    assert lm.weights_hash() == before_model and sae.weights_hash() == before_sae


def test_bot_explicit_coefficients_and_errors(lm, sae):
    bot = LLMBot(lm, sae=sae, policy=FixedSteeringPolicy([1, 2], [0.0, 0.0]), mode="masked")
    zero = bot.play(BOARDS[:2])
    assert all(m.kl < 1e-6 and not m.changed for m in zero)
    strong = bot.play(BOARDS[:2], torch.tensor([[8.0, -8.0], [-8.0, 8.0]]))
    assert all(m.kl > 0 for m in strong) and strong[0].trace["policy"] == "explicit"
    with pytest.raises(SteeringError, match="shape"):
        bot.play(BOARDS[:2], torch.zeros(2, 3))
    with pytest.raises(SteeringError, match="finite"):
        bot.play(BOARDS[:1], torch.tensor([[float("nan"), 0.0]]))
    with pytest.raises(ValueError, match="over"):
        bot.play([Board.from_moves([1, 4, 2, 5, 3])])
    with pytest.raises(ValueError, match="needs the SAE"):
        LLMBot(lm, policy=FixedSteeringPolicy([1], [1.0]))
    with pytest.raises(ValueError, match="mode"):
        LLMBot(lm, mode="lenient")


def test_policy_feature_out_of_range_for_bot(lm, sae):
    from bots.llm.policy import PolicyError

    with pytest.raises(PolicyError, match="out of range"):
        LLMBot(lm, sae=sae, policy=FixedSteeringPolicy([sae.d_sae], [1.0]))


def test_steering_rejects_bad_indices(sae):
    scales = FeatureScales(torch.ones(sae.d_sae), "test")
    with pytest.raises(SteeringError, match="out of range"):
        Steering(sae, [sae.d_sae + 1], scales)
    with pytest.raises(SteeringError, match="repeat"):
        Steering(sae, [1, 1], scales)
    with pytest.raises(SteeringError, match="not an integer"):
        Steering(sae, ["a"], scales)  # type: ignore[list-item]


def test_fast_path_reads_a_hugging_face_llama():
    """The adapter the real SmolLM2 uses, checked on a tiny random HF Llama (token ids only)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from bots.llm.llama_fast import LlamaAnswerPath, llama_weights

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        rope_theta=100000.0,
        tie_word_embeddings=True,
    )
    hf = LlamaForCausalLM(cfg).eval()
    prompts = [[1, 5, 9, 12, 40, 3], [7, 7, 2, 50], [4, 8, 15, 16, 23, 42, 11]]
    digits = list(range(10, 19))
    path = LlamaAnswerPath(llama_weights(hf), 2, digits)
    entries = path.prefill(prompts)
    added = _added(3, 32, scale=2.0)
    steered = path.answer_logits(entries, added)
    for i, p in enumerate(prompts):

        def pre_hook(module, args, kwargs, i=i):
            h = args[0].clone() if args else kwargs["hidden_states"].clone()
            h[:, -1] += added[i]
            if args:
                return (h, *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": h}

        with torch.no_grad():
            plain = hf(torch.tensor([p])).logits[0, -1, digits]
            handle = hf.model.layers[2].register_forward_pre_hook(pre_hook, with_kwargs=True)
            try:
                pushed = hf(torch.tensor([p])).logits[0, -1, digits]
            finally:
                handle.remove()
        assert torch.allclose(entries[i].digit_logits, plain, atol=1e-4)
        assert torch.allclose(steered[i], pushed, atol=1e-4)
        assert not torch.allclose(plain, pushed, atol=1e-3)
    cfg.model_type = "gemma"  # a look-alike architecture is refused, not silently mis-computed
    with pytest.raises(FastPathUnsupported, match="verified for llama"):
        llama_weights(hf)


def test_unsteered_bot_with_sae_caches_no_prefix(lm, sae):
    bot = LLMBot(lm, sae=sae, mode="masked")
    d = bot.choose(MoveRequest("g", BOARDS[1]))
    entry = bot.reader.cache._entries[BOARDS[1].code]
    assert entry.kv.numel() == 0 and entry.resid.shape == (lm.d_model,)
    assert d.trace["top_features"] and "steering" not in d.trace
    with pytest.raises(FastPathUnsupported, match="keep_kv"):
        bot.reader.answer([BOARDS[1]], torch.zeros(1, lm.d_model))


@pytest.mark.parametrize("control", ["zero", "negate", "shuffle", "random"])
def test_steering_controls(lm, sae, control):
    policy = FixedSteeringPolicy([1, 2], [2.0, -1.0])
    real = LLMBot(lm, sae=sae, policy=policy, mode="masked")
    ctl = LLMBot(lm, sae=sae, policy=policy, mode="masked", control=control, control_seed=3)
    a, b = real.play(BOARDS), ctl.play(BOARDS)
    for m_real, m_ctl in zip(a, b):
        assert m_ctl.trace["control"] == control
        if control == "zero":
            assert m_ctl.kl < 1e-6 and m_ctl.mean_abs_coef == 0
        elif control == "negate":
            assert [s["coefficient"] for s in m_ctl.trace["steering"]] == [-2.0, 1.0]
        elif control == "shuffle":
            assert {s["index"] for s in m_ctl.trace["steering"]}.isdisjoint({1, 2})
        else:  # a random direction with the norm of the policy's vector
            assert m_ctl.norm_ratio == pytest.approx(m_real.norm_ratio, rel=1e-4)
        if control != "zero":
            assert m_ctl.reading.probs != m_real.reading.probs
    with pytest.raises(ValueError, match="needs a policy"):
        LLMBot(lm, sae=sae, control=control)


def test_prefix_tree_prefill_gives_the_entries_of_the_plain_prefill() -> None:
    """Prompts that share longer openings (cut into a prefix tree every few tokens, siblings
    batched, leaves with per-row prefixes) give the same cache entries as one plain batch."""
    import random

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from bots.llm.llama_fast import LlamaAnswerPath, llama_weights

    torch.manual_seed(1)
    cfg = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        rope_theta=100000.0,
        tie_word_embeddings=True,
    )
    hf = LlamaForCausalLM(cfg).eval()
    rng = random.Random(3)
    opening = [5, 6, 7, 8, 9]
    # a few shared middles, varying tails and lengths: every level of the tree is used
    middles = [[rng.randrange(20, 60) for _ in range(rng.choice((3, 6, 9)))] for _ in range(4)]
    prompts = [
        opening + middles[i % 4] + [rng.randrange(20, 60) for _ in range(rng.randrange(1, 7))] for i in range(23)
    ]
    prompts.append(list(prompts[0]))  # a duplicate
    path = LlamaAnswerPath(llama_weights(hf), 2, list(range(10, 19)))
    plain = path.prefill(prompts, shared_prefix=len(opening))
    seen: list[int] = []
    tree = path.prefill_tree(prompts, shared_prefix=len(opening), step=3, batch=5, progress=seen.append)
    assert sum(seen) == len(prompts)
    for a, b in zip(plain, tree):
        assert a.length == b.length and a.kv.shape == b.kv.shape
        assert torch.allclose(a.resid, b.resid, atol=1e-5) and torch.allclose(a.kv, b.kv, atol=1e-5)
        assert torch.allclose(a.digit_logits, b.digit_logits, atol=1e-5)
    with pytest.raises(ValueError, match="do not share"):
        path.prefill_tree([[1, 2, 3], [2, 2, 3]], shared_prefix=1)
