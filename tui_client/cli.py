"""``autosteer-tui``: play and watch Tic Tac Toe on an arena server, with the LLM's live features.

With ``--server`` it connects to that server. Without it, it starts a private local server
(house bots included) and the default steered LLM bot, and stops both on exit.
"""

from __future__ import annotations

import argparse
import getpass
import re
import shlex
import sys


def default_name() -> str:
    try:
        user = getpass.getuser()
    except Exception:
        user = "player"
    name = re.sub(r"[^A-Za-z0-9_.\-]", "", user)[:32]
    return name or "player"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autosteer-tui",
        description="Play and watch Tic Tac Toe on an arena server, with the LLM bot's live SAE features.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="Keys: in the lobby Enter plays the selected bot or watches/replays the selected game, "
               "s changes your side; in a game 1-9 or a click plays a cell, ←/→ step through the moves, "
               "r offers a rematch, Esc goes back. Without --server a local server is started.")
    parser.add_argument("--server", metavar="URL", default=None,
                        help="arena server to connect to (ws://host:port); default: start a local one")
    parser.add_argument("--name", default=default_name(), help="your name in the lobby (letters, digits, _ . -)")
    parser.add_argument("--no-llm", action="store_true",
                        help="with a local server, do not start the steered LLM bot")
    parser.add_argument("--llm-args", default="", metavar="ARGS",
                        help="extra arguments for `autosteer-bot run --kind llm`, as one string: "
                             "--llm-args=\"--mode masked --policy p.json\"")
    parser.add_argument("--hide-url", action="store_true", help="do not show the server URL on screen")
    return parser


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    if args.server is not None and not re.match(r"^wss?://[^\s/]+", args.server):
        parser.error(f"--server must be a WebSocket URL like ws://127.0.0.1:8765, got {args.server!r}")
    if not re.fullmatch(r"[A-Za-z0-9_.\-]{1,32}", args.name):
        parser.error(f"--name must be 1-32 letters, digits, '_', '.' or '-', got {args.name!r}")
    try:
        return shlex.split(args.llm_args)
    except ValueError as exc:
        parser.error(f"--llm-args is not a valid argument string: {exc}")
    return []


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    llm_args = _check_args(parser, args)

    from tui_client.app import ArenaApp
    from tui_client.local_arena import LocalArena, LocalArenaError

    arena: LocalArena | None = None
    url = args.server
    if url is None:
        arena = LocalArena(with_llm=not args.no_llm, llm_args=llm_args)
        print("Starting a local arena server…", file=sys.stderr)
        try:
            url = arena.start()
        except LocalArenaError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"Local server at {url}" + (f"; {arena.llm_notice}" if arena.llm_notice else
                                           "; LLM bot starting (it joins the lobby when its model is loaded)"),
              file=sys.stderr)
    try:
        app = ArenaApp(url, args.name, local_arena=arena, show_url=not args.hide_url)
        app.run()
    finally:
        if arena is not None:
            print("Stopping the local arena…", file=sys.stderr)
            arena.stop()
    print(f"Bye. (server: {url})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
