"""The asyncio layer over the client core against a real server on an ephemeral loopback
port: handshake, matched replies, events, arranged games, a refused hello, resume after a
dropped connection, clean close."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from client.aio import ArenaClient, ClientError, ConnectionLost, HelloError, SendPacer
from client.core import ClientCore, GameEnded, GameStarted, Reply, RequestFailed, Welcomed, YourTurn
from server.app import ServerConfig, serve_arena

pytestmark = pytest.mark.timeout(60)


def config(**overrides: Any) -> ServerConfig:
    base = dict(
        host="127.0.0.1",
        port=0,
        db_path=":memory:",
        move_clock=30.0,
        grace=15.0,
        seed=0,
        rate=10_000.0,
        burst=10_000,
        flood_close=10_000,
    )
    return ServerConfig(**{**base, **overrides})  # type: ignore[arg-type]


async def test_a_player_connects_asks_plays_through_events_and_closes() -> None:
    async with serve_arena(config()) as srv:
        async with ArenaClient(srv.url, ClientCore("ann")) as arena:
            assert arena.connected and arena.core.welcome["protocol"] == 2
            reply = await arena.request(arena.core.list_bots())
            assert isinstance(reply, Reply) and {b["name"] for b in reply.frame["bots"]} >= {"minimax", "random"}
            events = arena.events()
            reply = await arena.request(arena.core.challenge("minimax", side="X"))
            gid = reply.frame["challenge_id"]
            seen = []
            async for event in events:
                seen.append(type(event).__name__)
                if isinstance(event, YourTurn):
                    await arena.send(arena.core.move(gid, event.game.board.legal_cells()[0]))
                elif isinstance(event, GameEnded):
                    break
            assert (
                seen[:3] == ["Reply", "GameStarted", "YourTurn"]
                and event.outcome in ("loss", "draw")
                and arena.core.pending == {}
            )
        assert not arena.connected


async def test_a_refusal_comes_back_with_its_request_and_a_taken_name_is_a_hello_error() -> None:
    async with serve_arena(config()) as srv:
        async with ArenaClient(srv.url, ClientCore("ann"), pacer=SendPacer(1000.0, 10)) as arena:
            failed = await arena.request(arena.core.challenge("nobody"))
            assert isinstance(failed, RequestFailed) and failed.code == "unknown_opponent"
            assert failed.request["opponent"] == "nobody"
        with pytest.raises(HelloError, match="name_taken") as info:
            await ArenaClient(srv.url, ClientCore("minimax")).connect()
        assert not info.value.event.retryable


async def test_play_arranged_returns_the_game_over_and_refusals_raise() -> None:
    async with serve_arena(config()) as srv:
        async with ArenaClient(srv.url, ClientCore("org")) as arena:
            games = await asyncio.gather(
                *(arena.play_arranged("minimax", "random", tag="cup", seed=i, game_timeout=20) for i in range(4))
            )
            assert [g["tag"] for g in games] == ["cup"] * 4 and all(g["result"] in ("X", "draw") for g in games)
            with pytest.raises(ClientError, match="unknown_opponent"):
                await arena.play_arranged("minimax", "nobody", game_timeout=5)
            assert arena.core.games == {} and arena._ends == {}


async def test_a_dropped_connection_resumes_the_session_and_its_game() -> None:
    events: list[Any] = []
    async with serve_arena(config()) as srv:
        arena = ArenaClient(srv.url, ClientCore("ann"), on_event=events.append)
        await arena.connect()
        reply = await arena.request(arena.core.challenge("minimax", side="X"))
        gid, token = reply.frame["challenge_id"], arena.core.token
        pending = asyncio.create_task(arena.request(arena.core.ping(), timeout=5))
        arena.abort()
        await arena.wait_closed()
        with pytest.raises(ConnectionLost):
            await pending
        assert not arena.connected and list(arena.core.games) == [gid]
        welcomed = await arena.connect()
        assert welcomed.resumed == (gid,) and not welcomed.new_session and arena.core.token == token
        reply = await arena.request(arena.core.ping())
        assert isinstance(reply, Reply)
        restarted = [e for e in events if isinstance(e, GameStarted)]
        assert [e.resumed for e in restarted] == [False, True]
        assert sum(isinstance(e, Welcomed) for e in events) == 2
        await arena.close()


async def test_a_refused_hello_may_go_again_on_the_same_connection() -> None:
    async with serve_arena(config()) as srv:
        core = ClientCore("ann")
        tries: list[str] = []

        def rename(refused: Any) -> bool:
            tries.append(refused.code)
            core.name = "ann-2"
            return refused.code == "name_taken" and len(tries) == 1

        async with ArenaClient(srv.url, ClientCore("ann")), ArenaClient(srv.url, core, retry_hello=rename) as second:
            assert second.core.welcome["name"] == "ann-2" and tries == ["name_taken"]
