"""Tests of the solved game (server/solver.py) and the minimax bot built on it.

Minimax must never lose, checked exhaustively: at the minimax side's turns every optimal
move is followed (so every tie-break rule is covered), at the opponent's turns every legal
reply. Minimax against itself always draws. Against a uniform random opponent the exact
win/draw/loss rates of each tie-break are computed from the solved game and checked with
10,000 seeded games per seat. A test through a real server (tests/test_client.py style
fixtures) checks the served house bot is the solved one.
"""

from __future__ import annotations

import functools
import math
import random
from collections import Counter
from fractions import Fraction

import pytest

from server.players.base import MoveRequest
from server.players.house import MinimaxBot, RandomBot, make_house_bot
from server.game import Board, Result, Seat, reachable_positions
from server.solver import (
    TIE_BREAKS,
    Solution,
    choose_cell,
    exact_outcomes_vs_random,
    move_outcomes,
    optimal_cells,
    solve,
    value_preserving_cells,
)


# --------------------------------------------------------------------------- an independent oracle
@functools.cache
def negamax(code: str) -> int:
    """Plain negamax value for the side to move (+1 win, 0 draw, -1 loss), no depth."""
    board = Board(code)
    if board.is_over:
        return -1 if board.winner is not None else 0
    return max(-negamax(child.code) for _, child in board.children())


def test_table_covers_every_reachable_position_with_the_right_value() -> None:
    table = solve()
    positions = reachable_positions()
    assert set(table) == {p.code for p in positions}
    assert len(table) == 5478
    for board in positions:
        sol = table[board.code]
        assert sol.value == negamax(board.code), board.code
        assert 0 <= sol.depth <= 9 - board.ply
        if board.is_over:
            assert sol.depth == 0
    assert table[Board.empty().code] == Solution(0, 9)  # the game is a draw


def test_optimal_moves_win_fastest_and_lose_slowest() -> None:
    for board in reachable_positions():
        if board.is_over:
            assert optimal_cells(board) == ()
            continue
        outcomes = move_outcomes(board)
        best = optimal_cells(board)
        values = {o.value for o in outcomes.values()}
        chosen = [outcomes[c] for c in best]
        if 1 in values:  # a win exists: take one of the fastest
            fastest = min(o.depth for o in outcomes.values() if o.value == 1)
            assert all(o.value == 1 and o.depth == fastest for o in chosen), board.code
        elif 0 in values:  # no win: keep the draw
            assert all(o.value == 0 for o in chosen), board.code
        else:  # lost anyway: lose as slowly as possible
            slowest = max(o.depth for o in outcomes.values())
            assert all(o.depth == slowest for o in chosen), board.code
        # the other moves are strictly worse
        assert all(outcomes[c] not in chosen for c in outcomes if c not in best)
    # X to move takes the immediate win on 3 rather than any slower one
    assert optimal_cells(Board.parse("XX.OO....")) == (3,)
    # the opening: every cell draws, so all nine are optimal and value-preserving
    assert optimal_cells(Board.empty()) == tuple(range(1, 10))
    assert value_preserving_cells(Board.empty()) == tuple(range(1, 10))


def test_tie_breaks_choose_among_optimal_moves_everywhere() -> None:
    rng = random.Random(0)
    for board in reachable_positions():
        if board.is_over:
            with pytest.raises(ValueError, match="no legal move"):
                choose_cell(board, rng)
            continue
        best = optimal_cells(board)
        assert set(best) <= set(value_preserving_cells(board))
        assert choose_cell(board, rng, "first") == best[0]
        for tiebreak in ("random", "exploit"):
            assert choose_cell(board, rng, tiebreak) in best
    with pytest.raises(ValueError, match="unknown tie-break"):
        choose_cell(Board.empty(), rng, "best")  # type: ignore[arg-type]


def test_random_tie_break_is_reproducible_with_a_seed_and_uses_every_option() -> None:
    picks = [choose_cell(Board.empty(), random.Random(s), "random") for s in range(200)]
    assert set(picks) == set(range(1, 10))
    again = [choose_cell(Board.empty(), random.Random(s), "random") for s in range(200)]
    assert picks == again


# --------------------------------------------------------------------------- never loses
def _all_lines(board: Board, minimax_seats: set[Seat]) -> Counter:
    """Count final results over every line of play: the seats in ``minimax_seats`` follow
    every optimal move, the other seat every legal move."""
    results: Counter = Counter()

    @functools.cache
    def walk(code: str) -> tuple[tuple[str, int], ...]:
        b = Board(code)
        if b.is_over:
            return ((str(b.result), 1),)
        cells = optimal_cells(b) if b.turn in minimax_seats else b.legal_cells()
        sub: Counter = Counter()
        for c in cells:
            for res, n in walk(b.play(c).code):
                sub[res] += n
        return tuple(sub.items())

    for res, n in walk(board.code):
        results[res] += n
    return results


