"""Faults as automated short tests: the server killed with SIGKILL mid-play loses no
finished game; a client that stops reading is cut off at the 16 MiB send queue over a real
socket while others play on; and the 30 s soak (bench/soak.py) passes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from helpers_ws import WsClient
from server.app import ServerConfig, serve_arena
from server.protocol import MAX_TRACE_BYTES

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

pytestmark = pytest.mark.timeout(120)


def spawn_server(db: str) -> Any:
    from server_load import ServerProcess

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return ServerProcess(
        [sys.executable, "-m", "server.cli", "serve", "--port", "0", "--db", db, "--quiet", "--grace", "30"], ROOT, env
    )


async def test_kill_9_mid_play_loses_no_finished_game(tmp_path: Any) -> None:
    db = str(tmp_path / "arena.sqlite3")
    server = spawn_server(db)
    seen_over: dict[str, dict[str, Any]] = {}
    live: list[str] = []
    try:
        async with WsClient.connect(server.url, "ann") as ann, WsClient.connect(server.url, "bob") as bob:
            for i in range(12):  # finished games: house vs house, and ann against random
                sent = await ann.request(type="arrange", x="minimax", o="random", tag=f"k{i}")
                seen_over[sent["challenge_id"]] = await ann.wait_for("game_over", game_id=sent["challenge_id"])
            for _ in range(3):  # live games: bob has the move and never plays it
                await bob.request(type="challenge", opponent="minimax", side="X")
                live.append((await bob.wait_for("game_start"))["game_id"])
            last = await ann.request(type="arrange", x="random", o="random")
            seen_over[last["challenge_id"]] = await ann.wait_for("game_over", game_id=last["challenge_id"])
            server.proc.send_signal(signal.SIGKILL)  # right after the last game_over reached the client
            server.proc.wait(timeout=10)
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
    rows = {r[0]: r[1:] for r in sqlite3.connect(db).execute("SELECT game_id, status, result, reason FROM games")}
    for gid, over in seen_over.items():
        assert rows.get(gid) == ("finished", over["result"], over["reason"]), gid
    assert all(rows[g][0] == "live" for g in live)  # as the kill left them
    restarted = spawn_server(db)  # the next start marks them aborted; the finished ones stay
    try:
        async with WsClient.connect(restarted.url, "ann") as ann:
            for gid in live:
                rec = await ann.request(type="get_game", game_id=gid)
                assert rec["type"] == "game_record" and rec["result"] == "aborted"
            some = next(iter(seen_over))
            rec = await ann.request(type="get_game", game_id=some)
            assert rec["result"] == seen_over[some]["result"] and rec["moves"] == seen_over[some]["moves"]
    finally:
        restarted.stop()


async def test_a_client_that_stops_reading_is_cut_off_at_16_mib_over_a_real_socket() -> None:
    cfg = ServerConfig(port=0, db_path=":memory:", ping_interval=None, rate=10_000, burst=10_000, flood_close=10_000)
    assert cfg.send_queue_bytes == 16 * 1024 * 1024
    async with serve_arena(cfg) as srv, WsClient.connect(srv.url, "ann") as ann:
        # a finished game whose record is large: ~5 moves with near-limit traces
        await ann.request(type="challenge", opponent="random", side="X")
        start = await ann.wait_for("game_start")
        gid, frame = start["game_id"], start
        pad = "x" * (MAX_TRACE_BYTES - 100)
        while frame.get("type") != "game_over":
            if (
                frame.get("game_id") == gid
                and frame.get("type") in ("state", "game_start")
                and frame.get("turn") == "X"
            ):
                await ann.send(type="move", game_id=gid, cell=frame["board"].index(".") + 1, trace={"pad": pad})
            frame = await ann.recv()
        async with connect(srv.url, max_queue=1, ping_interval=None) as slow:  # reads nothing after hello
            await slow.send(json.dumps({"type": "hello", "name": "slow"}))
            await slow.recv()
            request = json.dumps({"type": "get_game", "game_id": gid})
            record_bytes = len(json.dumps(await ann.request(type="get_game", game_id=gid)))
            wanted = (40 * 1024 * 1024) // record_bytes  # well past 16 MiB plus what the kernel buffers
            t0 = time.monotonic()
            for _ in range(wanted):
                await slow.send(request)
            conn_ids = {c.conn_id for c in srv.arena.connections.values() if c.session and c.session.name == "slow"}
            deadline = time.monotonic() + 20
            while conn_ids & set(srv._peers) and time.monotonic() < deadline:
                pong = await ann.request(type="ping", timeout=2.0)  # others are served all along
                assert pong["type"] == "pong"
                await asyncio.sleep(0.05)
            assert not conn_ids & set(srv._peers), "the slow reader was not disconnected"
            assert time.monotonic() - t0 < 20
        assert (await ann.request(type="ping"))["type"] == "pong"


def test_soak_30_seconds() -> None:
    from soak import soak

    report = soak(20.0, quiet=True)
    assert report.ok, report.reasons
    assert len(report.seen.over) >= 50 and report.seen.floods_closed >= 1 and report.seen.errors_answered >= 50
