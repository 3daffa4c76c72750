"""The Textual TUI: driven with App.run_test() and Pilot against a real server on an ephemeral port,
plus its pure parts (trace parsing, panel layout, game view, CLI)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect

from server.app import ServerConfig, serve_arena
from server.game import Board
from server.protocol import dumps, parse_server_frame
from server.solver import optimal_cells
from textual.widgets import DataTable
from tui_client import cli
from tui_client.app import ArenaApp
from tui_client.board_widget import BoardGrid
from tui_client.connection import LinkState, _next_name
from tui_client.feature_panel import FeaturePanel, bar, feature_panel_text
from tui_client.game_view import GameView
from tui_client.local_arena import LocalArena, LocalArenaError
from tui_client.screens import ConnectionBar, GameScreen, LobbyScreen, RecordsScreen, describe_result
from tui_client.trace import parse_trace
from tui_client.trace_replay_bot import TraceReplayBot, pick_cell

TRACES_FILE = Path(__file__).parent / "data" / "llm_traces.json"
FIXTURE = json.loads(TRACES_FILE.read_text())
TRACES = FIXTURE["traces"]
SIZE = (100, 30)

pytestmark = pytest.mark.timeout(60)


# --------------------------------------------------------------------------- helpers
@pytest.fixture
async def arena():
    config = ServerConfig(
        host="127.0.0.1", port=0, db_path=":memory:", move_clock=30.0, grace=15.0, house_bots=True, seed=0
    )
    async with serve_arena(config) as srv:
        yield srv


async def wait_until(pilot, predicate, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await pilot.pause(0.03)
        if predicate():
            return
    raise AssertionError(f"timed out waiting for {what}")


def make_app(srv, name: str = "ann") -> ArenaApp:
    return ArenaApp(srv.url, name, lobby_poll=0.3)


async def select_in_lobby(pilot, app: ArenaApp, name: str, **wait: Any) -> DataTable:
    """Wait for ``name`` (a bot or a person) in the lobby's list and move the cursor onto it."""

    def row_of():
        table = app.screen.query_one("#bots", DataTable)
        keys = [k.value for k in table.rows]
        return keys.index(name) if name in keys else None

    await wait_until(
        pilot, lambda: isinstance(app.screen, LobbyScreen) and row_of() is not None, what=f"{name} in lobby", **wait
    )
    table = app.screen.query_one("#bots", DataTable)
    table.focus()
    table.move_cursor(row=row_of())
    return table


async def choose_bot(pilot, app: ArenaApp, bot: str) -> None:
    """Wait for ``bot`` in the lobby, move the cursor onto it and press Enter."""
    await select_in_lobby(pilot, app, bot)
    await pilot.press("enter")
    await wait_until(pilot, lambda: isinstance(app.screen, GameScreen), what="the game screen")


def record_notes(app: ArenaApp) -> list[tuple[str, str]]:
    """Every toast the app shows, as (severity, "title: message")."""
    notes: list[tuple[str, str]] = []
    original = app.notify

    def record(message, *, title="", severity="information", **kw):
        notes.append((severity, f"{title}: {message}"))
        return original(message, title=title, severity=severity, **kw)

    app.notify = record  # type: ignore[method-assign]
    return notes


def status_text(app: ArenaApp) -> str:
    return str(app.screen.query_one("#status").render())


def message_text(app: ArenaApp) -> str:
    return str(app.screen.query_one("#message").render())


async def play_optimally(pilot, app: ArenaApp, by_click: bool) -> None:
    screen = app.screen
    assert isinstance(screen, GameScreen)
    while True:
        await wait_until(pilot, lambda: screen.view.over or screen.view.my_turn, what="my turn or the end")
        if screen.view.over:
            return
        cell = min(optimal_cells(screen.view.board))
        ply = len(screen.view.moves)
        if by_click:
            await pilot.click(f"#cell-{cell}")
        else:
            await pilot.press(str(cell))
        await wait_until(pilot, lambda: len(screen.view.moves) > ply or screen.view.over, what=f"move {cell} applied")


