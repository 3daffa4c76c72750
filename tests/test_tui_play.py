"""The TUI as people play it, driven with Pilot against a real server on an ephemeral port:
each test plays through one thing a new user does and checks what they see."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from websockets.asyncio.client import connect

from server.app import ServerConfig, serve_arena
from server.protocol import dumps, parse_server_frame
from tests.test_tui import (
    SIZE,
    TRACES,
    arena,  # noqa: F401 (the fixture)
    choose_bot,
    make_app,
    message_text,
    record_notes,
    select_in_lobby,
    status_text,
    wait_until,
)
from textual.widgets import DataTable
from tui_client.app import ArenaApp
from tui_client.board_widget import BoardGrid
from tui_client.connection import LinkState
from tui_client.screens import GameScreen, LobbyScreen
from tui_client.trace_replay_bot import TraceReplayBot

pytestmark = pytest.mark.timeout(30)


def record_sent(app: ArenaApp) -> list[dict]:
    """Every frame the app sends once connected."""
    sent: list[dict] = []
    connection = app.connection
    assert connection is not None
    original = connection.send

    async def send(frame):
        sent.append(frame)
        return await original(frame)

    connection.send = send  # type: ignore[method-assign]
    return sent


_organisers = itertools.count(1)


async def arranged_game(url: str, x: str, o: str) -> str:
    """Have an organiser arrange ``x`` vs ``o`` between house bots; the finished game's id."""
    async with connect(url) as organiser:
        name = f"organiser-{next(_organisers)}"  # a closed session keeps its name for the grace period
        await organiser.send(dumps({"type": "hello", "name": name, "role": "player"}))
        await organiser.recv()
        await organiser.send(dumps({"type": "arrange", "x": x, "o": o, "seed": 1}))
        while True:
            frame = parse_server_frame(await organiser.recv())
            if frame.type == "game_over":
                return frame.game_id


async def leave_game(pilot, app: ArenaApp) -> None:
    screen = app.screen
    assert isinstance(screen, GameScreen)
    if not screen.view.over:
        await pilot.press("escape")  # first Esc asks
    await pilot.press("escape")
    await wait_until(pilot, lambda: isinstance(app.screen, LobbyScreen), what="the lobby")


# --------------------------------------------------------------------------- a game as O after a first game
async def test_playing_o_after_a_first_game_shows_no_client_error(arena):
    """Lobby → minimax → s (play O) → Enter, after a first game: no "NoMatches('#players')" toast."""
    app = make_app(arena)
    notes = record_notes(app)
    async with app.run_test(size=SIZE) as pilot:
        await choose_bot(pilot, app, "random")
        await leave_game(pilot, app)
        await pilot.press("s")  # X → O
        for _ in range(3):
            await choose_bot(pilot, app, "minimax")
            screen = app.screen
            await wait_until(pilot, lambda: len(screen.view.moves) == 1, what="minimax's first move")
            await pilot.pause(0.1)
            assert screen.query_one(BoardGrid).marks == screen.view.board.code
            await leave_game(pilot, app)
    errors = [n for n in notes if n[0] == "error"]
    assert errors == [], errors


async def test_a_frame_for_a_game_screen_not_yet_mounted_is_kept_for_its_mount():
    """The frames of a new game can arrive in one burst, before its screen is mounted."""
    app = ArenaApp(None, "ann")
    async with app.run_test(size=SIZE) as pilot:
        start = {
            "type": "game_start",
            "game_id": "g1",
            "x": "minimax",
            "o": "ann",
            "you": "O",
            "clock": 30.0,
            "board": ".........",
            "turn": "X",
        }
        state = {
            "type": "state",
            "game_id": "g1",
            "x": "minimax",
            "o": "ann",
            "board": "X........",
            "turn": "O",
            "ply": 1,
            "moves": [{"ply": 1, "seat": "X", "cell": 1, "at": 0.0}],
            "deadline": None,
        }
        app.handle_frame(parse_server_frame(start))
        app.handle_frame(parse_server_frame(state))  # raised NoMatches before the fix
        await pilot.pause()
        assert isinstance(app.screen, GameScreen)
        assert app.screen.query_one(BoardGrid).marks == "X........"


