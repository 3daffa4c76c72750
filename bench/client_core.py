"""Benchmark: what the client core's schema check costs per server frame.

:class:`client.core.ClientCore` checks every server frame against the protocol's schema
before it changes anything; ``check_frames=False`` (what the RL trainer uses against the
server it trusts) skips that check. This plays ``--games`` games against the house
``random`` bot in-process (a sans-I/O :class:`server.arena.arena.Arena`, no sockets),
keeps what the client sent and received, and then replays it to fresh cores with and
without the check, alternating ``--rounds`` times, timing ``receive`` only. Figures are medians,
in µs per frame, and the ratio of the two in the same run.

Run: ``python bench/client_core.py --games 300 --rounds 7``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def record(games: int) -> list[tuple[str, Any]]:
    """What one client sends and gets while it plays ``games`` games against ``random``:
    ``("challenge", seed)``, ``("move", (game_id, cell))`` and ``("frame", frame)`` in order."""
    from client.core import ClientCore, GameEnded
    from server.arena.arena import Arena
    from server.arena.effects import Send
    from server.config import ServerConfig

    # limits lifted as bench/arena_logic.py lifts them: one client sends every request at once
    arena = Arena(ServerConfig(seed=1, move_clock=3600.0, rate=1e6, burst=10**6, flood_close=10**6))
    core, steps, now = ClientCore("bench"), [], 1000.0

    def send(frame: dict[str, Any]) -> list[Any]:
        arena.receive(1, json.dumps(frame), now)
        events: list[Any] = []
        for effect in arena.drain():
            if isinstance(effect, Send):
                steps.append(("frame", effect.frame))
                events += core.receive(effect.frame)
        return events

    arena.connect(1, "127.0.0.1", now)
    send(core.hello())
    for seed in range(games):
        steps.append(("challenge", seed))
        events = send(core.challenge("random", side="X", seed=seed))
        game = next(e.game for e in events if hasattr(e, "game"))
        while not game.over:
            cell = game.board.legal_cells()[0]
            steps.append(("move", (game.game_id, cell)))
            events = send(core.move(game.game_id, cell))
        assert any(isinstance(e, GameEnded) for e in events)
    return steps


def feed(steps: list[tuple[str, Any]], check: bool) -> float:
    """µs per received frame for a fresh core to replay ``steps`` (its requests made again,
    so replies meet the same pending requests); only ``receive`` is timed."""
    from client.core import ClientCore

    core, spent, frames = ClientCore("bench", check_frames=check), 0.0, 0
    core.hello()
    for kind, what in steps:
        if kind == "challenge":
            core.challenge("random", side="X", seed=what)
        elif kind == "move":
            core.move(*what)
        else:
            t = time.perf_counter()
            core.receive(what)
            spent += time.perf_counter() - t
            frames += 1
    return spent / frames * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    steps = record(args.games)
    n_frames = sum(kind == "frame" for kind, _ in steps)
    checked, trusted = [], []
    for _ in range(args.rounds):
        checked.append(feed(steps, True))
        trusted.append(feed(steps, False))
    c, u = statistics.median(checked), statistics.median(trusted)
    print(f"{n_frames} frames from {args.games} games vs random, {args.rounds} alternating rounds (medians)")
    print("| client core | µs per frame (median) | min | max |")
    print("|---|---|---|---|")
    print(f"| check_frames=True (default) | {c:.1f} | {min(checked):.1f} | {max(checked):.1f} |")
    print(f"| check_frames=False (trusted server) | {u:.1f} | {min(trusted):.1f} | {max(trusted):.1f} |")
    print(f"result: the schema check costs {c - u:.1f} µs per frame; without it a frame takes {u / c:.2f}x the time")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
