"""``autosteer-bot list``: show the bots and live games on a server (connects as a spectator)."""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
from typing import Any

from bots.runner import DEFAULT_SERVER


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", default=DEFAULT_SERVER, metavar="URL", help="the server's ws:// URL")
    parser.add_argument("--json", action="store_true", help="print the raw lists as JSON")


async def fetch_lobby(url: str, timeout: float = 10.0) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(bots, live games) as the server lists them."""
    from client.aio import ArenaClient
    from client.core import ClientCore, RequestFailed

    core = ClientCore(f"lobby-{secrets.token_hex(3)}", role="spectator")
    async with ArenaClient(url, core, open_timeout=timeout) as arena:
        bots, games = await asyncio.gather(
            arena.request(core.list_bots(), timeout), arena.request(core.list_games(), timeout)
        )
    for reply in (bots, games):
        if isinstance(reply, RequestFailed):
            raise RuntimeError(f"[{reply.code}] {reply.message}")
    return bots.frame["bots"], games.frame["games"]


def run(args: argparse.Namespace) -> int:
    if not args.server.startswith(("ws://", "wss://")):
        print(f"error: --server must be a ws:// or wss:// URL, got {args.server!r}", file=sys.stderr)
        return 2
    try:
        bots, games = asyncio.run(fetch_lobby(args.server))
    except (OSError, asyncio.TimeoutError, RuntimeError) as exc:
        print(f"error: cannot list {args.server}: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # websockets handshake errors
        print(f"error: cannot list {args.server}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"bots": bots, "games": games}, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    t = Table(title=f"bots on {args.server}")
    for col in ("name", "kind", "games", "max", "description"):
        t.add_column(col)
    for b in bots:
        cap = "∞" if b.get("unlimited") else str(b.get("max_games", ""))
        t.add_row(b["name"], b["kind"], str(b.get("games", 0)), cap, b.get("description", ""))
    console.print(t)
    g = Table(title=f"live games ({len(games)})")
    for col in ("game", "X", "O", "board", "turn", "ply", "spectators", "tag"):
        g.add_column(col)
    for s in games:
        g.add_row(
            s["game_id"],
            s["x"],
            s["o"],
            s["board"],
            str(s.get("turn") or "-"),
            str(s["ply"]),
            str(s.get("spectators", 0)),
            str(s.get("tag") or ""),
        )
    console.print(g)
    print(f"{len(bots)} bots, {len(games)} live games")
    return 0
