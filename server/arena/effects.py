"""What the sans-I/O arena asks its I/O layer to do: the *effects* (frames to send,
connections to close, records to store, game events to publish) and the WebSocket close
codes it uses. The arena only produces these values; :mod:`server.app` carries them out.

They are plain (not frozen) slotted dataclasses: the arena builds several per request, and
a frozen dataclass takes over twice as long to build; nothing changes them once built."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Union

Frame = dict[str, Any]

# WebSocket close codes the arena asks for.
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008  # flood, too many connections
CLOSE_REPLACED = 4000  # the session was resumed on another connection


@dataclass(slots=True)
class Send:
    """Send ``frame`` (a JSON object) on connection ``conn_id``."""

    conn_id: int
    frame: Frame


@dataclass(slots=True)
class Close:
    """Close connection ``conn_id`` with a WebSocket close code, after frames already queued."""

    conn_id: int
    code: int
    reason: str


@dataclass(slots=True)
class StoreGame:
    """Write a game record: at start (``status`` live) and when it ends."""

    record: Frame


@dataclass(slots=True)
class GameEnded:
    """A game finished (for logs: the server prints one line per game)."""

    record: Frame


@dataclass(slots=True)
class GameEvent:
    """A game's progress, for event transports (MQTT): ``kind`` ``start`` carries the
    ``game_start`` frame (as a spectator sees it), ``move`` the ``state`` after a move,
    ``over`` the ``game_over`` frame. Each move appears once, in order."""

    kind: Literal["start", "move", "over"]
    frame: Frame


@dataclass(slots=True)
class RelayGame:
    """Start (``watch``) or stop following a game played on another server: the first
    spectator here asked for it, or the last one left / the game ended."""

    game_id: str
    watch: bool


Effect = Union[Send, Close, StoreGame, GameEnded, GameEvent, RelayGame]