# --------------------------------------------------------------------------- clocks
async def test_your_own_clock_shows_before_your_first_move():
    config = ServerConfig(
        host="127.0.0.1", port=0, db_path=":memory:", move_clock=8.0, grace=15.0, house_bots=True, seed=0
    )
    async with serve_arena(config) as srv:
        app = make_app(srv)
        async with app.run_test(size=SIZE) as pilot:
            await choose_bot(pilot, app, "minimax")
            import re

            def my_clock() -> int:
                line = str(app.screen.query_one("#players").render()).split("\n")[0]  # X ann (you)  8 s
                return int(re.findall(r"(\d+) s", line)[-1])

            first = my_clock()
            assert first <= 8
            await wait_until(pilot, lambda: my_clock() < first, timeout=3, what="my clock counting down")
            assert app.screen.view.moves == []  # before my first move


# --------------------------------------------------------------------------- quick digits and refused moves
async def test_two_quick_digits_send_one_move_and_no_server_error(arena):
    gate = asyncio.Event()  # the bot does not reply: the turn stays with it
    bot = TraceReplayBot(arena.url, TRACES, name="smol-llm", gate=gate)
    task = asyncio.create_task(bot.run())
    try:
        await asyncio.wait_for(bot.ready.wait(), 5)
        app = make_app(arena)
        notes = record_notes(app)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: app.is_connected, what="connected")
            sent = record_sent(app)
            await choose_bot(pilot, app, "smol-llm")
            screen = app.screen
            screen.action_play(3)
            screen.action_play(7)  # before the server's answer to 3
            await wait_until(pilot, lambda: len(screen.view.moves) == 1, what="the first move")
            await pilot.press("8")  # the bot's turn: kept as a premove, not sent
            await pilot.pause(0.3)
            moves = [f for f in sent if f["type"] == "move"]
            assert [f["cell"] for f in moves] == [3]
            assert "Premove 8" in message_text(app)
        assert not [n for n in notes if "Server error" in n[1]], notes
    finally:
        await bot.close()
        task.cancel()


async def test_a_refused_move_is_not_a_server_error(arena):
    app = make_app(arena)
    notes = record_notes(app)
    async with app.run_test(size=SIZE) as pilot:
        await choose_bot(pilot, app, "minimax")
        screen = app.screen
        await pilot.press("5")
        await wait_until(pilot, lambda: len(screen.view.moves) == 2, what="minimax's reply")
        app.send_move(screen.game_id, 5)  # bypass the local check: the server refuses it
        await wait_until(pilot, lambda: "Refused by the server" in message_text(app), what="the refusal")
    assert not [n for n in notes if "Server error" in n[1]], notes


# --------------------------------------------------------------------------- replay by a short id
async def test_replay_by_the_short_id_the_lobby_shows(arena):
    game_id = await arranged_game(arena.url, "minimax", "random")
    app = make_app(arena, "watcher")
    notes = record_notes(app)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.is_connected, what="connected")
        await pilot.press("g")
        await pilot.press(*game_id[:10], "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, GameScreen) or bool(notes), what="the replay")
        assert isinstance(app.screen, GameScreen), notes
        assert app.screen.game_id == game_id and app.screen.view.replay


async def test_server_get_game_accepts_a_unique_prefix_and_names_an_ambiguous_one(arena):
    first = await arranged_game(arena.url, "minimax", "random")
    async with connect(arena.url) as ws:
        await ws.send(dumps({"type": "hello", "name": "reader"}))
        await ws.recv()
        await ws.send(dumps({"type": "get_game", "game_id": first[:6], "id": 1}))
        reply = parse_server_frame(await ws.recv())
        assert reply.type == "game_record" and reply.game_id == first
        await ws.send(dumps({"type": "get_game", "game_id": "", "id": 2}))
        reply = parse_server_frame(await ws.recv())
        assert reply.type == "error"
        second = await arranged_game(arena.url, "random", "minimax")
        common = 0
        while first[common] == second[common]:
            common += 1
        # a prefix both ids share is refused with a clear message (often the empty-ish one-letter case)
        if common:
            await ws.send(dumps({"type": "get_game", "game_id": first[:common], "id": 3}))
            reply = parse_server_frame(await ws.recv())
            assert reply.type == "error" and reply.code == "ambiguous_game"
            assert first in reply.message and second in reply.message


# --------------------------------------------------------------------------- replays, rematch and the footer's keys
def shown_keys(app: ArenaApp) -> set[str]:
    return {b.binding.action for b in app.screen.active_bindings.values() if b.binding.show}


async def test_in_a_replay_digits_do_nothing_and_the_footer_shows_only_what_works(arena):
    game_id = await arranged_game(arena.url, "minimax", "random")
    app = make_app(arena, "watcher")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.is_connected, what="connected")
        app.open_replay(game_id)
        await wait_until(pilot, lambda: isinstance(app.screen, GameScreen), what="the replay")
        screen = app.screen
        await pilot.press("home", "right")
        assert screen.shown_ply() == 1
        await pilot.press("5")
        assert screen.shown_ply() == 1  # it jumped to the end before
        assert "game is over" not in message_text(app)
        keys = shown_keys(app)
        assert "play(1)" not in keys and "resign" not in keys and "rematch" not in keys
        assert "step(-1)" in keys and "leave" in keys


