"""Game records: the SQLite store, the ``games list|show|export`` CLI, aborted marking at the
next start, and SIGTERM on a real ``autosteer-server serve`` process losing no finished game."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from helpers_ws import WsClient
from server.app import ServerConfig, read_banner_url, serve_arena
from server.cli import main as server_main
from server.records import GameRecords, SqliteRecords

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["sqlite", "postgresql"])
def db_target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The records store each backend-neutral test runs against: a SQLite file, then a
    database on a real PostgreSQL (tests/services.py)."""
    if request.param == "sqlite":
        return str(tmp_path / "arena.sqlite3")
    return request.getfixturevalue("postgres_url")


def record(game_id: str, **extra: Any) -> dict[str, Any]:
    base = {
        "game_id": game_id,
        "x": "ann",
        "o": "minimax",
        "x_kind": "player",
        "o_kind": "house",
        "status": "finished",
        "result": "O",
        "reason": "line",
        "winner": "minimax",
        "board": "XX.OOO.X.",
        "moves": [
            {"ply": i + 1, "seat": "XO"[i % 2], "cell": c, "at": 10.0 + i, "trace": {"i": i}}
            for i, c in enumerate([1, 4, 2, 5, 8, 6])
        ],
        "tag": None,
        "clock": 30.0,
        "started_at": 10.0,
        "ended_at": 16.0,
        "illegal_move": None,
        "seed": None,
        "server_id": None,
    }
    base.update(extra)
    return base


def test_store_roundtrip_filters_and_wal(db_target: str, tmp_path: Path) -> None:
    db = tmp_path / "r" / "arena.sqlite3" if db_target.endswith(".sqlite3") else db_target
    rec = GameRecords(db)
    rec.save(record("g1"))
    rec.save(record("g2", x="bob", started_at=20.0, tag="t"))
    rec.save(record("g3", status="live", result=None, reason=None, winner=None, started_at=30.0, ended_at=None))
    assert rec.get("g1") == record("g1")
    assert [r["game_id"] for r in rec.list()] == ["g3", "g2", "g1"]
    assert [r["game_id"] for r in rec.list(player="bob")] == ["g2"]
    assert [r["game_id"] for r in rec.list(tag="t")] == ["g2"]
    assert [r["game_id"] for r in rec.list(limit=1)] == ["g3"]
    if isinstance(rec, SqliteRecords):
        assert rec.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert rec.abort_live(now=99.0) == 1
    g3 = rec.get("g3")
    assert (g3["status"], g3["result"], g3["reason"], g3["ended_at"]) == ("aborted", "aborted", "aborted", 99.0)
    rec.close()
    again = GameRecords(db)
    assert again.count() == 3 and again.count("finished") == 2


