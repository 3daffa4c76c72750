"""Two servers, one Mosquitto, one PostgreSQL: shared lobby, spectating across servers,
games stored once, and a killed server seen through its last will. Server A runs in
this process, server B as a real ``autosteer-server serve`` process (so it can be killed)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from helpers_ws import WsClient, play_moves
from server.app import ServerConfig, read_banner_url, serve_arena
from server.cli import main as server_main
from server.events.cluster import ClusterEvents

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parent.parent


def start_server_b(mqtt_url: str, db_url: str) -> tuple[subprocess.Popen[str], str]:
    exe = Path(sys.executable).parent / "autosteer-server"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "server.cli"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        cmd
        + [
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--db",
            db_url,
            "--seed",
            "9",
            "--mqtt",
            mqtt_url,
            "--server-id",
            "b",
            "--grace",
            "30",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, read_banner_url(proc, "server B")


async def poll(client: WsClient, kind: str, predicate: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Ask ``list_bots``/``list_games`` until ``predicate(items)`` holds; returns the items."""
    key = "bots" if kind == "list_bots" else "games"
    end = time.monotonic() + timeout
    while True:
        items = (await client.request(type=kind))[key]
        if predicate(items):
            return items
        if time.monotonic() > end:
            raise TimeoutError(f"{kind} never satisfied the condition; last: {items}")
        await asyncio.sleep(0.1)


async def test_two_servers_share_lobby_records_and_spectating(
    mosquitto: Any, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    proc, b_url = start_server_b(mosquitto.url, postgres_url)
    try:
        config = ServerConfig(host="127.0.0.1", port=0, db_path=postgres_url, seed=1, ping_interval=None)
        async with (
            serve_arena(config, events=ClusterEvents(mosquitto.url, "a")) as a,
            WsClient.connect(a.url, "ann", role="spectator") as ann,
            WsClient.connect(b_url, "bee", role="bot", max_games=4),
            WsClient.connect(b_url, "bob") as bob,
            WsClient.connect(a.url, "org") as org,
        ):
            # A's lobby lists B's bots, marked with their server and its address
            bots = await poll(ann, "list_bots", lambda bs: any(b["name"] == "bee" for b in bs))
            bee_entry = next(b for b in bots if b["name"] == "bee")
            assert bee_entry["server"] == "b" and bee_entry["url"] == b_url and bee_entry["kind"] == "remote"
            assert any(b["name"] == "minimax" and "server" not in b for b in bots)  # A's own house bot

            # a game on B, spectated from A to its end
            await bob.request(type="challenge", opponent="minimax", side="X")
            start = await bob.wait_for("game_start")
            gid = start["game_id"]
            games = await poll(ann, "list_games", lambda gs: any(g["game_id"] == gid for g in gs))
            assert next(g for g in games if g["game_id"] == gid)["server"] == "b"
            watching = await ann.request(type="spectate", game_id=gid)
            assert watching["type"] == "game_start" and watching["x"] == "bob" and watching["server"] == "b"
            await asyncio.sleep(0.3)  # the relay subscribes before the first move
            frame = start
            while frame["type"] != "game_over":
                if frame["type"] in ("state", "game_start") and frame.get("turn") == "X":
                    await bob.send(type="move", game_id=gid, cell=frame["board"].index(".") + 1)
                frame = await bob.wait_for(lambda f: f.get("type") in ("state", "game_over"), game_id=gid)
            last = frame
            over_on_a = await ann.wait_for("game_over", game_id=gid, timeout=10)
            assert over_on_a["moves"] == last["moves"] and over_on_a["result"] == last["result"]
            relayed = [f for f in ann.seen if f.get("type") == "state" and f.get("game_id") == gid]
            assert relayed and relayed[-1]["moves"] == last["moves"]  # every move reached A's spectator

            # games on both servers land in the one database, once each
            on_a = await org.request(type="arrange", x="minimax", o="random", tag="cluster")
            await org.wait_for("game_over", game_id=on_a["challenge_id"])
            with psycopg.connect(postgres_url) as con:
                rows = con.execute("SELECT game_id, server_id, status FROM games ORDER BY game_id").fetchall()
            ids = [r[0] for r in rows]
            assert len(ids) == len(set(ids)) == 2
            assert dict((r[0], r[1]) for r in rows) == {gid: "b", on_a["challenge_id"]: "a"}
            assert all(r[2] == "finished" for r in rows)

            # `games list` reads the shared database
            assert server_main(["games", "--db", postgres_url, "list", "--json"]) == 0
            import json

            listed = {g["game_id"] for g in json.loads(capsys.readouterr().out)}
            assert listed == {gid, on_a["challenge_id"]}
            records = await ann.request(type="list_records")
            assert {g["game_id"] for g in records["games"]} == listed  # A's finished-games list has B's game

            # a live game on B, then kill -9: A sees B go through its last will; the moves stay stored
            await bob.request(type="challenge", opponent="minimax", side="X")
            live = (await bob.wait_for("game_start"))["game_id"]
            await play_moves(bob, live, [5])
            await poll(ann, "list_games", lambda gs: any(g["game_id"] == live for g in gs))
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            await poll(ann, "list_bots", lambda bs: not any(b.get("server") == "b" for b in bs))
            await poll(ann, "list_games", lambda gs: not any(g.get("server") == "b" for g in gs))
            with psycopg.connect(postgres_url) as con:
                status, moves = con.execute("SELECT status, moves FROM games WHERE game_id = %s", (live,)).fetchone()
            assert status == "live" and len(json.loads(moves)) == 2  # bob's move and minimax's reply
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_a_postgresql_restart_loses_no_game(postgres_server: Any, postgres_url: str) -> None:
    """The database drops every connection mid-run: play goes on, the server connects again
    and the games played meanwhile are stored (every write is the whole record)."""
    config = ServerConfig(host="127.0.0.1", port=0, db_path=postgres_url, seed=2, ping_interval=None)
    async with serve_arena(config) as srv, WsClient.connect(srv.url, "org") as org:
        first = await org.request(type="arrange", x="minimax", o="random")
        await org.wait_for("game_over", game_id=first["challenge_id"])
        await asyncio.to_thread(postgres_server.restart)
        second = await org.request(type="arrange", x="random", o="minimax")
        over = await org.wait_for("game_over", game_id=second["challenge_id"])
    with psycopg.connect(postgres_url) as con:
        rows = dict(con.execute("SELECT game_id, moves FROM games").fetchall())
    import json

    assert set(rows) == {first["challenge_id"], second["challenge_id"]}
    assert [m["cell"] for m in json.loads(rows[second["challenge_id"]])] == [m["cell"] for m in over["moves"]]
