"""Fuzzing: thousands of random frames (random JSON, mutated valid messages, random bytes) thrown
at a live server and at the sans-I/O arena; afterwards the server still serves a normal game,
no request caused an internal error, and every game's board agrees with its moves."""

from __future__ import annotations

import json
import random
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers_ws import WsClient
from server.app import ServerConfig, serve_arena
from server.arena.arena import Arena, Send
from server.game import Board
from server.protocol import ERROR_CODES, loads_strict

pytestmark = pytest.mark.timeout(120)

VALID_SHAPES: list[dict[str, Any]] = [
    {"type": "hello", "name": "fz", "role": "player"},
    {"type": "list_bots"},
    {"type": "list_games"},
    {"type": "ping"},
    {"type": "challenge", "opponent": "minimax", "side": "X", "clock": 5},
    {"type": "challenge", "opponent": "bob", "side": "random"},
    {"type": "arrange", "x": "minimax", "o": "random", "tag": "fz"},
    {"type": "accept", "challenge_id": "GAME"},
    {"type": "decline", "challenge_id": "GAME", "reason": "no"},
    {"type": "move", "game_id": "GAME", "cell": 5, "trace": {"a": [1, 2]}, "on_illegal": "error"},
    {"type": "move", "game_id": "GAME", "cell": 1, "on_illegal": "forfeit"},
    {"type": "resign", "game_id": "GAME"},
    {"type": "spectate", "game_id": "GAME"},
    {"type": "unspectate", "game_id": "GAME"},
    {"type": "get_game", "game_id": "GAME"},
]


def random_json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 3 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice(
            [0, -1, 5, 9, 10, 2**63, rng.randint(-(10**9), 10**9), 1.5, float("1e308"), float("nan"), float("inf")]
        )
    if kind == 3:
        return "".join(rng.choice(string.printable + "é☃\u0000") for _ in range(rng.randrange(12)))
    if kind == 4:
        return rng.choice(["hello", "move", "X", "O", "random", "player", "bot", "spectator", "minimax"])
    if kind == 5:
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {
        rng.choice(["type", "id", "cell", "game_id", "name", "x", "o", "trace", "zz"]): random_json(rng, depth + 1)
        for _ in range(rng.randrange(5))
    }


def mutate(rng: random.Random, frame: dict[str, Any], game_ids: list[str]) -> dict[str, Any]:
    out = dict(frame)
    for key in list(out):
        if out[key] == "GAME":
            out[key] = rng.choice(game_ids) if game_ids and rng.random() < 0.8 else "nope"
    for _ in range(rng.randrange(3)):
        op = rng.randrange(5)
        keys = list(out)
        if op == 0 and keys:
            out.pop(rng.choice(keys))
        elif op == 1 and keys:
            out[rng.choice(keys)] = random_json(rng)
        elif op == 2:
            out[rng.choice(["extra", "id", "trace", "cell", "token"])] = random_json(rng)
        elif op == 3:
            out["type"] = rng.choice(VALID_SHAPES)["type"]
        elif op == 4 and "cell" in out:
            out["cell"] = rng.choice([0, 1, 5, 9, 10, -1, "5", 5.0, None, True])
    return out


def random_frame(rng: random.Random, game_ids: list[str]) -> str | bytes:
    r = rng.random()
    if r < 0.15:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
    if r < 0.3:
        return json.dumps(random_json(rng))
    if r < 0.4:  # truncated or corrupted JSON text
        text = json.dumps(rng.choice(VALID_SHAPES))
        cut = rng.randrange(len(text))
        return text[:cut] + rng.choice(["", "}", '"', "\\", "\x00"])
    frame = mutate(rng, rng.choice(VALID_SHAPES), game_ids) if r < 0.85 else dict(rng.choice(VALID_SHAPES))
    if "game_id" in frame and frame["game_id"] == "GAME":
        frame["game_id"] = rng.choice(game_ids) if game_ids else "nope"
    if "challenge_id" in frame and frame["challenge_id"] == "GAME":
        frame["challenge_id"] = rng.choice(game_ids) if game_ids else "nope"
    if rng.random() < 0.3:
        frame["id"] = rng.choice([1, "x", None, [1], {"a": 1}, "y" * 80, True])
    return json.dumps(frame)


