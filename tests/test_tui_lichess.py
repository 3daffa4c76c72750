"""The TUI playing people and bots as on lichess, driven with Pilot against a real server on
an ephemeral port (other players are real WebSocket clients): one challenge at a time,
quitting that asks first, the opponent's leaving counted down, time controls, rematch
offers, the value bar at the end, and the house levels in the lobby."""

from __future__ import annotations

import re
import time

import pytest

from server.app import ServerConfig, serve_arena
from server.protocol import parse_server_frame
from tests.helpers_ws import WsClient
from tests.test_tui import (
    SIZE,
    arena,  # noqa: F401 (the fixture)
    choose_bot,
    make_app,
    message_text,
    select_in_lobby,
    status_text,
    wait_until,
)
from tests.test_tui_play import record_sent
from textual.widgets import DataTable
from tui_client.app import ArenaApp
from tui_client.connection import LinkState
from tui_client.screens import ChallengePrompt, GameScreen, LobbyScreen, QuitPrompt

pytestmark = pytest.mark.timeout(40)


def lobby_status(app: ArenaApp) -> str:
    return str(app.screen.query_one("#lobby-status").render()) if isinstance(app.screen, LobbyScreen) else ""


def prompt_text(app: ArenaApp) -> str:
    return " ".join(str(label.render()) for label in app.screen.query("Label"))


async def connected(pilot, app: ArenaApp) -> None:
    await wait_until(pilot, lambda: app.link_status.state is LinkState.CONNECTED, what="connected")


async def game_with_person(pilot, app: ArenaApp, bob: WsClient) -> GameScreen:
    """ann (the app) challenges bob from the lobby, bob accepts: ann's game screen."""
    await select_in_lobby(pilot, app, "bob")
    await pilot.press("enter")
    offer = await bob.wait_for("challenge")
    await bob.request(type="accept", challenge_id=offer["challenge_id"])
    await wait_until(pilot, lambda: isinstance(app.screen, GameScreen), what="the game screen")
    return app.screen  # type: ignore[return-value]


# --------------------------------------------------------------------------- one challenge at a time
async def test_repeated_enter_in_the_lobby_starts_one_game(arena):
    app = make_app(arena)
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot, app)
        sent = record_sent(app)
        await select_in_lobby(pilot, app, "random")
        await pilot.press("enter", "enter", "enter", "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, GameScreen), what="the game screen")
        await pilot.pause(0.5)
        assert [f["opponent"] for f in sent if f["type"] == "challenge"] == ["random"]
        assert len([v for v in app.games.values() if v.you is not None]) == 1
        assert len([s for s in app.screen_stack if isinstance(s, GameScreen)]) == 1


async def test_a_second_enter_on_a_person_says_the_challenge_is_pending(arena):
    app = make_app(arena)
    async with app.run_test(size=SIZE) as pilot, WsClient.connect(arena.url, "bob") as bob:
        await connected(pilot, app)
        await select_in_lobby(pilot, app, "bob")
        await pilot.press("enter")
        await bob.wait_for("challenge")
        await wait_until(pilot, lambda: "waiting for an answer" in lobby_status(app), what="the challenge sent")
        await pilot.press("enter")
        await wait_until(pilot, lambda: "pending" in lobby_status(app), what="the pending notice")
        assert "Your challenge to bob is pending" in lobby_status(app)
        await bob.expect_silence(0.5)  # no second challenge


# --------------------------------------------------------------------------- quitting
@pytest.mark.parametrize("key", ["q", "ctrl+q"])
async def test_quitting_during_a_live_game_asks_first_and_says_what_it_costs(arena, key):
    app = make_app(arena)
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot, app)
        await choose_bot(pilot, app, "minimax")
        game = app.screen
        await pilot.press(key)
        await wait_until(pilot, lambda: isinstance(app.screen, QuitPrompt), what="the quit question")
        assert "resigns your game against minimax: you lose it" in prompt_text(app)
        await pilot.press("n")
        assert app.screen is game and not game.view.over and app.is_running
        sent = record_sent(app)
        await pilot.press(key)
        await wait_until(pilot, lambda: isinstance(app.screen, QuitPrompt), what="the quit question")
        await pilot.press("y")
        await wait_until(pilot, lambda: not app.is_running, what="the app to quit")
    assert [f["type"] for f in sent] == ["resign"]


