"""The app's screens: the lobby, the server's finished games, a game (live, watched or replayed) and the prompts."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.timer import Timer
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, Select, Static

from server.game import Seat
from tui_client.board_widget import BoardGrid, CellChosen
from tui_client.connection import LinkState
from tui_client.feature_panel import FeaturePanel
from tui_client.game_view import GameView
from tui_client.move_values import describe_value, value_bar, value_for_x

#: how the move list shows the solved game's judgement of a move
MARK_STYLES = {"??": "b $error", "?": "b $warning", "!": "b $success"}
MARK_MEANINGS = {"??": "?? loses", "?": "? lets a win go", "!": "! only move"}

if TYPE_CHECKING:
    from server.protocol import RecordSummary
    from tui_client.app import ArenaApp

SIDES = ("X", "O", "random")
#: the time controls the lobby offers (seconds per move; None: the server's default)
CLOCKS: tuple[float | None, ...] = (None, 10.0, 30.0, 60.0, 300.0)


class OfArenaApp:
    """Typed access to the running :class:`ArenaApp` for its screens and widgets."""

    @property
    def arena(self) -> "ArenaApp":
        return self.app  # type: ignore[attr-defined,return-value]


class ConnectionBar(OfArenaApp, Static):
    """One line: connected / reconnecting / disconnected."""

    def on_mount(self) -> None:
        self.arena.update_connection_bars()


# --------------------------------------------------------------------------- lobby
class LobbyScreen(OfArenaApp, Screen):
    """Bots online and games: Enter on a bot challenges it, Enter on a game watches or replays it."""

    BINDINGS = [
        Binding("s", "cycle_side", "Side"),
        Binding("t", "cycle_clock", "Clock"),
        Binding("b", "bot_game", "Bot game"),
        Binding("f", "finished_games", "Finished games"),
        Binding("g", "replay_by_id", "Replay by id"),
        Binding("r", "refresh", "Refresh"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self) -> None:
        super().__init__(id="lobby")
        self.side = "X"
        self.clock: float | None = None

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield ConnectionBar(id="connection")
        yield Static("", id="llm-notice")
        with Horizontal(id="lobby-tables"):
            with Vertical(id="bots-pane"):
                yield Label("Bots and players online · Enter to play", classes="pane-title")
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
        bots.add_column("Bot", key="name")
        bots.add_column("Kind", key="kind")
        bots.add_column("Games", key="games")
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
        clock = "server default" if self.clock is None else f"{self.clock:g} s a move"
        self.query_one("#side", Static).update(f"You play: [b]{label}[/b] (s)   Clock: [b]{clock}[/b] (t)")

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
                self.arena.arrange_game(*choice, clock=self.clock)
        self.app.push_screen(BotGamePrompt(names), done)

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
            load = f"{bot.games}/{bot.max_games}" if bot.max_games > 0 else str(bot.games)
            bots.add_row(bot.name, bot.kind, load, key=bot.name)
        for person in self.arena.players:
            if person.name not in bots.rows:
                bots.add_row(person.name, "player", str(person.games), key=person.name)
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
            name = bots.coordinate_to_cell_key((bots.cursor_row, 0)).row_key.value
            info = next((b for b in self.arena.bots if b.name == name), None)
            if info is not None:
                about = info.description or ("a remote bot" if info.kind == "remote" else "")
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


# --------------------------------------------------------------------------- stored games
def describe_result(result: str, reason: str) -> str:
    """A records row's result: ``"O won · line"``, ``"draw · full board"``, ``"aborted"``."""
    why = reason.replace("_", " ")
    if result == "draw":
        return f"draw · {why}"
    if result in ("X", "O"):
        return f"{result} won · {why}"
    return "aborted"


RESULT_FILTERS = ("all", "won", "lost", "drawn")


