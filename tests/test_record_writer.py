"""The records writer (server/records/writer.py): a child process stores the server's
records; batches are confirmed in order; if the child dies the server stores what it had
not confirmed and goes on on a thread; closing stores everything."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from helpers_ws import WsClient
from server.app import ServerConfig, serve_arena
from server.records.writer import RecordWriter, encode_batch
from server.records import GameRecords

pytestmark = pytest.mark.timeout(60)


def record(game_id: str, status: str = "live", moves: int = 0, trace: Any = None) -> dict[str, Any]:
    return {
        "game_id": game_id,
        "x": "ann",
        "o": "random",
        "x_kind": "player",
        "o_kind": "house",
        "status": status,
        "result": None if status == "live" else "draw",
        "reason": None if status == "live" else "full_board",
        "winner": None,
        "board": ".........",
        "tag": None,
        "clock": 30.0,
        "started_at": 1.0,
        "ended_at": None if status == "live" else 2.0,
        "illegal_move": None,
        "seed": None,
        "server_id": None,
        "moves": [{"ply": i + 1, "seat": "XO"[i % 2], "cell": i + 1, "at": 1.5, "trace": trace} for i in range(moves)],
    }


async def test_batches_are_committed_in_order_by_the_child(tmp_path: Path) -> None:
    db = str(tmp_path / "r.sqlite3")
    writer = RecordWriter(db, asyncio.get_running_loop())
    assert writer.proc is not None and writer.status()["process"]
    futures = [writer.submit([record(f"g{i}"), record(f"h{i}", moves=1)]) for i in range(200)]
    futures.append(writer.submit([record("g0", "finished", moves=9, trace={"p": [1, 2]})]))
    await asyncio.wait_for(asyncio.gather(*futures), 10)
    store = GameRecords(db)
    assert store.count() == 400 and store.get("g0")["status"] == "finished" and len(store.get("g0")["moves"]) == 9
    assert store.get("g0")["moves"][0]["trace"] == {"p": [1, 2]}
    writer.close()
    assert writer.proc is None


async def test_a_dead_child_loses_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = str(tmp_path / "r.sqlite3")
    writer = RecordWriter(db, asyncio.get_running_loop())
    await writer.submit([record("before")])
    assert writer.proc is not None
    os.kill(writer.proc.pid, signal.SIGSTOP)  # batches pile up unconfirmed ...
    waiting = [writer.submit([record(f"w{i}", moves=2)]) for i in range(20)]
    await asyncio.sleep(0.1)
    assert not any(f.done() for f in waiting) and len(writer.unacked) == 20
    with caplog.at_level(logging.ERROR, logger="autosteer.server"):
        os.kill(writer.proc.pid, signal.SIGKILL)  # ... and the child dies
        await asyncio.wait_for(asyncio.gather(*waiting), 10)
    assert "records writer process ended" in caplog.text
    after = writer.submit([record("after", "finished", moves=5)])  # and storing goes on, on a thread
    await asyncio.wait_for(after, 10)
    assert writer.proc is None and not writer.status()["process"]
    writer.close()
    store = GameRecords(db)
    assert store.count() == 22 and len(store.get("w7")["moves"]) == 2 and store.get("after")["status"] == "finished"


async def test_close_stores_everything_submitted(tmp_path: Path) -> None:
    db = str(tmp_path / "r.sqlite3")
    writer = RecordWriter(db, asyncio.get_running_loop())
    for i in range(50):
        writer.submit([record(f"c{i}", "finished", moves=9)])
    writer.close()  # without waiting for a single confirmation
    assert GameRecords(db).count("finished") == 50


def test_a_record_that_cannot_be_encoded_is_logged_and_left_out(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="autosteer.server"):
        line = encode_batch(
            [
                record("ok", moves=1),
                record("nan", moves=1, trace={"p": float("nan")}),
                record("big", moves=1, trace={"n": 10**30}),
            ]
        )
    assert (
        line.endswith(b"\n") and b'"ok"' in line and b'"nan"' not in line and b"1000000000000000000000000000000" in line
    )
    assert "could not store game nan" in caplog.text


async def test_a_server_with_the_thread_writer_stores_games(tmp_path: Path) -> None:
    db = str(tmp_path / "t.sqlite3")
    cfg = ServerConfig(port=0, db_path=db, ping_interval=None, records_process=False, seed=3)
    async with serve_arena(cfg) as srv, WsClient.connect(srv.url, "ann") as ann:
        assert srv._writer is not None and srv._writer.proc is None
        sent = await ann.request(type="arrange", x="minimax", o="random")
        over = await ann.wait_for("game_over")
        assert over["game_id"] == sent["challenge_id"]
    assert GameRecords(db).get(sent["challenge_id"])["status"] == "finished"


async def test_the_target_is_not_on_the_childs_command_line(tmp_path: Path) -> None:
    """A PostgreSQL URL may hold a password: the child gets it through its environment."""
    db = str(tmp_path / "secret-name.sqlite3")
    writer = RecordWriter(db, asyncio.get_running_loop())
    await writer.submit([record("g")])  # confirmed: the child runs (its command line is set once exec is done)
    assert writer.proc is not None
    cmdline = Path(f"/proc/{writer.proc.pid}/cmdline").read_bytes()
    assert b"secret-name" not in cmdline and b"server.records.writer" in cmdline
    writer.close()
    assert GameRecords(db).get("g") is not None


async def test_a_child_killed_before_close_loses_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = str(tmp_path / "r.sqlite3")
    writer = RecordWriter(db, asyncio.get_running_loop())
    await writer.submit([record("first")])
    assert writer.proc is not None
    os.kill(writer.proc.pid, signal.SIGSTOP)
    for i in range(10):
        writer.submit([record(f"k{i}", "finished", moves=9)])
    os.kill(writer.proc.pid, signal.SIGKILL)
    with caplog.at_level(logging.ERROR, logger="autosteer.server"):
        writer.close()  # before the loop saw the child go: close stores the unconfirmed batches itself
    assert "10 batches unconfirmed" in caplog.text
    assert GameRecords(db).count("finished") == 10