@pytest.mark.parametrize("seat", [Seat.X, Seat.O])
def test_minimax_never_loses_against_any_line(seat: Seat) -> None:
    results = _all_lines(Board.empty(), {seat})
    loss = str(Result.win_for(seat.other))
    assert results[loss] == 0, results
    # sanity: the enumeration really explored many lines, with wins and draws
    assert results[str(Result.win_for(seat))] > 1000 and results["draw"] > 0


@pytest.mark.parametrize("seat", [Seat.X, Seat.O])
def test_minimax_never_loses_from_any_reachable_position_it_does_not_already_lose(seat: Seat) -> None:
    """From every reachable position where ``seat`` is not already lost, optimal play keeps
    the solved value: no line of the opponent makes it do worse."""
    table = solve()
    for board in reachable_positions():
        if board.is_over or board.turn is not seat or table[board.code].value < 0:
            continue
        results = _all_lines(board, {seat})
        assert results[str(Result.win_for(seat.other))] == 0, board.code
        if table[board.code].value > 0:
            assert set(results) == {str(Result.win_for(seat))}, board.code


def test_minimax_against_minimax_is_always_a_draw() -> None:
    results = _all_lines(Board.empty(), {Seat.X, Seat.O})
    assert set(results) == {"draw"}
    assert results["draw"] > 9  # many distinct optimal lines, all drawn


# --------------------------------------------------------------------------- exact rates vs random
EXPECTED_PERCENT = {  # (tie-break, seat): (win %, draw %), rounded to 2 decimals
    ("exploit", Seat.X): (99.48, 0.52),
    ("exploit", Seat.O): (91.64, 8.36),
    ("random", Seat.X): (96.78, 3.22),
    ("random", Seat.O): (77.75, 22.25),
    ("first", Seat.X): (99.48, 0.52),
    ("first", Seat.O): (80.63, 19.37),
}


def _outcomes_by_enumeration(seat: Seat, tiebreak: str) -> dict[str, Fraction]:
    """Independent of exact_outcomes_vs_random: enumerate the game tree with path
    probabilities; the minimax side spreads uniformly over the cells its tie-break allows."""
    allowed = {}

    def cells_for(board: Board) -> tuple[int, ...]:
        if board.turn is not seat:
            return board.legal_cells()
        if tiebreak == "first":
            return (optimal_cells(board)[0],)
        if tiebreak == "random":
            return optimal_cells(board)
        if board.code not in allowed:
            best = optimal_cells(board)
            score = {c: _max_win_chance(board.play(c).code, seat) for c in best}
            top = max(score.values())
            allowed[board.code] = tuple(c for c in best if score[c] == top)
        return allowed[board.code]

    totals = {"win": Fraction(0), "draw": Fraction(0), "loss": Fraction(0)}
    stack = [(Board.empty(), Fraction(1))]
    while stack:
        board, p = stack.pop()
        if board.is_over:
            key = "draw" if board.winner is None else ("win" if board.winner is seat else "loss")
            totals[key] += p
            continue
        cells = cells_for(board)
        for c in cells:
            stack.append((board.play(c), p / len(cells)))
    return totals


@functools.cache
def _max_win_chance(code: str, seat: Seat) -> Fraction:
    """Best win probability against a uniform random opponent among optimal moves."""
    board = Board(code)
    if board.is_over:
        return Fraction(int(board.winner is seat))
    if board.turn is seat:
        return max(_max_win_chance(board.play(c).code, seat) for c in optimal_cells(board))
    kids = board.legal_cells()
    return sum((_max_win_chance(board.play(c).code, seat) for c in kids), Fraction(0)) / len(kids)


@pytest.mark.parametrize("tiebreak, seat", list(EXPECTED_PERCENT))
def test_exact_rates_against_a_uniform_random_opponent(tiebreak: str, seat: Seat) -> None:
    exact = exact_outcomes_vs_random(seat, tiebreak)  # type: ignore[arg-type]
    assert sum(exact.values()) == 1
    assert exact["loss"] == 0  # minimax never loses, whatever the opponent does
    win, draw = EXPECTED_PERCENT[(tiebreak, seat)]
    assert round(float(exact["win"]) * 100, 2) == win
    assert round(float(exact["draw"]) * 100, 2) == draw
    assert exact == _outcomes_by_enumeration(seat, tiebreak)


@pytest.mark.parametrize("seat", [Seat.X, Seat.O])
def test_exploit_maximises_winning_chances_among_optimal_policies(seat: Seat) -> None:
    best = _max_win_chance(Board.empty().code, seat)
    assert exact_outcomes_vs_random(seat, "exploit")["win"] == best
    for other in ("random", "first"):
        assert exact_outcomes_vs_random(seat, other)["win"] <= best  # type: ignore[arg-type]


# --------------------------------------------------------------------------- seeded games
def play_local_game(x, o) -> Result:
    board = Board.empty()
    while not board.is_over:
        bot = x if board.turn is Seat.X else o
        board = board.play(bot.choose(MoveRequest("local", board)).cell)
    return board.result  # type: ignore[return-value]


