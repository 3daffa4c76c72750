"""The generic hooked TransformerLens path (``reader="hooked"``, ``steering_hooks``) and the
per-board / per-steering caches, on a tiny random Llama-style model."""

from __future__ import annotations

import pytest
import torch

from bots.llm.bot import LLMBot
from bots.llm.readers import CachedAnswerReader, HookedAnswerReader, SteeredLogitsMemo, make_reader
from bots.llm.policy import FixedSteeringPolicy
from bots.llm.steering import Steering, feature_scales
from bots.llm.testing import tiny_language_model, tiny_sae
from server.game import Board

BOARDS = [Board.empty(), Board.from_moves([5]), Board.from_moves([1, 2, 3, 4]), Board.from_moves([9, 5, 1])]

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def lm():
    return tiny_language_model(seed=3)


@pytest.fixture(scope="module")
def sae(lm, tmp_path_factory):
    return tiny_sae(lm, folder=tmp_path_factory.mktemp("sae"))


def _no_hooks_left(lm) -> bool:
    return all(not hp.fwd_hooks and not hp.bwd_hooks for hp in lm.model.hook_dict.values())


def _plain_logits(lm, boards) -> torch.Tensor:
    """The model's own digit logits, no hook anywhere: one sequence at a time."""
    with torch.no_grad():
        return torch.stack([lm.model(torch.tensor([lm.prompt_ids(b)]))[0, -1, lm.cell_token_ids] for b in boards])


@pytest.mark.parametrize("positions", ["last", "all"])
def test_hooked_zero_steering_leaves_logits_unchanged(lm, sae, positions):
    reader = make_reader(lm, sae.hook_name, reader="hooked", positions=positions)
    assert isinstance(reader, HookedAnswerReader) and reader.positions == positions
    steering = Steering(sae, [0, 3, 5], feature_scales(sae))
    out = reader.answer(BOARDS, steering.vectors(torch.zeros(len(BOARDS), 3)))
    assert torch.allclose(out.logits, out.base_logits, atol=1e-6)
    assert torch.allclose(out.base_logits, _plain_logits(lm, BOARDS), atol=1e-4)  # padding changed nothing
    assert _no_hooks_left(lm)


@pytest.mark.parametrize("positions", ["last", "all"])
def test_hooked_nonzero_steering_changes_logits_and_removes_hooks(lm, sae, positions):
    reader = make_reader(lm, sae.hook_name, reader="hooked", positions=positions)
    steering = Steering(sae, [0, 3, 5], feature_scales(sae))
    before = _plain_logits(lm, BOARDS)
    out = reader.answer(BOARDS, steering.vectors(torch.tensor([[2.0, -2.0, 1.0]] * len(BOARDS))))
    assert (out.logits - out.base_logits).abs().max() > 1e-3
    assert _no_hooks_left(lm)
    assert torch.equal(_plain_logits(lm, BOARDS), before)  # nothing left behind in the model


def test_hooked_hook_removed_when_the_forward_fails(lm, sae):
    reader = make_reader(lm, sae.hook_name, reader="hooked")
    with pytest.raises(RuntimeError):
        reader._forward([reader.prompt_ids(BOARDS[0])], torch.zeros(1, lm.d_model + 1))  # wrong width
    assert _no_hooks_left(lm)


def test_hooked_equals_cached_for_the_same_push(lm, sae):
    hooked, cached = make_reader(lm, sae.hook_name, reader="hooked"), make_reader(lm, sae.hook_name, reader="cached")
    steering = Steering(sae, [1, 2], feature_scales(sae))
    vec = steering.vectors(torch.tensor([[1.5, -0.5]] * len(BOARDS)))
    assert torch.allclose(hooked.answer(BOARDS, vec).logits, cached.answer(BOARDS, vec).logits, atol=1e-4)


def test_weights_unchanged_by_a_steered_game_on_the_hooked_path(lm, sae):
    model_hash, sae_hash = lm.weights_hash(), sae.weights_hash()
    bot = LLMBot(lm, sae=sae, policy=FixedSteeringPolicy([0, 3], [1.0, -1.0]), mode="masked", reader="hooked")
    assert bot.reader.kind == "hooked"
    board, plies = Board.empty(), 0
    while not board.is_over:
        move = bot.play([board])[0]
        assert move.trace["steering"] and move.trace["policy"] == bot.policy.digest
        assert move.reading.legal
        board = board.play(move.reading.cell)
        plies += 1
    assert plies >= 5
    assert _no_hooks_left(lm)
    assert lm.weights_hash() == model_hash and sae.weights_hash() == sae_hash


