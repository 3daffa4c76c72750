"""``autosteer-bot run``: build a bot of the chosen kind and play it on a server with
:class:`bots.client.BotClient` until interrupted (or after ``--stop-after`` games).

The first Ctrl-C (or SIGTERM) stops accepting challenges and lets the games in progress
finish; a second one closes at once. ``--kind llm`` loads the LLM bot's options and
builder from :mod:`bots.llm.cli` only when that module is installed, so ``--help`` and the
other kinds never import torch.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import signal
import sys
from types import ModuleType
from typing import Any

from server.players.base import Bot

KINDS = ("minimax", "random", "llm")
DEFAULT_SERVER = "ws://127.0.0.1:8765"

log = logging.getLogger("autosteer.bot")


def _llm_cli() -> tuple[ModuleType | None, str]:
    """The LLM bot's CLI module, or None and why it is unavailable."""
    try:
        return importlib.import_module("bots.llm.cli"), ""
    except ImportError as exc:
        return None, str(exc)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kind", choices=KINDS, required=True, help="which bot to run")
    parser.add_argument("--server", default=DEFAULT_SERVER, metavar="URL", help="the server's ws:// URL")
    parser.add_argument("--name", default=None, help="name in the lobby (None: the kind)")
    parser.add_argument("--max-games", type=int, default=8, help="games played at once; more offers are declined")
    parser.add_argument("--seed", type=int, default=None, help="seed of the bot's random choices (reproducible play)")
    parser.add_argument(
        "--tiebreak",
        choices=("random", "first", "exploit"),
        default="random",
        help="minimax: how to choose among equally good moves",
    )
    parser.add_argument("--stop-after", type=int, default=None, metavar="N", help="stop after N finished games")
    parser.add_argument(
        "--no-reconnect", action="store_true", help="exit when the connection drops instead of reconnecting"
    )
    parser.add_argument("--batch-window", type=float, default=0.005, help="seconds to gather moves into one batch")
    parser.add_argument(
        "--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="logging detail on stderr"
    )
    llm, why = _llm_cli()
    if llm is not None and hasattr(llm, "add_arguments"):
        group = parser.add_argument_group("LLM bot options (--kind llm)")
        try:
            llm.add_arguments(group)
        except argparse.ArgumentError as exc:  # a clash must not break --help for everyone
            print(f"warning: LLM bot options not loaded: {exc}", file=sys.stderr)


def build_bot(args: argparse.Namespace) -> Bot:
    """The bot for ``args.kind``; raises SystemExit with a clear message if unavailable."""
    if args.kind == "llm":
        llm, why = _llm_cli()
        if llm is None or not hasattr(llm, "build_bot"):
            raise SystemExit(
                f"error: --kind llm is not available in this installation ({why or 'bots.llm.cli has no build_bot'}); "
                "use --kind minimax or --kind random"
            )
        return llm.build_bot(args)
    from server.players.house import make_house_bot

    options: dict[str, Any] = {"tiebreak": args.tiebreak} if args.kind == "minimax" else {}
    return make_house_bot(args.kind, name=args.name, seed=args.seed, **options)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=getattr(logging, args.log_level), stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )
    logging.getLogger("websockets").setLevel(logging.WARNING)
    from bots.client import BotClient, BotClientError

    if args.stop_after is not None and args.stop_after < 1:
        print("error: --stop-after must be >= 1", file=sys.stderr)
        return 2
    try:
        bot = build_bot(args)
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return 2
    except (ValueError, OSError) as exc:
        print(f"error: cannot build the {args.kind} bot: {exc}", file=sys.stderr)
        return 2
    try:
        client = BotClient(
            bot,
            args.server,
            name=args.name or getattr(bot, "name", None) or args.kind,
            max_games=args.max_games,
            reconnect=not args.no_reconnect,
            batch_window=args.batch_window,
            seed=args.seed,
        )
    except BotClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_play(client, args.stop_after))
    except BotClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        bot.close()


def _say(line: str, stream: str = "stdout") -> None:
    """Print a status line. When its reader has gone (``autosteer-bot run … | head``) the line
    is dropped and the stream points at /dev/null from then on, so one SIGTERM still ends the
    bot cleanly instead of with a BrokenPipeError."""
    out = getattr(sys, stream)
    try:
        print(line, file=out, flush=True)
    except (BrokenPipeError, ValueError, OSError):
        import os

        try:  # what is still buffered for the closed pipe goes nowhere at exit, quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
        except (OSError, ValueError):
            pass
        setattr(sys, stream, open(os.devnull, "w"))


async def _play(client: Any, stop_after: int | None) -> int:
    loop = asyncio.get_running_loop()
    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            # stop first: a message that cannot be written (stderr piped to a reader that has
            # gone) must not keep the first signal from stopping the bot
            asyncio.ensure_future(client.stop(drain=True))
            _say(
                f"stopping: finishing {len(client.games)} game(s) in progress (interrupt again to quit now)",
                stream="stderr",
            )
        else:
            asyncio.ensure_future(client.stop())

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)

    if stop_after is not None:

        def on_game_over(_finished: Any) -> None:
            if client.stats.games_finished >= stop_after:
                asyncio.ensure_future(client.stop(drain=True))

        client.on_game_over = on_game_over

    _say(f"{client.name}: connecting to {client.url} (max {client.max_games} games at once)")
    try:
        await client.run()
    finally:
        s = client.stats
        _say(
            f"{client.name}: stopped after {s.games_finished} games: {s.wins} won, {s.draws} drawn, {s.losses} lost"
            f"{f', {s.aborted} aborted' if s.aborted else ''}; {s.moves_sent} moves sent, "
            f"{s.reconnects} reconnects"
        )
    return 0
