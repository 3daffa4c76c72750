"""A hostile client's trace, tags, ids, clocks, names,
floods and game counts, over real sockets where a socket is involved."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import connect

from helpers_ws import WsClient
from server.app import ServerConfig, serve_arena
from server.log_lines import format_game_line
from server.protocol import MAX_TRACE_DEPTH, MIN_CLOCK

pytestmark = pytest.mark.timeout(60)


def config(**overrides: Any) -> ServerConfig:
    base = dict(port=0, db_path=":memory:", move_clock=30.0, grace=1.0, seed=3, ping_interval=None)
    base.update(overrides)
    return ServerConfig(**base)


def nested(depth: int) -> dict[str, Any]:
    """A trace object whose arrays nest so that the whole trace is ``depth`` deep."""
    inner: Any = []
    for _ in range(depth - 2):
        inner = [inner]
    return {"t": inner}


# ----------------------------------------------------------------------------- 1: deep traces
async def test_a_deeply_nested_trace_is_refused_and_never_stored(tmp_path: Any) -> None:
    db = str(tmp_path / "arena.sqlite3")
    async with serve_arena(config(db_path=db)) as srv, WsClient.connect(srv.url, "ann") as ann:
        await ann.request(type="challenge", opponent="minimax", side="X")
        start = await ann.wait_for("game_start")
        gid = start["game_id"]
        raw = json.dumps({"type": "move", "game_id": gid, "cell": 1, "id": "deep", "trace": nested(500)})
        assert len(raw) < 1200  # about 1 KB: well inside every size limit
        await ann.send_raw(raw)
        err = await ann.wait_for("error")
        assert err["code"] == "invalid_message" and err["id"] == "deep" and "deep" in err["message"]
        at_limit = await ann.request(type="move", game_id=gid, cell=1, trace=nested(MAX_TRACE_DEPTH))
        assert at_limit["type"] == "state" and at_limit["ply"] >= 1  # the deepest allowed trace is relayed
        over = await ann.request(type="move", game_id=gid, cell=2, trace=nested(MAX_TRACE_DEPTH + 1))
        assert over["code"] == "invalid_message"
        await ann.request(type="resign", game_id=gid)
    from server.records import GameRecords

    rec = GameRecords(db).get(gid)
    assert rec is not None and rec["moves"][0]["trace"] == nested(MAX_TRACE_DEPTH)
    assert all(m["trace"] != nested(500) for m in rec["moves"])


# ----------------------------------------------------------------------------- 2: markup in games list
async def test_games_list_prints_client_markup_as_text(tmp_path: Any, capsys: Any, monkeypatch: Any) -> None:
    from server.records import cli as records

    monkeypatch.setenv("COLUMNS", "200")  # wide enough that no cell is cut

    db = str(tmp_path / "arena.sqlite3")
    async with serve_arena(config(db_path=db)) as srv, WsClient.connect(srv.url, "ann") as ann:
        for tag in ("[/]", "[b]x[/b]"):
            await ann.request(type="arrange", x="minimax", o="random", tag=tag)
            await ann.wait_for("game_over")
    parser = argparse.ArgumentParser()
    records.add_arguments(parser)
    args = parser.parse_args(["list"])
    args.db = db
    rc = records.run(args)
    out = capsys.readouterr().out
    assert rc == 0
    assert "[/]" in out and "[b]x[/b]" in out, out


# ----------------------------------------------------------------------------- 3: client text in logs
def test_client_text_cannot_forge_log_lines_or_reach_the_terminal() -> None:
    record = {
        "game_id": "g1",
        "x": "ann",
        "o": "minimax",
        "result": "O",
        "reason": "line",
        "winner": "minimax",
        "moves": [{"cell": 1}],
        "tag": "t\ngame g2: ann (X) vs bob (O) -> forged\x1b[2J\x07\ud800",
    }
    line = format_game_line(record)
    assert "\n" not in line and "\x1b" not in line and "\x07" not in line
    assert "\\n" in line and "\\x1b" in line
    line.encode("utf-8")  # no lone surrogate reaches the log


def test_log_records_quoting_client_text_stay_one_line() -> None:
    import logging

    from server.log_lines import LogLineFormatter

    record = logging.LogRecord(
        "autosteer.server", logging.WARNING, __file__, 1, "bad path %s", ("/x\n2026-01-01 ERROR forged\x1b[2J",), None
    )
    line = LogLineFormatter("%(levelname)s %(name)s: %(message)s").format(record)
    assert "\n" not in line and "\x1b" not in line and line.startswith("WARNING autosteer.server: bad path /x\\n")


async def test_the_server_log_line_of_a_tagged_game_is_one_line(capfd: Any) -> None:
    lines: list[str] = []
    async with serve_arena(config(), on_game_over=lambda r: lines.append(format_game_line(r))) as srv:
        async with WsClient.connect(srv.url, "ann") as ann:
            await ann.request(type="arrange", x="minimax", o="random", tag="a\nb\x1b[31m")
            await ann.wait_for("game_over")
    assert len(lines) == 1 and "\n" not in lines[0] and "\\n" in lines[0] and "\x1b" not in lines[0]


# ----------------------------------------------------------------------------- 4: rate_limited carries the id
async def test_rate_limited_errors_carry_the_request_id() -> None:
    async with serve_arena(config(rate=0.5, burst=3, flood_close=50)) as srv, WsClient.connect(srv.url, "ann") as ann:
        for i in range(6):
            await ann.send(type="ping", id=f"p{i}")
        await ann.send_raw('{"type": "ping", "id": 41, "junk": 1}')  # invalid and over the limit: id still echoed
        await ann.send_raw("not json at all")  # no id to echo
        replies = [await ann.recv() for _ in range(8)]
    limited = [r for r in replies if r.get("code") == "rate_limited"]
    assert len(limited) >= 5
    ids = [r.get("id") for r in limited]
    assert ids[-2:] == [41, None]
    assert all(i == f"p{n}" for n, i in zip(range(6 - (len(limited) - 2), 6), ids[:-2]))


# ----------------------------------------------------------------------------- 6: live games capped
async def test_live_games_are_capped_per_session_and_per_address() -> None:
    cfg = config(max_live_games_per_session=2, max_live_games_per_address=3)
    async with (
        serve_arena(cfg) as srv,
        WsClient.connect(srv.url, "ann") as ann,
        WsClient.connect(srv.url, "bob") as bob,
    ):
        assert ann.welcome["limits"]["max_live_games_per_session"] == 2
        assert ann.welcome["limits"]["max_live_games_per_address"] == 3
        games = []
        for _ in range(2):
            await ann.request(type="challenge", opponent="minimax", side="X")
            games.append((await ann.wait_for("game_start"))["game_id"])
        refused = await ann.request(type="challenge", opponent="minimax", side="X")
        assert refused["code"] == "too_many_games" and "2" in refused["message"]
        arranged = await ann.request(type="arrange", x="minimax", o="random")
        assert arranged["code"] == "too_many_games"
        await bob.request(type="challenge", opponent="minimax", side="X")
        await bob.wait_for("game_start")
        by_address = await bob.request(type="challenge", opponent="random", side="X")
        assert by_address["code"] == "too_many_games" and "address" in by_address["message"]
        await ann.request(type="resign", game_id=games[0])  # a finished game frees its slot
        again = await ann.request(type="challenge", opponent="minimax", side="X")
        assert again["type"] == "challenge_sent"


# ----------------------------------------------------------------------------- 7: smaller holes
async def test_null_id_is_invalid_and_a_lone_surrogate_id_is_never_echoed() -> None:
    async with serve_arena(config()) as srv, connect(srv.url) as ws:
        await ws.send('{"type": "hello", "name": "ann", "id": null}')
        err = json.loads(await ws.recv())
        assert err["code"] == "invalid_message" and "id" not in err
        await ws.send('{"type": "hello", "name": "ann", "id": "\\ud800"}')
        raw = await ws.recv()
        assert "\\ud800" not in raw.lower()
        err = json.loads(raw)
        assert err["code"] == "bad_json" and "id" not in err
        await ws.send('{"type": "hello", "name": "ann", "id": "ok \\ud83d\\ude00"}')  # a real pair is fine
        welcome = json.loads(await ws.recv())
        assert welcome["type"] == "welcome" and welcome["id"] == "ok \U0001f600"


async def test_a_client_clock_has_a_sane_minimum() -> None:
    async with serve_arena(config()) as srv, WsClient.connect(srv.url, "ann") as ann:
        for clock in (1e-300, 0.01, MIN_CLOCK / 2):
            err = await ann.request(type="challenge", opponent="minimax", clock=clock)
            assert err["code"] == "invalid_message", clock
        ok = await ann.request(type="challenge", opponent="minimax", side="X", clock=MIN_CLOCK)
        assert ok["type"] == "challenge_sent" and ok["clock"] == MIN_CLOCK


async def test_healthz_answers_get_only() -> None:
    async def ask(port: int, method: str) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"{method} /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 5)
        writer.close()
        return status

    async with serve_arena(config()) as srv:
        assert b" 200 " in await ask(srv.port, "GET")
        for method in ("POST", "DELETE", "PUT"):
            assert b" 405 " in await ask(srv.port, method), method


async def test_remote_clients_cannot_pass_for_house_bots() -> None:
    async with serve_arena(config()) as srv:
        for name in ("Minimax", "MINIMAX", "m1nimax", "minimax_", "Random", "rand0m", "r-a-n-d-o-m"):
            async with connect(srv.url) as ws:
                await ws.send(json.dumps({"type": "hello", "name": name, "role": "bot"}))
                err = json.loads(await ws.recv())
                assert err["code"] == "name_taken" and "house bot" in err["message"], name
        async with WsClient.connect(srv.url, "randomizer", "bot") as ok:
            assert ok.welcome["name"] == "randomizer"