def test_games_cli_list_show_export(db_target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = db_target
    rec = GameRecords(db)
    rec.save(record("g1"))
    rec.save(
        record(
            "g2",
            x="bob",
            started_at=20.0,
            tag="cup",
            illegal_move={"ply": 7, "seat": "X", "cell": 4, "at": 17.0, "trace": None, "code": "occupied"},
        )
    )
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


async def test_server_stores_games_with_moves_and_traces(db_target: str) -> None:
    db = db_target
    async with serve_arena(ServerConfig(port=0, db_path=str(db), seed=2, ping_interval=None)) as srv:
        async with WsClient.connect(srv.url, "ann") as ann:
            await ann.request(type="challenge", opponent="random", side="X")
            start = await ann.wait_for("game_start")
            gid = start["game_id"]
            assert srv.records.get(gid)["status"] == "live"  # inserted at start
            frame: dict[str, Any] = start
            while frame["type"] != "game_over":
                if frame.get("turn") == "X" and frame["type"] in ("state", "game_start"):
                    await ann.send(
                        type="move",
                        game_id=gid,
                        cell=frame["board"].index(".") + 1,
                        trace={"note": f"ply {frame['ply'] + 1}"},
                    )
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
    proc = subprocess.Popen(
        cmd + ["serve", "--host", "127.0.0.1", "--port", "0", "--db", str(db), "--seed", "4", "--grace", "30"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = read_banner_url(proc)

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
    lines = out.splitlines()  # after the banner line
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
    bad = subprocess.run(
        cmd + ["serve", "--port", "0", "--db", ":memory:", "--move-clock", "-1"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )
    assert bad.returncode == 2 and "move_clock must be > 0" in bad.stderr and "Traceback" not in bad.stderr


# --------------------------------------------------------------------------- hardening
LONG_IDS = ["93b0e5c1d2f4", "93b0e5ffffff", "a1b2c3d4e5f6"]


def _three_games(db: Path) -> None:
    rec = GameRecords(db)
    for i, gid in enumerate(LONG_IDS):
        rec.save(record(gid, started_at=10.0 + i, ended_at=11.0 + i, tag="cup" if i else None, seed=i or None))
    rec.close()


def test_games_list_never_cuts_ids_even_on_a_narrow_terminal(
    db_target: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = db_target
    _three_games(db)
    monkeypatch.setenv("COLUMNS", "40")
    assert server_main(["games", "--db", str(db), "list"]) == 0
    out = capsys.readouterr().out
    for gid in LONG_IDS:
        assert gid in out, out


def test_games_list_json(db_target: str, capsys: pytest.CaptureFixture[str]) -> None:
    db = db_target
    _three_games(db)
    assert server_main(["games", "--db", str(db), "list", "--json", "--tag", "cup"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["game_id"] for r in rows] == ["a1b2c3d4e5f6", "93b0e5ffffff"]
    assert rows[0]["moves"] == [1, 4, 2, 5, 8, 6] and rows[0]["seed"] == 2 and rows[0]["result"] == "O"


def test_games_show_takes_a_unique_prefix(db_target: str, capsys: pytest.CaptureFixture[str]) -> None:
    db = db_target
    _three_games(db)
    assert server_main(["games", "--db", str(db), "show", "a1b"]) == 0
    assert "game a1b2c3d4e5f6: ann (X, player)" in capsys.readouterr().out
    assert server_main(["games", "--db", str(db), "show", "93b0e5f", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["game_id"] == "93b0e5ffffff"
    assert server_main(["games", "--db", str(db), "show", "93b0e5"]) == 1
    err = capsys.readouterr().err
    assert "several game ids (93b0e5c1d2f4, 93b0e5ffffff)" in err and "Traceback" not in err
    assert server_main(["games", "--db", str(db), "show", "93B0E5C"]) == 1  # ids are case-sensitive
    assert server_main(["games", "--db", str(db), "show", "%"]) == 1  # no SQL wildcards


class _ClosedPipe:
    """A stdout whose reader has gone away (``games export | head``)."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")


@pytest.mark.parametrize("argv", [["export"], ["show", "a1b2"], ["show", "a1b2", "--json"], ["list", "--json"]])
def test_a_closed_pipe_ends_quietly(
    db_target: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    db = db_target
    _three_games(db)
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    assert server_main(["games", "--db", str(db), *argv]) == 1
    assert capsys.readouterr().err == ""


def test_export_through_head_prints_no_traceback(db_target: str) -> None:
    db = db_target
    rec = GameRecords(db)
    for i in range(400):  # far more than a pipe buffer
        rec.save(record(f"g{i:04d}", started_at=float(i)))
    rec.close()
    exe = Path(sys.executable).parent / "autosteer-server"
    cmd = (
        f"'{exe}' games --db '{db}' export | head -c 200"
        if exe.exists()
        else f"'{sys.executable}' -m server.cli games --db '{db}' export | head -c 200"
    )
    done = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.stdout.startswith("{") and len(done.stdout) == 200
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr


def test_no_nan_or_infinity_is_stored_or_exported(db_target: str, capsys: pytest.CaptureFixture[str]) -> None:
    db = db_target
    rec = GameRecords(db)
    bad = record("nan1")
    bad["moves"][0]["trace"] = {"p": float("nan")}
    with pytest.raises(ValueError):
        rec.save(bad)
    assert rec.get("nan1") is None
    # a record written by an older server, with NaN/Infinity in its JSON text
    rec.save(record("old1"))
    rec.execute(
        "UPDATE games SET moves = ? WHERE game_id = 'old1'",
        ('[{"ply":1,"seat":"X","cell":5,"at":1.0,"trace":{"p":NaN,"q":[Infinity,-Infinity,0.5]}}]',),
    )
    rec.close()

    def strict(text: str) -> Any:
        return json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in the output"))

    assert server_main(["games", "--db", str(db), "export"]) == 0
    captured = capsys.readouterr()
    doc = strict(captured.out)
    assert doc["games"][0]["moves"][0]["trace"] == {"p": None, "q": [None, None, 0.5]}
    assert "3 NaN/Infinity values" in captured.err
    assert server_main(["games", "--db", str(db), "show", "old1", "--json"]) == 0
    strict(capsys.readouterr().out)


def test_summaries_page_back_by_end_time_and_skip_live_games(db_target: str) -> None:
    rec = GameRecords(db_target)
    for i in range(6):
        rec.save(record(f"g{i}", x="bob" if i % 2 else "ann", started_at=10.0 * i, ended_at=10.0 * i + 5, tag=None))
    rec.save(record("live", status="live", result=None, reason=None, winner=None, started_at=99.0, ended_at=None))
    rec.save(record("crash", status="aborted", result=None, reason=None, winner=None, started_at=98.0, ended_at=None))
    rows = rec.summaries(limit=3)
    assert [r["game_id"] for r in rows] == ["g5", "g4", "g3"]
    assert rows[0] == {
        "game_id": "g5",
        "x": "bob",
        "o": "minimax",
        "result": "O",
        "reason": "line",
        "ended_at": 55.0,
        "ply": 6,
        "tag": None,
    }
    assert [r["game_id"] for r in rec.summaries(limit=3, before=rows[-1]["ended_at"])] == ["g2", "g1", "g0"]
    assert [r["game_id"] for r in rec.summaries(player="bob")] == ["g5", "g3", "g1"]
    every = [r["game_id"] for r in rec.summaries(limit=500)]
    assert "live" not in every and "crash" in every and len(every) == 7  # an aborted game is listed, ended or not
    crash = next(r for r in rec.summaries() if r["game_id"] == "crash")
    assert (crash["result"], crash["reason"]) == ("aborted", "aborted")


def test_an_older_database_gains_the_seed_column(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite3"
    con = sqlite3.connect(db)
    old_schema = (
        "CREATE TABLE games (game_id TEXT PRIMARY KEY, x TEXT NOT NULL, o TEXT NOT NULL, x_kind TEXT, "
        "o_kind TEXT, status TEXT NOT NULL, result TEXT, reason TEXT, winner TEXT, board TEXT NOT NULL, "
        "moves TEXT NOT NULL, illegal_move TEXT, tag TEXT, clock REAL, started_at REAL NOT NULL, ended_at REAL)"
    )
    con.execute(old_schema)
    con.execute(
        "INSERT INTO games VALUES ('g1','ann','minimax','player','house','finished','O','line','minimax',"
        "'.........','[]',NULL,NULL,30.0,1.0,2.0)"
    )
    con.commit()
    con.close()
    rec = GameRecords(db)
    assert rec.get("g1")["seed"] is None
    rec.save(record("g2", seed=12))
    assert rec.get("g2")["seed"] == 12


def test_server_module_doctests() -> None:
    import doctest

    import server.app
    import server.protocol
    import server.records.sql

    for module in (server.protocol, server.records.sql, server.app):
        result = doctest.testmod(module)
        assert result.failed == 0, module.__name__


# --------------------------------------------------------------------------- export of any stored row
def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def test_export_survives_any_stored_row_and_stays_compact(
    db_target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rec = GameRecords(db_target)
    rec.save(record("plain", started_at=1.0))
    deep = record("deep600", started_at=2.0)
    deep["moves"][0]["trace"] = {"nest": _nested(600), "pad": "x" * 5000}  # ~7 KB stored: a hostile client's trace
    rec.save(deep)
    rec.save(record("deeper", started_at=3.0))
    # an older server stored a trace nested far deeper than any JSON reader goes
    raw = '[{"ply":1,"seat":"X","cell":5,"at":1.0,"trace":' + "[" * 50_000 + "]" * 50_000 + "}]"
    rec.execute("UPDATE games SET moves = ? WHERE game_id = 'deeper'", (raw,))
    rec.save(record("after", started_at=4.0))
    stored = len(json.dumps(deep["moves"], separators=(",", ":")))
    assert [r["game_id"] for r in rec.list()] == ["after", "deeper", "deep600", "plain"]  # listing survives
    assert rec.get("deeper")["moves"] == [] and rec.get("deeper")["moves_json"] == raw
    rec.close()

    out = tmp_path / "all.json"
    assert server_main(["games", "--db", str(db_target), "export", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    doc = json.loads(out.read_text())
    assert doc["count"] == 4 and [g["game_id"] for g in doc["games"]] == ["plain", "deep600", "deeper", "after"]
    by_id = {g["game_id"]: g for g in doc["games"]}
    assert by_id["deep600"]["moves"] == deep["moves"]  # 600 deep goes out whole
    assert by_id["deeper"]["moves"] == [] and by_id["deeper"]["moves_json"] == raw  # kept, as its stored text
    assert "game deeper: moves nested too deep" in err and "Traceback" not in err
    assert by_id["after"]["moves"] == record("after")["moves"]
    # bounded: the export is about the size of what is stored, not inflated by indentation
    deep_line = next(line for line in out.read_text().splitlines() if '"deep600"' in line)
    assert len(deep_line) < stored + 1000, (len(deep_line), stored)


def test_kill_9_keeps_the_moves_played(tmp_path: Path) -> None:
    db = tmp_path / "arena.sqlite3"
    exe = Path(sys.executable).parent / "autosteer-server"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "server.cli"]
    proc = subprocess.Popen(
        cmd + ["serve", "--host", "127.0.0.1", "--port", "0", "--db", str(db), "--seed", "4"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = read_banner_url(proc)

        async def play() -> str:
            async with WsClient.connect(url, "ann") as ann:
                gid = (await ann.request(type="challenge", opponent="minimax", side="X"))["challenge_id"]
                await ann.wait_for("game_start", game_id=gid)
                state = await ann.request(type="move", game_id=gid, cell=5)  # minimax's answer in the same state
                assert state["type"] == "state" and state["ply"] == 2
                os.kill(proc.pid, signal.SIGKILL)
                return gid

        gid = asyncio.run(play())
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    rec = GameRecords(db)
    left = rec.get(gid)
    assert left["status"] == "live" and [m["cell"] for m in left["moves"]][0] == 5 and len(left["moves"]) == 2
    assert rec.abort_live() == 1  # what the next start does: aborted, with its history
    assert rec.get(gid)["status"] == "aborted" and len(rec.get(gid)["moves"]) == 2


def test_show_json_of_a_deep_trace(db_target: str, capsys: pytest.CaptureFixture[str]) -> None:
    rec = GameRecords(db_target)
    deep = record("deep", started_at=2.0)
    deep["moves"][0]["trace"] = {"nest": _nested(600)}
    rec.save(deep)
    rec.close()
    assert server_main(["games", "--db", str(db_target), "show", "deep", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["moves"] == deep["moves"]
    assert server_main(["games", "--db", str(db_target), "show", "deep"]) == 0
    assert "game deep:" in capsys.readouterr().out


def test_live_games_progress_and_a_row_no_longer_live(db_target: str) -> None:
    """A live game's later saves write its board and moves; a live row that is no longer
    live (a restart aborted it) gets its whole row again."""
    rec = GameRecords(db_target)
    live = {"status": "live", "result": None, "reason": None, "winner": None, "ended_at": None}
    games = [record(f"b{i:04d}", **live, moves=[], board=".........") for i in range(50)]
    for g in games:
        rec.save(g)
    played = [
        record(
            g["game_id"],
            **live,
            board="X........",
            moves=[{"ply": 1, "seat": "X", "cell": 1, "at": 11.5, "trace": None}],
        )
        for g in games
    ]
    rec.abort_live(now=12.0)  # as a restart would: the next progress write finds b0000.. not live
    for g in played[:3]:
        rec.save(g)
    for g in played[:3]:
        assert rec.get(g["game_id"]) == g  # written whole again
    rec.execute("UPDATE games SET status = 'live' WHERE substr(game_id, 1, 1) = 'b'")
    for g in played[3:]:
        rec.save(g)  # progress: board and moves
    for g in played[3:]:
        got = rec.get(g["game_id"])
        assert got["board"] == "X........" and got["moves"] == g["moves"] and got["status"] == "live"
    ended = [dict(g, status="finished", result="draw", reason="full_board", ended_at=20.0) for g in played]
    for g in ended:
        rec.save(g)
    assert rec.count("finished") == 50 and rec.count("live") == 0
    assert rec.get("b0010") == ended[10]
    rec.close()
