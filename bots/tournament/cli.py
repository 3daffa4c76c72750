"""``autosteer-server tournament``: a round robin between bots, played through a server.

Without ``--server`` it starts a server in this process (house bots ``minimax`` and
``random``, records under ``--out``); ``--spawn NAME=KIND`` connects extra bots to it
through the ordinary bot client. It writes ``tournament.json`` and ``tournament.md``
(:mod:`bots.tournament.report`) and prints the tables.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

from bots.tournament.organizer import run_tournament
from bots.tournament.report import print_report, write_report
from bots.tournament.schedule import TournamentConfig, TournamentError, TournamentIncomplete, new_tournament_id

DEFAULT_OUT_ROOT = Path("var/tournaments")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server",
        default=None,
        metavar="URL",
        help="ws:// URL of a running server; without it a server is started in this process",
    )
    parser.add_argument("--bots", required=True, help="comma-separated bot names, e.g. minimax,random,random2")
    parser.add_argument("--games", type=int, default=20, help="games per pairing (sides alternate)")
    parser.add_argument("--clock", type=float, default=None, help="seconds per move (default: the server's)")
    parser.add_argument(
        "--out", default=None, metavar="DIR", help=f"where tournament.json/.md go (default {DEFAULT_OUT_ROOT}/<id>/)"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seeds every game's house bots (per-game seed from this, the pairing and the game index: "
        "the same games at any --concurrency), the rating bootstrap, the in-process server and spawned bots",
    )
    parser.add_argument("--concurrency", type=int, default=16, help="games played at once")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the rating intervals")
    parser.add_argument(
        "--anchor",
        default=None,
        metavar="BOT=ELO",
        help="pin one bot's rating (e.g. random=1000); default: mean rating 1500",
    )
    parser.add_argument(
        "--spawn",
        action="append",
        default=[],
        metavar="NAME=KIND",
        help="connect a bot client (kind minimax or random) under NAME before starting; repeatable",
    )
    parser.add_argument("--wait", type=float, default=0.0, help="seconds to wait for listed remote bots to connect")
    parser.add_argument(
        "--minimax-tiebreak",
        choices=("random", "first", "exploit"),
        default="random",
        help="tie-break of the in-process server's house minimax bot",
    )
    parser.add_argument("--id", dest="tournament_id", default=None, help="tournament id (default: time-based)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _parse_anchor(text: str | None) -> tuple[str | None, float]:
    if not text:
        return None, 1500.0
    name, sep, value = text.partition("=")
    try:
        if not sep:
            raise ValueError
        return name.strip(), float(value)
    except ValueError:
        raise TournamentError(f"--anchor must look like BOT=ELO (e.g. random=1000), got {text!r}") from None


def _parse_spawn(items: Sequence[str]) -> list[tuple[str, str]]:
    out = []
    for item in items:
        name, sep, kind = item.partition("=")
        if not sep or not name or kind not in ("minimax", "random"):
            raise TournamentError(f"--spawn must look like NAME=minimax or NAME=random, got {item!r}")
        out.append((name, kind))
    return out


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        anchor, anchor_rating = _parse_anchor(args.anchor)
        tid = args.tournament_id or new_tournament_id()
        config = TournamentConfig(
            bots=tuple(b.strip() for b in args.bots.split(",") if b.strip()),
            games=args.games,
            clock=args.clock,
            seed=args.seed,
            concurrency=args.concurrency,
            bootstrap=args.bootstrap,
            anchor=anchor,
            anchor_rating=anchor_rating,
            tournament_id=tid,
        )
        spawn = _parse_spawn(args.spawn)
        if args.server is not None and not args.server.startswith(("ws://", "wss://")):
            raise TournamentError(f"--server must be a ws:// or wss:// URL, got {args.server!r}")
        out_dir = Path(args.out) if args.out else DEFAULT_OUT_ROOT / tid
        report = asyncio.run(_run_cli(args, config, spawn, out_dir))
    except TournamentIncomplete as exc:
        json_path, md_path = write_report(exc.report, out_dir)
        if exc.report["games_played"]:
            print_report(exc.report)
        print(
            f"error: tournament {config.tournament_id} {exc}; partial results in {json_path} and {md_path}",
            file=sys.stderr,
        )
        return 1
    except TournamentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    json_path, md_path = write_report(report, out_dir)
    print_report(report)
    leader = report["ratings"]["ratings"][0]["name"] if report.get("ratings") else "?"
    print(
        f"tournament {config.tournament_id}: {report['games_played']} games; first: {leader}; "
        f"wrote {json_path} and {md_path}"
    )
    return 0


async def _run_cli(
    args: argparse.Namespace, config: TournamentConfig, spawn: list[tuple[str, str]], out_dir: Path
) -> dict[str, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    async with contextlib.AsyncExitStack() as stack:
        url = args.server
        send_rate, send_burst = 20.0, 40
        if url is None:
            from server.app import ServerConfig, serve_arena

            out_dir.mkdir(parents=True, exist_ok=True)
            # Our own server: lift the per-connection rate limit so many games run quickly.
            server_config = ServerConfig(
                host="127.0.0.1",
                port=0,
                db_path=str(out_dir / "games.sqlite3"),
                seed=args.seed,
                minimax_tiebreak=args.minimax_tiebreak,
                rate=10_000.0,
                burst=10_000,
                flood_close=10_000,
            )
            try:
                server = await stack.enter_async_context(serve_arena(server_config))
            except OSError as exc:
                raise TournamentError(f"cannot start the in-process server: {exc}") from None
            url = server.url
            send_rate, send_burst = 10_000.0, 10_000
            print(f"started an in-process server at {url}; records in {server_config.db_path}")
        for i, (name, kind) in enumerate(spawn):
            await stack.enter_async_context(
                _spawned_bot(url, name, kind, seed=args.seed + 100 + i, send_rate=send_rate, send_burst=send_burst)
            )
        total = len(config.schedule())
        progress = Progress(
            TextColumn("[bold]tournament {task.fields[tid]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[last]}"),
            TimeElapsedColumn(),
            disable=args.quiet,
        )
        with progress:
            task = progress.add_task("games", total=total, tid=config.tournament_id, last="")

            def on_game(over: dict[str, Any]) -> None:
                progress.update(task, advance=1, last=f"{over['x']} vs {over['o']}: {over['result']}")

            return await run_tournament(
                url, config, on_game=on_game, wait_for_bots=args.wait, send_rate=send_rate, send_burst=send_burst
            )


@contextlib.asynccontextmanager
async def _spawned_bot(url: str, name: str, kind: str, *, seed: int, send_rate: float, send_burst: int):
    from bots.client import BotClient, BotClientError
    from server.players.house import make_house_bot

    client = BotClient(
        make_house_bot(kind, name=name, seed=seed),
        url,
        name=name,
        max_games=64,
        send_rate=send_rate,
        send_burst=send_burst,
    )
    task = asyncio.create_task(client.run(), name=f"spawned-{name}")
    try:
        waiter = asyncio.create_task(client.wait_connected(10.0))
        done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            waiter.cancel()
            try:
                task.result()
            except BotClientError as exc:
                raise TournamentError(f"spawned bot {name}: {exc}") from None
            raise TournamentError(f"spawned bot {name} stopped before connecting")
        waiter.result()
        yield client
    finally:
        await client.stop()
        with contextlib.suppress(asyncio.CancelledError, BotClientError):
            await task