async def test_rematch_from_your_own_finished_game_and_keys_while_playing(arena):
    app = make_app(arena)
    async with app.run_test(size=SIZE) as pilot:
        await choose_bot(pilot, app, "minimax")
        screen = app.screen
        keys = shown_keys(app)
        assert "play(1)" in keys and "resign" in keys and "rematch" not in keys
        await pilot.press("escape", "escape")  # resign and leave
        await wait_until(pilot, lambda: isinstance(app.screen, LobbyScreen), what="the lobby")
        games = app.screen.query_one("#games", DataTable)
        await wait_until(pilot, lambda: screen.game_id in [k.value for k in games.rows], what="the finished game")
        games.focus()
        games.move_cursor(row=[k.value for k in games.rows].index(screen.game_id))
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, GameScreen), what="the replay of my game")
        replay = app.screen
        assert "rematch" in shown_keys(app) and "play(1)" not in shown_keys(app)
        await pilot.press("r")
        await wait_until(
            pilot,
            lambda: isinstance(app.screen, GameScreen) and app.screen is not replay and not app.screen.view.replay,
            what="the rematch",
        )
        assert app.screen.view.opponent == "minimax"
        assert app.link_status.state is LinkState.CONNECTED


def test_clocks_of_both_players_and_the_low_time_warning():
    from server.game import Seat
    from tui_client.game_view import GameView

    view = GameView("g")
    view.apply(
        parse_server_frame(
            {
                "type": "game_start",
                "game_id": "g",
                "x": "ann",
                "o": "bot",
                "you": "X",
                "clock": 8.0,
                "board": ".........",
                "turn": "X",
                "deadline": 1000.0,
            }
        )
    )
    assert view.time_left(Seat.X, 995.0) == 5.0 and view.time_left(Seat.O, 995.0) == 8.0
    assert not view.low_on_time(Seat.X, 993.0) and view.low_on_time(Seat.X, 998.5)
    assert not view.low_on_time(Seat.O, 999.0)  # not its turn: its clock is not running


# --------------------------------------------------------------------------- remote bots describe themselves
async def test_a_remote_bot_describes_itself_in_hello_and_the_lobby_shows_it(arena):
    from bots.client import BotClient
    from server.players.house import RandomBot

    bot = RandomBot(name="far-random", seed=1)
    bot.description = "SmolLM2-135M-Instruct, masked move reading, steered by fixed policy 3f0c9a1d"
    client = BotClient(bot, arena.url, max_games=2)
    task = asyncio.create_task(client.run())
    try:
        await client.wait_connected()
        app = make_app(arena)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: any(b.name == "far-random" for b in app.bots), what="the remote bot")
            info = next(b for b in app.bots if b.name == "far-random")
            assert info.kind == "remote" and info.description == bot.description
            table = app.screen.query_one("#bots", DataTable)
            table.move_cursor(row=[k.value for k in table.rows].index("far-random"))
            await pilot.pause()
            assert "masked move reading" in str(app.screen.query_one("#bot-about").render())
    finally:
        await client.stop()
        task.cancel()


def test_one_default_move_reading_for_the_llm_bot_and_the_demo():
    import argparse

    pytest.importorskip("bots.llm.cli")
    from bots.llm.cli import DEFAULT_MODE, add_arguments
    from tui_client.local_arena import DEMO_LLM_ARGS

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args([]).mode == DEFAULT_MODE == "strict"
    assert "--mode" not in DEMO_LLM_ARGS  # the demo runs the command's own default
    # strict is the default because the shipped learned policy names a legal cell on every open
    # position in the bot's phrasing (its run card's exact count over all 4,520)
    import json

    from bots.llm.cli import find_shipped_policy
    from bots.llm.prompt import DEFAULT_PHRASING

    shipped = find_shipped_policy()
    assert shipped is not None and shipped.name == "learned_policy.json"
    card = json.loads(shipped.with_name("learned_policy.card.json").read_text())
    assert sum(card["positions"][DEFAULT_PHRASING][seat]["illegal"] for seat in ("X", "O")) == 0