def test_hooked_reader_runs_one_forward_for_a_steered_move_on_a_known_board(lm, sae, monkeypatch):
    reader = make_reader(lm, sae.hook_name, reader="hooked")
    steering = Steering(sae, [0, 3], feature_scales(sae))
    first = reader.answer(BOARDS[:2], steering.vectors(torch.tensor([[1.0, 0.0]] * 2)))
    calls = []
    real = reader._forward
    monkeypatch.setattr(reader, "_forward", lambda ids, added: calls.append(added is None) or real(ids, added))
    again = reader.answer(BOARDS[:2], steering.vectors(torch.tensor([[1.0, 0.0]] * 2)))
    assert calls == []  # base cached and the same steering memoised: no forward at all
    assert torch.equal(again.logits, first.logits) and torch.equal(again.base_logits, first.base_logits)
    other = reader.answer(BOARDS[:2], steering.vectors(torch.tensor([[0.0, 1.0]] * 2)))
    assert calls == [False]  # a new steering vector: one steered forward, the unsteered one reused
    assert not torch.allclose(other.logits, first.logits)
    assert reader.stats()["hits"] >= 4 and reader.stats()["steered_hits"] == 2


def test_steered_memo_is_exact_and_keyed_by_the_vector(lm, sae, monkeypatch):
    reader = make_reader(lm, sae.hook_name, reader="cached")
    assert isinstance(reader, CachedAnswerReader)
    steering = Steering(sae, [0, 3], feature_scales(sae))
    vec = steering.vectors(torch.tensor([[1.0, -1.0]] * len(BOARDS)))
    fresh = reader.path.answer_logits(reader.entries(BOARDS), vec)
    first = reader.answer(BOARDS, vec)
    assert torch.allclose(first.logits, fresh, atol=1e-6)
    calls = []
    real = reader.path.answer_logits
    monkeypatch.setattr(reader.path, "answer_logits", lambda ents, added: calls.append(len(ents)) or real(ents, added))
    assert torch.equal(reader.answer(BOARDS, vec).logits, first.logits) and calls == []
    nudged = vec.clone()
    nudged[1, 0] += 1e-3  # one row's vector changes: only that row is computed
    out = reader.answer(BOARDS, nudged)
    assert calls == [1]
    assert torch.equal(out.logits[[0, 2, 3]], first.logits[[0, 2, 3]])
    stats = reader.stats()
    assert stats["steered_hits"] == 7 and stats["steered_misses"] == 5


def test_steered_memo_is_bounded():
    memo = SteeredLogitsMemo(2)
    for i in range(3):
        memo.put(bytes([i]), torch.zeros(9))
    assert memo.lookup([bytes([0]), bytes([1]), bytes([2])])[0] is None
    assert len(memo._entries) == 2
    off = SteeredLogitsMemo(0)
    off.put(b"k", torch.zeros(9))
    assert off.lookup([b"k"]) == [None]
    with pytest.raises(ValueError, match=">= 0"):
        SteeredLogitsMemo(-1)


def test_top_features_cached_per_board(lm, sae, monkeypatch):
    bot = LLMBot(lm, sae=sae, policy=FixedSteeringPolicy([0, 3], [0.5, -0.5]), top_k=4)
    first = [m.trace["top_features"] for m in bot.play(BOARDS)]
    encoded = []
    real = sae.encode
    monkeypatch.setattr(sae, "encode", lambda acts: encoded.append(len(acts)) or real(acts))
    again = [m.trace["top_features"] for m in bot.play(BOARDS + [Board.from_moves([2])])]
    assert again[:4] == first and encoded == [1]  # only the new board was encoded
    bot.close()
    assert bot.reader.stats()["boards"] == 0 and bot.reader.stats()["steered_memo"] == 0


def test_unsteered_trace_says_no_policy(lm, sae):
    assert LLMBot(lm).play([Board.empty()])[0].trace["policy"] == "none"
    assert LLMBot(lm, sae=sae).play([Board.empty()])[0].trace["policy"] == "none"


@pytest.mark.parametrize("hook", ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_post"])
def test_shared_prompt_opening_gives_the_same_cache_entries(lm, hook):
    shared, full = CachedAnswerReader(lm, hook), CachedAnswerReader(lm, hook)
    full.share_prefix = False
    boards = BOARDS + [Board.from_moves([2, 8, 4]), Board.from_moves([7, 3])]  # both sides to move
    for a, b in zip(shared.entries(boards), full.entries(boards)):
        assert a.length == b.length and a.kv.shape == b.kv.shape
        assert torch.allclose(a.resid, b.resid, atol=1e-5)
        assert torch.allclose(a.kv, b.kv, atol=1e-5)
        assert torch.allclose(a.digit_logits, b.digit_logits, atol=1e-5)
    opening = shared.shared_prefix(Board.empty(), shared.prompt_ids(Board.empty()))
    assert 20 < opening < len(shared.prompt_ids(Board.empty()))
    assert len(shared.path._prefixes) == 2  # one opening per side to move, run once each


def test_prefill_rejects_a_prefix_the_prompts_do_not_share(lm):
    reader = CachedAnswerReader(lm, "blocks.1.hook_resid_pre")
    a, b = reader.prompt_ids(Board.empty()), reader.prompt_ids(Board.from_moves([5]))
    with pytest.raises(ValueError, match="do not share their first"):
        reader.path.prefill([a, b], shared_prefix=len(a) - 1)
    with pytest.raises(ValueError, match="shorter than every prompt"):
        reader.path.prefill([a], shared_prefix=len(a))
