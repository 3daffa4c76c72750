"""``autosteer-bot``: connect a bot (minimax, random or the LLM bot) to an arena server.

Subcommands follow ``server.cli``'s pattern: each lives in its own module exposing
``add_arguments(parser)`` and ``run(args) -> int``; nothing heavy (no torch) is imported
until a subcommand runs.
"""

from __future__ import annotations

import sys

from server.cli import build_parser, dispatch

SUBCOMMANDS = {
    "run": ("bots.runner", "connect a bot to a server and play the challenges it gets until stopped"),
    "list": ("bots.lobby", "list the bots and live games on a server"),
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser("autosteer-bot", SUBCOMMANDS, __doc__.splitlines()[0])
    return dispatch(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
