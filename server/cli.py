"""``autosteer-server``: serve, inspect game records, run tournaments.

Each subcommand lives in the module that owns its concern; that module exposes
``add_arguments(parser)`` and ``run(args) -> int``. Modules load lazily so ``--help``
is fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS = {
    "serve": ("server.app", "run the game server (WebSocket + GET /healthz on one port)"),
    "games": ("server.records.cli", "list, show or export stored games"),
    "tournament": ("bots.tournament.cli", "round-robin tournament between bots, played through a server"),
    "watch": (
        "server.events.watch",
        "print the live event feed (games, moves, top features, results) from an MQTT broker",
    ),
}


def build_parser(prog: str, subcommands: dict[str, tuple[str, str]], description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in subcommands.items():
        p = sub.add_parser(
            name, help=help_text, description=help_text, formatter_class=argparse.ArgumentDefaultsHelpFormatter
        )
        p.set_defaults(_module=module)
        mod = importlib.import_module(module)
        mod.add_arguments(p)
    return parser


def dispatch(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    args = parser.parse_args(argv)
    mod = importlib.import_module(args._module)
    try:
        return int(mod.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    parser = build_parser("autosteer-server", SUBCOMMANDS, __doc__.splitlines()[0])
    return dispatch(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
