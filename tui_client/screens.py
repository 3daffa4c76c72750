"""The lobby (bots, people and games online) and, for the app, every screen in one place.

The screens live in their own modules (``screen_base``, ``prompts``, ``records_screen``,
``game_screen``); this module holds the lobby and re-exports the rest.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.coordinate import Coordinate
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Label, Static

from server.protocol import BotInfo
from tui_client.game_screen import MARK_MEANINGS, MARK_STYLES, GameScreen
from tui_client.game_view import TimeControl
from tui_client.prompts import (
    LEGEND,
    PACES,
    BotGamePrompt,
    ChallengePrompt,
    GameIdPrompt,
    LegendScreen,
    QuitPrompt,
    TextPrompt,
)
from tui_client.records_screen import (
    RESULT_FILTERS,
    RecordsScreen,
    Standing,
    StandingsScreen,
    describe_result,
    keep_record,
    standings,
)
from tui_client.screen_base import ConnectionBar, OfArenaApp

__all__ = [
    "BotGamePrompt",
    "ChallengePrompt",
    "ConnectionBar",
    "GameIdPrompt",
    "GameScreen",
    "LEGEND",
    "LegendScreen",
    "LobbyScreen",
    "MARK_MEANINGS",
    "MARK_STYLES",
    "OfArenaApp",
    "PACES",
    "QuitPrompt",
    "RESULT_FILTERS",
    "RecordsScreen",
    "Standing",
    "StandingsScreen",
    "TextPrompt",
    "describe_result",
    "keep_record",
    "standings",
]

SIDES = ("X", "O", "random")
#: the clocks the lobby offers: seconds per move (None: the server's default) or a time
#: control of base + increment for the whole game, as on lichess
CLOCKS: tuple[float | TimeControl | None, ...] = (
    None,
    10.0,
    30.0,
    TimeControl(60, 0),
    TimeControl(180, 2),
    TimeControl(300, 3),
    TimeControl(600, 5),
)


def describe_clock(clock: float | TimeControl | None) -> str:
    """``server default``, ``30 s a move`` or ``3+2 (3 min + 2 s a move)``."""
    if clock is None:
        return "server default"
    if isinstance(clock, TimeControl):
        return f"{clock} ({clock.base / 60:g} min + {clock.increment:g} s a move)"
    return f"{clock:g} s a move"


def describe_level(bot: BotInfo) -> str:
    """A house level's strength, from its exact scores (``level`` in the lobby's bot list):
    ``scores 30 % against minimax, 82 % against random``; ``""`` for other bots."""
    level = getattr(bot, "level", None)
    if not isinstance(level, dict):
        return ""
    try:
        vs_minimax, vs_random = float(level["vs_minimax"]), float(level["vs_random"])
    except (KeyError, TypeError, ValueError):
        return ""
    return f"scores {vs_minimax:.0%} against minimax, {vs_random:.0%} against random"


# --------------------------------------------------------------------------- lobby
class LobbyScreen(OfArenaApp, Screen):
    """Bots online and games: Enter on a bot challenges it, Enter on a game watches or replays it."""

    BINDINGS = [
        Binding("s", "cycle_side", "Side"),
        Binding("t", "cycle_clock", "Clock"),
        Binding("b", "bot_game", "Bot game"),
        Binding("f", "finished_games", "Finished games"),
        Binding("g", "replay_by_id", "Replay by id"),
        Binding("r", "refresh", "Refresh", show=False),  # the server pushes the lobby (watch_lobby)
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self) -> None:
        super().__init__(id="lobby")
        self.side = "X"
        self.clock: float | TimeControl | None = None
        self.last_bot_game: tuple[str, str, float] | None = None  # (x, o, pace) the bot-game dialog offers again

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield ConnectionBar(id="connection")
        yield Static("", id="llm-notice")
        with Horizontal(id="lobby-tables"):
            with Vertical(id="bots-pane"):
                yield Label("Opponents online · Enter to play", classes="pane-title")
                yield DataTable(id="bots", cursor_type="row", zebra_stripes=True)
                yield Static("", id="bot-about")
            with Vertical(id="games-pane"):
                yield Label("Games · Enter to watch or replay", classes="pane-title")
                yield DataTable(id="games", cursor_type="row", zebra_stripes=True)
        yield Static("", id="lobby-status")
        yield Static("", id="side")
        yield Footer()

    def on_mount(self) -> None:
        bots = self.query_one("#bots", DataTable)
        bots.add_column("Opponent", key="name")
        bots.add_column("Kind", key="kind")
        bots.add_column("Score", key="level")  # against minimax · against random (the line below says so)
        bots.add_column("Playing", key="games")
        games = self.query_one("#games", DataTable)
        games.add_column("Game", key="game")
        games.add_column("X", key="x")
        games.add_column("O", key="o")
        games.add_column("State", key="state")
        self.update_side()
        self.refresh_lobby()
        bots.focus()

    def update_side(self) -> None:
        label = {"X": "X (you move first)", "O": "O (the bot moves first)", "random": "random"}[self.side]
        self.query_one("#side", Static).update(
            f"You play: [b]{label}[/b] (s)   Clock: [b]{describe_clock(self.clock)}[/b] (t)"
        )

    def action_cycle_clock(self) -> None:
        self.clock = CLOCKS[(CLOCKS.index(self.clock) + 1) % len(CLOCKS)]
        self.update_side()

    def action_cycle_side(self) -> None:
        self.side = SIDES[(SIDES.index(self.side) + 1) % len(SIDES)]
        self.update_side()

    def action_refresh(self) -> None:
        self.arena.request_lobby()

    def action_bot_game(self) -> None:
        names = [b.name for b in self.arena.bots if b.name != self.arena.player_name]
        if not names:
            self.notify("No bots online yet.", timeout=3)
            return

        def done(choice: tuple[str, str, float] | None) -> None:
            if choice:
                self.last_bot_game = choice  # offered again next time
                self.arena.arrange_game(*choice, clock=self.clock if not isinstance(self.clock, TimeControl) else None)

        house = [b.name for b in self.arena.bots if b.kind == "house"]
        self.app.push_screen(BotGamePrompt(names, house, self.last_bot_game), done)

    def action_finished_games(self) -> None:
        self.app.push_screen(RecordsScreen())

    def action_replay_by_id(self) -> None:
        def done(game_id: str | None) -> None:
            if game_id:
                self.arena.open_replay(game_id)

        self.app.push_screen(GameIdPrompt(), done)

    def refresh_lobby(self) -> None:
        notice = self.arena.llm_notice
        bar = self.query_one("#llm-notice", Static)
        bar.update(notice or "")
        bar.display = bool(notice)
        status = self.query_one("#lobby-status", Static)
        status.update(self.arena.lobby_status)
        status.display = bool(self.arena.lobby_status)

        bots = self.query_one("#bots", DataTable)
        cursor = bots.cursor_row
        bots.clear()
        for bot in self.arena.bots:
            if bot.name == self.arena.player_name:
                continue
            load = f"{bot.games} of {bot.max_games}" if bot.max_games > 0 else str(bot.games)
            bots.add_row(bot.name, bot.kind, _strength(bot), load, key=bot.name)
        for person in self.arena.players:
            if person.name not in bots.rows:
                bots.add_row(person.name, "person", "", str(person.games), key=person.name)
        if bots.row_count:
            bots.move_cursor(row=min(cursor, bots.row_count - 1))
        self._describe_bot()

        games = self.query_one("#games", DataTable)
        cursor = games.cursor_row
        games.clear()
        for summary in self.arena.live_games:
            state = f"move {summary.ply + 1}" if summary.turn else "over"
            games.add_row(summary.game_id[:10], summary.x, summary.o, state, key=summary.game_id)
        for view in self.arena.finished_games:
            if view.game_id in games.rows:
                continue
            games.add_row(view.game_id[:10], view.x, view.o, "replay", key=view.game_id)
        if games.row_count:
            games.move_cursor(row=min(cursor, games.row_count - 1))

    def _describe_bot(self) -> None:
        bots = self.query_one("#bots", DataTable)
        about = ""
        if bots.row_count:
            name = bots.coordinate_to_cell_key(Coordinate(bots.cursor_row, 0)).row_key.value
            info = next((b for b in self.arena.bots if b.name == name), None)
            if info is not None:
                about = info.description or ("a remote bot" if info.kind == "remote" else "")
                level = describe_level(info)
                if level:
                    about = f"{level} (win 1, draw ½, as X and O) · {about}"
            elif any(p.name == name for p in self.arena.players):
                about = f"{name} is a person: Enter challenges them, and they accept or decline."
        elif not self.arena.bots:
            about = "No bots online yet."
        self.query_one("#bot-about", Static).update(about.replace("\n", " "))

    @on(DataTable.RowHighlighted, "#bots")
    def bot_highlighted(self) -> None:
        self._describe_bot()

    @on(DataTable.RowSelected, "#bots")
    def challenge_bot(self, event: DataTable.RowSelected) -> None:
        opponent = str(event.row_key.value)
        if isinstance(self.clock, TimeControl):
            self.arena.start_challenge(opponent, self.side, time_control=self.clock)
        else:
            self.arena.start_challenge(opponent, self.side, self.clock)

    @on(DataTable.RowSelected, "#games")
    def open_game(self, event: DataTable.RowSelected) -> None:
        game_id = str(event.row_key.value)
        known = self.arena.games.get(game_id)
        if known is not None and (known.over or known.replay):
            self.arena.open_replay(game_id)
        elif any(g.game_id == game_id and g.turn for g in self.arena.live_games):
            self.arena.start_watching(game_id)
        else:
            self.arena.open_replay(game_id)


def _strength(bot: BotInfo) -> str:
    """The lobby's Score column: ``30%·82%`` (score against minimax · against random)."""
    level = getattr(bot, "level", None)
    if not isinstance(level, dict):
        return ""
    try:
        return f"{float(level['vs_minimax']):.0%}·{float(level['vs_random']):.0%}"
    except (KeyError, TypeError, ValueError):
        return ""
