"""``autosteer-train evaluate``: play the LLM bot against minimax and random, per seat and mode,
and report win/draw/loss/illegal counts with Wilson 95 % intervals and the steering strength.

An *arm* is one (opponent, LLM seat, move-reading mode) combination; each arm plays
``--games`` games. Two ways to play them (``--via``), always named in the output:

* ``server`` (default): an in-process arena server (``serve_arena``, records in memory);
  the LLM bot connects as a remote bot through ``BotClient``, an organiser connection
  arranges the games against the server's house bots (minimax tie-breaks random) and reads
  each ``game_over``. Each game is arranged with its own ``seed`` derived from (``--seed``,
  arm, game index; the protocol's per-game ``seed``), and the house bot draws that game's choices from ``Random(seed)``, so
  although many games run at once, every game is exactly reproducible.
* ``local``: the same bot and house-bot classes in-process without sockets, each game's
  opponent seeded the same way. Faster; use it for sweeps.

An illegal move (strict mode, occupied cell) loses the game and is also counted in the
``illegal`` column. Beside every rate (``docs/EVALUATION.md``):

* the evidence behind it: distinct game records and distinct boards the LLM moved on
  (``training/evaluation/evidence.py``), and, for a deterministic policy, the exact probabilities from
  a tree walk against the same opponent (``training/vector_search.exact_outcome``) — the
  true rate that the sampled games only re-estimate;
* the steering budget: mean |coefficient|, mean and max ‖added vector‖ / ‖residual at the
  hook‖, mean KL of the move distribution from the unsteered one, the digits' share of
  the next-token probability (mean and min, steered; mean unsteered), features active
  per move, and the share of moves the steering changed;
* the hashes of the model, SAE and policy taken before and after the run.

Opponents: ``minimax``, ``random`` (the server's house bots) and ``eps0.1``/``eps0.3``
(ε-greedy minimax, ``server.players.house.EpsilonMinimaxBot``; not in the server's roster, so
``--via local`` only).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from server.players.base import Bot
from server.game import Board, Seat
from server.seeding import game_seed
from training.evaluation.evidence import distinct_counts, snapshots_agree, weights_snapshot

OPPONENTS = ("minimax", "random", "eps0.1", "eps0.3")
SERVER_OPPONENTS = ("minimax", "random")  # the server's house bots


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95 % by default).

    >>> lo, hi = wilson_interval(0, 1000); (round(lo, 4), round(hi, 4))
    (0.0, 0.0038)
    >>> lo, hi = wilson_interval(500, 1000); (round(lo, 3), round(hi, 3))
    (0.469, 0.531)
    """
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass
class ArmResult:
    """Outcome counts of one arm, from the LLM's side, and its steering strength."""

    opponent: str
    seat: str
    mode: str
    games: int = 0
    wins: int = 0
    draws: int = 0
    losses: int = 0
    illegal: int = 0  # losses by an illegal move (counted in losses too)
    other: int = 0  # aborted / timed out games (should be 0)
    llm_moves: int = 0
    mean_abs_coef: float = 0.0
    mean_norm_ratio: float = 0.0
    mean_kl: float = 0.0
    changed_fraction: float = 0.0
    max_norm_ratio: float = 0.0
    mean_features_active: float = 0.0
    mean_digit_mass: float | None = None  # the digits' share of next-token probability, steered
    min_digit_mass: float | None = None
    mean_base_digit_mass: float | None = None  # the same without steering, on the same boards
    distinct_games: int = 0  # distinct game records among the games played
    distinct_boards: int = 0  # distinct boards the LLM moved on
    exact: dict[str, float] | None = None  # exact tree-walk probabilities (deterministic policy)
    seconds: float = 0.0
    intervals: dict[str, list[float]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.opponent}/{self.seat}/{self.mode}"

    def finish(self) -> None:
        for key in ("wins", "draws", "losses", "illegal"):
            lo, hi = wilson_interval(getattr(self, key), self.games)
            self.intervals[key] = [round(lo, 4), round(hi, 4)]


