"""Playing people as on lichess, through the real server (ephemeral loopback port, real
WebSocket clients): time controls of base + increment with a flag fall, rematch offers that
spectators follow, one pending challenge per person, the opponent told at once when a
player leaves, and the house levels with their exact scores."""

from __future__ import annotations

import time

import pytest

from server.app import ServerConfig, serve_arena
from server.solver import epsilon_match, level_score
from tests.helpers_ws import WsClient

pytestmark = pytest.mark.timeout(30)


def config(**kw) -> ServerConfig:
    base = dict(host="127.0.0.1", port=0, db_path=":memory:", move_clock=30.0, grace=5.0, house_bots=True, seed=0)
    base.update(kw)
    return ServerConfig(**base)


# --------------------------------------------------------------------------- time controls
async def test_time_control_game_ends_on_a_flag_fall_with_the_increment_applied():
    async with serve_arena(config()) as srv:
        async with WsClient.connect(srv.url, "ann") as ann, WsClient.connect(srv.url, "bob") as bob:
            sent = await ann.request(
                type="challenge", opponent="bob", side="X", time_control={"base": 1.5, "increment": 1.0}
            )
            assert sent["time_control"] == {"base": 1.5, "increment": 1.0}
            offer = await bob.wait_for("challenge")
            assert offer["time_control"] == {"base": 1.5, "increment": 1.0}  # the challenged sees the clock
            await bob.request(type="accept", challenge_id=offer["challenge_id"])
            start = await ann.wait_for("game_start")
            assert start["clocks"] == {"X": 1.5, "O": 1.5}
            game_id = start["game_id"]
            t0 = time.time()
            state = await ann.request(type="move", game_id=game_id, cell=5)
            spent = time.time() - t0
            # ann's clock stopped with what was left plus the increment; bob's runs from its base
            assert 2.5 - spent - 0.3 <= state["clocks"]["X"] <= 2.5
            assert state["clocks"]["O"] == 1.5
            assert state["deadline"] == pytest.approx(time.time() + 1.5, abs=0.4)
            await bob.request(type="move", game_id=game_id, cell=1)
            state = await ann.wait_for("state", ply=2)
            assert 2.0 <= state["clocks"]["O"] <= 2.5  # bob's increment too
            x_left = state["clocks"]["X"]
            over = await ann.wait_for("game_over", timeout=x_left + 3)  # ann never moves again: her flag falls
            waited = time.time() - t0
            assert over["reason"] == "timeout" and over["result"] == "O" and over["winner"] == "bob"
            assert over["clocks"]["X"] == 0.0
            assert waited >= x_left  # not before her time (with the increment) ran out


async def test_time_control_against_a_house_bot_keeps_only_the_persons_clock():
    async with serve_arena(config()) as srv:
        async with WsClient.connect(srv.url, "ann") as ann:
            await ann.request(type="challenge", opponent="minimax", side="X", time_control={"base": 60, "increment": 2})
            start = await ann.wait_for("game_start")
            assert start["time_control"] == {"base": 60.0, "increment": 2.0} and start["clock"] == 60.0
            state = await ann.request(type="move", game_id=start["game_id"], cell=5)
            assert state["ply"] == 2 and 61.0 <= state["clocks"]["X"] <= 62.0
            assert state["clocks"]["O"] == 60.0  # the house bot moves at once, its clock never runs
            games = await ann.request(type="list_games")
            assert games["games"][0]["time_control"] == {"base": 60.0, "increment": 2.0}


@pytest.mark.parametrize(
    "bad",
    [
        {"time_control": {"base": 0.1}},
        {"time_control": {"base": 60, "increment": -1}},
        {"time_control": {"base": 60, "increment": 1000}},
        {"time_control": {"base": "3+2"}},
        {"time_control": {"base": 60, "extra": 1}},
        {"time_control": [180, 2]},
        {"time_control": {"base": 60}, "clock": 10},
    ],
)
async def test_malformed_time_control_gets_a_clear_error(bad):
    async with serve_arena(config()) as srv:
        async with WsClient.connect(srv.url, "ann") as ann:
            reply = await ann.request(type="challenge", opponent="minimax", **bad)
            assert reply["type"] == "error" and reply["code"] == "invalid_message"
            assert "time_control" in reply["message"] or "clock" in reply["message"]
            assert (await ann.request(type="ping"))["type"] == "pong"  # the connection goes on


# --------------------------------------------------------------------------- one challenge at a time
async def test_a_second_challenge_to_the_same_person_is_refused_while_the_first_waits():
    async with serve_arena(config()) as srv:
        async with WsClient.connect(srv.url, "ann") as ann, WsClient.connect(srv.url, "bob") as bob:
            first = await ann.request(type="challenge", opponent="bob", side="X")
            assert first["type"] == "challenge_sent"
            again = await ann.request(type="challenge", opponent="bob", side="O")
            assert again["type"] == "error" and again["code"] == "challenge_pending"
            assert first["challenge_id"] in again["message"]
            offer = await bob.wait_for("challenge")
            await bob.request(type="decline", challenge_id=offer["challenge_id"])
            await ann.wait_for("challenge_declined")
            assert (await ann.request(type="challenge", opponent="bob", side="O"))["type"] == "challenge_sent"