# --------------------------------------------------------------------------- against the real server
async def test_full_game_against_minimax_by_keys(arena):
    app = make_app(arena)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.link_status.state is LinkState.CONNECTED, what="connected")
        assert "connected as ann" in str(app.screen.query_one(ConnectionBar).render())
        await choose_bot(pilot, app, "minimax")
        screen = app.screen
        assert screen.view.you.value == "X" and screen.view.o == "minimax"
        assert "Your turn (X)" in status_text(app)
        await play_optimally(pilot, app, by_click=False)
        view = screen.view
        assert view.result == "draw" and view.reason == "full_board"  # optimal vs optimal
        assert "Draw: the board is full" in status_text(app)
        assert screen.query_one(BoardGrid).marks == view.board.code
        assert len(view.moves) == 9 and view.board.ply == 9
        assert "5. X" in str(screen.query_one("#moves").render())
        # the last move is highlighted
        last = view.moves[-1].cell
        assert screen.query_one(f"#cell-{last}").has_class("last-move")
        # rematch starts a new game against the same bot, sides swapped (as lichess does)
        await pilot.press("r")
        await wait_until(
            pilot, lambda: isinstance(app.screen, GameScreen) and app.screen.game_id != view.game_id, what="the rematch"
        )
        assert app.screen.view.you.value == "O" and app.screen.view.x == "minimax"


async def test_full_game_against_minimax_by_clicks_as_o(arena):
    app = make_app(arena)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.link_status.state is LinkState.CONNECTED, what="connected")
        await pilot.press("s")  # X → O
        assert "O (the bot moves first)" in str(app.screen.query_one("#side").render())
        await choose_bot(pilot, app, "minimax")
        screen = app.screen
        await wait_until(pilot, lambda: len(screen.view.moves) == 1, what="minimax's first move")
        assert screen.view.you.value == "O" and screen.view.x == "minimax"
        await play_optimally(pilot, app, by_click=True)
        assert screen.view.result == "draw"
        assert screen.query_one(BoardGrid).marks == screen.view.board.code
        assert screen.view.board.code.count("O") == 4


async def test_occupied_cell_is_refused_with_a_visible_message(arena):
    app = make_app(arena)
    async with app.run_test(size=SIZE) as pilot:
        await choose_bot(pilot, app, "minimax")
        screen = app.screen
        await pilot.press("5")
        await wait_until(pilot, lambda: len(screen.view.moves) == 2, what="minimax's reply")
        taken_by_bot = screen.view.moves[1].cell
        await pilot.press("5")
        assert message_text(app) == "Cell 5 is taken."
        await pilot.click(f"#cell-{taken_by_bot}")
        assert message_text(app) == f"Cell {taken_by_bot} is taken."
        assert len(screen.view.moves) == 2
        # the server refuses it too (bypassing the local check): shown, no crash
        app.send_move(screen.game_id, 5)
        await wait_until(pilot, lambda: "Refused by the server" in message_text(app), what="the server's refusal")
        assert "already taken" in message_text(app)
        free = screen.view.board.legal_cells()[0]
        await pilot.press(str(free))
        await wait_until(pilot, lambda: len(screen.view.moves) >= 3, what="a legal move after the refusal")
        assert message_text(app) == ""


async def test_feature_panel_shows_the_traces_a_bot_sends(arena):
    bot = TraceReplayBot(arena.url, TRACES, name="smol-llm")
    task = asyncio.create_task(bot.run())
    try:
        await asyncio.wait_for(bot.ready.wait(), 5)
        app = make_app(arena)
        async with app.run_test(size=SIZE) as pilot:
            await choose_bot(pilot, app, "smol-llm")
            screen = app.screen
            panel = screen.query_one(FeaturePanel)
            assert "No LLM trace yet" in panel.plain
            await pilot.press("5")
            await wait_until(pilot, lambda: len(screen.view.moves) == 2, what="the bot's reply")
            game_id, cell, sent = bot.moves_sent[0]
            assert game_id == screen.game_id
            text = panel.plain
            for feature in sent["top_features"][:4]:
                assert feature["label"][:20] in text
            assert "▲" in text and "▼" in text and "+1.25" in text and "-1.80" in text
            assert f"chose {cell}" in text
            assert f"→ {cell}" in str(panel.border_title)
            assert "smol-llm (O)" in str(panel.border_title)
            # the second reply replaces the panel's content with the second trace
            await pilot.press(str(min(screen.view.board.legal_cells())))
            await wait_until(pilot, lambda: len(screen.view.moves) >= 4 or screen.view.over, what="second reply")
            second = bot.moves_sent[1][2]
            assert "winning move available" in panel.plain
            assert f"chose {second['chosen']}" in panel.plain
            assert "*" in str(screen.query_one("#moves").render())  # traced moves are marked
            # stepping back shows the first trace again
            await pilot.press("left", "left")
            assert "+1.25" in panel.plain and "move 2" in str(panel.border_title)
            await pilot.press("end")
            assert "+1.40" in panel.plain or "+1.10" in panel.plain
    finally:
        await bot.close()
        task.cancel()