def keep_record(game: "RecordSummary", me: str, *, only_mine: bool, opponent: str | None, result: str) -> bool:
    """Whether a finished game passes the records screen's filters: ``only_mine`` (games
    ``me`` played), ``opponent`` (games against that name, or of it) and ``result`` (``won``,
    ``lost``, ``drawn`` by ``me``, or by ``opponent`` when it is not ``me``'s game list).

    >>> from server.protocol import RecordSummary
    >>> g = RecordSummary(game_id="g", x="ann", o="minimax", result="O", reason="line", ply=6)
    >>> keep_record(g, "ann", only_mine=True, opponent="minimax", result="lost")
    True
    >>> keep_record(g, "ann", only_mine=True, opponent=None, result="won")
    False
    """
    players = (game.x, game.o)
    if only_mine and me not in players:
        return False
    if opponent and opponent not in players:
        return False
    if result == "all":
        return True
    who = me if (only_mine or me in players) else opponent
    if who not in players:
        return False
    if result == "drawn":
        return game.result == "draw"
    won = game.result in ("X", "O") and players["XO".index(game.result)] == who
    lost = game.result in ("X", "O") and not won
    return won if result == "won" else lost


class RecordsScreen(OfArenaApp, Screen):
    """Finished games from the server's records, newest first: Enter replays one move by move.
    Filters: only mine (m), a player or opponent (p), the result (e)."""

    BINDINGS = [
        Binding("o", "older", "Older games"),
        Binding("m", "toggle_mine", "Only mine"),
        Binding("p", "player_filter", "Player"),
        Binding("e", "cycle_result", "Result"),
        Binding("r", "refresh", "Refresh"),
        Binding("escape", "app.pop_screen", "Lobby"),
    ]

    def __init__(self) -> None:
        super().__init__(id="records-screen")
        self.only_mine = False
        self.opponent: str | None = None  # games of (or against) this player only
        self.result = "all"

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield ConnectionBar(id="connection")
        yield Label("Finished games on the server · Enter to replay", classes="pane-title", id="records-title")
        yield DataTable(id="records", cursor_type="row", zebra_stripes=True)
        yield Static("", id="records-status")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#records", DataTable)
        table.add_column("Ended", key="ended")
        table.add_column("X", key="x")
        table.add_column("O", key="o")
        table.add_column("Result", key="result")
        table.add_column("Moves", key="ply")
        table.add_column("Tag", key="tag")
        table.add_column("Game", key="game")
        self.sub_title = "finished games"
        table.focus()
        self.refresh_records()
        self.action_refresh()

    def action_refresh(self) -> None:
        self.arena.request_records(player=self._player())

    def action_older(self) -> None:
        if not self.arena.stored_games:
            self.action_refresh()
            return
        if self.arena.stored_games_complete:
            self.notify("No older games on the server.", timeout=3)
            return
        oldest = self.arena.stored_games[-1].ended_at
        self.arena.request_records(player=self._player(), before=oldest)

    def action_toggle_mine(self) -> None:
        self.only_mine = not self.only_mine
        self.action_refresh()

    def action_player_filter(self) -> None:
        def done(name: str | None) -> None:
            if name is None:  # Esc: keep the filter as it was
                return
            self.opponent = name or None
            self.action_refresh()
        self.app.push_screen(TextPrompt("Only games of or against which player? (empty: everyone)", "name"), done)

    def action_cycle_result(self) -> None:
        self.result = RESULT_FILTERS[(RESULT_FILTERS.index(self.result) + 1) % len(RESULT_FILTERS)]
        if self.result != "all" and not self.opponent:
            self.only_mine = True  # won/lost by whom: by you, unless a player is chosen
        self.refresh_records()

    @on(DataTable.RowSelected, "#records")
    def row_chosen(self, event: DataTable.RowSelected) -> None:
        self.arena.open_replay(str(event.row_key.value))

    def _player(self) -> str | None:
        """The player the server filters on (the rest is filtered here)."""
        return self.opponent or (self.arena.player_name if self.only_mine else None)

    def shown_records(self) -> list["RecordSummary"]:
        return [g for g in self.arena.stored_games
                if keep_record(g, self.arena.player_name, only_mine=self.only_mine, opponent=self.opponent,
                               result=self.result)]

    def refresh_records(self) -> None:
        table = self.query_one("#records", DataTable)
        cursor = table.cursor_row
        table.clear()
        for game in self.shown_records():
            ended = time.strftime("%m-%d %H:%M", time.localtime(game.ended_at)) if game.ended_at else "-"
            table.add_row(ended, game.x, game.o, describe_result(game.result, game.reason),
                          str(game.ply), game.tag or "", game.game_id, key=game.game_id)
        if table.row_count:
            table.move_cursor(row=min(cursor, table.row_count - 1))
        whose = f" of {self.arena.player_name}" if self.only_mine else ""
        if self.opponent:
            whose += f" {'against' if self.only_mine else 'of'} {self.opponent}"
        if self.result != "all":
            whose += f", {self.result}"
        games = self.shown_records()
        if self.arena.stored_games_loading:
            status = "Loading finished games…"
        elif not games:
            status = f"No finished games{whose} on the server yet."
        else:
            more = "" if self.arena.stored_games_complete else " · o: older"
            status = f"{len(games)} finished games{whose}, newest first{more}"
        if self.arena.link_status.state is not LinkState.CONNECTED:  # what the connection bar says
            status += " · not connected"
        self.query_one("#records-status", Static).update(status)