# --------------------------------------------------------------------------- an LLM's forfeit
async def test_an_llm_forfeit_shows_the_cell_it_named_and_its_trace():
    from tests.test_tui import FIXTURE
    from tui_client.feature_panel import FeaturePanel

    trace = FIXTURE["special"]["unsteered_illegal"]  # chose 1, which X holds
    moves = [{"ply": 1, "seat": "X", "cell": 1, "at": 0.0}]
    frames = [
        {
            "type": "game_start",
            "game_id": "g7",
            "x": "ann",
            "o": "smol-llm",
            "you": "X",
            "clock": 30.0,
            "board": ".........",
            "turn": "X",
        },
        {
            "type": "state",
            "game_id": "g7",
            "x": "ann",
            "o": "smol-llm",
            "board": "X........",
            "turn": "O",
            "ply": 1,
            "moves": moves,
        },
        {
            "type": "game_over",
            "game_id": "g7",
            "x": "ann",
            "o": "smol-llm",
            "result": "X",
            "reason": "illegal_move",
            "winner": "ann",
            "board": "X........",
            "moves": moves,
            "illegal_move": {"ply": 2, "seat": "O", "cell": 1, "at": 1.0, "trace": trace, "code": "occupied"},
        },
    ]
    app = ArenaApp(None, "ann")
    async with app.run_test(size=SIZE) as pilot:
        for frame in frames:
            app.handle_frame(parse_server_frame(frame))
            await pilot.pause()
        screen = app.screen
        assert "smol-llm played the illegal move 1 (forfeit)" in status_text(app)
        assert "O1✖" in str(screen.query_one("#moves").render())
        assert screen.query_one("#cell-1").has_class("illegal")
        panel = screen.query_one(FeaturePanel).plain
        assert "chose 1" in panel and "✖ illegal" in panel
        assert screen.query_one(BoardGrid).marks == "X........"  # the refused move changed nothing


# --------------------------------------------------------------------------- the feature panel
LONG = "no clear board concept (best: cell 1 is a best move (in minimax's choice set), P=0.93, R=0.04, MCC=0.17)"


def ranked_trace() -> dict:
    """A fixture trace as the bot now sends it: features with their usual level and effect."""
    trace = dict(TRACES[0])
    feats = []
    for i, f in enumerate(trace["top_features"]):
        usual = 7.5 if i == 0 else 0.1
        feats.append(
            dict(
                f,
                usual=usual,
                deviation=round((f["activation"] - usual) / 7.5, 3),
                promotes=[5, 1][: 1 + i % 2],
                always_on=i == 0,
                label=LONG if i == 1 else f["label"],
            )
        )
    trace["top_features"] = feats
    return trace


def test_panel_cuts_labels_with_an_ellipsis_keeps_the_count_and_has_no_gap():
    import re

    from server.game import Board
    from tui_client.feature_panel import feature_panel_text
    from tui_client.trace import parse_trace

    trace = parse_trace(ranked_trace())
    assert trace.top_features[0].label == LONG or any(f.label == LONG for f in trace.top_features)
    small = feature_panel_text(trace, 49, 15, Board("X...O....")).plain.split("\n")
    assert any("#" in line and line.rstrip().endswith("…") is False and "…" in line for line in small)  # cut, marked
    assert "……" not in "\n".join(small)
    head = next(line for line in small if line.startswith("Features"))
    shown = sum(1 for line in small if line.startswith("#"))
    assert f"{shown}/{len(trace.top_features)}" in head  # how many are hidden stays visible
    wide = feature_panel_text(trace, 196, 48, Board("X...O....")).plain.split("\n")
    short = LONG.replace("no clear board concept (best: ", "unclear (best: ")  # the row's short form
    assert any(short in line for line in wide)  # the whole label fits
    longest = next(line for line in wide if short in line)
    after = longest[longest.index(short) + len(short) :]
    assert re.match(r" [█▏▎▍▌▋▊▉]", after), after  # the bars start right after the longest name: no gap


