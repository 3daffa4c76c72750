"""What every screen of the app shares: typed access to the running app and the connection bar."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.widgets import Static

if TYPE_CHECKING:
    from tui_client.app import ArenaApp


class OfArenaApp:
    """Typed access to the running :class:`ArenaApp` for its screens and widgets."""

    @property
    def arena(self) -> "ArenaApp":
        return self.app  # type: ignore[attr-defined,return-value]


class ConnectionBar(OfArenaApp, Static):
    """One line: connected / reconnecting / disconnected."""

    def on_mount(self) -> None:
        self.arena.update_connection_bars()

