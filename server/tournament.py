"""Round-robin tournaments between bots, played through a server; ``autosteer-server tournament``.

Every pairing of the listed bots plays ``games`` games with sides alternated. Each game is
started with ``arrange`` (tagged with the tournament id) and played through the server like
any other game, so it is stored in the server's records. The organiser connects as a player
named ``tournament-<id>``, watches its games and collects each ``game_over``. Then it writes
``tournament.json`` and ``tournament.md`` (cross table, win/draw/loss per pairing, Elo with
95 % intervals from :mod:`server.ratings`) and prints the table.

Without ``--server`` it starts a server in this process (house bots ``minimax`` and
``random``, records under ``--out``); ``--spawn NAME=KIND`` connects extra bots to it
through the ordinary bot client, e.g. a second random bot::

    autosteer-server tournament --bots minimax,random,random2 --spawn random2=random --games 50

Every arranged game carries a seed derived from ``--seed``, the pairing and the game's
index in the pairing (:func:`server.seeding.game_seed`); a house bot in that game draws
from its own ``Random(seed)``, so between house bots the same ``--seed`` plays the same
games at any ``--concurrency``. The seed is stored with the game's record and listed in
the report. Remote bots do not receive it and choose their moves themselves.

Aborted games (server stopped) are reported but not rated; forfeits (timeout, disconnect,
illegal move) count as losses of the side that forfeited.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import re
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from server.seeding import game_seed

log = logging.getLogger("autosteer.tournament")

DEFAULT_OUT_ROOT = Path("var/tournaments")


class TournamentError(RuntimeError):
    """The tournament cannot run as asked (unknown bot, unreachable server...)."""


class TournamentIncomplete(TournamentError):
    """The tournament stopped part way (a bot left, the server went away); ``report``
    holds the games played until then, marked ``incomplete``."""

    def __init__(self, message: str, report: dict[str, Any]) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class TournamentConfig:
    bots: tuple[str, ...]
    games: int = 20  # per pairing
    clock: float | None = None  # seconds per move; None: the server's default
    seed: int = 0  # seeds every game (game_seed), the bootstrap and the in-process server
    concurrency: int = 16  # games in flight at once
    bootstrap: int = 1000
    anchor: str | None = None  # None: mean rating = anchor_rating
    anchor_rating: float = 1500.0
    tournament_id: str = ""

    def __post_init__(self) -> None:
        if len(self.bots) < 2:
            raise TournamentError(f"a tournament needs at least two bots, got {list(self.bots)}")
        dupes = sorted({b for b in self.bots if self.bots.count(b) > 1})
        if dupes:
            raise TournamentError(f"each bot may be listed once; repeated: {', '.join(dupes)} "
                                  "(connect a second copy under another name, e.g. --spawn random2=random)")
        if self.games < 1:
            raise TournamentError(f"--games must be >= 1, got {self.games}")
        if self.concurrency < 1:
            raise TournamentError(f"--concurrency must be >= 1, got {self.concurrency}")
        if self.tournament_id and not re.fullmatch(r"[A-Za-z0-9_.\-]{1,40}", self.tournament_id):
            raise TournamentError(f"a tournament id is 1-40 letters, digits, '_', '.' or '-', got {self.tournament_id!r}")
        if self.anchor is not None and self.anchor not in self.bots:
            raise TournamentError(f"anchor {self.anchor!r} is not one of the bots: {', '.join(self.bots)}")

    def schedule(self) -> list[tuple[str, str]]:
        """(x, o) of every game: each pairing ``games`` times, sides alternated, pairings
        interleaved so partial results stay balanced."""
        per_pair = []
        for a, b in itertools.combinations(self.bots, 2):
            per_pair.append([(a, b) if i % 2 == 0 else (b, a) for i in range(self.games)])
        return [g for round_ in zip(*per_pair) for g in round_]

    def game_seed(self, a: str, b: str, index: int) -> int:
        """The seed sent with game ``index`` (0-based) of the pairing ``a`` vs ``b`` (a listed
        first): fixed by ``seed``, the pairing and the index, whatever order games run in."""
        return game_seed(self.seed, "tournament", a, b, index)

    def arranged_games(self) -> list["ScheduledGame"]:
        """:meth:`schedule` with each game's place: its number in the schedule, the pairing
        it belongs to, its index in that pairing and its seed."""
        order = {name: i for i, name in enumerate(self.bots)}
        played: dict[tuple[str, str], int] = {}
        out = []
        for number, (x, o) in enumerate(self.schedule()):
            a, b = sorted((x, o), key=order.__getitem__)
            index = played.get((a, b), 0)
            played[(a, b)] = index + 1
            out.append(ScheduledGame(number, x, o, index, self.game_seed(a, b, index)))
        return out


@dataclass(frozen=True)
class ScheduledGame:
    """One game of the round robin, before it is played."""

    number: int  # place in the schedule (0-based); the report lists games in this order
    x: str
    o: str
    index: int  # 0-based index within its pairing
    seed: int  # the protocol's per-game seed sent with arrange


# --------------------------------------------------------------------------- organiser connection
class Organizer:
    """A player connection that arranges bot-vs-bot games and waits for their results: a
    :class:`client.aio.ArenaClient` whose failures are :class:`TournamentError`."""

    def __init__(self, url: str, name: str, *, send_rate: float = 20.0, send_burst: int = 40,
                 open_timeout: float = 10.0) -> None:
        self.url, self.name = url, name
        self.send_rate, self.send_burst, self.open_timeout = send_rate, send_burst, open_timeout
        self._arena: Any = None

    async def __aenter__(self) -> "Organizer":
        from client.aio import ArenaClient, HelloError, SendPacer
        from client.core import ClientCore

        self._arena = ArenaClient(self.url, ClientCore(self.name, id_prefix="t"), open_timeout=self.open_timeout,
                                  pacer=SendPacer(self.send_rate, self.send_burst), max_size=4 << 20)
        try:
            await self._arena.connect()
        except HelloError as exc:
            raise TournamentError(f"the server refused the organiser: {exc}") from None
        except (OSError, asyncio.TimeoutError) as exc:
            raise TournamentError(f"cannot reach the server at {self.url}: {exc}") from None
        except Exception as exc:  # websockets' handshake and URI errors
            raise TournamentError(f"cannot connect to {self.url}: {type(exc).__name__}: {exc}") from None
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._arena is not None:
            await self._arena.close()

    async def request(self, frame: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        """Send ``frame`` with a fresh id; return the reply carrying that id (or the error)."""
        from client.aio import ClientError

        fields = {k: v for k, v in frame.items() if k != "type"}
        try:
            event = await self._arena.request(self._arena.core.request(frame["type"], **fields), timeout)
        except ClientError as exc:
            raise TournamentError(str(exc)) from None
        return event.frame

    async def list_bots(self) -> list[dict[str, Any]]:
        reply = await self.request({"type": "list_bots"})
        return list(reply.get("bots", []))

    async def play(self, x: str, o: str, *, clock: float | None, tag: str, game_timeout: float,
                   seed: int | None = None, retry_for: float = 120.0) -> dict[str, Any]:
        """Arrange ``x`` vs ``o`` (with the per-game ``seed`` for house bots, if given) and
        return its ``game_over`` frame. A busy or declining bot is retried with growing
        pauses for up to ``retry_for`` seconds."""
        from client.aio import ClientError

        try:
            return await self._arena.play_arranged(x, o, clock=clock, tag=tag, seed=seed, game_timeout=game_timeout,
                                                   retry_for=retry_for)
        except ClientError as exc:
            raise TournamentError(str(exc)) from None


# --------------------------------------------------------------------------- results
@dataclass
class PairingResult:
    """Results of ``a`` against ``b`` (a listed before b), from a's side."""

    a: str
    b: str
    wins: int = 0
    draws: int = 0
    losses: int = 0
    aborted: int = 0
    a_as_x: list[int] = field(default_factory=lambda: [0, 0, 0])  # W/D/L with a playing X
    a_as_o: list[int] = field(default_factory=lambda: [0, 0, 0])

    @property
    def played(self) -> int:
        return self.wins + self.draws + self.losses

    @property
    def points(self) -> float:
        return self.wins + 0.5 * self.draws