def assert_within_binomial_bound(counts: Counter, n: int, exact: dict[str, Fraction], sigmas: float = 4.0) -> None:
    """Each observed count is within ``sigmas`` standard errors of n·p (exactly 0 when p = 0)."""
    for key, p in exact.items():
        p = float(p)
        expected = n * p
        sd = math.sqrt(n * p * (1 - p))
        observed = counts.get(key, 0)
        if p == 0:
            assert observed == 0, f"{key}: observed {observed} but the exact rate is 0"
        else:
            assert abs(observed - expected) <= sigmas * sd, (
                f"{key}: observed {observed}/{n}, expected {expected:.1f} ± {sigmas}·{sd:.1f}"
            )


def tally(result: Result, minimax_seat: Seat) -> str:
    if result is Result.DRAW:
        return "draw"
    return "win" if result is Result.win_for(minimax_seat) else "loss"


@pytest.mark.slow
@pytest.mark.parametrize("tiebreak", TIE_BREAKS)
@pytest.mark.parametrize("seat", [Seat.X, Seat.O])
def test_10000_seeded_games_against_random_bot_match_the_exact_rates(tiebreak: str, seat: Seat) -> None:
    n = 10_000
    minimax = MinimaxBot(seed=1234, tiebreak=tiebreak)  # type: ignore[arg-type]
    rand = RandomBot(seed=5678)
    counts: Counter = Counter()
    for _ in range(n):
        x, o = (minimax, rand) if seat is Seat.X else (rand, minimax)
        counts[tally(play_local_game(x, o), seat)] += 1
    assert sum(counts.values()) == n
    assert_within_binomial_bound(counts, n, exact_outcomes_vs_random(seat, tiebreak))  # type: ignore[arg-type]


def test_seeded_games_are_reproducible() -> None:
    def run(seed: int) -> list[str]:
        mm = make_house_bot("minimax", seed=seed)
        rb = make_house_bot("random", seed=seed + 1)
        return [str(play_local_game(mm, rb)) + str(play_local_game(rb, mm)) for _ in range(50)]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_minimax_bot_trace_reports_the_solved_outcome() -> None:
    decision = MinimaxBot(seed=0).choose(MoveRequest("g", Board.parse("XX.OO....")))
    assert decision.cell == 3
    assert decision.trace == {"solver": {"value": "win", "plies_to_end": 1}}
    with pytest.raises(ValueError, match="unknown tie-break"):
        MinimaxBot(tiebreak="best")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- through the server
@pytest.mark.timeout(120)
@pytest.mark.parametrize("tiebreak", ["exploit", "random"])
async def test_the_served_minimax_is_the_solved_one(tiebreak: str) -> None:
    """200 games per seat against a remote RandomBot, played through a real server: every
    move of the house minimax is optimal (and, for ``exploit``, one its tie-break allows),
    it never loses, and its results agree with the exact rates."""
    import asyncio

    from bots.client import BotClient
    from server.app import ServerConfig, serve_arena
    from bots.tournament.organizer import Organizer

    fast = dict(send_rate=10_000.0, send_burst=10_000)
    n = 200
    config = ServerConfig(
        host="127.0.0.1",
        port=0,
        db_path=":memory:",
        seed=7,
        minimax_tiebreak=tiebreak,
        rate=10_000.0,
        burst=10_000,
        flood_close=10_000,
    )
    async with serve_arena(config) as srv:
        client = BotClient(RandomBot("remote-random", seed=99), srv.url, max_games=32, **fast)
        task = asyncio.create_task(client.run())
        try:
            await client.wait_connected()
            async with Organizer(srv.url, "referee", **fast) as org:
                slots = asyncio.Semaphore(32)

                async def one(x: str, o: str) -> dict:
                    async with slots:
                        return await org.play(x, o, clock=None, tag=f"solved-{tiebreak}", game_timeout=30)

                as_x = await asyncio.gather(*(one("minimax", "remote-random") for _ in range(n)))
                as_o = await asyncio.gather(*(one("remote-random", "minimax") for _ in range(n)))
        finally:
            await client.stop()
            await task
    assert client.stats.games_finished == 2 * n
    for seat, overs in ((Seat.X, as_x), (Seat.O, as_o)):
        counts: Counter = Counter()
        for over in overs:
            board = Board.empty()
            for move in over["moves"]:
                if move["seat"] == seat.value:
                    best = optimal_cells(board)
                    assert move["cell"] in best, (over["game_id"], board.code, move["cell"])
                    if tiebreak == "exploit":
                        assert move["cell"] == choose_cell(board, random.Random(0), "exploit") or _max_win_chance(
                            board.play(move["cell"]).code, seat
                        ) == max(_max_win_chance(board.play(c).code, seat) for c in best)
                board = board.play(move["cell"])
            assert str(board.result) == over["result"]
            counts[tally(board.result, seat)] += 1  # type: ignore[arg-type]
        assert counts["loss"] == 0
        assert_within_binomial_bound(counts, n, exact_outcomes_vs_random(seat, tiebreak))  # type: ignore[arg-type]
