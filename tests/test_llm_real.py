"""The real SmolLM2 (offline) as a steered bot: the fast path matches the hooked model, and a
full game is played through a real server (serve_arena + BotClient) without touching the weights."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
import torch

from server.game import Board

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def lm():
    from bots.llm.model import load_model

    return load_model(verbose=False)


@pytest.fixture(scope="module")
def sae(lm):
    """The shipped SAE when there is one, else a random one at layer 15 (the bench's default)."""
    from bots.llm.cli import find_default_sae
    from bots.llm.sae import load_sae

    path = find_default_sae()
    if path is not None:
        return load_sae(path)
    from bots.llm.testing import tiny_sae

    return tiny_sae(lm, hook_name="blocks.15.hook_resid_pre", d_sae=512)


def test_cached_fast_path_equals_hooked_bridge(lm, sae):
    from bots.llm.readers import CachedAnswerReader, HookedAnswerReader

    boards = [Board.empty(), Board.from_moves([5, 1]), Board.from_moves([1, 2, 3])]
    cached, hooked = CachedAnswerReader(lm, sae.hook_name), HookedAnswerReader(lm, sae.hook_name)
    added = torch.randn(3, lm.d_model, generator=torch.Generator().manual_seed(0)) * 5
    a, b = cached.answer(boards, added), hooked.answer(boards, added)
    assert torch.allclose(a.logits, b.logits, atol=1e-4)
    assert torch.allclose(a.base_logits, b.base_logits, atol=1e-4)
    assert (a.logits - a.base_logits).abs().max() > 0.01  # the push did something
    # the prompt opening shared by every board with the same side to move is run once
    assert cached.shared_prefix(boards[0], cached.prompt_ids(boards[0])) >= 50
    assert len(cached.path._prefixes) == 2


async def test_full_game_through_the_server_keeps_weights(lm, sae):
    from bots.client import BotClient, BotClientError
    from bots.llm.bot import LLMBot
    from bots.llm.policy import FixedSteeringPolicy
    from server.app import ServerConfig, serve_arena
    from bots.tournament.organizer import Organizer

    model_hash, sae_hash = lm.weights_hash(), sae.weights_hash()
    policy = FixedSteeringPolicy([0, 1, 2], [0.5, -0.5, 0.25])
    bot = LLMBot(lm, sae=sae, policy=policy, mode="masked", top_k=5, name="smol")
    config = ServerConfig(port=0, db_path=":memory:", seed=0, rate=10_000.0, burst=10_000, flood_close=10_000)
    async with serve_arena(config) as srv:
        client = BotClient(bot, srv.url, name="smol", max_games=2, send_rate=10_000.0, send_burst=10_000)
        task = asyncio.create_task(client.run())
        try:
            await client.wait_connected(30)
            async with Organizer(srv.url, "org", send_rate=10_000.0, send_burst=10_000) as org:
                over = await org.play("smol", "minimax", clock=None, tag="llm-real", game_timeout=300)
        finally:
            await client.stop()
            with contextlib.suppress(BotClientError):
                await asyncio.wait_for(task, 30)
    assert over["type"] == "game_over" and over["winner"] != "smol"  # minimax is never beaten
    assert Board(over["board"]).is_over and over["reason"] in ("line", "full_board")
    mine = [m for m in over["moves"] if m["seat"] == "X"]
    assert mine
    for m in mine:
        t = m["trace"]
        assert t["model"] == lm.name and t["mode"] == "masked" and t["hook"] == sae.hook_name
        assert t["chosen"] == m["cell"] and t["legal"] is True
        assert abs(sum(t["cell_probs"].values()) - 1) < 1e-2
        assert [s["index"] for s in t["steering"]] == [0, 1, 2] and t["policy"] == policy.digest
        assert t["strength"]["norm_ratio"] > 0 and len(t["top_features"]) <= 5
    assert lm.weights_hash() == model_hash and sae.weights_hash() == sae_hash