def score_for_x(result: str) -> float | None:
    """X's points for a game result, None for an aborted game."""
    return {"X": 1.0, "O": 0.0, "draw": 0.5}.get(result)


def summarise(config: TournamentConfig, games: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The report (JSON-ready) from the tournament's ``game_over`` frames."""
    from server.ratings import GameScore, RatingError, rate

    order = {name: i for i, name in enumerate(config.bots)}
    pairings: dict[tuple[str, str], PairingResult] = {}
    for a, b in itertools.combinations(config.bots, 2):
        pairings[(a, b)] = PairingResult(a, b)
    scores: list[GameScore] = []
    reasons: dict[str, int] = {}
    for g in games:
        x, o, result = g["x"], g["o"], g["result"]
        a, b = sorted((x, o), key=order.__getitem__)
        p = pairings[(a, b)]
        reasons[g["reason"]] = reasons.get(g["reason"], 0) + 1
        sx = score_for_x(result)
        if sx is None:
            p.aborted += 1
            continue
        scores.append(GameScore(x, o, sx))
        sa = sx if a == x else 1.0 - sx
        slot = 0 if sa == 1.0 else 1 if sa == 0.5 else 2
        (p.a_as_x if a == x else p.a_as_o)[slot] += 1
        if slot == 0:
            p.wins += 1
        elif slot == 1:
            p.draws += 1
        else:
            p.losses += 1

    ratings: dict[str, Any] | None = None
    rating_error = None
    if scores:
        try:
            ratings = rate(scores, bootstrap=config.bootstrap, seed=config.seed, anchor=config.anchor,
                           anchor_rating=config.anchor_rating).to_dict()
        except RatingError as exc:
            rating_error = str(exc)
    cross: dict[str, dict[str, float | None]] = {a: {} for a in config.bots}
    for (a, b), p in pairings.items():
        cross[a][b] = p.points / p.played if p.played else None
        cross[b][a] = (p.played - p.points) / p.played if p.played else None
    return {
        "tournament_id": config.tournament_id,
        "bots": list(config.bots),
        "seed": config.seed,
        "games_per_pairing": config.games,
        "clock": config.clock,
        "games_played": len(games),
        "games_rated": len(scores),
        "reasons": reasons,
        "pairings": [
            {"a": p.a, "b": p.b, "wins": p.wins, "draws": p.draws, "losses": p.losses, "aborted": p.aborted,
             "points": p.points, "played": p.played,
             "a_as_x": dict(zip(("wins", "draws", "losses"), p.a_as_x)),
             "a_as_o": dict(zip(("wins", "draws", "losses"), p.a_as_o))}
            for p in pairings.values()
        ],
        "cross_table": cross,  # row's score rate against column
        "ratings": ratings,
        "rating_error": rating_error,
        "games": [{"game_id": g["game_id"], "x": g["x"], "o": g["o"], "result": g["result"], "reason": g["reason"],
                   "seed": g.get("seed"), "moves": "".join(str(m["cell"]) for m in g.get("moves", []))}
                  for g in games],
    }


def render_markdown(report: dict[str, Any]) -> str:
    bots = report["bots"]
    lines = [f"# Tournament {report['tournament_id']}", ""]
    if report.get("incomplete"):
        lines += [f"**Incomplete**: {report['incomplete']}. The tables cover the games played until then.", ""]
    started = report.get("started_at")
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)) if started else ""
    lines += [f"{len(bots)} bots, {report['games_per_pairing']} games per pairing (sides alternated), "
              f"{report['games_played']} games played ({report['games_rated']} rated) on {report.get('server', '?')}"
              + (f", {when}" if when else "") + "."]
    if report.get("seed") is not None:
        lines += [f"Each game's seed is derived from seed {report['seed']}, the pairing and the game index; "
                  "house bots replay the same games with the same seed at any concurrency."]
    lines += [""]
    ratings = report.get("ratings")
    if ratings:
        pct = round(ratings["confidence"] * 100)
        anchor = "mean" if ratings["anchor"] == "mean" else ratings["anchor"]
        lines += ["## Ratings", "",
                  f"| rank | bot | Elo | {pct} % interval | games | score |",
                  "|---:|---|---:|---|---:|---:|"]
        for i, r in enumerate(ratings["ratings"], 1):
            lines.append(f"| {i} | {r['name']} | {r['elo']:.0f} | {r['low']:.0f} – {r['high']:.0f} | {r['games']} | "
                         f"{100 * r['score_rate']:.1f} % |")
        lines += ["", f"Elo by maximum likelihood (Bradley-Terry, draws = ½), {anchor} anchored at "
                      f"{ratings['anchor_rating']:.0f}, {ratings['prior_draws']:g} virtual draw(s) per pairing as prior; "
                      f"intervals: percentile bootstrap over games ({ratings['bootstrap']} resamples, seed {ratings['seed']}).", ""]
    elif report.get("rating_error"):
        lines += ["## Ratings", "", f"Not computed: {report['rating_error']}", ""]
    lines += ["## Cross table", "", "Score rate of the row bot against the column bot.", "",
              "| | " + " | ".join(bots) + " |", "|---|" + "---:|" * len(bots)]
    for a in bots:
        cells = []
        for b in bots:
            v = report["cross_table"][a].get(b) if a != b else None
            cells.append("—" if a == b else ("n/a" if v is None else f"{100 * v:.1f} %"))
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    lines += ["", "## Pairings", "", "| pairing | W | D | L | aborted | as X (W/D/L) | as O (W/D/L) |",
              "|---|---:|---:|---:|---:|---|---|"]
    for p in report["pairings"]:
        ax, ao = p["a_as_x"], p["a_as_o"]
        lines.append(f"| {p['a']} vs {p['b']} | {p['wins']} | {p['draws']} | {p['losses']} | {p['aborted']} | "
                     f"{ax['wins']}/{ax['draws']}/{ax['losses']} | {ao['wins']}/{ao['draws']}/{ao['losses']} |")
    lines += ["", "W/D/L from the first bot's side. Game end reasons: "
              + ", ".join(f"{k} {v}" for k, v in sorted(report["reasons"].items())) + ".",
              "", f"Every game is in the server's records with tag `{report['tournament_id']}`.", ""]
    return "\n".join(lines)