async def test_spectating_a_bot_vs_bot_game_and_replaying_it(arena):
    gate = asyncio.Event()
    bot = TraceReplayBot(arena.url, TRACES, name="smol-llm", gate=gate)
    task = asyncio.create_task(bot.run())
    try:
        await asyncio.wait_for(bot.ready.wait(), 5)
        async with connect(arena.url) as organiser:
            await organiser.send(dumps({"type": "hello", "name": "organiser", "role": "player"}))
            await organiser.recv()
            await organiser.send(dumps({"type": "arrange", "x": "smol-llm", "o": "minimax", "tag": "tui-test"}))
            sent = parse_server_frame(await organiser.recv())
            game_id = sent.challenge_id
            app = make_app(arena, "watcher")
            async with app.run_test(size=SIZE) as pilot:

                def game_listed():
                    return isinstance(app.screen, LobbyScreen) and game_id in [
                        k.value for k in app.screen.query_one("#games", DataTable).rows
                    ]

                await wait_until(pilot, game_listed, what="the arranged game in the lobby")
                table = app.screen.query_one("#games", DataTable)
                table.focus()
                table.move_cursor(row=[k.value for k in table.rows].index(game_id))
                await pilot.press("enter")
                await wait_until(pilot, lambda: isinstance(app.screen, GameScreen), what="the watched game")
                screen = app.screen
                assert screen.view.you is None
                players = str(screen.query_one("#players").render())
                assert "X smol-llm" in players and "O minimax" in players and "(you)" not in players
                await pilot.press("5")  # not offered to a spectator: nothing happens
                assert message_text(app) == "" and screen.view.moves == []
                await pilot.click("#cell-5")  # a click says why
                assert "spectators cannot move" in message_text(app)
                gate.set()  # let the bot play
                await wait_until(pilot, lambda: screen.view.over, what="the end of the watched game")
                view = screen.view
                assert view.result in ("O", "draw")  # minimax never loses
                assert screen.query_one(BoardGrid).marks == view.board.code
                assert ("minimax (O) wins" if view.result == "O" else "Draw") in status_text(app)
                assert "smol-llm (X)" in str(screen.query_one(FeaturePanel).border_title)
                # back to the lobby: the finished game is offered for replay
                await pilot.press("escape")
                await wait_until(pilot, lambda: isinstance(app.screen, LobbyScreen), what="the lobby")
                games = app.screen.query_one("#games", DataTable)
                await wait_until(pilot, lambda: game_id in [k.value for k in games.rows], what="the finished game")
                games.focus()
                games.move_cursor(row=[k.value for k in games.rows].index(game_id))
                await pilot.press("enter")
                await wait_until(pilot, lambda: isinstance(app.screen, GameScreen), what="the replay")
                replay = app.screen
                assert replay.view.replay and len(replay.view.moves) == len(view.moves)
                await pilot.press("home")
                assert replay.query_one(BoardGrid).marks == "........."
                assert "Move 0 of" in status_text(app)
                await pilot.press("right")
                first = replay.view.moves[0]
                assert replay.query_one(BoardGrid).marks == Board.empty().play(first.cell).code
                assert "Move 1 of" in status_text(app)
                assert f"chose {first.cell}" in replay.query_one(FeaturePanel).plain
                await pilot.press("right")  # minimax's move: no trace, the LLM's last one stays on show
                assert f"chose {first.cell}" in replay.query_one(FeaturePanel).plain
                assert replay.query_one(FeaturePanel).border_title.startswith(
                    "LLM features · move 2 has no trace · move 1"
                )
    finally:
        await bot.close()
        task.cancel()