class TextPrompt(ModalScreen[str | None]):
    """Asks for one line of text (a player's name for a filter)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, placeholder: str = "") -> None:
        super().__init__()
        self.question, self.placeholder = question, placeholder

    def compose(self) -> ComposeResult:
        with Vertical(id="prompt"):
            yield Label(self.question)
            yield Input(placeholder=self.placeholder, id="text")

    @on(Input.Submitted)
    def submit(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)


class GameIdPrompt(ModalScreen[str | None]):
    """Asks for the id of a finished game to replay."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(id="prompt"):
            yield Label("Replay which game? (its id, from the server's records)")
            yield Input(placeholder="game id", id="game-id")

    @on(Input.Submitted)
    def submit(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


LEGEND = """[b]The feature panel[/b]  (an LLM move's trace; hover the panel for every label in full)

[b]Features · furthest from usual[/b]: the SAE features at the model's answer position, the ones
furthest from their usual level first. [b]act[/b] is the activation here; [b]Δ[/b] is (act − usual) ÷
the feature's typical activation: +1 means one typical activation above its usual level, −1 that
a usually active feature is silent. [dim]Dimmed rows[/dim] are always-on features (they fire on ≥ 95 % of
game prompts, so their presence says little). [b]pushes →5,1[/b]: steering the feature up raised the
probability of those cells most (measured when it was labelled).

Labels read "fires when …" with [b]P[/b] (precision: when the feature fires, how often the board
concept holds), [b]R[/b] (recall: of the positions with the concept, how many it fires on) and
[b]MCC[/b] (Matthews correlation, −1 to 1: 0 is no relation, 1 a perfect detector).
"no clear board concept" means no concept reached the labelling threshold.

[b]Steering[/b]: the coefficient the policy added along each steered feature: [green]▲[/green] pushes it up,
[red]▼[/red] pushes it down. mean|c| is the mean absolute coefficient, ‖Δ‖/‖h‖ the added vector's norm
relative to the residual stream's, [b]KL[/b] the divergence of the steered move distribution from the
unsteered one (0: steering changed nothing).

[b]Cell probabilities[/b]: the model's probability for each cell; [dim]grey cells[/dim] are taken (their
mark is shown), ▶ marks the cell the model chose (red: an illegal move, which forfeits).

[b]Moves[/b]: * a move with a trace; ✖ an illegal move.    Esc or ? closes this."""


#: how fast a watched bot game is shown (seconds a move)
PACES: tuple[float, ...] = (1.0, 2.0, 0.5, 0.0)


class BotGamePrompt(ModalScreen["tuple[str, str, float] | None"]):
    """Pick two bots and a pace to watch them play (the lobby's ``b``)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, bots: list[str]) -> None:
        super().__init__()
        self.bots = bots

    def compose(self) -> ComposeResult:
        llms = [b for b in self.bots if b not in ("minimax", "random")]
        x_default = llms[0] if llms else self.bots[0]
        o_default = "minimax" if "minimax" in self.bots else self.bots[-1]
        options = [(b, b) for b in self.bots]
        with Vertical(id="prompt"):
            yield Label("Watch two bots play. X:")
            yield Select(options, value=x_default, allow_blank=False, id="bot-x")
            yield Label("O:")
            yield Select(options, value=o_default, allow_blank=False, id="bot-o")
            yield Label("Shown at:")
            yield Select([(f"{p:g} s a move" if p else "full speed", p) for p in PACES], value=PACES[0],
                         allow_blank=False, id="pace")
            with Horizontal(id="prompt-buttons"):
                yield Button("Start (Enter)", id="start", variant="success")
                yield Button("Cancel (Esc)", id="cancel", variant="error")

    def on_mount(self) -> None:
        self.query_one("#start", Button).focus()

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        if event.button.id != "start":
            self.dismiss(None)
            return
        x = str(self.query_one("#bot-x", Select).value)
        o = str(self.query_one("#bot-o", Select).value)
        self.dismiss((x, o, float(self.query_one("#pace", Select).value)))  # type: ignore[arg-type]

    def action_cancel(self) -> None:
        self.dismiss(None)


class LegendScreen(ModalScreen[None]):
    """What the feature panel's columns and marks mean (the game screen's ``?``)."""

    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with Vertical(id="legend"):
            yield Static(LEGEND, id="legend-text")


class ChallengePrompt(ModalScreen[bool]):
    """Someone challenges the person at the keyboard: accept or decline."""

    BINDINGS = [Binding("y", "answer(True)", "Accept"), Binding("n,escape", "answer(False)", "Decline")]

    def __init__(self, challenger: str, side: str) -> None:
        super().__init__()
        self.challenger, self.side = challenger, side

    def compose(self) -> ComposeResult:
        with Vertical(id="prompt"):
            yield Label(f"[b]{self.challenger}[/b] challenges you; you would play [b]{self.side}[/b].")
            with Horizontal(id="prompt-buttons"):
                yield Button("Accept (y)", id="accept", variant="success")
                yield Button("Decline (n)", id="decline", variant="error")

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "accept")

    def action_answer(self, accept: bool) -> None:
        self.dismiss(accept)


# --------------------------------------------------------------------------- game
class GameScreen(OfArenaApp, Screen):
    """A game: board, status, move list and the feature panel. Live, watched or replayed.

    ``view_ply`` is the number of moves on show; ``None`` follows the game as it goes.
    """

    BINDINGS = [
        Binding("1", "play(1)", "Play", key_display="1-9"),
        *[Binding(str(c), f"play({c})", f"Play {c}", show=False) for c in range(2, 10)],
        Binding("left", "step(-1)", "Step", key_display="←/→"),
        Binding("right", "step(1)", "Step", show=False),
        Binding("home", "step_to(0)", "Start", show=False),
        Binding("end", "step_to(-1)", "End", show=False),
        Binding("r", "rematch", "Rematch"),
        Binding("R", "resign", "Resign"),
        Binding("v", "toggle_values", "Values"),
        Binding("question_mark", "legend", "Legend", key_display="?"),
        Binding("escape", "leave", "Lobby"),
    ]

    def __init__(self, game_id: str) -> None:
        super().__init__()
        self.game_id = game_id
        self.view_ply: int | None = None
        self._leave_armed = False
        self._resign_armed = False
        self._pending_notice = False  # the message says a move is on its way
        self._pacer: Timer | None = None  # reveals a watched bot game's moves at its pace
        self.show_values = False  # live play: values on request (v)

    @property
    def view(self) -> GameView:
        return self.arena.games[self.game_id]

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield ConnectionBar(id="connection")
        with Horizontal(id="game-body"):
            with Vertical(id="board-pane"):
                yield Static("", id="players")
                yield BoardGrid(id="board")
                yield Static("", id="status")
                yield Static("", id="message")
                yield Static("", id="value")
                yield Static("", id="moves")
            yield FeaturePanel(id="features")
        yield Footer()

    def on_mount(self) -> None:
        self.on_resize()
        pace = self.arena.paces.get(self.game_id, 0.0)
        if pace > 0:  # a bot game we asked to watch at a human pace: reveal its moves one by one
            self.view_ply = 0
            self._pacer = self.set_interval(pace, self._reveal_next)
        self.refresh_game()
        self.set_interval(1.0, self._tick)

    def _reveal_next(self) -> None:
        """One more move of a paced bot game; when all are shown and it is over, stop."""
        n = len(self.view.moves)
        if self.view_ply is None:
            return
        if self.view_ply < n:
            self.view_ply += 1
            self.refresh_game()
        elif self.view.over:
            self._stop_pacing()
            self.refresh_game()

    def _stop_pacing(self) -> None:
        if self._pacer is not None:
            self._pacer.stop()
            self._pacer = None
        if self.view_ply is not None and self.view_ply >= len(self.view.moves):
            self.view_ply = None

    def on_resize(self) -> None:
        # a bigger board when the terminal has room for it (the feature panel grows by itself)
        self.set_class(self.size.width >= 110 and self.size.height >= 32, "roomy")

    def _tick(self) -> None:
        if self.view.deadline is not None and not self.view.over:
            self._update_players()
            self._update_status()

    def _update_players(self) -> None:
        """Both players with their clocks: the side to move counts down, red when time runs low."""
        view = self.view
        lines = view.title(markup=True).split("\n")
        for i, seat in enumerate((Seat.X, Seat.O)):
            left = view.time_left(seat, time.time())
            if left is None:
                continue
            if view.turn is seat and view.deadline is not None:
                style = "b $error" if view.low_on_time(seat, time.time()) else "b"
                lines[i] += f"  [{style} reverse] {left:.0f} s [/]"
            else:
                lines[i] += f"  [dim]{left:.0f} s[/dim]"
        self.query_one("#players", Static).update("\n".join(lines))

    # -- drawing ---------------------------------------------------------------------
    def shown_ply(self) -> int:
        n = len(self.view.moves)
        return n if self.view_ply is None else max(0, min(self.view_ply, n))

    def refresh_game(self) -> None:
        view = self.view
        ply = self.shown_ply()
        live = self.view_ply is None or ply == len(view.moves)
        board = view.board if live else view.board_at(ply)
        last = view.moves[ply - 1] if ply else None
        self._update_players()
        self.query_one(BoardGrid).show(board, last_cell=last.cell if last else None, playable=view.my_turn and live,
                                       illegal_cell=last.cell if last is not None and last.illegal else None)
        self._update_status()
        if self._pending_notice and view.pending_move is None:  # the server has answered
            self._pending_notice = False
            self.show_message("")
        self._update_moves(ply)
        self._update_features(ply)
        self.sub_title = ("replay · " if view.replay else "") + f"game {view.game_id}"
        self.refresh_bindings()

    def _update_status(self) -> None:
        view = self.view
        ply = self.shown_ply()
        text = view.status_line()
        if self._pacer is not None and self.view_ply is not None:
            text = f"Move {ply} of {len(view.moves)} · shown at {self.arena.paces[self.game_id]:g} s a move (←/→ to step)"
        elif view.replay or (self.view_ply is not None and ply < len(view.moves)):
            text = f"Move {ply} of {len(view.moves)} (←/→ to step)" + (f" · {view.result_line()}" if view.over else "")
        elif view.deadline is not None and not view.over:
            left = max(0, int(view.deadline - time.time()))
            text += f"  ({left} s left)"
        status = self.query_one("#status", Static)
        status.update(text)
        status.set_class(view.over, "over")
        status.set_class(view.my_turn, "your-turn")
        status.set_class(view.my_turn and view.you is not None and view.low_on_time(view.you, time.time()), "low-time")

    @property
    def values_shown(self) -> bool:
        """Move values: always in replays and finished games, on request (v) while it is live."""
        return self.view.replay or self.view.over or self.show_values

    def _update_moves(self, ply: int) -> None:
        view = self.view
        value_line = self.query_one("#value", Static)
        value_line.display = self.values_shown
        if self.values_shown:
            board = view.board_at(ply)
            value, _ = (0, 0) if board.is_over else value_for_x(board)
            if board.is_over and board.winner is not None:
                value = 1 if board.winner is Seat.X else -1
            colour = "$secondary" if value > 0 else "$warning" if value < 0 else "$text-muted"
            value_line.update(f"[{colour}]{value_bar(value, 6)}[/] {describe_value(board)}")
        if not view.moves:
            self.query_one("#moves", Static).update("[dim]No moves yet.[/dim]")
            return
        judged = view.move_values() if self.values_shown else [None] * len(view.moves)
        shown = view.moves[:ply] if self._pacer is not None else view.moves  # a paced game: no moves ahead
        parts = []
        for i, (move, judgement) in enumerate(zip(shown, judged)):
            label = str(move)
            if judgement is not None and judgement.mark:
                label += f"[{MARK_STYLES[judgement.mark]}]{judgement.mark}[/]"
            label += "*" if move.trace else ""
            if i % 2 == 0:
                label = f"{i // 2 + 1}. {label}"
            parts.append(f"[reverse]{label}[/reverse]" if i == ply - 1 else label)
        legend = []
        if any(m.trace for m in view.moves):
            legend.append("* trace")
        if self.values_shown:
            marks = {j.mark for j in judged[:len(shown)] if j is not None and j.mark}
            legend += [MARK_MEANINGS[m] for m in ("??", "?", "!") if m in marks]
        tail = f"   [dim]{' · '.join(legend)}[/dim]" if legend else ""
        self.query_one("#moves", Static).update("Moves: " + " ".join(parts) + tail)

    def _update_features(self, ply: int) -> None:
        view = self.view
        panel = self.query_one(FeaturePanel)
        live = self.view_ply is None
        move = view.last_traced_move(ply) if live else (view.moves[ply - 1] if ply else None)
        if move is None or move.trace is None:
            note = "No trace for this move." if (not live and ply) else ""
            panel.show(None, heading=f"move {ply}" if not live and ply else "", note=note)
            return
        heading = f"move {move.ply} · {view.player(move.seat)} ({move.seat.value}) → {move.cell}"
        panel.show(move.trace, heading=heading, board=view.board_at(move.ply - 1))

    def show_message(self, text: str, error: bool = True) -> None:
        message = self.query_one("#message", Static)
        message.update(text)
        message.set_class(error, "error")

    # -- actions ---------------------------------------------------------------------
    @on(CellChosen)
    def cell_clicked(self, event: CellChosen) -> None:
        self.action_play(event.cell)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Only the keys that work here are offered (and shown in the footer)."""
        view = self.view if self.game_id in self.arena.games else None
        if view is None:
            return True
        playing = view.you is not None and not view.over and not view.replay
        if action in ("play", "resign"):
            return playing
        if action == "rematch":
            return view.over and self.rematch() is not None
        if action == "toggle_values":  # always on in replays and finished games
            return not (view.replay or view.over)
        return True

    def rematch(self) -> tuple[str, str] | None:
        """(opponent, the side to ask for) for a rematch of a finished game this person played,
        sides swapped as in lichess; also from the replay of one of their games. Else ``None``."""
        view = self.view
        me = self.arena.player_name
        seat = view.you or (Seat.X if view.x == me else Seat.O if view.o == me else None)
        if seat is None or view.x == view.o:
            return None
        return view.player(seat.other), seat.other.value

    def action_play(self, cell: int) -> None:
        self._resign_armed = False
        if self.view.replay or self.view.you is None:
            self.show_message("This is a replay: ←/→ step through it." if self.view.replay
                              else "You are watching this game; spectators cannot move.")
            return
        if self.view_ply is not None and self.view_ply < len(self.view.moves):
            self.view_ply = None  # back to the live position first
            self.refresh_game()
        problem = self.view.check_move(cell)
        if problem:
            self.show_message(problem)
            self._pending_notice = self.view.pending_move is not None
            self.app.bell()
            return
        self.show_message("")
        self.arena.send_move(self.game_id, cell)

    def action_toggle_values(self) -> None:
        self.show_values = not self.show_values
        self.refresh_game()

    def action_legend(self) -> None:
        self.app.push_screen(LegendScreen())

    def action_step(self, delta: int) -> None:
        self._stop_pacing()  # the person takes over
        n = len(self.view.moves)
        self.view_ply = max(0, min(self.shown_ply() + delta, n))
        if self.view_ply == n and not self.view.replay:
            self.view_ply = None
        self.refresh_game()

    def action_step_to(self, ply: int) -> None:
        self._stop_pacing()
        self.view_ply = len(self.view.moves) if ply < 0 else ply
        if self.view_ply == len(self.view.moves) and not self.view.replay:
            self.view_ply = None
        self.refresh_game()

    def action_rematch(self) -> None:
        rematch = self.rematch() if self.view.over else None
        if rematch is None:
            self.show_message("Rematch is offered when a game you played is over.")
            return
        self.arena.start_challenge(*rematch, clock=self.view.clock)  # the same time control

    def action_resign(self) -> None:
        view = self.view
        if view.over or view.you is None:
            self.show_message("Only a player can resign a running game.")
            return
        if not self._resign_armed:  # as Esc does: a second press confirms
            self._resign_armed = True
            self.show_message("Resign? Press R again to resign.")
            return
        self._resign_armed = False
        self.arena.send_resign(self.game_id)

    def action_leave(self) -> None:
        view = self.view
        if view.you is not None and not view.over and not self._leave_armed:
            self._leave_armed = True
            self.show_message("The game is still on: press Esc again to resign and leave.")
            return
        if view.you is not None and not view.over:
            self.arena.send_resign(self.game_id)
        if view.you is None and not view.over and not view.replay:
            self.arena.stop_watching(self.game_id)
        self.app.pop_screen()