async def test_quitting_from_the_lobby_with_no_game_does_not_ask(arena):
    app = make_app(arena)
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot, app)
        await pilot.press("q")
        await wait_until(pilot, lambda: not app.is_running, what="the app to quit")


async def test_the_resign_question_is_cleared_once_the_game_ends(arena):
    app = make_app(arena)
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot, app)
        await choose_bot(pilot, app, "random")
        screen = app.screen
        await pilot.press("R")
        assert "Press R again" in message_text(app)
        await pilot.press("R")
        await wait_until(pilot, lambda: screen.view.over, what="the resignation")
        await pilot.pause(0.1)
        assert "Resign?" not in message_text(app)


# --------------------------------------------------------------------------- the opponent leaves
async def test_the_opponent_sees_at_once_that_a_player_left_with_the_grace_counting_down():
    config = ServerConfig(
        host="127.0.0.1", port=0, db_path=":memory:", move_clock=30.0, grace=20.0, house_bots=True, seed=0
    )
    async with serve_arena(config) as srv:
        app = make_app(srv)
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot, app)
            async with WsClient.connect(srv.url, "bob") as bob:
                await game_with_person(pilot, app, bob)
            left_at = time.time()
            await wait_until(pilot, lambda: "bob left" in status_text(app), timeout=3, what="the notice")
            assert time.time() - left_at < 2.0
            first = status_text(app)
            assert re.fullmatch(r"bob left: you win in (19|20) s unless bob returns", first), first
            await wait_until(pilot, lambda: status_text(app) != first, timeout=3, what="the countdown")
            assert re.fullmatch(r"bob left: you win in 1[789] s unless bob returns", status_text(app))


# --------------------------------------------------------------------------- time controls
async def test_a_time_control_chosen_in_the_lobby_shows_on_both_clocks(arena):
    app = make_app(arena)
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot, app)
        sent = record_sent(app)
        for _ in range(10):
            if "3+2" in str(app.screen.query_one("#side").render()):
                break
            await pilot.press("t")
        assert "3+2 (3 min + 2 s a move)" in str(app.screen.query_one("#side").render())
        await choose_bot(pilot, app, "minimax")
        challenge = next(f for f in sent if f["type"] == "challenge")
        assert challenge["time_control"] == {"base": 180.0, "increment": 2.0} and "clock" not in challenge
        players = str(app.screen.query_one("#players").render())
        assert re.search(r"ann \(you\)\s+2:5\d|ann \(you\)\s+3:00", players) and "minimax  3:00" in players
        assert app.screen.query_one("#record").border_title == "Moves · 3+2"
        deadline, before = app.screen.view.deadline, time.time()
        await pilot.press("5")
        await wait_until(pilot, lambda: len(app.screen.view.moves) == 2, what="minimax's answer")
        x_clock = app.screen.view.clocks[app.screen.view.you]
        assert (
            deadline - time.time() + 2 - 0.1 <= x_clock <= deadline - before + 2 + 0.1
        )  # the increment, added by the server


async def test_the_challenged_person_sees_the_time_control(arena):
    app = make_app(arena)
    async with app.run_test(size=SIZE) as pilot, WsClient.connect(arena.url, "bob") as bob:
        await connected(pilot, app)
        await bob.request(type="challenge", opponent="ann", side="X", time_control={"base": 300, "increment": 3})
        await wait_until(pilot, lambda: isinstance(app.screen, ChallengePrompt), what="the challenge")
        assert "bob challenges you at 5+3; you would play O." in prompt_text(app)