async def test_finished_games_from_the_server_records_open_in_the_replay_screen(arena):
    async with connect(arena.url) as organiser:
        await organiser.send(dumps({"type": "hello", "name": "organiser", "role": "player"}))
        await organiser.recv()
        game_ids = []
        for x, o, tag in (("minimax", "random", "cup-1"), ("random", "minimax", "cup-2")):
            await organiser.send(dumps({"type": "arrange", "x": x, "o": o, "tag": tag, "seed": 3}))
            while True:
                frame = parse_server_frame(await organiser.recv())
                if frame.type == "game_over":
                    game_ids.append(frame.game_id)
                    break
    newest, older = game_ids[1], game_ids[0]
    stored = arena.records.get(older)
    app = make_app(arena, "watcher")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.link_status.state is LinkState.CONNECTED, what="connected")
        await pilot.press("f")
        assert isinstance(app.screen, RecordsScreen)
        records = app.screen
        table = records.query_one("#records", DataTable)
        await wait_until(pilot, lambda: table.row_count == 2, what="the stored games")
        assert [k.value for k in table.rows] == [newest, older]  # newest first
        row = table.get_row(older)
        assert row[1:3] == ["minimax", "random"] and row[4] == str(len(stored["moves"])) and row[5] == "cup-1"
        assert row[3] == describe_result(stored["result"], stored["reason"])
        assert "2 finished games, newest first" in str(records.query_one("#records-status").render())
        table.move_cursor(row=1)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, GameScreen), what="the replay")
        replay = app.screen
        assert replay.game_id == older and replay.view.replay
        assert [m.cell for m in replay.view.moves] == [m["cell"] for m in stored["moves"]]
        await pilot.press("home")
        assert replay.query_one(BoardGrid).marks == "........."
        await pilot.press("end")
        assert replay.query_one(BoardGrid).marks == stored["board"]
        await pilot.press("escape")  # back to the list, not the lobby
        assert app.screen is records
        await pilot.press("m")  # only the games "watcher" played: none
        await wait_until(pilot, lambda: table.row_count == 0 and not app.stored_games_loading, what="the filtered list")
        assert "No finished games of watcher on the server yet" in str(records.query_one("#records-status").render())
        await pilot.press("escape")
        assert isinstance(app.screen, LobbyScreen)


async def test_records_list_pages_back_with_older(arena, monkeypatch):
    import tui_client.app as tui_app

    monkeypatch.setattr(tui_app, "RECORDS_PAGE", 2)
    async with connect(arena.url) as organiser:
        await organiser.send(dumps({"type": "hello", "name": "organiser", "role": "player"}))
        await organiser.recv()
        for _ in range(3):
            await organiser.send(dumps({"type": "arrange", "x": "minimax", "o": "minimax"}))
            while parse_server_frame(await organiser.recv()).type != "game_over":
                pass
            await asyncio.sleep(0.01)  # distinct end times
    app = make_app(arena, "watcher")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.link_status.state is LinkState.CONNECTED, what="connected")
        await pilot.press("f")
        table = app.screen.query_one("#records", DataTable)
        await wait_until(pilot, lambda: table.row_count == 2, what="the first page")
        assert not app.stored_games_complete
        await pilot.press("o")
        await wait_until(pilot, lambda: table.row_count == 3, what="the older game")
        assert app.stored_games_complete
        ended = [g.ended_at for g in app.stored_games]
        assert ended == sorted(ended, reverse=True)


async def test_reconnects_and_resumes_the_game_after_a_lost_connection(arena):
    app = make_app(arena)
    seen: list[LinkState] = []
    original = app.set_link_status

    def record(status):
        seen.append(status.state)
        original(status)

    app.set_link_status = record  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await choose_bot(pilot, app, "minimax")
        screen = app.screen
        await pilot.press("5")
        await wait_until(pilot, lambda: len(screen.view.moves) == 2, what="minimax's reply")
        token = app.connection.token
        app.connection.drop()
        await wait_until(pilot, lambda: LinkState.RECONNECTING in seen, what="the lost connection")
        await wait_until(pilot, lambda: app.link_status.state is LinkState.CONNECTED, what="the reconnect")
        assert app.connection.token == token and app.player_name == "ann"
        assert app.screen is screen and not screen.view.over
        await play_optimally(pilot, app, by_click=False)
        assert screen.view.result == "draw"


