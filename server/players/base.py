"""The one small interface every bot implements, wherever it runs.

A bot is asked for moves in batches: the client (or the server, for house bots) hands it
every game currently waiting on it, so a bot that can batch (the LLM bot runs one forward
pass for all of them) does, and a simple bot just loops. ``choose_batch`` is blocking and
is called from a worker thread, never on the event loop.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Sequence

from server.game import Board, Seat


@dataclass(frozen=True, slots=True)
class MoveRequest:
    """A game waiting for this bot's move. ``board.turn`` is the bot's seat."""

    game_id: str
    board: Board
    opponent: str = ""

    @property
    def seat(self) -> Seat:
        return self.board.turn


@dataclass(frozen=True, slots=True)
class Decision:
    """A bot's answer. ``trace`` (optional, JSON-serialisable) is relayed by the server to
    the opponent and spectators and stored with the move; the LLM bot puts its top SAE
    features, steering coefficients and cell probabilities there."""

    cell: int
    trace: dict[str, Any] | None = field(default=None)


class Bot(abc.ABC):
    """Subclass and implement :meth:`choose` (and :meth:`choose_batch` if batching helps)."""

    #: name shown in the lobby (clients may override it when connecting)
    name: str = "bot"
    #: one line for the lobby
    description: str = ""
    #: the most games this bot should be asked about in one batch
    max_batch: int = 64
    #: when True an illegal choice is sent as is and forfeits the game (strict LLM play);
    #: when False the client refuses to send one and reports an error instead.
    forfeit_on_illegal: bool = False

    @abc.abstractmethod
    def choose(self, request: MoveRequest) -> Decision:
        """Return the move for one game."""

    def choose_batch(self, requests: Sequence[MoveRequest]) -> list[Decision]:
        """Return one decision per request, in order. Override to batch."""
        return [self.choose(r) for r in requests]

    def close(self) -> None:
        """Release resources (models, threads). Called once when the bot stops."""