def test_panel_ranks_by_distance_from_the_usual_level_dims_always_on_and_greys_taken_cells():
    from rich.style import Style

    from server.game import Board
    from tui_client.feature_panel import OCCUPIED_STYLE, feature_panel_text, feature_tooltip
    from tui_client.trace import parse_trace

    raw = ranked_trace()
    trace = parse_trace(raw)
    devs = [abs(f.deviation) for f in trace.top_features]
    assert devs == sorted(devs, reverse=True)
    always = next(f for f in trace.top_features if f.always_on)
    text = feature_panel_text(trace, 80, 40, Board("X...O...."))
    plain = text.plain
    assert "Features · furthest from usual" in plain and "→5,1" in plain
    row_start = plain.index(f"#{always.index} ")
    assert any(span.start <= row_start < span.end and Style.parse(str(span.style)).dim for span in text.spans)
    grid = plain[plain.index("Cell probabilities") :]
    assert "chose 5" in grid and "▶O" in grid  # the chosen cell is marked (here the fixture's cell 5)
    x_at = plain.index(" X ", plain.index("Cell probabilities"))
    assert any(span.start <= x_at + 1 < span.end and span.style == OCCUPIED_STYLE for span in text.spans)
    tip = feature_tooltip(trace)
    assert LONG in tip and "always on" in tip and "pushes toward 5" in tip


async def test_question_mark_opens_the_legend():
    from tests.test_tui_snapshots import game_frames

    app = ArenaApp(None, "ann")
    async with app.run_test(size=(80, 24)) as pilot:
        for frame in game_frames([1, 5, 9, 3]):
            app.handle_frame(parse_server_frame(frame))
        await pilot.pause()
        await pilot.press("question_mark")
        assert type(app.screen).__name__ == "LegendScreen"
        text = str(app.screen.query_one("#legend-text").render())
        for term in ("precision", "recall", "Matthews", "KL", "▲", "▼", "always-on", "usual"):
            assert term in text, term
        await pilot.press("escape")
        assert isinstance(app.screen, GameScreen)


# --------------------------------------------------------------------------- move values
BLUNDER_GAME = [5, 2, 1, 9, 7, 3, 4]  # O's edge reply 2 loses (??); X's last move 4 is the only win (!)


def record_frames(cells: list[int], game_id: str = "c0ffee123456") -> list[dict]:
    from server.game import Board

    board = Board.from_moves(cells)
    moves = [{"ply": i + 1, "seat": "XO"[i % 2], "cell": c, "at": 1_700_000_000.0 + i} for i, c in enumerate(cells)]
    result = board.winner.value if board.winner is not None else "draw"
    return [
        {
            "type": "game_record",
            "game_id": game_id,
            "x": "ann",
            "o": "smol-llm",
            "result": result,
            "reason": "line" if board.winner is not None else "full_board",
            "board": board.code,
            "moves": moves,
            "started_at": 1_700_000_000.0,
            "ended_at": 1_700_000_010.0,
            "tag": None,
        }
    ]


async def test_a_replay_shows_every_moves_value_and_a_value_bar():
    from server.game import Board
    from tui_client.move_values import grade

    app = ArenaApp(None, "watcher")
    async with app.run_test(size=SIZE) as pilot:
        app._replaying.add("c0ffee123456")
        for frame in record_frames(BLUNDER_GAME):
            app.handle_frame(parse_server_frame(frame))
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, GameScreen) and screen.view.replay
        moves = str(screen.query_one("#moves").render())
        assert "O2??" in moves and "X4!" in moves and "loses" in moves
        assert grade(Board("....X...."), 2) == "??"
        value = screen.query_one("#value")
        assert value.display and "X won" in str(value.render())
        await pilot.press("home")
        assert "draw (best play)" in str(value.render())
        await pilot.press("right", "right")  # after O2??
        assert "X wins in 3" in str(value.render())
        assert "toggle_values" not in shown_keys(app)  # always on in a replay


async def test_values_on_request_in_live_play():
    from tests.test_tui_snapshots import game_frames

    app = ArenaApp(None, "ann")
    async with app.run_test(size=SIZE) as pilot:
        for frame in game_frames([1, 5, 9, 3]):
            app.handle_frame(parse_server_frame(frame))
        await pilot.pause()
        screen = app.screen
        value = screen.query_one("#value")
        assert not value.display and "?" not in str(screen.query_one("#moves").render())
        await pilot.press("v")
        assert value.display
        moves = str(screen.query_one("#moves").render())
        assert "O5!" in moves and "O3??" in moves  # the centre is O's only draw; corner 3 then loses
        assert "X wins in" in str(value.render())


