"""A stand-in LLM bot that plays over the protocol and attaches recorded traces to its moves.

For demos, screenshots and tests where the real model is not loaded: it connects like any
remote bot, accepts every challenge, and for each move takes the next recorded trace
(``tests/data/llm_traces.json`` holds realistic ones). It plays the trace's chosen cell when
that is legal, else the legal cell the trace gives the highest probability, and rewrites
``chosen`` to the cell it played, so what the TUI shows matches the board.
"""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

from client.aio import ArenaClient
from client.core import ClientCore, Event, GameView, OfferReceived, YourTurn
from server.game import Board


def load_traces(path: str | Path) -> list[dict[str, Any]]:
    """The ``traces`` list of a trace file (or the file itself when it is a list)."""
    data = json.loads(Path(path).read_text())
    traces = data.get("traces") if isinstance(data, dict) else data
    if not isinstance(traces, list) or not all(isinstance(t, dict) for t in traces) or not traces:
        raise ValueError(f"{path}: expected a non-empty list of trace objects (or {{'traces': [...]}})")
    return traces


def pick_cell(board: Board, trace: dict[str, Any]) -> int:
    """The trace's chosen cell if legal, else the legal cell it rates highest."""
    legal = board.legal_cells()
    chosen = trace.get("chosen")
    if chosen in legal:
        return chosen
    probs = trace.get("cell_probs") or {}
    return max(legal, key=lambda c: (float(probs.get(str(c), 0.0)) if isinstance(probs, dict) else 0.0, -c))


def retarget(trace: dict[str, Any], cell: int) -> dict[str, Any]:
    """A copy of ``trace`` that chose ``cell``: its probability is swapped with the top one,
    so the recorded distribution stays the same shape but agrees with the move played."""
    out = copy.deepcopy(trace)
    probs = out.get("cell_probs")
    if isinstance(probs, dict) and probs:
        top = max(probs, key=lambda k: float(probs[k]))
        key = str(cell)
        probs[top], probs[key] = probs.get(key, 0.0), probs[top]
    out["chosen"], out["legal"] = cell, True
    return out


class TraceReplayBot:
    """Run :meth:`run` as a task; set ``gate`` to pace its moves (each move waits for it)."""

    def __init__(
        self,
        url: str,
        traces: list[dict[str, Any]],
        *,
        name: str = "recorded-llm",
        max_games: int = 4,
        gate: asyncio.Event | None = None,
        move_delay: float = 0.0,
    ) -> None:
        self.url = url
        self.traces = traces
        self.name = name
        self.gate = gate
        self.move_delay = move_delay
        self.ready = asyncio.Event()
        self.moves_sent: list[tuple[str, int, dict[str, Any]]] = []  # (game id, cell, trace)
        self.core = ClientCore(name, role="bot", max_games=max_games)
        self._arena = ArenaClient(url, self.core, on_event=self._on_event)
        self._count: dict[str, int] = {}

    @property
    def max_games(self) -> int:
        return int(self.core.max_games or 1)

    async def run(self) -> None:
        await self._arena.connect()
        self.ready.set()
        await self._arena.wait_closed()

    async def _on_event(self, event: Event) -> None:
        if isinstance(event, OfferReceived):
            await self._arena.send(self.core.accept(event.offer.challenge_id, track=False))
        elif isinstance(event, YourTurn):
            await self._move(event.game)

    async def _move(self, game: GameView) -> None:
        self.core.mark_asked(game.game_id)
        if self.gate is not None:
            await self.gate.wait()
        if self.move_delay:
            await asyncio.sleep(self.move_delay)
        n = self._count.get(game.game_id, 0)
        self._count[game.game_id] = n + 1
        recorded = self.traces[n % len(self.traces)]
        cell = pick_cell(game.board, recorded)
        trace = retarget(recorded, cell)
        self.moves_sent.append((game.game_id, cell, trace))
        await self._arena.send(self.core.move(game.game_id, cell, trace=trace, track=False))

    async def close(self) -> None:
        await self._arena.close()