def check_error_codes(frames: list[dict[str, Any]]) -> None:
    for f in frames:
        if f["type"] == "error":
            assert f["code"] in ERROR_CODES, f
            assert f["code"] != "internal_error", f"a fuzz frame hit a server bug: {f}"


def badly_typed_cell(raw: str | bytes) -> bool:
    """Whether ``raw`` is a well-formed JSON ``move`` whose ``cell`` is not a JSON integer
    (``"5"``, ``5.0``, ``true``, ``null``…): the server must answer ``invalid_message``."""
    try:
        frame = loads_strict(raw)
    except (ValueError, RecursionError):
        return False
    if not isinstance(frame, dict) or frame.get("type") != "move" or "cell" not in frame:
        return False
    cell = frame["cell"]
    return not isinstance(cell, int) or isinstance(cell, bool)


def check_game_consistent(game: Any) -> None:
    board = Board.from_moves([m["cell"] for m in game.moves])
    assert board == game.board, (game.game_id, game.moves, game.board)


async def test_fuzz_3000_frames_then_a_normal_game() -> None:
    rng = random.Random(20241125)
    cfg = ServerConfig(
        port=0,
        db_path=":memory:",
        seed=3,
        rate=1e6,
        burst=10**6,
        flood_close=10**6,
        move_clock=60.0,
        grace=0.5,
        ping_interval=None,
    )
    async with (
        serve_arena(cfg) as srv,
        WsClient.connect(srv.url, "bob") as bob,
        WsClient.connect(srv.url, "fuzzer") as fuzzer,
        WsClient.connect(srv.url) as anon,
        WsClient.connect(srv.url, "watcher", role="spectator") as watcher,
    ):
        # a live game the fuzzer plays, so moves and resigns reach real game logic
        await fuzzer.request(type="challenge", opponent="bob", side="X")
        offer = await bob.wait_for("challenge")
        await bob.request(type="accept", challenge_id=offer["challenge_id"])
        game_ids = [offer["challenge_id"]]
        sent = 0
        for round_no in range(30):
            for client in (fuzzer, anon, watcher):
                for _ in range(100 // 3 + 1):
                    await client.send_raw(random_frame(rng, game_ids + list(srv.arena.games)[:3]))
                    sent += 1
                # every reply read back before the next batch, so no queue overflows
                marker = await client.request(type="ping")
                assert marker["type"] in ("pong", "error")
            for game in list(srv.arena.games.values()) + list(srv.arena.finished.values()):
                check_game_consistent(game)
        assert sent >= 3000
        for client in (fuzzer, anon, watcher, bob):
            check_error_codes(client.seen)
        # the server still serves a normal game, to a fresh client
        async with WsClient.connect(srv.url, "after") as after:
            await after.request(type="challenge", opponent="minimax", side="X")
            start = await after.wait_for("game_start")
            frame: dict[str, Any] = start
            while frame["type"] != "game_over":
                if (
                    frame["type"] in ("state", "game_start")
                    and frame.get("turn") == "X"
                    and frame["game_id"] == start["game_id"]
                ):
                    await after.send(type="move", game_id=start["game_id"], cell=frame["board"].index(".") + 1)
                frame = await after.recv()
            assert frame["result"] in ("O", "draw")
        assert srv.arena.status()["status"] == "ok"


async def test_fuzz_random_bytes_and_text_over_the_wire() -> None:
    rng = random.Random(7)
    cfg = ServerConfig(port=0, db_path=":memory:", rate=1e6, burst=10**6, flood_close=10**6, ping_interval=None)
    async with serve_arena(cfg) as srv, WsClient.connect(srv.url, "noise") as noise:
        for _ in range(500):
            size = rng.randrange(1, 300)
            if rng.random() < 0.5:
                await noise.send_raw(bytes(rng.randrange(256) for _ in range(size)))
            else:
                await noise.send_raw("".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(size)))
        assert (await noise.request(type="ping"))["type"] == "pong"
        check_error_codes(noise.seen)
        assert sum(1 for f in noise.seen if f["type"] == "error") == 500


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(50, 400))
def test_arena_fuzz_keeps_invariants(seed: int, n: int) -> None:
    """The sans-I/O core under random frames from several sessions with fake time."""
    rng = random.Random(seed)
    arena = Arena(
        ServerConfig(
            seed=seed, rate=1e6, burst=10**6, flood_close=10**6, move_clock=3.0, grace=2.0, challenge_timeout=2.0
        )
    )
    now = 100.0
    conns = []
    for i, (name, role) in enumerate((("p1", "player"), ("p2", "player"), ("b1", "bot"), ("s1", "spectator"))):
        arena.connect(i, "1.2.3.4", now)
        arena.receive(i, json.dumps({"type": "hello", "name": name, "role": role, "max_games": 3}), now)
        conns.append(i)
    arena.receive(0, json.dumps({"type": "challenge", "opponent": "p2", "side": "X"}), now)
    frames: list[dict[str, Any]] = [e.frame for e in arena.drain() if isinstance(e, Send)]  # the set-up's frames
    for _ in range(n):
        op = rng.random()
        expect_invalid: int | None = None  # the connection that must get invalid_message now
        if op < 0.85:
            ids = list(arena.games) + list(arena.offers) + list(arena.finished)[-2:]
            c, raw = rng.choice(conns), random_frame(rng, ids)
            if c in arena.connections and badly_typed_cell(raw):
                expect_invalid = c
            arena.receive(c, raw, now)
        elif op < 0.95:
            now += rng.choice([0.1, 0.5, 1.0, 2.5])
            arena.tick(now)
        else:  # a connection drops and comes back with its token
            c = rng.choice(conns)
            conn = arena.connections.get(c)
            session = conn.session if conn else None
            arena.disconnect(c, now)
            if session is not None and session.name in arena.sessions:
                arena.connect(c, "1.2.3.4", now)
                arena.receive(
                    c,
                    json.dumps({"type": "hello", "name": session.name, "role": session.role, "token": session.token}),
                    now,
                )
        effects = arena.drain()
        for e in effects:
            if isinstance(e, Send):
                json.dumps(e.frame, allow_nan=False)
                frames.append(e.frame)
        if expect_invalid is not None:
            replies = [e.frame for e in effects if isinstance(e, Send) and e.conn_id == expect_invalid]
            assert [f.get("code") for f in replies] == ["invalid_message"], (raw, replies)
        for game in list(arena.games.values()) + list(arena.finished.values()):
            check_game_consistent(game)
            assert (game.result is None) == (game.game_id in arena.games)
        for s in arena.sessions.values():
            assert all(g in arena.games for g in s.games), "a session lists a finished game as live"
    check_error_codes(frames)