class BudgetTally:
    """Running sums of the steering budget over LLM moves (see ``budget_text`` for the columns)."""

    def __init__(self) -> None:
        self.n = 0
        self.coef = self.ratio = self.kl = self.active = 0.0
        self.max_ratio = 0.0
        self.changed = 0
        self.mass: list[float] = []
        self.base_mass: list[float] = []

    def add(self, moves: list[Any]) -> None:
        for m in moves:
            self.n += 1
            self.coef += m.mean_abs_coef
            self.ratio += m.norm_ratio
            self.max_ratio = max(self.max_ratio, m.norm_ratio)
            self.kl += m.kl
            self.changed += int(m.changed)
            self.active += m.features_active
            if m.digit_mass is not None:
                self.mass.append(m.digit_mass)
            if m.base_digit_mass is not None:
                self.base_mass.append(m.base_digit_mass)

    def into(self, arm: ArmResult) -> None:
        arm.llm_moves = self.n
        if self.n:
            arm.mean_abs_coef = round(self.coef / self.n, 5)
            arm.mean_norm_ratio = round(self.ratio / self.n, 5)
            arm.max_norm_ratio = round(self.max_ratio, 5)
            arm.mean_kl = round(self.kl / self.n, 5)
            arm.changed_fraction = round(self.changed / self.n, 5)
            arm.mean_features_active = round(self.active / self.n, 3)
        if self.mass:
            arm.mean_digit_mass = round(sum(self.mass) / len(self.mass), 5)
            arm.min_digit_mass = round(min(self.mass), 5)
        if self.base_mass:
            arm.mean_base_digit_mass = round(sum(self.base_mass) / len(self.base_mass), 5)


def _game_seed(seed: int, arm: ArmResult, index: int) -> int:
    """The opponent's seed for game ``index`` of ``arm``, 0 ≤ seed < 2**63 (the protocol's
    range): the same in-process (``--via local``) and sent with ``arrange`` (``--via
    server``), so both ways play the same games."""
    return game_seed(seed, arm.opponent, arm.seat, arm.mode, index)


def house_opponent(name: str, seed: int) -> Any:
    """The in-process opponent ``name`` (``minimax``, ``random``, ``eps<ε>``) seeded with ``seed``."""
    from server.players.house import make_house_bot

    if name.startswith("eps"):
        return make_house_bot("epsilon", name=name, seed=seed, epsilon=float(name[3:]))
    return make_house_bot(name, seed=seed)


def _count_distinct(arm: ArmResult, games: dict[str, list[int]]) -> None:
    arm.distinct_games, arm.distinct_boards = distinct_counts(games.values(), Seat(arm.seat))


def exact_probabilities(bot: Any, seat: str, opponent: str) -> dict[str, float] | None:
    """Exact win/draw/loss/illegal probabilities of the bot (its policy and current mode)
    as ``seat`` against ``opponent`` (a tree walk, ``training/vector_search.exact_outcome``),
    with the number of distinct boards it moved on; None when the policy is not a function
    of the board (a policy that samples declares ``deterministic = False``)."""
    from training.vector_search import exact_outcome

    if not getattr(getattr(bot, "policy", None), "deterministic", True):
        return None

    def choose(boards: list[Board]) -> list[int | None]:
        return [m.reading.cell if m.reading.legal else None for m in bot.play(boards)]

    o = exact_outcome(choose, Seat(seat), opponent)
    return {
        "win": round(o.win, 6),
        "draw": round(o.draw, 6),
        "loss": round(o.loss, 6),
        "illegal": round(o.illegal, 6),
        "boards": o.boards_read,
    }


def exact_arm(bot: Any, arm: ArmResult) -> dict[str, float] | None:
    """:func:`exact_probabilities` for an arm's seat and opponent."""
    return exact_probabilities(bot, arm.seat, arm.opponent)


def _score(arm: ArmResult, board: Board, llm: Seat, illegal: bool) -> None:
    arm.games += 1
    if illegal:
        arm.losses += 1
        arm.illegal += 1
    elif board.winner is llm:
        arm.wins += 1
    elif board.winner is None:
        arm.draws += 1
    else:
        arm.losses += 1