async def test_a_running_clock_low_on_time_turns_red():
    app = ArenaApp(None, "ann")
    async with app.run_test(size=SIZE) as pilot:
        now = time.time()
        app.handle_frame(
            parse_server_frame(
                {
                    "type": "game_start",
                    "game_id": "g1",
                    "x": "ann",
                    "o": "bob",
                    "you": "X",
                    "clock": 60.0,
                    "board": ".........",
                    "turn": "X",
                    "deadline": now + 6.0,
                    "time_control": {"base": 60, "increment": 0},
                    "clocks": {"X": 6.0, "O": 42.0},
                }
            )
        )
        await wait_until(pilot, lambda: isinstance(app.screen, GameScreen), what="the game")
        await pilot.pause(0.1)
        assert app.screen.query_one("#status").has_class("low-time")
        assert "s left!" in status_text(app)
        players = str(app.screen.query_one("#players").render())
        shown = re.search(
            r"ann \(you\)\s+(\d\.\d)", players
        )  # tenths under 10 s; how many depends on the machine's speed
        assert shown and 0.0 < float(shown.group(1)) <= 6.0 and "bob  0:42" in players, players


# --------------------------------------------------------------------------- rematch
async def game_bob_resigned(pilot, app, bob):
    """A game of the app's player against bob, which bob has just resigned."""
    await connected(pilot, app)
    screen = await game_with_person(pilot, app, bob)
    await bob.request(type="resign", game_id=screen.game_id)
    await wait_until(pilot, lambda: screen.view.over, what="the end")
    return screen


async def test_a_rematch_offer_shows_waiting_to_the_offerer(arena):
    app = make_app(arena)
    async with app.run_test(size=SIZE) as pilot, WsClient.connect(arena.url, "bob") as bob:
        screen = await game_bob_resigned(pilot, app, bob)
        await pilot.press("r")
        offer = await bob.wait_for("challenge")
        assert offer["rematch_of"] == screen.game_id and offer["side"] != screen.view.you.other.value
        await wait_until(pilot, lambda: "Rematch offered to bob, waiting" in message_text(app), what="the waiting line")
        await pilot.press("r")
        assert "Rematch already offered to bob" in message_text(app)
        await bob.expect_silence(0.3)
        await bob.request(type="decline", challenge_id=offer["challenge_id"])
        await wait_until(pilot, lambda: "Rematch declined" in message_text(app), what="the answer")


async def test_a_rematch_offered_to_you_says_sides_swapped_and_the_time_control(arena):
    app = make_app(arena)
    async with app.run_test(size=SIZE) as pilot, WsClient.connect(arena.url, "bob") as bob:
        screen = await game_bob_resigned(pilot, app, bob)
        mine = screen.view.you.value
        await bob.request(type="challenge", opponent="ann", side=mine, clock=30, rematch_of=screen.game_id)
        await wait_until(pilot, lambda: isinstance(app.screen, ChallengePrompt), what="the rematch offer")
        other = "O" if mine == "X" else "X"
        assert (
            f"bob offers a rematch (sides swapped, same time control: 30 s a move): you would play {other}. y / n"
            in prompt_text(app)
        )
        await pilot.press("y")
        await wait_until(
            pilot,
            lambda: isinstance(app.screen, GameScreen) and app.screen.game_id != screen.game_id,
            what="the rematch",
        )
        assert app.screen.view.you.value == other


async def test_a_spectator_follows_the_rematch(arena):
    app = make_app(arena, "watcher")
    async with (
        app.run_test(size=SIZE) as pilot,
        WsClient.connect(arena.url, "ann") as ann,
        WsClient.connect(arena.url, "bob") as bob,
    ):
        await connected(pilot, app)
        await ann.request(type="challenge", opponent="bob", side="X")
        offer = await bob.wait_for("challenge")
        await bob.request(type="accept", challenge_id=offer["challenge_id"])
        first = offer["challenge_id"]
        app.start_watching(first)
        await wait_until(
            pilot, lambda: isinstance(app.screen, GameScreen) and app.screen.game_id == first, what="watching"
        )
        await ann.request(type="resign", game_id=first)
        await wait_until(pilot, lambda: app.screen.view.over, what="the end")
        await bob.request(type="challenge", opponent="ann", side="X", rematch_of=first)
        rematch = await ann.wait_for("challenge")
        await ann.request(type="accept", challenge_id=rematch["challenge_id"])
        await wait_until(
            pilot,
            lambda: isinstance(app.screen, GameScreen) and app.screen.game_id == rematch["challenge_id"],
            what="the spectator on the rematch",
        )
        assert app.screen.view.x == "bob" and app.screen.view.you is None


