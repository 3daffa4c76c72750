"""Game records: the SQLite store, the ``games list|show|export`` CLI, aborted marking at the
next start, and SIGTERM on a real ``autosteer-server serve`` process losing no finished game."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from helpers_ws import WsClient
from server.app import ServerConfig, serve_arena
from server.cli import main as server_main
from server.records import GameRecords

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent


def record(game_id: str, **extra: Any) -> dict[str, Any]:
    base = {"game_id": game_id, "x": "ann", "o": "minimax", "x_kind": "player", "o_kind": "house",
            "status": "finished", "result": "O", "reason": "line", "winner": "minimax", "board": "XX.OOO.X.",
            "moves": [{"ply": i + 1, "seat": "XO"[i % 2], "cell": c, "at": 10.0 + i, "trace": {"i": i}}
                      for i, c in enumerate([1, 4, 2, 5, 8, 6])],
            "tag": None, "clock": 30.0, "started_at": 10.0, "ended_at": 16.0, "illegal_move": None}
    base.update(extra)
    return base


def test_store_roundtrip_filters_and_wal(tmp_path: Path) -> None:
    db = tmp_path / "r" / "arena.sqlite3"
    rec = GameRecords(db)
    rec.save(record("g1"))
    rec.save(record("g2", x="bob", started_at=20.0, tag="t"))
    rec.save(record("g3", status="live", result=None, reason=None, winner=None, started_at=30.0, ended_at=None))
    assert rec.get("g1") == record("g1")
    assert [r["game_id"] for r in rec.list()] == ["g3", "g2", "g1"]
    assert [r["game_id"] for r in rec.list(player="bob")] == ["g2"]
    assert [r["game_id"] for r in rec.list(tag="t")] == ["g2"]
    assert [r["game_id"] for r in rec.list(limit=1)] == ["g3"]
    assert rec.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert rec.abort_live(now=99.0) == 1
    g3 = rec.get("g3")
    assert (g3["status"], g3["result"], g3["reason"], g3["ended_at"]) == ("aborted", "aborted", "aborted", 99.0)
    rec.close()
    again = GameRecords(db)
    assert again.count() == 3 and again.count("finished") == 2


def test_games_cli_list_show_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "arena.sqlite3"
    rec = GameRecords(db)
    rec.save(record("g1"))
    rec.save(record("g2", x="bob", started_at=20.0, tag="cup", illegal_move={"ply": 7, "seat": "X", "cell": 4, "at": 17.0, "trace": None, "code": "occupied"}))
    rec.close()
    assert server_main(["games", "--db", str(db), "list"]) == 0
    out = capsys.readouterr().out
    assert "g1" in out and "g2" in out and "2 shown of 2 stored games" in out
    assert server_main(["games", "list", "--db", str(db), "--player", "bob"]) == 0
    out = capsys.readouterr().out
    assert "g2" in out and "g1" not in out
    assert server_main(["games", "--db", str(db), "list", "--tag", "cup", "--limit", "5"]) == 0
    assert "1 shown" in capsys.readouterr().out
    assert server_main(["games", "--db", str(db), "show", "g2"]) == 0
    out = capsys.readouterr().out
    assert "bob (X, player) vs minimax (O, house)" in out and 'trace {"i":0}' in out
    assert "illegal move: X tried cell 4 (occupied)" in out and "result: O (line), winner minimax" in out
    assert server_main(["games", "--db", str(db), "show", "g1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["moves"][0]["trace"] == {"i": 0}
    assert server_main(["games", "--db", str(db), "show", "nope"]) == 1
    assert "no game 'nope'" in capsys.readouterr().err
    out_file = tmp_path / "export" / "games.json"
    assert server_main(["games", "--db", str(db), "export", "--out", str(out_file)]) == 0
    doc = json.loads(out_file.read_text())
    assert doc["count"] == 2 and [g["game_id"] for g in doc["games"]] == ["g1", "g2"]
    assert doc["games"][1]["illegal_move"]["cell"] == 4
    assert server_main(["games", "--db", str(db), "export", "--tag", "cup"]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == 1


def test_games_cli_missing_db_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert server_main(["games", "--db", str(tmp_path / "none.sqlite3"), "list"]) == 2
    err = capsys.readouterr().err
    assert "no records database" in err and "Traceback" not in err
    bad = tmp_path / "bad.sqlite3"
    bad.write_text("this is not sqlite" * 100)
    assert server_main(["games", "--db", str(bad), "list"]) == 2
    assert "error:" in capsys.readouterr().err


async def test_server_stores_games_with_moves_and_traces(tmp_path: Path) -> None:
    db = tmp_path / "arena.sqlite3"
    async with serve_arena(ServerConfig(port=0, db_path=str(db), seed=2, ping_interval=None)) as srv:
        async with WsClient.connect(srv.url, "ann") as ann:
            await ann.request(type="challenge", opponent="random", side="X")
            start = await ann.wait_for("game_start")
            gid = start["game_id"]
            assert srv.records.get(gid)["status"] == "live"  # inserted at start
            frame: dict[str, Any] = start
            while frame["type"] != "game_over":
                if frame.get("turn") == "X" and frame["type"] in ("state", "game_start"):
                    await ann.send(type="move", game_id=gid, cell=frame["board"].index(".") + 1,
                                   trace={"note": f"ply {frame['ply'] + 1}"})
                frame = await ann.recv()
    rec = GameRecords(db)
    stored = rec.get(gid)
    assert stored["status"] == "finished" and stored["board"] == frame["board"] and stored["winner"] == frame["winner"]
    assert [m["cell"] for m in stored["moves"]] == [m["cell"] for m in frame["moves"]]
    mine = [m for m in stored["moves"] if m["seat"] == "X"]
    assert all(m["trace"] == {"note": f"ply {m['ply']}"} for m in mine)
    times = [m["at"] for m in stored["moves"]]
    assert times == sorted(times) and stored["started_at"] <= times[0] <= stored["ended_at"]


def test_sigterm_on_a_real_server_loses_no_finished_game(tmp_path: Path) -> None:
    db = tmp_path / "arena.sqlite3"
    exe = Path(sys.executable).parent / "autosteer-server"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "server.cli"]
    proc = subprocess.Popen(cmd + ["serve", "--host", "127.0.0.1", "--port", "0", "--db", str(db), "--seed", "4",
                                   "--grace", "30"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        match = re.search(r"listening on (ws://\S+)", first)
        assert match, f"unexpected first line {first!r}; stderr: {proc.stderr.read() if proc.poll() is not None else ''}"
        url = match.group(1)

        async def play() -> tuple[list[str], str]:
            async with WsClient.connect(url, "org") as org:
                finished = []
                for i in range(12):
                    sent = await org.request(type="arrange", x="minimax", o="random", tag="sig")
                    finished.append(sent["challenge_id"])
                for gid in finished:
                    await org.wait_for("game_over", game_id=gid)
                live = (await org.request(type="challenge", opponent="minimax", side="O"))["challenge_id"]
                await org.wait_for("game_start", game_id=live)
                await org.wait_for("state", game_id=live)
                os.kill(proc.pid, signal.SIGTERM)
                over = await org.wait_for("game_over", game_id=live)
                assert over["reason"] == "aborted"
                err = await org.wait_for("error")
                assert err["code"] == "server_shutting_down"
                closed = await org.closed()
                assert closed.rcvd is not None and closed.rcvd.code == 1001
                return finished, live

        finished, live = asyncio.run(play())
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    lines = (first + out).splitlines()
    assert sum(1 for line in lines if line.startswith("game ")) == 13  # 12 finished + 1 aborted
    assert "stopped cleanly after 13 games" in lines[-1]
    con = sqlite3.connect(db)
    rows = dict(con.execute("SELECT game_id, status FROM games").fetchall())
    assert all(rows[g] == "finished" for g in finished) and rows[live] == "aborted"
    assert con.execute("SELECT COUNT(*) FROM games WHERE status = 'live'").fetchone()[0] == 0


def test_serve_cli_help_and_bad_arguments() -> None:
    exe = Path(sys.executable).parent / "autosteer-server"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "server.cli"]
    help_out = subprocess.run(cmd + ["serve", "--help"], capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert help_out.returncode == 0 and "--move-clock" in help_out.stdout and "(default: 30.0)" in help_out.stdout
    bad = subprocess.run(cmd + ["serve", "--port", "0", "--db", ":memory:", "--move-clock", "-1"],
                         capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert bad.returncode == 2 and "move_clock must be > 0" in bad.stderr and "Traceback" not in bad.stderr