async def test_a_game_lost_while_disconnected_past_the_grace_period_is_shown_as_lost():
    config = ServerConfig(
        host="127.0.0.1", port=0, db_path=":memory:", move_clock=30.0, grace=0.3, house_bots=True, seed=0
    )
    async with serve_arena(config) as srv:
        app = make_app(srv)
        async with app.run_test(size=SIZE) as pilot:
            await choose_bot(pilot, app, "minimax")
            screen = app.screen
            await pilot.press("5")
            await wait_until(pilot, lambda: len(screen.view.moves) == 2, what="minimax's reply")
            old_token = app.connection.token
            app.connection.retry_delays = (1.2,)  # stay away longer than the grace period
            app.connection.drop()
            await wait_until(pilot, lambda: screen.view.over, what="the game's end to be fetched")
            assert screen.view.reason == "disconnect" and screen.view.result == "O"
            assert "minimax wins: ann disconnected" in status_text(app)
            assert app.connection.token != old_token and app.link_status.state is LinkState.CONNECTED


async def test_server_errors_are_notified_not_fatal(arena):
    app = make_app(arena)
    notes = record_notes(app)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.link_status.state is LinkState.CONNECTED, what="connected")
        await pilot.press("g")
        await pilot.press(*"nosuchgame", "enter")
        await wait_until(pilot, lambda: any("no game has the id" in n for _, n in notes), what="the error notice")
        # a refusal of the person's own request is titled by what they asked, not "Server error"
        assert ("warning", "Replay: no game has the id 'nosuchgame'") in notes
        assert isinstance(app.screen, LobbyScreen) and app.is_running
        app.start_challenge("nobody-here", "X")
        await wait_until(
            pilot,
            lambda: any(n.startswith("Challenge: no bot or player named") for _, n in notes),
            what="the challenge error",
        )


async def test_resign_and_leave_with_keys(arena):
    app = make_app(arena)
    async with app.run_test(size=SIZE) as pilot:
        await choose_bot(pilot, app, "random")
        screen = app.screen
        await pilot.press("escape")  # first Esc only warns while the game is on
        assert "press Esc again" in message_text(app) and app.screen is screen
        await pilot.press("R")  # asks first
        assert "Press R again" in message_text(app) and not screen.view.over
        await pilot.press("R")
        await wait_until(pilot, lambda: screen.view.over, what="the resignation")
        assert screen.view.reason == "resign" and "random wins: ann resigned" in status_text(app)
        await pilot.press("escape")
        assert isinstance(app.screen, LobbyScreen)


async def test_a_challenge_from_another_player_can_be_accepted(arena):
    app = make_app(arena)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.link_status.state is LinkState.CONNECTED, what="connected")
        async with connect(arena.url) as bob:
            await bob.send(dumps({"type": "hello", "name": "bob"}))
            await bob.recv()
            await bob.send(dumps({"type": "challenge", "opponent": "ann", "side": "X"}))
            await wait_until(pilot, lambda: type(app.screen).__name__ == "ChallengePrompt", what="the prompt")
            assert "bob" in str(app.screen.query_one("Label").render())
            await pilot.press("y")
            await wait_until(pilot, lambda: isinstance(app.screen, GameScreen), what="the accepted game")
            assert app.screen.view.you.value == "O" and app.screen.view.x == "bob"
            assert "bob (X) is thinking" in status_text(app)


async def test_lobby_says_when_the_llm_bot_is_not_available():
    class FakeArena:
        llm_notice = "LLM bot not available: bots.llm is not installed"

        def poll_llm(self):
            return self.llm_notice

    app = ArenaApp(None, "ann", local_arena=FakeArena())  # type: ignore[arg-type]
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        notice = app.screen.query_one("#llm-notice")
        assert notice.display and "LLM bot not available: bots.llm is not installed" in str(notice.render())


async def test_unreachable_server_shows_a_clear_status():
    app = ArenaApp("ws://127.0.0.1:9", "ann", lobby_poll=5)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.link_status.state is LinkState.RECONNECTING, what="the failure")
        text = str(app.screen.query_one(ConnectionBar).render())
        assert "reconnecting" in text and "connection refused" in text
        assert app.screen.query_one(ConnectionBar).has_class("warn")


