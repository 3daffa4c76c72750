"""Snapshot tests: what a person sees in the lobby, in a game with the feature panel, in a game
against a house bot (moves and clocks beside the board), and at the end.

The app runs offline (``url=None``) and is fed recorded server frames, so every snapshot is
deterministic: fixed names and game ids, traces from ``tests/data/llm_traces.json``, no
clocks, deadlines or ports on screen. Update with ``pytest tests/test_tui_snapshots.py
--snapshot-update`` after checking the new SVGs by eye.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.protocol import parse_server_frame
from tui_client.app import ArenaApp
from tui_client.connection import LinkState, LinkStatus
from tui_client.trace_replay_bot import retarget

TRACES = json.loads((Path(__file__).parent / "data" / "llm_traces.json").read_text())["traces"]
URL = "ws://arena.example:8765"


def lobby_frames() -> list[dict]:
    return [
        {
            "type": "bots",
            "bots": [
                {
                    "name": "minimax",
                    "kind": "house",
                    "description": "optimal play from the solved game",
                    "games": 1,
                    "max_games": 0,
                    "level": {"epsilon": 0.0, "vs_minimax": 0.5, "vs_random": 0.9363},
                },
                {
                    "name": "random",
                    "kind": "house",
                    "description": "uniform over legal cells",
                    "games": 0,
                    "max_games": 0,
                    "level": {"epsilon": 1.0, "vs_minimax": 0.0637, "vs_random": 0.5},
                },
                {
                    "name": "medium",
                    "kind": "house",
                    "description": "minimax, but a uniformly random move with probability 0.3",
                    "games": 0,
                    "max_games": 0,
                    "level": {"epsilon": 0.3, "vs_minimax": 0.2961, "vs_random": 0.822},
                },
                {"name": "smol-llm", "kind": "remote", "description": "", "games": 1, "max_games": 8},
                {"name": "ann", "kind": "remote", "description": "", "games": 0, "max_games": 1},
            ],
        },
        {
            "type": "games",
            "games": [
                {
                    "game_id": "4f1c2a9e0b7d",
                    "x": "smol-llm",
                    "o": "minimax",
                    "board": "X...O....",
                    "turn": "X",
                    "ply": 2,
                    "spectators": 1,
                },
                {"game_id": "9a3b77c1d2e4", "x": "random", "o": "minimax", "board": "X.O.X.O..", "turn": "X", "ply": 4},
            ],
        },
    ]


def with_levels(trace: dict) -> dict:
    """A recorded trace as the LLM bot now sends it with ``features.json``: each feature's usual
    level, its distance from it, the always-on flag and the cells it pushes toward (fixed,
    made-up numbers: the snapshots pin the layout, not the model)."""
    out = dict(trace)
    feats = []
    for i, f in enumerate(trace.get("top_features", [])):
        usual = round(f["activation"] * (0.9 if i % 3 == 0 else 0.1), 3)
        feats.append(
            dict(
                f,
                usual=usual,
                deviation=round((f["activation"] - usual) / max(f["activation"], 1.0), 3),
                always_on=i % 3 == 0,
                promotes=[(i * 4) % 9 + 1, (i * 7) % 9 + 1],
            )
        )
    out["top_features"] = feats
    return out


def moves(cells: list[int], traced_seat: str) -> list[dict]:
    out, n = [], 0
    for i, cell in enumerate(cells):
        seat = "X" if i % 2 == 0 else "O"
        move = {"ply": i + 1, "seat": seat, "cell": cell, "at": 1_700_000_000.0 + i}
        if seat == traced_seat:
            move["trace"] = with_levels(retarget(TRACES[n % len(TRACES)], cell))
            n += 1
        out.append(move)
    return out


def game_frames(cells: list[int], over: dict | None = None) -> list[dict]:
    from server.game import Board

    board = Board.from_moves(cells)
    ms = moves(cells, "O")
    frames = [
        {
            "type": "game_start",
            "game_id": "7e2d91c4aa10",
            "x": "ann",
            "o": "smol-llm",
            "you": "X",
            "clock": 30.0,
            "board": ".........",
            "turn": "X",
        },
        {
            "type": "state",
            "game_id": "7e2d91c4aa10",
            "x": "ann",
            "o": "smol-llm",
            "board": board.code,
            "turn": None if board.is_over else board.turn.value,
            "ply": len(cells),
            "moves": ms,
            "last_move": ms[-1] if ms else None,
            "deadline": None,
            "over": board.is_over,
        },
    ]
    if over:
        frames.append(
            {
                "type": "game_over",
                "game_id": "7e2d91c4aa10",
                "x": "ann",
                "o": "smol-llm",
                "board": board.code,
                "moves": ms,
                **over,
            }
        )
    return frames


def offline_app(frames: list[dict]):
    app = ArenaApp(None, "ann")

    async def feed(pilot) -> None:
        app.set_link_status(LinkStatus(LinkState.CONNECTED, URL, "ann"))
        for frame in frames:
            app.handle_frame(parse_server_frame(frame))
            await pilot.pause()
        await pilot.pause()

    return app, feed


def test_lobby(snap_compare):
    app, feed = offline_app(lobby_frames())
    assert snap_compare(app, terminal_size=(80, 24), run_before=feed)


SIZES = [(80, 24), (120, 36), (200, 50)]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_game_in_progress_with_feature_panel(snap_compare, size):
    # ann (X) 1, smol-llm 5, ann 9, smol-llm 3 (a losing corner) → ann to move
    app, feed = offline_app(game_frames([1, 5, 9, 3]))
    assert snap_compare(app, terminal_size=size, run_before=feed)


def house_game_frames(cells: list[int]) -> list[dict]:
    """ann (X) against the minimax bot at 3+2: no traces, so the side panel holds the moves.
    No deadline (the clocks stand still): the snapshot does not depend on the time."""
    from server.game import Board

    board = Board.from_moves(cells)
    ms = [
        {"ply": i + 1, "seat": "X" if i % 2 == 0 else "O", "cell": c, "at": 1_700_000_000.0 + i}
        for i, c in enumerate(cells)
    ]
    tc = {"base": 180.0, "increment": 2.0}
    return [
        {
            "type": "game_start",
            "game_id": "5b8e0f3d2c61",
            "x": "ann",
            "o": "minimax",
            "you": "X",
            "clock": 180.0,
            "board": ".........",
            "turn": "X",
            "time_control": tc,
            "clocks": {"X": 180.0, "O": 180.0},
        },
        {
            "type": "state",
            "game_id": "5b8e0f3d2c61",
            "x": "ann",
            "o": "minimax",
            "board": board.code,
            "turn": board.turn.value,
            "ply": len(cells),
            "moves": ms,
            "last_move": ms[-1],
            "deadline": None,
            "over": False,
            "clocks": {"X": 171.4, "O": 180.0},
        },
    ]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_game_against_a_house_bot_shows_moves_and_clocks_beside_the_board(snap_compare, size):
    # ann (X) 5, minimax 1, ann 9, minimax 3 → ann to move, at 3+2
    app, feed = offline_app(house_game_frames([5, 1, 9, 3]))
    assert snap_compare(app, terminal_size=size, run_before=feed)


def record_frame(cells: list[int]) -> dict:
    from server.game import Board

    board = Board.from_moves(cells)
    return {
        "type": "game_record",
        "game_id": "c0ffee123456",
        "x": "ann",
        "o": "smol-llm",
        "result": board.winner.value if board.winner else "draw",
        "reason": "line" if board.winner else "full_board",
        "board": board.code,
        "moves": moves(cells, "O"),
        "started_at": 1_700_000_000.0,
        "ended_at": 1_700_000_010.0,
        "tag": None,
    }


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_replay_with_move_values(snap_compare, size):
    # smol-llm answers the centre with the edge 2 (??); ann wins with the only winning move 4 (!)
    app = ArenaApp(None, "watcher")

    async def replay(pilot) -> None:
        app.set_link_status(LinkStatus(LinkState.CONNECTED, URL, "watcher"))
        app._replaying.add("c0ffee123456")  # as open_replay does before the record arrives
        app.handle_frame(parse_server_frame(record_frame([5, 2, 1, 9, 7, 3, 4])))
        await pilot.pause()
        await pilot.press("home", "right", "right")  # just after the blunder
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=replay)


def test_finished_game(snap_compare):
    # smol-llm (O) completes the 3-5-7 diagonal
    app, feed = offline_app(
        game_frames([1, 5, 9, 3, 2, 7], over={"result": "O", "reason": "line", "winner": "smol-llm"})
    )
    assert snap_compare(app, terminal_size=(80, 24), run_before=feed)


def test_finished_games_from_the_records(snap_compare, monkeypatch):
    import time

    monkeypatch.setenv("TZ", "UTC")  # the "Ended" column is local time
    time.tzset()
    records = {
        "type": "records",
        "games": [
            {
                "game_id": "c0ffee123456",
                "x": "smol-llm",
                "o": "minimax",
                "result": "O",
                "reason": "line",
                "ended_at": 1_700_000_900.0,
                "ply": 6,
                "tag": None,
            },
            {
                "game_id": "7e2d91c4aa10",
                "x": "ann",
                "o": "smol-llm",
                "result": "draw",
                "reason": "full_board",
                "ended_at": 1_700_000_600.0,
                "ply": 9,
                "tag": None,
            },
            {
                "game_id": "4f1c2a9e0b7d",
                "x": "random",
                "o": "minimax",
                "result": "X",
                "reason": "timeout",
                "ended_at": 1_700_000_300.0,
                "ply": 3,
                "tag": "cup-2",
            },
            {
                "game_id": "9a3b77c1d2e4",
                "x": "minimax",
                "o": "random",
                "result": "aborted",
                "reason": "aborted",
                "ended_at": None,
                "ply": 1,
                "tag": "cup-1",
            },
        ],
    }
    app, feed = offline_app([])

    async def open_records(pilot) -> None:
        await feed(pilot)
        await pilot.press("f")
        app.handle_frame(parse_server_frame(records))
        await pilot.pause()

    try:
        assert snap_compare(app, terminal_size=(80, 24), run_before=open_records)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
