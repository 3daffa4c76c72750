"""What every screen of the app shares: typed access to the running app and the connection bar."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from textual.widgets import Static

if TYPE_CHECKING:
    from server.protocol import BotInfo, GameSummary, PlayerInfo, RecordSummary
    from tui_client.connection import LinkStatus
    from tui_client.game_view import GameView, TimeControl


class ArenaClient(Protocol):
    """What the screens use of the running app (``tui_client.app.ArenaApp`` provides it).

    Screens depend on this contract, not on the app class, so the app imports its screens
    and no screen imports the app."""

    player_name: str
    link_status: "LinkStatus"
    lobby_status: str
    llm_notice: str | None
    bots: "list[BotInfo]"
    players: "list[PlayerInfo]"
    live_games: "list[GameSummary]"
    games: "dict[str, GameView]"
    finished_games: "list[GameView]"
    stored_games: "list[RecordSummary]"
    stored_games_loading: bool
    stored_games_complete: bool
    tagged_games: "dict[str, list[RecordSummary]]"
    paces: dict[str, float]

    def update_connection_bars(self) -> None: ...
    def request_lobby(self) -> None: ...
    def request_records(self, *, player: str | None = None, before: float | None = None) -> None: ...
    def request_tagged(self, tag: str) -> None: ...
    def start_challenge(
        self,
        opponent: str,
        side: str,
        clock: float | None = None,
        *,
        time_control: "TimeControl | None" = None,
        rematch_of: str | None = None,
    ) -> bool: ...
    def arrange_game(self, x: str, o: str, pace: float, clock: float | None = None) -> None: ...
    def start_watching(self, game_id: str) -> None: ...
    def stop_watching(self, game_id: str) -> None: ...
    def open_replay(self, game_id: str) -> None: ...
    def send_move(self, game_id: str, cell: int) -> None: ...
    def send_resign(self, game_id: str) -> None: ...


class _HasApp(Protocol):
    """The Textual widget or screen that :class:`OfArenaApp` is mixed into."""

    @property
    def app(self) -> Any: ...


class OfArenaApp:
    """Typed access to the running app (an :class:`ArenaClient`) for its screens and widgets."""

    @property
    def arena(self: _HasApp) -> ArenaClient:
        return self.app  # the running ArenaApp, which provides ArenaClient


class ConnectionBar(OfArenaApp, Static):
    """One line: connected / reconnecting / disconnected."""

    def on_mount(self) -> None:
        self.arena.update_connection_bars()