# --------------------------------------------------------------------------- pure parts
def test_parse_trace_reads_the_fixture_and_survives_odd_values():
    trace = parse_trace(TRACES[0])
    assert trace.model == "SmolLM2-135M-Instruct" and trace.chosen == 5 and trace.legal is True
    assert [f.index for f in trace.top_features][:2] == [3121, 877]
    assert trace.steering[2].sign_symbol == "▼" and trace.steering[0].sign_symbol == "▲"
    assert abs(sum(trace.cell_probs.values()) - 1) < 1e-3
    odd = parse_trace(FIXTURE["special"]["odd_types"])
    assert [(f.index, f.activation) for f in odd.top_features] == [(17, 2.5), (None, 1.0)]
    assert [s.coefficient for s in odd.steering] == [-0.7]
    assert odd.cell_probs == {5: 1.0, 9: 0.0} and odd.chosen == 9 and odd.legal is None and odd.model == "42"
    assert parse_trace({}) is None and parse_trace(None) is None and parse_trace({"steering": "x"}) is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=12), kids, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(
    raw=st.dictionaries(
        st.sampled_from(
            ["model", "mode", "hook", "top_features", "steering", "cell_probs", "chosen", "legal", "extra"]
        ),
        json_values,
        max_size=8,
    ),
    width=st.integers(1, 160),
    height=st.integers(1, 60),
)
def test_any_trace_renders_within_the_panel(raw, width, height):
    text = feature_panel_text(parse_trace(raw), width, height).plain
    assert isinstance(text, str)


@settings(max_examples=80, deadline=None)
@given(which=st.integers(0, len(TRACES) - 1), width=st.integers(20, 160), height=st.integers(6, 60))
def test_panel_fits_its_size_and_grows_with_it(which, width, height):
    lines = feature_panel_text(parse_trace(TRACES[which]), width, height).plain.split("\n")
    assert len(lines) <= height
    assert all(len(line) <= width for line in lines)


def test_panel_layout_at_80x24_and_larger():
    trace = parse_trace(TRACES[0])
    small = feature_panel_text(trace, 47, 19, Board("X...O....")).plain
    assert "Top features" in small and "Steering" in small and "Cell probabilities" in small
    assert "chose 5" in small and " 71%" in small
    assert "opponent threatens" in small
    big = feature_panel_text(trace, 100, 40, Board("X...O....")).plain
    assert big.count("\n") > small.count("\n")
    assert "prompt formatting: board rows" in big  # all eight features fit
    assert "opponent threatens a line (must block)" in big  # labels no longer cut
    illegal = feature_panel_text(parse_trace(FIXTURE["special"]["unsteered_illegal"]), 47, 19).plain
    assert "✖ illegal" in illegal and "Steering" not in illegal
    assert bar(0.5, 4) == "██  "


def test_game_view_results_and_forfeit_replay():
    frame = parse_server_frame(
        {
            "type": "game_over",
            "game_id": "g",
            "x": "ann",
            "o": "bot",
            "result": "X",
            "reason": "illegal_move",
            "winner": "ann",
            "board": "XO.......",
            "moves": [{"ply": 1, "seat": "X", "cell": 1, "at": 0}, {"ply": 2, "seat": "O", "cell": 2, "at": 0}],
        }
    )
    view = GameView("g", you=None)
    view.apply(frame)
    assert view.result_line() == "ann (X) wins: bot illegal move (forfeit)"
    view.you = view.you or None
    assert view.board_at(1).code == "X........" and view.move_list() == "1. X1 O2"
    mine = GameView("g")
    mine.apply(
        parse_server_frame(
            {
                "type": "game_start",
                "game_id": "g",
                "x": "ann",
                "o": "bot",
                "you": "O",
                "clock": 30.0,
                "board": ".........",
                "turn": "X",
            }
        )
    )
    assert mine.check_move(5) == "Not your turn: waiting for ann (X)."
    mine.apply(frame)
    assert mine.result_line() == "ann wins: bot illegal move (forfeit)"
    assert mine.check_move(3) == "The game is over."


def test_pick_cell_never_plays_an_occupied_cell():
    board = Board("X...O....")
    assert pick_cell(board, {"chosen": 5, "cell_probs": {"1": 0.5, "3": 0.4}}) == 3
    assert pick_cell(board, {"chosen": 2}) == 2