# --------------------------------------------------------------------------- challenges and the pushed lobby
async def test_challenges_leave_no_toasts_and_a_pending_one_shows_in_the_lobby(arena):
    app = make_app(arena)
    notes = record_notes(app)
    async with app.run_test(size=SIZE) as pilot:
        await choose_bot(pilot, app, "minimax")
        await leave_game(pilot, app)
        async with connect(arena.url) as bob:  # a person who will not answer at once
            await bob.send(dumps({"type": "hello", "name": "bob"}))
            await bob.recv()
            app.start_challenge("bob", "X")
            status = app.screen.query_one("#lobby-status")
            await wait_until(pilot, lambda: status.display, what="the pending challenge")
            assert "waiting for an answer" in str(status.render())
            offer = parse_server_frame(await bob.recv())
            await bob.send(dumps({"type": "decline", "challenge_id": offer.challenge_id}))
            await wait_until(pilot, lambda: not status.display, what="the answer")
    assert not [n for n in notes if "Challeng" in n[1] and "declined" not in n[1]], notes


@pytest.mark.parametrize("both", [False, True], ids=["stdout-piped", "stdout-and-stderr-piped"])
def test_a_bot_piped_to_head_stops_on_one_sigterm(tmp_path, both):
    """``autosteer-bot run … | head -1`` (and ``2>&1 | head -1``): one SIGTERM ends it, cleanly."""
    import signal
    import subprocess
    import sys
    import time

    from tui_client.local_arena import free_port

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--port", str(port), "--db", ":memory:"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.5)
        err_path = tmp_path / "err.txt"
        with open(err_path, "wb") as err:
            bot = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bots.cli",
                    "run",
                    "--kind",
                    "random",
                    "--name",
                    "piped",
                    "--server",
                    f"ws://127.0.0.1:{port}",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT if both else err,
            )
            first = bot.stdout.readline()  # head -1: read one line, then go away
            bot.stdout.close()
            assert first, "the bot printed nothing"
            time.sleep(1.0)
            bot.send_signal(signal.SIGTERM)
            try:
                code = bot.wait(timeout=10)
            except subprocess.TimeoutExpired:
                bot.kill()
                bot.wait()
                raise AssertionError("one SIGTERM did not stop a bot whose reader had gone")
        assert code == 0
        assert "Traceback" not in err_path.read_text()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=10)


# --------------------------------------------------------------------------- what a player expects
async def test_the_lobby_offers_a_choice_of_time_control_and_a_rematch_keeps_it(arena):
    app = make_app(arena)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.is_connected, what="connected")
        await pilot.press("t", "t")  # server default → 10 s → 30 s
        assert "30 s a move" in str(app.screen.query_one("#side").render())
        await pilot.press("t", "t", "t", "t", "t", "t")  # 1+0 → 3+2 → 5+3 → 10+5 → default → 10
        assert "10 s a move" in str(app.screen.query_one("#side").render())
        await choose_bot(pilot, app, "random")
        first = app.screen
        assert first.view.clock == 10.0
        players = str(first.query_one("#players").render())
        assert "10 s" in players  # both clocks from move 1
        await pilot.press("R", "R")
        await wait_until(pilot, lambda: first.view.over, what="the resignation")
        await pilot.press("r")
        await wait_until(
            pilot, lambda: isinstance(app.screen, GameScreen) and app.screen is not first, what="the rematch"
        )
        assert app.screen.view.clock == 10.0 and app.screen.view.you.value == "O"


async def test_watching_two_bots_from_the_lobby_at_a_chosen_pace(arena):
    app = make_app(arena, "viewer")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: {"minimax", "random"} <= {b.name for b in app.bots}, what="the bots")
        await pilot.press("b")
        assert type(app.screen).__name__ == "BotGamePrompt"
        from textual.widgets import Select

        app.screen.query_one("#bot-x", Select).value = "random"
        app.screen.query_one("#pace", Select).value = 0.5
        await pilot.click("#start")
        await wait_until(pilot, lambda: isinstance(app.screen, GameScreen), what="the bot game")
        screen = app.screen
        assert screen.view.x == "random" and screen.view.o == "minimax" and screen.view.you is None
        await wait_until(pilot, lambda: screen.view.over, what="the end of the game (house bots play at once)")
        assert screen.shown_ply() < len(screen.view.moves)  # revealed one by one
        assert "shown at 0.5 s a move" in status_text(app)
        shown = screen.shown_ply()
        await wait_until(pilot, lambda: screen.shown_ply() > shown, timeout=3, what="the next move at the pace")
        await wait_until(pilot, lambda: screen.view_ply is None, timeout=10, what="the whole game shown")
        assert screen.query_one(BoardGrid).marks == screen.view.board.code
        assert "minimax" in status_text(app) or "Draw" in status_text(app)