def write_report(report: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "tournament.json", out_dir / "tournament.md"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path.write_text(render_markdown(report))
    return json_path, md_path


# --------------------------------------------------------------------------- running
ProgressHook = Callable[[dict[str, Any]], None]


async def run_tournament(url: str, config: TournamentConfig, *, on_game: ProgressHook | None = None,
                         wait_for_bots: float = 0.0, send_rate: float = 20.0, send_burst: int = 40,
                         game_timeout: float | None = None) -> dict[str, Any]:
    """Play the whole round robin on the server at ``url``; return the report dict.

    Each game is arranged with its seed from :meth:`TournamentConfig.game_seed`, and the
    report lists the games in schedule order (not the order they finished), so with house
    bots the same ``config.seed`` gives the same report (games, ratings) at any
    ``concurrency``."""
    tid = config.tournament_id or new_tournament_id()
    if not config.tournament_id:
        config = _replace(config, tournament_id=tid)
    started = time.time()
    async with Organizer(url, f"tournament-{tid}"[:32], send_rate=send_rate, send_burst=send_burst) as org:
        capacity = await _wait_for_bots(org, config.bots, wait_for_bots)
        limits = {name: asyncio.Semaphore(cap) for name, cap in capacity.items() if cap is not None}
        slots = asyncio.Semaphore(config.concurrency)
        clock = config.clock or 30.0
        per_game = game_timeout or clock * 9 + 30.0
        finished: list[tuple[int, dict[str, Any]]] = []  # (schedule number, game_over + seed)

        async def one(game: ScheduledGame) -> None:
            async with contextlib.AsyncExitStack() as stack:
                await stack.enter_async_context(slots)
                for name in sorted({game.x, game.o}):  # fixed order: no deadlock between two games
                    if name in limits:
                        await stack.enter_async_context(limits[name])
                over = await org.play(game.x, game.o, clock=config.clock, tag=tid, game_timeout=per_game,
                                      seed=game.seed)
            over = {**over, "seed": game.seed}
            finished.append((game.number, over))
            if on_game is not None:
                on_game(over)

        tasks = [asyncio.create_task(one(game)) for game in config.arranged_games()]
        failure: TournamentError | None = None
        try:
            await asyncio.gather(*tasks)
        except TournamentError as exc:
            failure = exc
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    results = [over for _, over in sorted(finished, key=lambda item: item[0])]
    report = summarise(config, results)
    report["server"] = url
    report["started_at"] = started
    report["finished_at"] = time.time()
    if failure is not None:
        report["incomplete"] = str(failure)
        raise TournamentIncomplete(f"stopped after {len(results)} of {len(tasks)} games: {failure}", report)
    return report


async def _wait_for_bots(org: Organizer, wanted: Sequence[str], wait: float) -> dict[str, int | None]:
    """Capacity of each wanted bot (None: unlimited house bot); waits up to ``wait`` s for
    remote bots to connect, then fails naming the missing ones."""
    deadline = time.monotonic() + wait
    while True:
        bots = {b["name"]: b for b in await org.list_bots()}
        missing = [n for n in wanted if n not in bots]
        if not missing:
            return {n: (None if bots[n].get("kind") == "house" else max(1, int(bots[n].get("max_games") or 1)))
                    for n in wanted}
        if time.monotonic() >= deadline:
            online = ", ".join(sorted(bots)) or "none"
            raise TournamentError(f"not on the server: {', '.join(missing)}; bots online: {online} "
                                  "(start them with autosteer-bot run, or use --spawn NAME=KIND, or --wait S)")
        await asyncio.sleep(0.2)


def new_tournament_id() -> str:
    return time.strftime("t%Y%m%d-%H%M%S-", time.gmtime()) + secrets.token_hex(2)


def _replace(config: TournamentConfig, **changes: Any) -> TournamentConfig:
    from dataclasses import replace

    return replace(config, **changes)


# --------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", default=None, metavar="URL",
                        help="ws:// URL of a running server; without it a server is started in this process")
    parser.add_argument("--bots", required=True, help="comma-separated bot names, e.g. minimax,random,random2")
    parser.add_argument("--games", type=int, default=20, help="games per pairing (sides alternate)")
    parser.add_argument("--clock", type=float, default=None, help="seconds per move (default: the server's)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help=f"where tournament.json/.md go (default {DEFAULT_OUT_ROOT}/<id>/)")
    parser.add_argument("--seed", type=int, default=0, help="seeds every game's house bots (per-game seed from this, the pairing and the game index: "
                             "the same games at any --concurrency), the rating bootstrap, the in-process server and spawned bots")
    parser.add_argument("--concurrency", type=int, default=16, help="games played at once")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the rating intervals")
    parser.add_argument("--anchor", default=None, metavar="BOT=ELO",
                        help="pin one bot's rating (e.g. random=1000); default: mean rating 1500")
    parser.add_argument("--spawn", action="append", default=[], metavar="NAME=KIND",
                        help="connect a bot client (kind minimax or random) under NAME before starting; repeatable")
    parser.add_argument("--wait", type=float, default=0.0, help="seconds to wait for listed remote bots to connect")
    parser.add_argument("--minimax-tiebreak", choices=("random", "first", "exploit"), default="random",
                        help="tie-break of the in-process server's house minimax bot")
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
            bots=tuple(b.strip() for b in args.bots.split(",") if b.strip()), games=args.games, clock=args.clock,
            seed=args.seed, concurrency=args.concurrency, bootstrap=args.bootstrap, anchor=anchor,
            anchor_rating=anchor_rating, tournament_id=tid)
        spawn = _parse_spawn(args.spawn)
        if args.server is not None and not args.server.startswith(("ws://", "wss://")):
            raise TournamentError(f"--server must be a ws:// or wss:// URL, got {args.server!r}")
        out_dir = Path(args.out) if args.out else DEFAULT_OUT_ROOT / tid
        report = asyncio.run(_run_cli(args, config, spawn, out_dir))
    except TournamentIncomplete as exc:
        json_path, md_path = write_report(exc.report, out_dir)
        if exc.report["games_played"]:
            print_report(exc.report)
        print(f"error: tournament {config.tournament_id} {exc}; partial results in {json_path} and {md_path}",
              file=sys.stderr)
        return 1
    except TournamentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    json_path, md_path = write_report(report, out_dir)
    print_report(report)
    leader = report["ratings"]["ratings"][0]["name"] if report.get("ratings") else "?"
    print(f"tournament {config.tournament_id}: {report['games_played']} games; first: {leader}; "
          f"wrote {json_path} and {md_path}")
    return 0


