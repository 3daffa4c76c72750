"""``autosteer-tui``: play and watch Tic Tac Toe on an arena server, with the LLM's live features.

With ``--server`` it connects to that server. Without it, it starts a private local server
(house bots included) and the default steered LLM bot, and stops both on exit: on a quit, on
SIGHUP (the terminal went away) and on SIGTERM alike; the exit status is then 128 + the
signal number. Children of a TUI that is killed outright die with it (``tui_client.local_arena``).
"""

from __future__ import annotations

import argparse
import getpass
import re
import shlex
import signal
import sys
from typing import Any, TextIO

#: signals that end the TUI cleanly (SIGHUP: its terminal went away)
SHUTDOWN_SIGNALS: tuple[int, ...] = tuple(
    getattr(signal, name) for name in ("SIGHUP", "SIGTERM") if hasattr(signal, name)
)


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
        epilog="Keys: in the lobby Enter plays the selected opponent or watches/replays the selected game, "
        "s changes your side, t the clock (seconds a move, or a time control such as 3+2); in a game "
        "1-9 or a click plays a cell, ←/→ step through the moves, r offers a rematch, Esc goes back, "
        "q quits (during a game it asks first: quitting resigns). Without --server a local server is started.",
    )
    parser.add_argument(
        "--server",
        metavar="URL",
        default=None,
        help="arena server to connect to (ws://host:port); default: start a local one",
    )
    parser.add_argument("--name", default=default_name(), help="your name in the lobby (letters, digits, _ . -)")
    parser.add_argument("--no-llm", action="store_true", help="with a local server, do not start the steered LLM bot")
    parser.add_argument(
        "--llm-args",
        default="",
        metavar="ARGS",
        help="extra arguments for `autosteer-bot run --kind llm`, as one string: "
        '--llm-args="--mode masked --policy p.json"',
    )
    parser.add_argument("--hide-url", action="store_true", help="do not show the server URL on screen")
    parser.add_argument(
        "--data-dir",
        default=None,
        metavar="DIR",
        help="with a local server, the folder that keeps its finished games between runs "
        "(default: your user data folder, e.g. ~/.local/share/autosteer-arena)",
    )
    parser.add_argument(
        "--forget",
        action="store_true",
        help="with a local server, keep no games: records go to a temporary folder removed on exit",
    )
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


class SignalExit(BaseException):
    """Raised by the signal handler to abandon the start of the local arena."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class ShutdownSignals:
    """SIGHUP and SIGTERM for the whole run of the TUI, turned into an orderly exit.

    While :attr:`interruptible` (the local arena is starting) a signal interrupts the start
    (:class:`SignalExit`); while :attr:`app` is set it asks the app to leave; otherwise (the
    arena is being stopped, say) it is only noted, so the stop runs to its end. The first
    signal is kept in :attr:`received`.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self.app: Any = None  # the running ArenaApp, if any
        self.interruptible = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "ShutdownSignals":
        for signum in SHUTDOWN_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: object) -> None:
        if self.received is not None:
            return  # already on the way out
        self.received = signum
        if self.app is not None:
            self.app.exit_on_signal(signum)
        elif self.interruptible:
            raise SignalExit(signum)


def _say(message: str) -> None:
    """Print a status line on stderr; once the terminal is gone, print nothing (and do not fail)."""
    stream: TextIO | None = sys.stderr
    if stream is None:
        return
    try:
        print(message, file=stream, flush=True)
    except (OSError, ValueError):  # EIO: the terminal hung up
        _silence_std_streams()


def _silence_std_streams() -> None:
    """Point stdout and stderr at /dev/null, so a lost terminal cannot fail the exit (EIO on flush)."""
    import os

    for name in ("stdout", "stderr"):
        try:
            setattr(sys, name, open(os.devnull, "w"))
        except OSError:  # pragma: no cover - no /dev/null
            setattr(sys, name, None)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    llm_args = _check_args(parser, args)

    from tui_client.app import ArenaApp
    from pathlib import Path

    from tui_client.local_arena import LocalArena, LocalArenaError, default_data_dir

    arena: LocalArena | None = None
    url = args.server
    with ShutdownSignals() as signals:
        try:
            if url is None:
                db_path = None if args.forget else Path(args.data_dir or default_data_dir()) / "arena.sqlite"
                arena = LocalArena(with_llm=not args.no_llm, llm_args=llm_args, db_path=db_path)
                _say(
                    "Starting a local arena server…"
                    + (f" (games kept in {db_path})" if db_path else " (games are not kept: --forget)")
                )
                try:
                    try:
                        signals.interruptible = True
                        url = arena.start()
                    finally:
                        signals.interruptible = False
                except LocalArenaError as exc:
                    _say(f"error: {exc}")
                    return 1
                except SignalExit:
                    pass
                else:
                    _say(
                        f"Local server at {url}"
                        + (
                            f"; {arena.llm_notice}"
                            if arena.llm_notice
                            else "; LLM bot starting (it joins the lobby when its model is loaded)"
                        )
                    )
            if signals.received is None:
                app = ArenaApp(url, args.name, local_arena=arena, show_url=not args.hide_url)
                signals.app = app  # from now on a signal asks the app to leave
                try:
                    if signals.received is None:
                        app.run()
                finally:
                    signals.app = None
                if signals.received is None:  # the app saw its terminal go away
                    signals.received = app.exit_signal
        except KeyboardInterrupt:  # Ctrl+C while the arena starts (the app itself reads Ctrl+C as a key)
            signals.received = signals.received or signal.SIGINT
        finally:
            if arena is not None:
                if arena.pids:
                    _say("Stopping the local arena…")
                arena.stop()
    if signals.received is not None:
        _say(f"Stopped by {signal.Signals(signals.received).name}." + (f" (server: {url})" if url else ""))
        return 128 + signals.received
    _say(f"Bye. (server: {url})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