# --------------------------------------------------------------------------- local play
def play_arm_local(
    bot: Any,
    arm: ArmResult,
    n_games: int,
    seed: int,
    concurrency: int,
    progress: Any,
    games: dict[str, list[int]] | None = None,
) -> None:
    """Play ``n_games`` in-process, ``concurrency`` at a time, the LLM's moves batched.
    Game ``i``'s opponent draws from its own generator seeded with ``_game_seed(seed, arm, i)``,
    the seed the server path sends with ``arrange``. With ``games`` given, each game's legal
    cells in play order are stored under its tag (``"<arm>#<i>"``, as through the server).
    The arm's distinct games and boards are counted from the same records."""
    from server.players.base import MoveRequest

    games = {} if games is None else games
    llm_seat = Seat(arm.seat)
    strength = BudgetTally()
    next_index = 0
    active: list[tuple[Board, Any, list[int]]] = []

    def done(board: Board, illegal: bool) -> None:
        _score(arm, board, llm_seat, illegal=illegal)
        progress.update(1)

    while next_index < n_games or active:
        while next_index < n_games and len(active) < concurrency:
            cells: list[int] = []
            if games is not None:
                games[f"{arm.name}#{next_index}"] = cells
            active.append((Board.empty(), house_opponent(arm.opponent, _game_seed(seed, arm, next_index)), cells))
            next_index += 1
        # opponents move until it is the LLM's turn (or the game ends)
        waiting = []
        for board, opp, cells in active:
            while not board.is_over and board.turn is not llm_seat:
                cell = opp.choose(MoveRequest("local", board)).cell
                board = board.play(cell)
                cells.append(cell)
            if board.is_over:
                done(board, illegal=False)
            else:
                waiting.append((board, opp, cells))
        active = []
        if not waiting:
            continue
        moves = bot.play([b for b, _, _ in waiting])
        strength.add(moves)
        for (board, opp, cells), move in zip(waiting, moves):
            if not move.reading.legal:
                done(board, illegal=True)
                continue
            board = board.play(move.reading.cell)
            cells.append(move.reading.cell)
            if board.is_over:
                done(board, illegal=False)
            else:
                active.append((board, opp, cells))
    strength.into(arm)
    _count_distinct(arm, {k: v for k, v in games.items() if k.startswith(arm.name + "#")})


# --------------------------------------------------------------------------- through a server
class _RecordingBot(Bot):
    """Wraps the LLM bot for ``BotClient``: same moves, and the steering strength is kept."""

    def __init__(self, bot: Any, strength: BudgetTally) -> None:
        self.bot = bot
        self.strength = strength
        self.name = bot.name
        self.description = bot.description
        self.max_batch = bot.max_batch
        self.forfeit_on_illegal = bot.forfeit_on_illegal

    def choose(self, request: Any) -> Any:
        return self.choose_batch([request])[0]

    def choose_batch(self, requests: Any) -> list[Any]:
        from server.players.base import Decision

        moves = self.bot.play([r.board for r in requests])
        self.strength.add(moves)
        return [Decision(m.reading.cell, m.trace) for m in moves]

    def close(self) -> None:
        pass