def test_records_rows_describe_results():
    assert describe_result("O", "line") == "O won · line"
    assert describe_result("draw", "full_board") == "draw · full board"
    assert describe_result("X", "illegal_move") == "X won · illegal move"
    assert describe_result("aborted", "aborted") == "aborted"


def test_taken_names_get_a_suffix():
    assert _next_name("ann", 2) == "ann-2" and _next_name("ann-2", 3) == "ann-3"
    assert len(_next_name("a" * 32, 2)) == 32


def test_cli_help_and_bad_arguments(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for option in ("--server", "--name", "--no-llm", "--llm-args"):
        assert option in out
    with pytest.raises(SystemExit) as exc:
        cli.main(["--server", "http://example.org"])
    assert exc.value.code == 2
    assert "--server must be a WebSocket URL" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["--name", "bad name!"])
    assert "--name must be" in capsys.readouterr().err


def test_console_script_help_is_fast():
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "tui_client.cli", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "autosteer-tui" in out.stdout
    assert time.monotonic() - start < 10


def test_local_arena_starts_and_stops_a_server():
    arena = LocalArena(with_llm=False, startup_timeout=60)
    url = arena.start()
    try:
        assert url.startswith("ws://127.0.0.1:")
        assert arena.llm_notice == "LLM bot not started (--no-llm)"
        server = arena._server

        async def hello():
            async with connect(url) as ws:
                await ws.send(dumps({"type": "hello", "name": "probe"}))
                return json.loads(await ws.recv())["type"]

        assert asyncio.run(hello()) == "welcome"
    finally:
        arena.stop()
    assert server.poll() is not None


def test_local_arena_reports_a_server_that_cannot_start(tmp_path):
    bad = tmp_path / "fail.py"
    bad.write_text("import sys; print('boom: cannot listen'); sys.exit(3)\n")
    arena = LocalArena(with_llm=False, workdir=tmp_path, startup_timeout=30, server_cmd=[sys.executable, str(bad)])
    with pytest.raises(LocalArenaError, match="exited with code 3: boom: cannot listen"):
        arena.start()
    assert "server.log" in str(arena.server_log)


def test_tui_client_doctests():
    import doctest

    import tui_client.feature_panel
    import tui_client.game_view
    import tui_client.trace

    for module in (tui_client.trace, tui_client.feature_panel, tui_client.game_view):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted > 0, module.__name__


def test_rule_player_of_the_screenshot_script():
    from tui_client.screenshot import rule_player

    assert rule_player(Board("XX.OO...X")) == 6  # O wins rather than block 3
    assert rule_player(Board("XX.O.....")) == 3  # else block
    assert rule_player(Board.empty()) == 5


def test_autosteer_tui_starts_a_local_arena_and_stops_it_on_quit(tmp_path):
    """The demo command end to end in a pseudo-terminal: local server, lobby, q, clean exit."""
    import os
    import pty
    import select

    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child becomes the app
        os.environ.update(TERM="xterm-256color", COLUMNS="80", LINES="24")
        os.execv(
            sys.executable,
            [
                sys.executable,
                "-m",
                "tui_client.cli",
                "--no-llm",
                "--name",
                "pty-user",
                "--data-dir",
                str(tmp_path / "data"),
            ],
        )
    out = b""

    def read_until(needle: bytes, timeout: float) -> bool:
        nonlocal out
        end = time.monotonic() + timeout
        while time.monotonic() < end and needle not in out:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                try:
                    out += os.read(fd, 65536)
                except OSError:
                    break
        return needle in out

    try:
        assert read_until(b"connected as pty-user", 40), out.decode(errors="replace")[-2000:]
        assert read_until(b"minimax", 10)
        os.write(fd, b"q")
        assert read_until(b"Bye.", 20), out.decode(errors="replace")[-2000:]
    finally:
        status = None
        end = time.monotonic() + 15
        while status is None and time.monotonic() < end:
            done, st_ = os.waitpid(pid, os.WNOHANG)
            status = st_ if done else None
            time.sleep(0.05)
        if status is None:  # the test failed with the app still running: stop it
            os.kill(pid, 15)
            _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    assert b"Stopping the local arena" in out
    assert (tmp_path / "data" / "arena.sqlite").is_file()  # the games stay for the next run
