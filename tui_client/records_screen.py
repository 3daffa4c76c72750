"""Finished games from the server's records (filters, replay) and a tournament's live standings."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Label, Static

from server.game import score_for_x
from tui_client.connection import LinkState
from tui_client.prompts import TextPrompt
from tui_client.screen_base import ConnectionBar, OfArenaApp

if TYPE_CHECKING:
    from server.protocol import GameSummary, RecordSummary


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
        Binding("o", "older", "Older"),
        Binding("m", "toggle_mine", "Mine"),
        Binding("p", "player_filter", "Player"),
        Binding("e", "cycle_result", "Result"),
        Binding("T", "standings", "Standings"),
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

    def action_standings(self) -> None:
        """Live standings of the selected game's tournament (its tag), or of a tag typed in."""
        table = self.query_one("#records", DataTable)
        tag = None
        if table.row_count:
            game_id = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value
            tag = next((g.tag for g in self.arena.stored_games if g.game_id == game_id), None)
        if tag:
            self.app.push_screen(StandingsScreen(tag))
            return

        def done(typed: str | None) -> None:
            if typed:
                self.app.push_screen(StandingsScreen(typed))

        self.app.push_screen(TextPrompt("Standings of which tournament? (its tag, e.g. t-1a2b3c)", "tag"), done)

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
        return [
            g
            for g in self.arena.stored_games
            if keep_record(
                g, self.arena.player_name, only_mine=self.only_mine, opponent=self.opponent, result=self.result
            )
        ]

    def refresh_records(self) -> None:
        table = self.query_one("#records", DataTable)
        cursor = table.cursor_row
        table.clear()
        for game in self.shown_records():
            ended = time.strftime("%m-%d %H:%M", time.localtime(game.ended_at)) if game.ended_at else "-"
            table.add_row(
                ended,
                game.x,
                game.o,
                describe_result(game.result, game.reason),
                str(game.ply),
                game.tag or "",
                game.game_id,
                key=game.game_id,
            )
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


@dataclass
class Standing:
    """One player's line in a tournament's standings."""

    name: str
    won: int = 0
    drawn: int = 0
    lost: int = 0
    live: int = 0

    @property
    def played(self) -> int:
        return self.won + self.drawn + self.lost

    @property
    def points(self) -> float:
        return self.won + 0.5 * self.drawn


def standings(finished: list["RecordSummary"], live: list["GameSummary"]) -> list[Standing]:
    """Points (win 1, draw ½) from finished games, aborted ones left out, and the games
    still being played; best first.

    >>> from server.protocol import RecordSummary
    >>> rows = standings([RecordSummary(game_id="a", x="p", o="q", result="X", reason="line", ply=5),
    ...                   RecordSummary(game_id="b", x="q", o="p", result="draw", reason="full_board", ply=9)], [])
    >>> [(r.name, r.points, r.won, r.drawn, r.lost) for r in rows]
    [('p', 1.5, 1, 1, 0), ('q', 0.5, 0, 1, 1)]
    """
    table: dict[str, Standing] = {}

    def row(name: str) -> Standing:
        return table.setdefault(name, Standing(name))

    for g in finished:
        x_score = score_for_x(g.result)  # as a tournament scores it (None: aborted)
        if x_score is None:
            continue
        for score, name in ((x_score, g.x), (1.0 - x_score, g.o)):
            line = row(name)
            if score == 1.0:
                line.won += 1
            elif score == 0.5:
                line.drawn += 1
            else:
                line.lost += 1
    for s in live:
        row(s.x).live += 1
        row(s.o).live += 1
    return sorted(table.values(), key=lambda r: (-r.points, r.lost, r.name))


class StandingsScreen(OfArenaApp, Screen):
    """A tournament's standings from its tagged games, updated while it runs."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]
    REFRESH_SECONDS = 2.0

    def __init__(self, tag: str) -> None:
        super().__init__()
        self.tag = tag

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield ConnectionBar(id="connection")
        yield Label(f"Standings · {self.tag} · win 1, draw ½", classes="pane-title")
        yield DataTable(id="standings", cursor_type="row", zebra_stripes=True)
        yield Static("Loading…", id="standings-status")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#standings", DataTable)
        for label, key in (
            ("#", "rank"),
            ("Player", "name"),
            ("Points", "points"),
            ("Played", "played"),
            ("Won", "won"),
            ("Drawn", "drawn"),
            ("Lost", "lost"),
            ("Playing", "live"),
        ):
            table.add_column(label, key=key)
        self.sub_title = f"standings {self.tag}"
        self.refresh_standings()
        self.arena.request_tagged(self.tag)
        self.set_interval(self.REFRESH_SECONDS, lambda: self.arena.request_tagged(self.tag))

    def refresh_standings(self) -> None:
        finished = self.arena.tagged_games.get(self.tag, [])
        live = [g for g in self.arena.live_games if getattr(g, "tag", None) == self.tag]
        table = self.query_one("#standings", DataTable)
        table.clear()
        for i, line in enumerate(standings(finished, live), 1):
            table.add_row(
                str(i),
                line.name,
                f"{line.points:g}",
                str(line.played),
                str(line.won),
                str(line.drawn),
                str(line.lost),
                str(line.live) if line.live else "",
                key=line.name,
            )
        self.query_one("#standings-status", Static).update(
            f"{len(finished)} finished, {len(live)} being played · updated every {self.REFRESH_SECONDS:g} s"
        )
