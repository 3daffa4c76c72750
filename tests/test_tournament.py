"""Tournaments (bots/tournament/): the schedule, the summary and report files, a full
round robin through a real server with a remote bot, and the CLI."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bots.client import BotClient
from tests.test_client import FAST
from tests.test_client import config as server_config
from server.players.house import MinimaxBot, RandomBot
from server.app import ServerConfig, serve_arena
from server.cli import main as server_main
from bots.tournament.organizer import run_tournament
from bots.tournament.report import render_markdown, write_report
from bots.tournament.results import summarise
from bots.tournament.schedule import TournamentConfig, TournamentError, TournamentIncomplete


def test_schedule_alternates_sides_and_covers_every_pairing() -> None:
    cfg = TournamentConfig(bots=("a", "b", "c"), games=4)
    games = cfg.schedule()
    assert len(games) == 3 * 4
    for pair in (("a", "b"), ("a", "c"), ("b", "c")):
        played = [g for g in games if set(g) == set(pair)]
        assert len(played) == 4
        assert sum(1 for x, _ in played if x == pair[0]) == 2  # each side twice
    # interleaved: the first round has one game of each pairing
    assert {frozenset(g) for g in games[:3]} == {frozenset(p) for p in (("a", "b"), ("a", "c"), ("b", "c"))}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(bots=("a",)), "at least two bots"),
        (dict(bots=("a", "a", "b")), "repeated: a"),
        (dict(bots=("a", "b"), games=0), "--games"),
        (dict(bots=("a", "b"), anchor="z"), "anchor 'z'"),
        (dict(bots=("a", "b"), tournament_id="no spaces"), "tournament id"),
    ],
)
def test_bad_configuration_is_refused(kwargs, message: str) -> None:
    with pytest.raises(TournamentError, match=message):
        TournamentConfig(**kwargs)


def _over(x: str, o: str, result: str, reason: str = "line", gid: str = "g") -> dict:
    winner = x if result == "X" else o if result == "O" else None
    return {
        "game_id": gid,
        "x": x,
        "o": o,
        "result": result,
        "reason": reason,
        "winner": winner,
        "moves": [{"cell": 5}, {"cell": 1}],
    }


def test_summary_counts_pairings_cross_table_and_excludes_aborted_games(tmp_path: Path) -> None:
    cfg = TournamentConfig(bots=("m", "r"), games=4, bootstrap=100, tournament_id="tX")
    games = [
        _over("m", "r", "X"),
        _over("r", "m", "O"),
        _over("m", "r", "draw", "full_board"),
        _over("r", "m", "aborted", "aborted"),
    ]
    report = summarise(cfg, games)
    (p,) = report["pairings"]
    assert (p["a"], p["b"], p["wins"], p["draws"], p["losses"], p["aborted"]) == ("m", "r", 2, 1, 0, 1)
    assert p["a_as_x"] == {"wins": 1, "draws": 1, "losses": 0} and p["a_as_o"] == {"wins": 1, "draws": 0, "losses": 0}
    assert report["cross_table"]["m"]["r"] == pytest.approx(2.5 / 3)
    assert report["cross_table"]["r"]["m"] == pytest.approx(0.5 / 3)
    assert report["games_played"] == 4 and report["games_rated"] == 3
    assert report["ratings"]["ratings"][0]["name"] == "m"
    assert report["reasons"] == {"line": 2, "full_board": 1, "aborted": 1}
    md = render_markdown(report)
    assert "| m vs r | 2 | 1 | 0 | 1 | 1/1/0 | 1/0/0 |" in md
    assert "## Ratings" in md and "## Cross table" in md and "tag `tX`" in md
    json_path, md_path = write_report(report, tmp_path / "out")
    assert json.loads(json_path.read_text())["tournament_id"] == "tX"
    assert md_path.read_text() == md


async def test_round_robin_with_a_remote_bot_ranks_minimax_first() -> None:
    """minimax and random (house bots) and random2 (a remote bot through BotClient)."""
    config = server_config()
    seen: list[dict] = []
    async with serve_arena(config) as srv:
        remote = BotClient(RandomBot("random2", seed=11), srv.url, max_games=16, **FAST)
        task = asyncio.create_task(remote.run())
        try:
            await remote.wait_connected()
            cfg = TournamentConfig(bots=("minimax", "random", "random2"), games=30, seed=0, tournament_id="t-test")
            report = await asyncio.wait_for(run_tournament(srv.url, cfg, on_game=seen.append, **FAST), 120)
        finally:
            await remote.stop()
            await task
        stored = srv.records.list(tag="t-test", limit=None)
    assert report["games_played"] == len(seen) == 90
    assert len(stored) == 90 and all(r["status"] == "finished" for r in stored)
    assert {r["game_id"] for r in stored} == {g["game_id"] for g in report["games"]}
    assert remote.stats.games_finished == 60  # random2 played both of its pairings through the client
    ratings = report["ratings"]["ratings"]
    by_name = {r["name"]: r for r in ratings}
    assert ratings[0]["name"] == "minimax"
    for other in ("random", "random2"):
        assert by_name["minimax"]["low"] > by_name[other]["high"], (by_name["minimax"], by_name[other])
    for p in report["pairings"]:
        if p["a"] == "minimax":
            assert p["losses"] == 0 and p["played"] == 30
            assert p["a_as_x"]["wins"] + p["a_as_x"]["draws"] == 15  # sides alternated: 15 games as X


async def test_a_bot_leaving_mid_tournament_leaves_a_partial_report() -> None:
    config = ServerConfig(
        host="127.0.0.1", port=0, db_path=":memory:", grace=0.3, seed=0, rate=10_000.0, burst=10_000, flood_close=10_000
    )
    async with serve_arena(config) as srv:
        remote = BotClient(RandomBot("leaver", seed=1), srv.url, max_games=2, **FAST)
        task = asyncio.create_task(remote.run())
        await remote.wait_connected()
        seen: list[dict] = []

        def on_game(over: dict) -> None:
            seen.append(over)
            if len(seen) == 6:
                asyncio.ensure_future(remote.stop())

        cfg = TournamentConfig(
            bots=("minimax", "leaver"), games=40, concurrency=2, bootstrap=100, tournament_id="t-left"
        )
        with pytest.raises(TournamentIncomplete, match="stopped after") as info:
            await asyncio.wait_for(run_tournament(srv.url, cfg, on_game=on_game, **FAST), 60)
        await task
    report = info.value.report
    assert 6 <= report["games_played"] < 40 and report["incomplete"]
    assert "**Incomplete**" in render_markdown(report)


def test_every_game_gets_its_own_seed_from_the_tournament_seed_pairing_and_index() -> None:
    from server.seeding import game_seed

    cfg = TournamentConfig(bots=("minimax", "random", "r2"), games=6, seed=5, concurrency=4, tournament_id="a")
    games = cfg.arranged_games()
    assert [(g.x, g.o) for g in games] == cfg.schedule()
    assert [g.number for g in games] == list(range(len(games)))
    seeds = [g.seed for g in games]
    assert len(set(seeds)) == len(seeds) and all(0 <= s < 2**63 for s in seeds)
    first = next(g for g in games if {g.x, g.o} == {"random", "r2"} and g.index == 3)
    assert first.seed == game_seed(5, "tournament", "random", "r2", 3)
    # the id and the concurrency do not enter; the seed does
    same = TournamentConfig(bots=cfg.bots, games=6, seed=5, concurrency=1, tournament_id="b").arranged_games()
    assert [g.seed for g in same] == seeds
    other = TournamentConfig(bots=cfg.bots, games=6, seed=6).arranged_games()
    assert not set(g.seed for g in other) & set(seeds)


async def _seeded_tournament(seed: int, server_seed: int, concurrency: int, tid: str) -> tuple[dict, list[dict]]:
    """The house bots minimax and random, and ``perfect``: a remote minimax bot without
    randomness (tie-break ``first``), on a fresh server seeded ``server_seed``. Games with
    the remote bot finish in network order, so with concurrency > 1 the house bots' moves
    interleave differently from run to run (unseeded they would draw in that order);
    house-vs-house games are played at once on ``arrange``. Returns the report and the
    stored records."""
    config = ServerConfig(
        host="127.0.0.1",
        port=0,
        db_path=":memory:",
        move_clock=30.0,
        seed=server_seed,
        rate=10_000.0,
        burst=10_000,
        flood_close=10_000,
    )
    async with serve_arena(config) as srv:
        remote = BotClient(MinimaxBot("perfect", tiebreak="first"), srv.url, max_games=16, **FAST)
        task = asyncio.create_task(remote.run())
        try:
            await remote.wait_connected()
            cfg = TournamentConfig(
                bots=("minimax", "random", "perfect"),
                games=20,
                seed=seed,
                concurrency=concurrency,
                bootstrap=200,
                tournament_id=tid,
            )
            report = await asyncio.wait_for(run_tournament(srv.url, cfg, **FAST), 60)
        finally:
            await remote.stop()
            await task
        stored = srv.records.list(tag=tid, limit=None)
    return report, stored


async def test_same_seed_gives_identical_games_at_any_concurrency_and_another_seed_does_not() -> None:
    def games(report: dict) -> list[tuple]:
        return [(g["x"], g["o"], g["seed"], g["moves"], g["result"]) for g in report["games"]]

    first, stored = await _seeded_tournament(seed=3, server_seed=0, concurrency=8, tid="rep-a")
    again, _ = await _seeded_tournament(seed=3, server_seed=1, concurrency=8, tid="rep-b")
    serial, _ = await _seeded_tournament(seed=3, server_seed=2, concurrency=1, tid="rep-c")
    other, _ = await _seeded_tournament(seed=4, server_seed=0, concurrency=8, tid="rep-d")

    assert first["games_played"] == 60 and first["seed"] == 3
    # the same games whatever the server's seed, the concurrency and the order games end in
    assert games(first) == games(again) == games(serial)
    assert first["ratings"] == again["ratings"] == serial["ratings"]
    assert first["pairings"] == again["pairings"] == serial["pairings"]
    # ...and not all alike: the house bots vary their moves from game to game
    minimax_vs_random = [g["moves"] for g in first["games"] if {g["x"], g["o"]} == {"minimax", "random"}]
    assert len(set(minimax_vs_random)) > 10
    # another tournament seed gives other games and other seeds
    assert [g[3] for g in games(other)] != [g[3] for g in games(first)]
    assert not {g[2] for g in games(other)} & {g[2] for g in games(first)}
    # each record stores the seed its game was arranged with, and the same moves
    by_id = {g["game_id"]: g for g in first["games"]}
    assert len(stored) == 60
    for rec in stored:
        game = by_id[rec["game_id"]]
        assert rec["seed"] == game["seed"]
        assert "".join(str(m["cell"]) for m in rec["moves"]) == game["moves"]


def test_cli_runs_an_in_process_tournament_and_writes_reports(tmp_path: Path, capsys) -> None:
    out = tmp_path / "t"
    rc = server_main(
        [
            "tournament",
            "--bots",
            "minimax,random,random2",
            "--spawn",
            "random2=random",
            "--games",
            "6",
            "--out",
            str(out),
            "--quiet",
            "--bootstrap",
            "200",
            "--id",
            "cli-test",
            "--anchor",
            "random=1000",
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0, text
    report = json.loads((out / "tournament.json").read_text())
    assert report["tournament_id"] == "cli-test" and report["games_played"] == 18
    assert report["ratings"]["anchor"] == "random"
    assert next(r for r in report["ratings"]["ratings"] if r["name"] == "random")["elo"] == pytest.approx(1000)
    assert (out / "tournament.md").read_text().startswith("# Tournament cli-test")
    assert (out / "games.sqlite3").exists()
    assert "tournament cli-test: 18 games; first:" in text
    # the games persist in the server's records, tagged with the id
    from server.records import GameRecords

    records = GameRecords(out / "games.sqlite3", create=False)
    try:
        stored = records.list(tag="cli-test", limit=None)
    finally:
        records.close()
    assert len(stored) == 18 and {g["game_id"] for g in stored} == {g["game_id"] for g in report["games"]}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--bots", "minimax"], "at least two bots"),
        (["--bots", "minimax,nobody", "--games", "1"], "not on the server: nobody"),
        (["--bots", "minimax,random", "--anchor", "random"], "BOT=ELO"),
        (["--bots", "minimax,random", "--spawn", "x=llm"], "--spawn"),
        (["--bots", "minimax,random", "--server", "localhost:1"], "ws://"),
        (["--bots", "minimax,random", "--server", "ws://127.0.0.1:9"], "cannot reach"),
    ],
)
def test_cli_errors_are_clear(argv, message: str, tmp_path: Path, capsys) -> None:
    rc = server_main(["tournament", *argv, "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err and "Traceback" not in err