async def _run_cli(args: argparse.Namespace, config: TournamentConfig, spawn: list[tuple[str, str]],
                   out_dir: Path) -> dict[str, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    async with contextlib.AsyncExitStack() as stack:
        url = args.server
        send_rate, send_burst = 20.0, 40
        if url is None:
            from server.app import ServerConfig, serve_arena

            out_dir.mkdir(parents=True, exist_ok=True)
            # Our own server: lift the per-connection rate limit so many games run quickly.
            server_config = ServerConfig(host="127.0.0.1", port=0, db_path=str(out_dir / "games.sqlite3"),
                                         seed=args.seed, minimax_tiebreak=args.minimax_tiebreak,
                                         rate=10_000.0, burst=10_000, flood_close=10_000)
            try:
                server = await stack.enter_async_context(serve_arena(server_config))
            except OSError as exc:
                raise TournamentError(f"cannot start the in-process server: {exc}") from None
            url = server.url
            send_rate, send_burst = 10_000.0, 10_000
            print(f"started an in-process server at {url}; records in {server_config.db_path}")
        for i, (name, kind) in enumerate(spawn):
            await stack.enter_async_context(_spawned_bot(url, name, kind, seed=args.seed + 100 + i,
                                                         send_rate=send_rate, send_burst=send_burst))
        total = len(config.schedule())
        progress = Progress(TextColumn("[bold]tournament {task.fields[tid]}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[last]}"), TimeElapsedColumn(), disable=args.quiet)
        with progress:
            task = progress.add_task("games", total=total, tid=config.tournament_id, last="")

            def on_game(over: dict[str, Any]) -> None:
                progress.update(task, advance=1, last=f"{over['x']} vs {over['o']}: {over['result']}")

            return await run_tournament(url, config, on_game=on_game, wait_for_bots=args.wait,
                                        send_rate=send_rate, send_burst=send_burst)


@contextlib.asynccontextmanager
async def _spawned_bot(url: str, name: str, kind: str, *, seed: int, send_rate: float, send_burst: int):
    from bots.client import BotClient, BotClientError
    from bots.house import make_house_bot

    client = BotClient(make_house_bot(kind, name=name, seed=seed), url, name=name, max_games=64,
                       send_rate=send_rate, send_burst=send_burst)
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


def print_report(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    ratings = report.get("ratings")
    if ratings:
        t = Table(title=f"Tournament {report['tournament_id']}: ratings ({round(100 * ratings['confidence'])} % CI)")
        for col, justify in (("rank", "right"), ("bot", "left"), ("Elo", "right"), ("interval", "left"),
                             ("games", "right"), ("score", "right")):
            t.add_column(col, justify=justify)  # type: ignore[arg-type]
        for i, r in enumerate(ratings["ratings"], 1):
            t.add_row(str(i), r["name"], f"{r['elo']:.0f}", f"{r['low']:.0f} – {r['high']:.0f}", str(r["games"]),
                      f"{100 * r['score_rate']:.1f} %")
        console.print(t)
    elif report.get("rating_error"):
        console.print(f"[yellow]ratings not computed: {report['rating_error']}")
    bots = report["bots"]
    cross = Table(title="cross table (row's score rate vs column)")
    cross.add_column("")
    for b in bots:
        cross.add_column(b, justify="right")
    for a in bots:
        row = []
        for b in bots:
            v = report["cross_table"][a].get(b) if a != b else None
            row.append("—" if a == b else ("n/a" if v is None else f"{100 * v:.1f} %"))
        cross.add_row(a, *row)
    console.print(cross)
    pairs = Table(title="pairings (W/D/L from the first bot's side)")
    for col in ("pairing", "W", "D", "L", "aborted"):
        pairs.add_column(col, justify="left" if col == "pairing" else "right")
    for p in report["pairings"]:
        pairs.add_row(f"{p['a']} vs {p['b']}", str(p["wins"]), str(p["draws"]), str(p["losses"]), str(p["aborted"]))
    console.print(pairs)
