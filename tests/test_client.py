"""BotClient against a real server on an ephemeral loopback port: plays games, batches
several games at once, relays traces, handles illegal choices honestly, declines beyond
max_games, reconnects after the connection drops and resumes its game, drains on stop."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any, Sequence

import pytest

from server.players.base import Bot, Decision, MoveRequest
from bots.client import Backoff, BotClient, BotClientError, FinishedGame
from client.aio import ArenaClient
from client.core import ClientCore, GameEnded, YourTurn
from server.players.house import RandomBot
from server.app import ServerConfig, serve_arena
from server.game import Board
from bots.tournament.organizer import Organizer

pytestmark = pytest.mark.timeout(60)

FAST = dict(send_rate=10_000.0, send_burst=10_000)


def config(**overrides: Any) -> ServerConfig:
    base = dict(
        host="127.0.0.1",
        port=0,
        db_path=":memory:",
        move_clock=30.0,
        grace=15.0,
        house_bots=True,
        seed=0,
        rate=10_000.0,
        burst=10_000,
        flood_close=10_000,
    )
    base.update(overrides)
    return ServerConfig(**base)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def running(client: BotClient):
    task = asyncio.create_task(client.run())
    try:
        await client.wait_connected(10)
        yield task
    finally:
        await client.stop()
        with contextlib.suppress(BotClientError):
            await asyncio.wait_for(task, 10)


async def until(predicate, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class TraceBot(Bot):
    """Plays the lowest free cell and says so in its trace; records its batches."""

    name = "tracer"

    def __init__(self, delay: float = 0.0) -> None:
        self.batches: list[int] = []
        self.delay = delay

    def choose(self, request: MoveRequest) -> Decision:
        cell = request.board.legal_cells()[0]
        return Decision(cell, {"lowest_free": cell, "seat": request.seat.value})

    def choose_batch(self, requests: Sequence[MoveRequest]) -> list[Decision]:
        self.batches.append(len(requests))
        if self.delay:
            threading.Event().wait(self.delay)
        return [self.choose(r) for r in requests]


class OccupiedBot(Bot):
    """Always names an occupied cell when there is one (an LLM that does not follow the board)."""

    name = "blunder"

    def __init__(self, forfeit: bool) -> None:
        self.forfeit_on_illegal = forfeit
        self.calls = 0

    def choose(self, request: MoveRequest) -> Decision:
        self.calls += 1
        taken = [c for c in range(1, 10) if request.board[c] is not None]
        return Decision(taken[0] if taken else 5, {"calls": self.calls})


async def test_bot_client_plays_games_and_counts_results() -> None:
    finished: list[FinishedGame] = []
    async with serve_arena(config()) as srv:
        client = BotClient(RandomBot("rnd", seed=3), srv.url, max_games=8, on_game_over=finished.append, **FAST)
        async with running(client), Organizer(srv.url, "org", **FAST) as org:
            bots = {b["name"]: b for b in await org.list_bots()}
            assert bots["rnd"]["kind"] == "remote" and bots["rnd"]["max_games"] == 8
            overs = []
            for i in range(6):
                x, o = ("minimax", "rnd") if i % 2 == 0 else ("rnd", "minimax")
                overs.append(await org.play(x, o, clock=None, tag="t1", game_timeout=20))
            for i in range(4):
                overs.append(await org.play("rnd", "random", clock=None, tag="t1", game_timeout=20))
        assert client.stats.games_started == client.stats.games_finished == 10
        assert client.stats.offers_accepted == 10 and client.stats.offers_declined == 0
        vs_minimax = overs[:6]
        assert all(o["winner"] != "rnd" for o in vs_minimax)  # random never beats minimax
        assert client.stats.wins + client.stats.draws + client.stats.losses == 10
        assert sum(client.stats.reasons.values()) == 10
        assert [f.game_id for f in finished] == [o["game_id"] for o in overs]
        for f, o in zip(finished, overs):
            assert f.outcome == ("draw" if o["result"] == "draw" else "win" if o["winner"] == "rnd" else "loss")
            assert Board(f.board).is_over
        # the games went through the server: stored, tagged, with the remote bot's moves
        stored = srv.records.list(tag="t1", limit=None)
        assert len(stored) == 10 and all(r["status"] == "finished" for r in stored)
        assert client.stats.moves_sent == sum(
            sum(1 for m in r["moves"] if (r["x"] == "rnd") == (m["seat"] == "X")) for r in stored
        )
        assert client.stats.errors == {}


async def test_several_games_at_once_are_batched_and_traces_are_relayed() -> None:
    bot = TraceBot(delay=0.05)
    async with serve_arena(config()) as srv:
        client = BotClient(bot, srv.url, max_games=4, **FAST)
        async with running(client), Organizer(srv.url, "org", **FAST) as org:
            games = [
                asyncio.create_task(org.play("tracer", "random", clock=None, tag="b", game_timeout=20))
                for _ in range(4)
            ]
            await until(lambda: len(client.games) == 4, what="four games in progress")
            # a fifth game is refused while four are in progress (the bot said max_games=4)
            refusal = await org.request({"type": "arrange", "x": "tracer", "o": "random"})
            assert refusal["type"] == "error" and refusal["code"] == "busy"
            overs = await asyncio.gather(*games)
    assert client.stats.games_finished == 4
    assert max(bot.batches) >= 2 and client.stats.largest_batch == max(bot.batches)
    assert sum(bot.batches) == client.stats.moves_sent
    for over in overs:
        mine = [m for m in over["moves"] if m["seat"] == "X"]
        assert mine and all(m["trace"] == {"lowest_free": m["cell"], "seat": "X"} for m in mine)


async def test_a_game_offered_from_an_opening_is_played_from_its_board() -> None:
    """The bot reads the board from game_start: offered a game whose opening is on the
    board, it plays the lowest free cell of that board, never an occupied one."""
    bot = TraceBot()
    async with serve_arena(config()) as srv:
        client = BotClient(bot, srv.url, **FAST)
        async with running(client), ArenaClient(srv.url, ClientCore("org")) as org:
            over = await org.play_arranged("tracer", "minimax", opening=[1, 5], clock=None, game_timeout=20)
            async with ArenaClient(srv.url, ClientCore("ann")) as ann:
                events = ann.events()
                reply = await ann.request(ann.core.challenge("tracer", side="X", opening=[5, 1, 9]))
                assert reply.frame["opening"] == [5, 1, 9]
                async for event in events:
                    if isinstance(event, YourTurn):
                        await ann.send(ann.core.move(event.game.game_id, event.game.board.legal_cells()[-1]))
                    elif isinstance(event, GameEnded):
                        played = event.frame
                        break
        stored = {r["game_id"]: r for r in srv.records.list(limit=None)}
    assert stored[over["game_id"]]["moves"] == over["moves"] and stored[played["game_id"]]["moves"] == played["moves"]
    assert [(m["cell"], m.get("opening")) for m in over["moves"][:3]] == [(1, True), (5, True), (2, None)]
    assert over["moves"][2]["trace"] == {"lowest_free": 2, "seat": "X"}
    assert [m["cell"] for m in played["moves"][:4]] == [5, 1, 9, 2]  # tracer (O) answered the opening with 2
    assert all(m.get("opening") for m in played["moves"][:3]) and "opening" not in played["moves"][3]
    stats = client.stats
    assert stats.games_started == stats.games_finished == 2 and stats.illegal_choices == 0 and stats.errors == {}


async def test_illegal_choice_forfeits_when_the_bot_says_so() -> None:
    bot = OccupiedBot(forfeit=True)
    async with serve_arena(config()) as srv:
        client = BotClient(bot, srv.url, **FAST)
        async with running(client), Organizer(srv.url, "org", **FAST) as org:
            over = await org.play("random", "blunder", clock=None, tag="f", game_timeout=20)
    assert over["reason"] == "illegal_move" and over["winner"] == "random"
    assert over["illegal_move"]["trace"] == {"calls": 1}
    assert client.stats.illegal_choices == 1 and client.stats.losses == 1


async def test_illegal_choice_is_never_sent_otherwise_and_the_game_is_resigned() -> None:
    bot = OccupiedBot(forfeit=False)
    async with serve_arena(config()) as srv:
        client = BotClient(bot, srv.url, illegal_retries=2, **FAST)
        async with running(client), Organizer(srv.url, "org", **FAST) as org:
            over = await org.play("random", "blunder", clock=None, tag="r", game_timeout=20)
    assert over["reason"] == "resign" and over["winner"] == "random"
    assert bot.calls == 3  # asked once, then twice more
    assert client.stats.illegal_choices == 3 and client.stats.moves_sent == 0
    assert client.stats.errors == {}  # nothing illegal reached the server


class BlockingBot(Bot):
    """Blocks on its first move until released (to drop the connection mid-game)."""

    name = "blocker"

    def __init__(self) -> None:
        self.asked = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def choose(self, request: MoveRequest) -> Decision:
        self.calls += 1
        if self.calls == 1:
            self.asked.set()
            self.release.wait(10)
        return Decision(request.board.legal_cells()[0])


async def test_reconnects_after_a_dropped_connection_and_resumes_the_game() -> None:
    bot = BlockingBot()
    async with serve_arena(config(grace=10.0)) as srv:
        client = BotClient(bot, srv.url, backoff=(0.05, 0.2), **FAST)
        async with running(client), Organizer(srv.url, "org", **FAST) as org:
            game = asyncio.create_task(org.play("blocker", "random", clock=None, tag="rc", game_timeout=30))
            await asyncio.to_thread(bot.asked.wait, 10)
            token = client.token
            await client.drop_connection()
            await until(lambda: client.stats.connections == 2 and client.connected, what="the reconnect")
            bot.release.set()
            over = await game
    assert client.token == token  # the same session, resumed
    assert client.stats.reconnects == 1
    assert over["reason"] in ("line", "full_board") and client.stats.games_finished == 1
    assert client.stats.games_lost_track == 0
    assert bot.calls >= 2  # asked again after the resume; the stale answer was dropped


async def test_a_reconnect_after_the_grace_period_starts_a_new_session() -> None:
    bot = BlockingBot()
    async with serve_arena(config(grace=0.2)) as srv:
        client = BotClient(bot, srv.url, backoff=(1.0, 1.0), **FAST)  # first retry after 0.5-1 s
        async with running(client), Organizer(srv.url, "org", **FAST) as org:
            game = asyncio.create_task(org.play("blocker", "random", clock=None, tag="late", game_timeout=30))
            await asyncio.to_thread(bot.asked.wait, 10)
            old_token = client.token
            await client.drop_connection()
            over = await game  # forfeited when the grace period ran out
            bot.release.set()
            await until(lambda: client.stats.connections == 2 and client.connected, what="the new session")
            assert client.token != old_token
            # the new session plays normally
            again = await org.play("random", "blocker", clock=None, tag="late", game_timeout=30)
    assert over["reason"] == "disconnect" and over["winner"] == "random"
    assert client.stats.games_lost_track == 1
    assert again["reason"] in ("line", "full_board") and client.stats.games_finished == 1


async def test_stop_with_drain_waits_for_games_in_progress() -> None:
    bot = TraceBot(delay=0.2)
    async with serve_arena(config()) as srv:
        client = BotClient(bot, srv.url, **FAST)
        task = asyncio.create_task(client.run())
        await client.wait_connected()
        async with Organizer(srv.url, "org", **FAST) as org:
            game = asyncio.create_task(org.play("tracer", "random", clock=None, tag="d", game_timeout=30))
            await until(lambda: client.games, what="the game to start")
            await client.stop(drain=True, timeout=20)
            over = await game
            await asyncio.wait_for(task, 5)
    assert over["reason"] in ("line", "full_board")
    assert client.stats.games_finished == 1


class FakeWS:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, text: str) -> None:
        self.sent.append(text)


async def test_offers_beyond_max_games_are_declined_as_busy() -> None:
    import json

    from server.protocol import parse_server_frame

    client = BotClient(RandomBot(), "ws://127.0.0.1:1", max_games=2, **FAST)
    ws = FakeWS()
    for i in range(3):
        offer = parse_server_frame(
            {"type": "challenge", "challenge_id": f"c{i}", "challenger": "alice", "side": "X", "clock": 30.0}
        )
        await client._on_offer(ws, offer)  # type: ignore[arg-type]
    replies = [json.loads(s) for s in ws.sent]
    assert [r["type"] for r in replies] == ["accept", "accept", "decline"]
    assert replies[2] == {"type": "decline", "challenge_id": "c2", "reason": "busy"}
    assert client.stats.offers_accepted == 2 and client.stats.offers_declined == 1


async def test_junk_and_error_frames_never_crash_the_client(caplog) -> None:
    import json

    client = BotClient(TraceBot(), "ws://127.0.0.1:1", **FAST)
    ws = FakeWS()
    junk = [
        "not json",
        "[1, 2]",
        '{"no": "type"}',
        '{"type": "mystery"}',
        '{"type": "game_start", "game_id": "g1", "x": "a", "o": "tracer", "you": "O", "clock": 1, '
        '"board": "XXXXXXXXX", "turn": "O"}',
        '{"type": "state", "game_id": "unknown", "x": "a", "o": "b", "board": ".........", "turn": "X", '
        '"ply": 0, "moves": []}',
        '{"type": "error", "code": "internal_error", "message": "boom"}',
        '{"type": "game_over", "game_id": "nope", "x": "a", "o": "b", "result": "X", "reason": "line", '
        '"winner": "a", "board": "XXX......", "moves": []}',
    ]
    for raw in junk:
        await client._on_frame(ws, raw)  # type: ignore[arg-type]
    assert client.games == {} and ws.sent == []
    assert client.stats.errors == {"internal_error": 1}
    # a refused move makes the client ask the server for the game's true state
    await client._on_frame(
        ws,
        json.dumps(
            {
                "type": "game_start",
                "game_id": "g2",
                "x": "a",
                "o": "tracer",  # type: ignore[arg-type]
                "you": "O",
                "clock": 30,
                "board": "X........",
                "turn": "O",
            }
        ),
    )
    client._pending_moves["m1"] = {"type": "move", "id": "m1", "game_id": "g2", "cell": 1}
    await client._on_frame(ws, json.dumps({"type": "error", "code": "occupied", "message": "taken", "id": "m1"}))  # type: ignore[arg-type]
    assert json.loads(ws.sent[-1]) == {"type": "get_game", "game_id": "g2"}
    assert "g2" in client.games and client.stats.errors["occupied"] == 1
    assert any("refused" in r.message for r in caplog.records)


async def test_unreachable_server_without_reconnect_fails_clearly() -> None:
    client = BotClient(RandomBot(), "ws://127.0.0.1:9", reconnect=False, open_timeout=2)
    with pytest.raises(BotClientError, match="cannot reach ws://127.0.0.1:9"):
        await client.run()


async def test_name_taken_is_fatal_and_clear() -> None:
    async with serve_arena(config()) as srv:
        with pytest.raises(BotClientError, match="name_taken"):
            await BotClient(RandomBot(), srv.url, name="minimax").run()


async def test_keeps_retrying_until_the_server_appears() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = BotClient(RandomBot("late"), f"ws://127.0.0.1:{port}", backoff=(0.05, 0.1), **FAST)
    task = asyncio.create_task(client.run())
    await asyncio.sleep(0.3)  # several refused attempts
    assert not client.connected and not task.done()
    async with serve_arena(config(port=port)):
        await client.wait_connected(5)
        await client.stop()
        await asyncio.wait_for(task, 5)
    assert client.stats.connections == 1


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(BotClientError, match="ws://"):
        BotClient(RandomBot(), "http://localhost:8765")
    with pytest.raises(BotClientError, match="max_games"):
        BotClient(RandomBot(), "ws://localhost:8765", max_games=0)
    with pytest.raises(ValueError, match="backoff"):
        Backoff(5, 1)


def test_backoff_grows_is_jittered_and_capped() -> None:
    import random

    b = Backoff(0.5, 30.0, rng=random.Random(1))
    delays = [b.next() for _ in range(12)]
    ceilings = [min(30.0, 0.5 * 2**i) for i in range(12)]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings))
    assert max(delays) <= 30.0 and len(set(delays)) == 12
    b.reset()
    assert b.next() <= 0.5


async def test_autosteer_bot_run_and_list_end_to_end() -> None:
    """The console script connects a minimax bot, plays three games, stops by itself;
    ``autosteer-bot list`` shows it while it is connected."""
    import sys

    async with serve_arena(config()) as srv:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bots.cli",
            "run",
            "--kind",
            "minimax",
            "--server",
            srv.url,
            "--name",
            "mm2",
            "--stop-after",
            "3",
            "--seed",
            "1",
            "--tiebreak",
            "first",
            "--log-level",
            "WARNING",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with Organizer(srv.url, "org", **FAST) as org:
                for _ in range(300):
                    if any(b["name"] == "mm2" for b in await org.list_bots()):
                        break
                    await asyncio.sleep(0.05)
                else:
                    raise AssertionError("the bot never connected")
                lister = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "bots.cli",
                    "list",
                    "--server",
                    srv.url,
                    "--json",
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )
                listed, _ = await asyncio.wait_for(lister.communicate(), 30)
                assert lister.returncode == 0
                import json

                assert "mm2" in [b["name"] for b in json.loads(listed)["bots"]]
                overs = [await org.play("mm2", "random", clock=None, tag="cli", game_timeout=20) for _ in range(3)]
            out, err = await asyncio.wait_for(proc.communicate(), 30)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 0, err.decode()
    assert all(o["winner"] != "random" for o in overs)
    assert overs[0]["moves"][0]["cell"] == 1  # tie-break "first" opens in the corner
    assert "mm2: stopped after 3 games" in out.decode()


async def test_autosteer_bot_run_stops_cleanly_on_sigint() -> None:
    import signal
    import sys

    async with serve_arena(config()) as srv:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bots.cli",
            "run",
            "--kind",
            "random",
            "--server",
            srv.url,
            "--name",
            "sig",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with Organizer(srv.url, "org", **FAST) as org:
                for _ in range(300):
                    if any(b["name"] == "sig" for b in await org.list_bots()):
                        break
                    await asyncio.sleep(0.05)
                await org.play("sig", "random", clock=None, tag="s", game_timeout=20)
            proc.send_signal(signal.SIGINT)
            out, err = await asyncio.wait_for(proc.communicate(), 20)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 0, err.decode()
    assert "sig: stopped after 1 games" in out.decode()
    assert "stopping: finishing 0 game(s) in progress" in err.decode()
    assert "Traceback" not in err.decode()


async def test_autosteer_bot_run_reports_a_taken_name() -> None:
    import sys

    async with serve_arena(config()) as srv:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bots.cli",
            "run",
            "--kind",
            "random",
            "--server",
            srv.url,
            "--name",
            "minimax",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 1
    assert "name_taken" in err.decode() and "Traceback" not in err.decode()


def test_cli_help_is_light_and_llm_kind_is_guarded() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from bots.cli import main\n"
        "for argv in (['--help'], ['run', '--help'], ['list', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit as e:\n"
        "        assert e.code == 0, argv\n"
        "assert 'torch' not in sys.modules, 'help imported torch'\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr
    assert "--kind {minimax,random,llm}" in done.stdout

    import importlib.util

    if importlib.util.find_spec("bots.llm.cli") is None:
        done = subprocess.run(
            [sys.executable, "-m", "bots.cli", "run", "--kind", "llm", "--server", "ws://127.0.0.1:9"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2
        assert "--kind llm is not available" in done.stderr and "Traceback" not in done.stderr