async def test_the_server_pushes_lobby_changes_to_a_watch_lobby_subscriber(arena):
    async with connect(arena.url) as ws:
        await ws.send(dumps({"type": "hello", "name": "lobby-reader", "role": "spectator"}))
        await ws.recv()
        await ws.send(dumps({"type": "watch_lobby", "id": 1}))
        reply = [parse_server_frame(await ws.recv()) for _ in range(3)]
        assert [(f.type, f.id) for f in reply] == [("bots", 1), ("games", 1), ("players", 1)]
        assert reply[1].games == [] and reply[2].players == []  # a spectator is not listed as a player
        game_id = await arranged_game(arena.url, "minimax", "random")  # a player came, a game started and ended
        pushed = [parse_server_frame(await asyncio.wait_for(ws.recv(), 2.0)) for _ in range(3)]
        assert {f.type for f in pushed} == {"bots", "games", "players"} and all(f.id is None for f in pushed)
        await ws.send(dumps({"type": "watch_lobby", "on": False, "id": 2}))
        while parse_server_frame(await asyncio.wait_for(ws.recv(), 2.0)).id != 2:  # pushes already on the way
            pass
        for _ in range(2):
            assert parse_server_frame(await ws.recv()).id == 2
        await arranged_game(arena.url, "random", "random")
        with pytest.raises(asyncio.TimeoutError):  # no more pushes
            await asyncio.wait_for(ws.recv(), 0.8)
        assert game_id


async def test_the_lobby_updates_without_polling(arena):
    app = ArenaApp(arena.url, "ann", lobby_poll=600.0)  # no poll during the test: only pushes
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.lobby_pushed, what="the lobby subscription")
        from bots.client import BotClient
        from server.players.house import RandomBot

        client = BotClient(RandomBot(name="late-bot", seed=2), arena.url, max_games=1)
        task = asyncio.create_task(client.run())
        try:
            table = app.screen.query_one("#bots", DataTable)
            await wait_until(
                pilot,
                lambda: "late-bot" in [k.value for k in table.rows],
                timeout=5,
                what="the new bot pushed into the lobby",
            )
        finally:
            await client.stop()
            task.cancel()
        await wait_until(
            pilot,
            lambda: "late-bot" not in [k.value for k in table.rows],
            timeout=5,
            what="the bot gone from the lobby",
        )


async def test_game_history_filters_by_player_and_result(arena):
    from tui_client.screens import RecordsScreen

    app = make_app(arena)
    async with app.run_test(size=SIZE) as pilot:
        for bot in ("random", "minimax"):  # ann resigns both: two losses
            await choose_bot(pilot, app, bot)
            await leave_game(pilot, app)
        await arranged_game(arena.url, "minimax", "minimax")  # not ann's
        await pilot.press("f")
        screen = app.screen
        assert isinstance(screen, RecordsScreen)
        table = screen.query_one("#records", DataTable)
        await wait_until(pilot, lambda: table.row_count == 3, what="all three games")
        await pilot.press("m")
        await wait_until(pilot, lambda: table.row_count == 2, what="ann's games")
        await pilot.press("e")  # won
        assert table.row_count == 0 and "won" in str(screen.query_one("#records-status").render())
        await pilot.press("e")  # lost
        assert table.row_count == 2
        await pilot.press("p")
        await pilot.press(*"random", "enter")
        await wait_until(pilot, lambda: table.row_count == 1, what="ann's games against random")
        assert "against random, lost" in str(screen.query_one("#records-status").render())
        assert set(table.get_row_at(0)[1:3]) == {"ann", "random"}