async def play_arm_server(
    bot: Any,
    arm: ArmResult,
    n_games: int,
    seed: int,
    concurrency: int,
    progress: Any,
    games: dict[str, list[int]] | None = None,
) -> None:
    """Play ``n_games`` through an in-process server: the LLM bot as a remote ``BotClient``,
    the opponent the server's house bot, the games arranged by an organiser connection
    (:meth:`client.aio.ArenaClient.play_arranged`, ``concurrency`` games at once).

    Game ``i`` of the arm is arranged with the per-game seed ``_game_seed(seed, arm, i)``
    (the protocol's ``seed`` on ``arrange``), so the house bot draws that game's choices
    from its own generator: the games are the same whatever order they finish in. With
    ``games`` given, each game's cells in play order are stored under its tag."""
    if arm.opponent not in SERVER_OPPONENTS:
        raise RuntimeError(
            f"the server has no house bot {arm.opponent!r} (it has {', '.join(SERVER_OPPONENTS)}); "
            "play it with --via local"
        )
    games = {} if games is None else games
    from bots.client import BotClient
    from client.aio import ArenaClient, ClientError
    from client.core import ClientCore
    from server.app import ServerConfig, serve_arena

    strength = BudgetTally()
    config = ServerConfig(
        port=0,
        db_path=":memory:",
        seed=seed,
        minimax_tiebreak="random",
        move_clock=600.0,
        rate=1e6,
        burst=100_000,
        flood_close=100_000,
        ping_interval=None,
    )
    llm_name = "llm"
    x, o = (llm_name, arm.opponent) if arm.seat == "X" else (arm.opponent, llm_name)
    async with serve_arena(config) as srv:
        client = BotClient(
            _RecordingBot(bot, strength),
            srv.url,
            name=llm_name,
            max_games=min(1024, concurrency),
            reconnect=False,
            batch_window=0.002,
            send_rate=1e6,
            send_burst=100_000,
        )
        runner = asyncio.create_task(client.run())
        try:
            await client.wait_connected(30.0)
            async with ArenaClient(srv.url, ClientCore("evaluator")) as arena:
                slots = asyncio.Semaphore(concurrency)

                async def one(i: int) -> None:
                    async with slots:
                        over = await arena.play_arranged(
                            x,
                            o,
                            tag=f"{arm.name}#{i}",
                            seed=_game_seed(seed, arm, i),
                            game_timeout=config.move_clock * 9 + 30.0,
                            retry_for=600.0,
                        )
                    _tally_server_game(arm, games, over, Seat(arm.seat))
                    progress.update(1)

                tasks = [asyncio.create_task(one(i)) for i in range(n_games)]
                try:
                    await asyncio.gather(*tasks)
                finally:  # the first failure ends the arm: the other games are not waited for
                    for task in tasks:
                        task.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
        except ClientError as exc:
            raise RuntimeError(f"the server refused a game: {exc}") from None
        finally:
            await client.stop()
            runner.cancel()
            try:
                await runner
            except (asyncio.CancelledError, Exception):
                pass
    strength.into(arm)
    _count_distinct(arm, {k: v for k, v in games.items() if k.startswith(arm.name + "#")})


def _tally_server_game(arm: ArmResult, games: dict[str, list[int]], over: dict[str, Any], llm_seat: Seat) -> None:
    """Count one ``game_over`` of the arm; a game not played out (timeout, disconnect,
    resign, aborted) is counted as ``other``, kept out of wins, draws and losses."""
    games[str(over.get("tag"))] = [int(m["cell"]) for m in over.get("moves", [])]
    result, reason = over["result"], over["reason"]
    if result == "aborted" or reason in ("timeout", "disconnect", "resign", "aborted"):
        arm.games += 1
        arm.other += 1
    else:
        _score(arm, Board(over["board"]), llm_seat, illegal=reason == "illegal_move")


