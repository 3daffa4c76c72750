"""Take an SVG screenshot of a real game with the feature panel, played through the app headless.

Plays a game against a bot (by default the steered LLM bot) through :class:`ArenaApp`
exactly as a person would, with a simple rule-based player on our side, and saves the
screen once the bot has answered with a trace::

    # against the real LLM bot on a running server
    python -m tui_client.screenshot --server ws://127.0.0.1:8765 --opponent llm
    # start a local server and the default LLM bot first (as autosteer-tui does)
    python -m tui_client.screenshot
    # without the model: a stand-in bot replaying recorded traces (label says so)
    python -m tui_client.screenshot --recorded-traces tests/data/llm_traces.json

Without ``--opponent`` it picks the first remote bot to join the lobby.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from server.game import LINES, Board

DEFAULT_OUT = "docs/screenshots/tui-game-vs-llm.svg"


def rule_player(board: Board) -> int:
    """Win if we can, block if we must, else centre, corners, edges (a fair, readable opponent)."""
    me, them = board.turn.value, board.turn.other.value
    for mark in (me, them):
        for line in LINES:
            cells = [board.code[i] for i in line]
            if cells.count(mark) == 2 and cells.count(".") == 1:
                return line[cells.index(".")] + 1
    for cell in (5, 1, 3, 7, 9, 2, 4, 6, 8):
        if board.code[cell - 1] == ".":
            return cell
    raise ValueError("no legal move")


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(p) for p in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 100x30, got {text!r}") from None
    if w < 40 or h < 16:
        raise argparse.ArgumentTypeError("the app needs at least 40x16")
    return w, h


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tui_client.screenshot",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--server", default=None, metavar="URL", help="server URL; default: start a local arena")
    p.add_argument("--opponent", default=None, help="bot to play (default: the first remote bot online)")
    p.add_argument("--side", choices=("X", "O"), default="X", help="our side")
    p.add_argument("--moves", type=int, default=4, help="take the shot once this many moves are on the board")
    p.add_argument("--out", default=DEFAULT_OUT, help="SVG file to write")
    p.add_argument("--size", type=_size, default=(100, 30), help="terminal size, WxH")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the bot (model loading included)")
    p.add_argument(
        "--recorded-traces",
        default=None,
        metavar="FILE",
        help="run a stand-in bot replaying these traces instead of the real LLM bot",
    )
    p.add_argument(
        "--llm-args",
        default="",
        help='extra arguments for the LLM bot of a local arena, as one string (--llm-args="--mode masked")',
    )
    p.add_argument("--name", default="human", help="our name in the lobby")
    return p


async def take(args: argparse.Namespace, url: str) -> tuple[Path, str]:
    from tui_client.app import ArenaApp
    from tui_client.screens import GameScreen

    replay_bot = task = None
    if args.recorded_traces:
        from tui_client.trace_replay_bot import TraceReplayBot, load_traces

        replay_bot = TraceReplayBot(url, load_traces(args.recorded_traces), name=args.opponent or "recorded-llm")
        task = asyncio.create_task(replay_bot.run())
        await asyncio.wait_for(replay_bot.ready.wait(), 10)
    app = ArenaApp(url, args.name, lobby_poll=0.5, show_url=False)
    deadline = time.monotonic() + args.timeout
    try:
        async with app.run_test(size=args.size) as pilot:

            async def until(predicate, what: str) -> None:
                while not predicate():
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"timed out after {args.timeout:.0f} s waiting for {what}")
                    await pilot.pause(0.1)

            def opponent() -> str | None:
                if args.opponent:
                    return args.opponent if any(b.name == args.opponent for b in app.bots) else None
                return next((b.name for b in app.bots if b.kind == "remote" and b.name != app.player_name), None)

            await until(lambda: opponent() is not None, f"bot {args.opponent or '(any remote)'} in the lobby")
            name = opponent()
            assert name is not None  # until() has just seen it in the lobby
            print(f"playing {name} as {args.side}…", file=sys.stderr)
            app.start_challenge(name, args.side)
            await until(lambda: isinstance(app.screen, GameScreen), "the game to start")
            screen = app.screen
            assert isinstance(screen, GameScreen)  # until() has just seen it, with no await since
            while True:
                view = screen.view
                traced = view.moves and view.moves[-1].trace is not None
                if view.over or (len(view.moves) >= args.moves and traced):
                    break
                if view.my_turn:
                    n = len(view.moves)
                    await pilot.press(str(rule_player(view.board)))
                    await until(lambda: len(screen.view.moves) > n or screen.view.over, "our move")
                else:
                    n = len(view.moves)
                    await until(lambda: len(screen.view.moves) > n or screen.view.over, f"{name}'s move")
            await pilot.pause(0.2)
            out = Path(args.out)
            out.parent.mkdir(parents=True, exist_ok=True)
            app.save_screenshot(filename=out.name, path=str(out.parent))
            summary = f"{len(screen.view.moves)} moves, {screen.view.status_line()}"
            return out, summary
    finally:
        if replay_bot is not None:
            await replay_bot.close()
        if task is not None:  # started with replay_bot
            task.cancel()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    arena = None
    url = args.server
    if url is None:
        import shlex

        from tui_client.local_arena import LocalArena, LocalArenaError

        arena = LocalArena(with_llm=not args.recorded_traces, llm_args=shlex.split(args.llm_args))
        try:
            url = arena.start()
        except LocalArenaError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        if arena.llm_notice and not args.recorded_traces:
            print(f"note: {arena.llm_notice}", file=sys.stderr)
    try:
        out, summary = asyncio.run(take(args, url))
    except (TimeoutError, OSError, ValueError) as exc:
        notice = arena.poll_llm() if arena is not None else None
        print(f"error: {exc}" + (f" ({notice})" if notice else ""), file=sys.stderr)
        return 1
    finally:
        if arena is not None:
            arena.stop()
    print(f"saved {out} ({summary})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