async def test_a_person_in_the_lobby_can_be_challenged_and_accepts(arena):
    app = make_app(arena)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.lobby_pushed, what="the lobby subscription")
        async with connect(arena.url) as bob:
            await bob.send(dumps({"type": "hello", "name": "bob"}))
            await bob.recv()
            table = await select_in_lobby(pilot, app, "bob", timeout=5)
            assert table.get_row("bob")[1] == "person"
            await pilot.pause()
            assert "is a person" in str(app.screen.query_one("#bot-about").render())
            await pilot.press("enter")
            while True:
                frame = parse_server_frame(await asyncio.wait_for(bob.recv(), 5))
                if frame.type == "challenge":
                    break
            assert frame.challenger == "ann" and frame.side == "O"
            await bob.send(dumps({"type": "accept", "challenge_id": frame.challenge_id}))
            await wait_until(pilot, lambda: isinstance(app.screen, GameScreen), what="the game with bob")
            assert app.screen.view.o == "bob" and app.screen.view.you.value == "X"


async def test_a_premove_is_played_when_the_turn_comes_and_dropped_if_taken(arena):
    app = make_app(arena)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.lobby_pushed, what="connected")
        async with connect(arena.url) as bob:
            await bob.send(dumps({"type": "hello", "name": "bob"}))
            await bob.recv()
            await select_in_lobby(pilot, app, "bob", timeout=5)
            await pilot.press("enter")

            async def bob_frame(kind: str):
                while True:
                    frame = parse_server_frame(await asyncio.wait_for(bob.recv(), 5))
                    if frame.type == kind:
                        return frame

            offer = await bob_frame("challenge")
            await bob.send(dumps({"type": "accept", "challenge_id": offer.challenge_id}))
            await wait_until(pilot, lambda: isinstance(app.screen, GameScreen), what="the game with bob")
            screen = app.screen
            await pilot.press("5")
            await wait_until(pilot, lambda: len(screen.view.moves) == 1, what="my move")
            await pilot.press("1")  # bob's turn: a premove
            assert "Premove 1" in message_text(app) and screen.query_one("#cell-1").has_class("premove")
            await bob.send(dumps({"type": "move", "game_id": screen.game_id, "cell": 9}))
            await wait_until(pilot, lambda: len(screen.view.moves) == 3, what="the premove played at once")
            assert screen.view.moves[2].cell == 1 and screen.premove is None
            await pilot.press("3")  # premove 3, then bob takes 3: it is dropped
            await bob.send(dumps({"type": "move", "game_id": screen.game_id, "cell": 3}))
            await wait_until(pilot, lambda: len(screen.view.moves) == 4, what="bob's move")
            await pilot.pause(0.2)
            assert "Premove 3 dropped" in message_text(app) and len(screen.view.moves) == 4 and screen.view.my_turn


async def test_tournament_standings_from_its_tagged_games(arena):
    from tui_client.screens import RecordsScreen

    results = []
    async with connect(arena.url) as organiser:
        await organiser.send(dumps({"type": "hello", "name": "cup-organiser"}))
        await organiser.recv()
        for x, o in (("minimax", "random"), ("random", "minimax"), ("minimax", "minimax")):
            await organiser.send(dumps({"type": "arrange", "x": x, "o": o, "tag": "cup-7", "seed": 5}))
            while True:
                frame = parse_server_frame(await organiser.recv())
                if frame.type == "game_over":
                    results.append((x, o, frame.result))
                    break
    expected: dict[str, float] = {}
    for x, o, result in results:
        for seat, name in (("X", x), ("O", o)):
            expected[name] = expected.get(name, 0.0) + (0.5 if result == "draw" else 1.0 if result == seat else 0.0)
    app = make_app(arena, "viewer")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.is_connected, what="connected")
        await pilot.press("f")
        records = app.screen
        assert isinstance(records, RecordsScreen)
        table = records.query_one("#records", DataTable)
        await wait_until(pilot, lambda: table.row_count == 3, what="the tagged games")
        await pilot.press("T")
        assert type(app.screen).__name__ == "StandingsScreen"
        standings = app.screen.query_one("#standings", DataTable)
        await wait_until(pilot, lambda: standings.row_count == 2, what="the standings")
        shown = {standings.get_row_at(i)[1]: float(standings.get_row_at(i)[2]) for i in range(2)}
        assert shown == expected
        assert "3 finished" in str(app.screen.query_one("#standings-status").render())


def test_doctests_of_the_new_tui_modules():
    import doctest

    import bots.llm.bot
    import tui_client.feature_panel
    import tui_client.move_values
    import tui_client.records_screen

    for module in (tui_client.move_values, tui_client.records_screen, tui_client.feature_panel, bots.llm.bot):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted > 0, module.__name__