async def test_many_games_at_once_against_a_house_bot_still_start():
    async with serve_arena(config()) as srv:
        async with WsClient.connect(srv.url, "trainer") as trainer:
            for _ in range(4):
                assert (await trainer.request(type="challenge", opponent="minimax", side="X"))[
                    "type"
                ] == "challenge_sent"
            starts = [await trainer.wait_for("game_start") for _ in range(4)]
            assert len({s["game_id"] for s in starts}) == 4


# --------------------------------------------------------------------------- leaving
async def test_the_opponent_is_told_at_once_when_a_player_leaves_with_the_grace_deadline():
    async with serve_arena(config(grace=20.0)) as srv:
        async with WsClient.connect(srv.url, "ann") as ann, WsClient.connect(srv.url, "watcher") as watcher:
            async with WsClient.connect(srv.url, "bob") as bob:
                await ann.request(type="challenge", opponent="bob", side="X")
                offer = await bob.wait_for("challenge")
                await bob.request(type="accept", challenge_id=offer["challenge_id"])
                game_id = offer["challenge_id"]
                await watcher.request(type="spectate", game_id=game_id)
                token = bob.token
            left_at = time.time()
            notice = await ann.wait_for("info", event="player_left")
            assert time.time() - left_at < 1.0
            assert notice["player"] == "bob" and notice["game_id"] == game_id
            assert notice["back_by"] == pytest.approx(left_at + 20.0, abs=1.0)
            assert notice["message"] == "bob left: you win in 20 s unless bob returns"
            seen = await watcher.wait_for("info", event="player_left")
            assert seen["message"] == "bob left: ann wins in 20 s unless bob returns"
            async with WsClient.connect(srv.url, "bob", token=token):
                back = await ann.wait_for("info", event="player_back")
                assert back["player"] == "bob" and back["message"] == "bob is back"


# --------------------------------------------------------------------------- rematch
async def test_a_rematch_offer_says_so_and_the_spectators_follow_it():
    async with serve_arena(config()) as srv:
        async with (
            WsClient.connect(srv.url, "ann") as ann,
            WsClient.connect(srv.url, "bob") as bob,
            WsClient.connect(srv.url, "watcher") as watcher,
        ):
            await ann.request(type="challenge", opponent="bob", side="X", time_control={"base": 180, "increment": 2})
            offer = await bob.wait_for("challenge")
            await bob.request(type="accept", challenge_id=offer["challenge_id"])
            game_id = offer["challenge_id"]
            await watcher.request(type="spectate", game_id=game_id)
            await ann.request(type="resign", game_id=game_id)
            await watcher.wait_for("game_over")
            sent = await bob.request(
                type="challenge",
                opponent="ann",
                side="X",
                rematch_of=game_id,
                time_control={"base": 180, "increment": 2},
            )
            assert sent["rematch_of"] == game_id
            rematch = await ann.wait_for("challenge")
            assert rematch["rematch_of"] == game_id and rematch["side"] == "O"
            assert rematch["time_control"] == {"base": 180.0, "increment": 2.0}
            await ann.request(type="accept", challenge_id=rematch["challenge_id"])
            follow = await watcher.wait_for("game_start", game_id=rematch["challenge_id"])
            assert follow["rematch_of"] == game_id and follow["you"] is None and follow["x"] == "bob"


async def test_a_rematch_of_a_game_the_two_did_not_play_is_refused():
    async with serve_arena(config()) as srv:
        async with WsClient.connect(srv.url, "ann") as ann, WsClient.connect(srv.url, "bob") as bob:
            await ann.request(type="challenge", opponent="minimax", side="X")
            start = await ann.wait_for("game_start")
            live = await ann.request(type="challenge", opponent="minimax", rematch_of=start["game_id"])
            assert live["type"] == "error" and "still being played" in live["message"]
            await ann.request(type="resign", game_id=start["game_id"])
            other = await bob.request(type="challenge", opponent="ann", rematch_of=start["game_id"])
            assert other["type"] == "error" and other["code"] == "invalid_message"
            unknown = await ann.request(type="challenge", opponent="minimax", rematch_of="nope")
            assert unknown["type"] == "error" and unknown["code"] == "unknown_game"


# --------------------------------------------------------------------------- levels
def test_level_scores_are_exact_and_ordered_by_epsilon():
    assert level_score(0.0).vs_minimax == 0.5  # minimax always draws itself
    assert level_score(1.0).vs_random == 0.5  # random against random: the seats even out
    x_win, draw, o_win = epsilon_match(0.0, 1.0)
    assert abs(x_win + draw + o_win - 1) < 1e-12 and o_win < 1e-12
    scores = [level_score(e) for e in (0.0, 0.1, 0.3, 0.6, 1.0)]
    assert [s.vs_minimax for s in scores] == sorted((s.vs_minimax for s in scores), reverse=True)
    assert [s.vs_random for s in scores] == sorted((s.vs_random for s in scores), reverse=True)


async def test_the_lobby_lists_each_level_with_its_scores():
    async with serve_arena(config()) as srv:
        async with WsClient.connect(srv.url, "ann") as ann:
            bots = {b["name"]: b for b in (await ann.request(type="list_bots"))["bots"]}
            for name, epsilon in (("easy", 0.6), ("medium", 0.3), ("hard", 0.1), ("random", 1.0), ("minimax", 0.0)):
                level = bots[name]["level"]
                assert level["epsilon"] == epsilon
                assert level["vs_minimax"] == level_score(epsilon).vs_minimax
                assert level["vs_random"] == level_score(epsilon).vs_random