# --------------------------------------------------------------------------- how the game ended
async def test_the_value_bar_says_the_game_was_lost_on_time():
    app = ArenaApp(None, "ann")
    async with app.run_test(size=SIZE) as pilot:
        moves = [{"ply": 1, "seat": "X", "cell": 5, "at": 1.0}, {"ply": 2, "seat": "O", "cell": 1, "at": 2.0}]
        app.handle_frame(
            parse_server_frame(
                {
                    "type": "game_start",
                    "game_id": "g1",
                    "x": "ann",
                    "o": "bob",
                    "you": "X",
                    "clock": 30.0,
                    "board": ".........",
                    "turn": "X",
                }
            )
        )
        app.handle_frame(
            parse_server_frame(
                {
                    "type": "game_over",
                    "game_id": "g1",
                    "x": "ann",
                    "o": "bob",
                    "result": "O",
                    "reason": "timeout",
                    "winner": "bob",
                    "board": "O...X....",
                    "moves": moves,
                }
            )
        )
        await wait_until(pilot, lambda: isinstance(app.screen, GameScreen), what="the game")
        await pilot.pause(0.1)
        value = str(app.screen.query_one("#value").render())
        assert "O won on time (the board: draw (best play))" in value and "███│░░░" in value
        record = str(app.screen.query_one("#record").render())
        assert "bob wins: ann ran out of time" in record
        await pilot.press("left")  # a position before the end is valued as it stood
        assert "draw (best play)" in str(app.screen.query_one("#value").render())
        assert "won on time" not in str(app.screen.query_one("#value").render())


@pytest.mark.parametrize(
    ("reason", "words"), [("resign", "X won by resignation"), ("disconnect", "X won by abandonment")]
)
async def test_the_value_bar_says_how_a_game_was_won_off_the_board(reason, words):
    app = ArenaApp(None, "ann")
    async with app.run_test(size=SIZE) as pilot:
        app.handle_frame(
            parse_server_frame(
                {
                    "type": "game_start",
                    "game_id": "g1",
                    "x": "ann",
                    "o": "bob",
                    "you": "X",
                    "clock": 30.0,
                    "board": ".........",
                    "turn": "X",
                }
            )
        )
        app.handle_frame(
            parse_server_frame(
                {
                    "type": "game_over",
                    "game_id": "g1",
                    "x": "ann",
                    "o": "bob",
                    "result": "X",
                    "reason": reason,
                    "winner": "ann",
                    "board": ".........",
                    "moves": [],
                }
            )
        )
        await wait_until(pilot, lambda: isinstance(app.screen, GameScreen), what="the game")
        await pilot.pause(0.1)
        assert words in str(app.screen.query_one("#value").render())


# --------------------------------------------------------------------------- levels
async def test_the_lobby_shows_each_level_with_its_scores(arena):
    app = make_app(arena)
    async with app.run_test(size=(120, 30)) as pilot:
        await connected(pilot, app)
        table = await select_in_lobby(pilot, app, "medium")
        assert isinstance(table, DataTable)
        row = table.get_row("medium")
        assert row[2] == "30%·82%"

        def about() -> str:
            return str(app.screen.query_one("#bot-about").render())

        await wait_until(pilot, lambda: "medium" in about() or "30%" in about(), what="the level described")
        assert "scores 30% against minimax, 82% against random" in about()