@settings(max_examples=200, deadline=None)
@given(
    cell=st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
        max_leaves=5,
    )
)
def test_any_json_cell_gets_the_reply_its_type_implies(cell: Any) -> None:
    """An integer cell is a move the rules judge (a state, or out_of_range); anything else is invalid_message."""
    arena = Arena(ServerConfig(seed=1))
    for conn, name in ((1, "ann"), (2, "bob")):
        arena.connect(conn, "1.2.3.4", 0.0)
        arena.receive(conn, json.dumps({"type": "hello", "name": name}), 0.0)
    arena.receive(1, json.dumps({"type": "challenge", "opponent": "bob", "side": "X"}), 0.0)
    offer = next(e.frame for e in arena.drain() if isinstance(e, Send) and e.frame["type"] == "challenge")
    arena.receive(2, json.dumps({"type": "accept", "challenge_id": offer["challenge_id"]}), 0.0)
    arena.drain()
    arena.receive(1, json.dumps({"type": "move", "game_id": offer["challenge_id"], "cell": cell, "id": 1}), 0.0)
    reply = next(e.frame for e in arena.drain() if isinstance(e, Send) and e.conn_id == 1 and e.frame.get("id") == 1)
    board = arena.games[offer["challenge_id"]].board
    if isinstance(cell, int) and not isinstance(cell, bool):
        expected = "state" if 1 <= cell <= 9 else "error"
        assert reply["type"] == expected and (expected == "state" or reply["code"] == "out_of_range"), reply
        assert board.code == ("." * (cell - 1) + "X" + "." * (9 - cell) if 1 <= cell <= 9 else "." * 9)
    else:
        assert reply["type"] == "error" and reply["code"] == "invalid_message", reply
        assert board.code == "." * 9