# --------------------------------------------------------------------------- CLI
def _csv(value: str, allowed: tuple[str, ...], what: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    for v in items:
        if v not in allowed:
            raise argparse.ArgumentTypeError(f"unknown {what} {v!r}; expected a comma list of {', '.join(allowed)}")
    if not items:
        raise argparse.ArgumentTypeError(f"no {what} given")
    return list(dict.fromkeys(items))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--games", type=int, default=1000, help="games per arm")
    parser.add_argument(
        "--opponent",
        default="minimax,random",
        type=lambda v: _csv(v, OPPONENTS, "opponent"),
        help="comma list: minimax (optimal, random tie-breaks), random, eps0.1, eps0.3 "
        "(ε-greedy minimax; --via local only)",
    )
    parser.add_argument(
        "--seat",
        default="X,O",
        type=lambda v: _csv(v.upper(), ("X", "O"), "seat"),
        help="comma list of the LLM's seats",
    )
    parser.add_argument(
        "--mode",
        default="strict,masked",
        type=lambda v: _csv(v, ("strict", "masked"), "mode"),
        help="comma list of move-reading modes",
    )
    parser.add_argument(
        "--policy",
        default="none",
        help="steering policy JSON; 'auto' = the policy shipped at bots/llm/artifacts/policy.json "
        "if any; 'none' (default) = the unsteered baseline",
    )
    parser.add_argument(
        "--sae",
        default="auto",
        help="SAE folder or registry id; 'auto' = the shipped SAE when a policy is given, "
        "none for an unsteered baseline",
    )
    parser.add_argument(
        "--control",
        default="none",
        choices=("none", "zero", "negate", "shuffle", "random"),
        help="play a control instead of the policy: its coefficients zeroed, negated, on other "
        "(random, seeded) features, or one fixed random direction (seeded) at the policy's norm. "
        "Unoptimised; for equal-effort controls see `autosteer-train controls`",
    )
    parser.add_argument("--model", default="smollm2", help="model spec (see autosteer-bot run --kind llm)")
    parser.add_argument(
        "--via",
        choices=("server", "local"),
        default="server",
        help="server: through an in-process arena server with BotClient; local: in-process, exactly reproducible",
    )
    parser.add_argument("--concurrency", type=int, default=64, help="games in flight at once (the LLM batches them)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the opponents' random choices")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--cache-boards", type=int, default=512, help="boards whose prompt state is cached")
    parser.add_argument("--json", dest="json_out", default=None, metavar="PATH", help="also write the results as JSON")
    parser.add_argument(
        "--mqtt",
        metavar="URL",
        default=None,
        help="publish progress and per-arm summaries to this MQTT broker, mqtt://host[:port][/prefix] "
        "(topics P/training/RUN/progress|summary; 'autosteer-server watch' prints them)",
    )
    parser.add_argument("--run-id", default=None, help="the run's name on the broker (default: evaluate-UNIXTIME)")
    parser.add_argument(
        "--no-exact",
        action="store_true",
        help="skip the exact tree walk beside each sampled rate (it needs a deterministic policy)",
    )


def budget_text(a: Any) -> dict[str, str]:
    """The steering-budget cells of a result row (an ``ArmResult`` or its dict)."""
    get = a.get if isinstance(a, dict) else lambda k, d=None: getattr(a, k, d)

    def num(key: str, fmt: str = ".2f") -> str:
        v = get(key)
        return "—" if v is None else format(v, fmt)

    return {
        "‖Δ‖/‖h‖ mean/max": f"{num('mean_norm_ratio')}/{num('max_norm_ratio')}",
        "KL": num("mean_kl"),
        "digit mass mean/min (unsteered)": f"{num('mean_digit_mass')}/{num('min_digit_mass')} ({num('mean_base_digit_mass')})",
        "features/move": num("mean_features_active", ".1f"),
        "changed": f"{100 * (get('changed_fraction') or 0):.0f} %",
    }


def exact_text(exact: dict[str, float] | None, key: str = "draw") -> str:
    return "—" if not exact else f"{100 * exact[key]:.1f} %"


def results_table(arms: list[ArmResult], title: str) -> Any:
    from rich.table import Table

    def pct(arm: ArmResult, key: str) -> str:
        lo, hi = arm.intervals[key]
        return (
            f"{getattr(arm, key)} · {100 * getattr(arm, key) / max(1, arm.games):.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]"
        )

    t = Table(title=title)
    budget_cols = list(budget_text(ArmResult("", "", "")))
    for col in (
        "opponent",
        "seat",
        "mode",
        "games",
        "distinct games/boards",
        "wins · % [95% CI]",
        "draws",
        "losses",
        "illegal",
        "exact W/D/L",
        *budget_cols,
    ):
        t.add_column(col, justify="right" if col not in ("opponent", "mode") else "left")
    for a in arms:
        exact = "—" if not a.exact else "/".join(exact_text(a.exact, k) for k in ("win", "draw", "loss"))
        t.add_row(
            a.opponent,
            a.seat,
            a.mode,
            str(a.games),
            f"{a.distinct_games}/{a.distinct_boards}",
            pct(a, "wins"),
            pct(a, "draws"),
            pct(a, "losses"),
            pct(a, "illegal"),
            exact,
            *budget_text(a).values(),
        )
    return t


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console() if sys.stdout.isatty() else Console(width=200)
    problem = _argument_problem(args)
    if problem:
        console.print(f"[red]error:[/] {problem}")
        return 2
    try:
        json_out = prepare_json_out(args.json_out) if args.json_out else None  # before hours of games
        bot, meta = build_evaluation_bot(args)
        # hashed here, after loading and before any game, whatever built the bot
        meta["weights_before"] = weights_snapshot(bot.lm, bot.sae, bot.policy)
    except (ValueError, OSError) as exc:
        console.print(f"[red]error:[/] {exc}")
        return 2
    from training.progress import progress_publisher

    progress = progress_publisher(args.mqtt, run=args.run_id or f"evaluate-{int(time.time())}")
    arms = [ArmResult(opponent=o, seat=s, mode=m) for o, s, m in itertools.product(args.opponent, args.seat, args.mode)]
    console.print(
        f"evaluating {meta['model']} ({meta['steering']}): {len(arms)} arms × {args.games} games, via {args.via}, seed {args.seed}"
    )
    t_all = time.perf_counter()
    for arm in arms:
        if not _run_arm(bot, arm, args, console, progress):
            progress.close()
            return 1
    elapsed = time.perf_counter() - t_all
    meta["weights_after"] = weights_snapshot(bot.lm, bot.sae, bot.policy)
    meta["weights_unchanged"] = snapshots_agree(meta["weights_before"], meta["weights_after"])
    console.print(results_table(arms, f"{meta['model']} — {meta['steering']} — via {args.via} — seed {args.seed}"))
    console.print(f"reader: {json.dumps(bot.stats())}")
    console.print(
        "weights before and after the run: "
        + ("identical" if meta["weights_unchanged"] else "[red]CHANGED[/] — this run's results are not valid")
    )
    if json_out is not None:
        _write_json(json_out, meta, arms, args, elapsed)
        console.print(f"wrote {json_out}")
    progress.summary({"arms": [asdict(a) | {"name": a.name} for a in arms], "seconds": round(elapsed, 1), "done": True})
    progress.close()
    if progress.enabled:
        console.print(
            f"published progress to {args.mqtt} as run {progress.run} ({progress.sent} messages, "
            f"{progress.dropped} dropped)"
        )
    console.print(
        f"done: {sum(a.games for a in arms)} games "
        f"({sum(a.distinct_games for a in arms)} distinct game records) in {elapsed:.0f} s"
    )
    return 0 if meta["weights_unchanged"] else 1


def _argument_problem(args: argparse.Namespace) -> str:
    """What is wrong with the command line's arguments, or ``""``."""
    if args.games < 1:
        return "--games must be at least 1"
    if args.concurrency < 1 or args.concurrency > 1024:
        return "--concurrency must be 1..1024"
    if args.control != "none" and args.policy in (None, "", "none"):
        return "--control needs --policy (the steering to control for)"
    if args.via == "server" and any(o not in SERVER_OPPONENTS for o in args.opponent):
        return (
            f"the server's house bots are {', '.join(SERVER_OPPONENTS)}; "
            "play eps0.1/eps0.3 with --via local (or see `autosteer-train heldout` for exact values)"
        )
    return ""


def _run_arm(bot: Any, arm: ArmResult, args: argparse.Namespace, console: Any, progress: Any) -> bool:
    """Play one arm's games (with a progress bar), then its exact values unless ``--no-exact``;
    False, with the error printed, when the games failed."""
    from tqdm import tqdm

    bot.set_mode(arm.mode)
    t0 = time.perf_counter()
    with tqdm(total=args.games, desc=arm.name, unit="game", file=sys.stderr, leave=True) as tqdm_bar:
        bar = _Published(tqdm_bar, progress, arm)
        try:
            if args.via == "local":
                play_arm_local(bot, arm, args.games, args.seed, args.concurrency, bar)
            else:
                asyncio.run(play_arm_server(bot, arm, args.games, args.seed, args.concurrency, bar))
        except (RuntimeError, OSError) as exc:  # server refusals, BotClientError, sockets
            console.print(f"[red]error:[/] arm {arm.name} failed: {exc}")
            return False
    if not args.no_exact:
        arm.exact = exact_arm(bot, arm)
    arm.seconds = round(time.perf_counter() - t0, 1)
    arm.finish()
    progress.summary({"arm": arm.name, **asdict(arm)})
    return True


def _write_json(
    json_out: Path, meta: dict[str, Any], arms: list[ArmResult], args: argparse.Namespace, elapsed: float
) -> None:
    """The run's meta and every arm's results as JSON (``--json-out``)."""
    out = {
        "meta": {
            **meta,
            "via": args.via,
            "seed": args.seed,
            "games_per_arm": args.games,
            "concurrency": args.concurrency,
            "seconds": round(elapsed, 1),
            "command": "autosteer-train evaluate " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "",
        },
        "arms": [asdict(a) | {"name": a.name} for a in arms],
    }
    json_out.write_text(json.dumps(out, indent=2) + "\n")


class _Published:
    """A progress bar that also publishes the arm's running counts (rate-limited by the publisher)."""

    def __init__(self, bar: Any, progress: Any, arm: ArmResult) -> None:
        self.bar, self.progress, self.arm = bar, progress, arm

    def update(self, n: int = 1) -> None:
        self.bar.update(n)
        a = self.arm
        self.progress.progress(
            arm=a.name,
            done=self.bar.n,
            total=self.bar.total,
            wins=a.wins,
            draws=a.draws,
            losses=a.losses,
            illegal=a.illegal,
            force=self.bar.n == self.bar.total,
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self.bar, name)


def prepare_json_out(value: str) -> Path:
    """Check where ``--json`` will write, before any game is played: the file's folder must
    exist, or be creatable as one new folder inside an existing one (it is then created);
    deeper missing trees are refused rather than silently made."""
    path = Path(value).expanduser()
    if path.is_dir():
        raise ValueError(f"--json {value}: that is a folder; give a file name, e.g. {path / 'results.json'}")
    folder = path.parent
    if not folder.exists():
        if not folder.parent.is_dir():
            raise ValueError(
                f"--json {value}: the folder {folder} does not exist, nor does {folder.parent}; "
                "create it first (only one missing folder level is created)"
            )
        folder.mkdir()
        print(f"created the folder {folder} for --json", flush=True)
    elif not folder.is_dir():
        raise ValueError(f"--json {value}: {folder} is a file, not a folder")
    return path


def build_evaluation_bot(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The LLM bot for the evaluation, and what identifies it (model, SAE, policy digests)."""
    import torch

    from bots.llm.bot import LLMBot
    from bots.llm.cli import POLICY_AUTO, find_shipped_policy, load_policy_arg, load_sae_arg
    from bots.llm.model import load_model

    if args.threads < 1:
        raise ValueError("--threads must be at least 1")
    torch.set_num_threads(args.threads)
    policy, steering_note = load_policy_arg(args.policy)
    lm = load_model(args.model)
    sae_spec = args.sae if (policy is not None or args.sae not in ("auto",)) else "none"
    sae = load_sae_arg(sae_spec, lm)
    if policy is not None and sae is None:
        why = "--sae none was given" if args.sae == "none" else "no SAE is shipped in bots/llm/artifacts"
        if args.policy == POLICY_AUTO:
            policy, steering_note = (
                None,
                f"no steering (--policy auto: {find_shipped_policy()} needs an SAE, but {why})",
            )
        else:
            raise ValueError(f"--policy {args.policy} needs the SAE whose features it steers: pass --sae ({why})")
    print(f"[llm] steering: {steering_note}", flush=True)
    bot = LLMBot(
        lm,
        sae=sae,
        policy=policy,
        mode=args.mode[0],
        top_k=8 if sae else 0,
        cache_boards=args.cache_boards,
        control=args.control,
        control_seed=args.seed,
        verbose=True,
        digit_mass=True,
    )
    meta = {
        "model": lm.name,
        "model_weights": lm.weights_hash()[:16],
        "sae": sae.source if sae else None,
        "sae_weights": sae.weights_hash()[:16] if sae else None,
        "hook": sae.hook_name if sae else None,
        "policy": str(getattr(policy, "source", "") or args.policy) if policy else None,
        "policy_digest": policy.digest if policy else None,
        "control": args.control,
        "steering": (
            f"{policy.kind} policy {policy.digest}" + (f", control: {args.control}" if args.control != "none" else "")
            if policy
            else "unsteered"
        ),
        "scale_source": bot.steering.scale_source if bot.steering else None,
        "reader": bot.reader.kind,
    }
    return bot, meta
