"""Full games over real WebSocket connections against a server on an ephemeral loopback port."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any, AsyncIterator

import pytest
from websockets.asyncio.client import connect

from server.app import ArenaServer, ServerConfig, serve_arena
from server.cli import main as server_main
from server.game import Board
from server.waiting import event_or_timeout
from helpers_ws import WsClient, start_game

pytestmark = pytest.mark.timeout(60)


def config(**overrides: Any) -> ServerConfig:
    base = dict(host="127.0.0.1", port=0, db_path=":memory:", move_clock=5.0, grace=1.0, seed=11, ping_interval=None)
    base.update(overrides)
    return ServerConfig(**base)


@pytest.fixture
async def srv() -> AsyncIterator[Any]:
    async with serve_arena(config()) as server:
        yield server


def first_free(board: str) -> int:
    return board.index(".") + 1


async def raw_bot(
    url: str, name: str, *, max_games: int = 4, stop: asyncio.Event | None = None, trace: bool = False
) -> list[dict[str, Any]]:
    """A minimal remote bot over a raw websocket: accepts every offer, plays the first free
    cell in every game where it is to move. Returns the game_over frames it saw."""
    overs: list[dict[str, Any]] = []
    async with connect(url) as ws:
        await ws.send(json.dumps({"type": "hello", "name": name, "role": "bot", "max_games": max_games}))
        assert json.loads(await ws.recv())["type"] == "welcome"
        seats: dict[str, str] = {}
        while stop is None or not stop.is_set():
            try:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 0.2))
            except asyncio.TimeoutError:
                continue
            kind = frame["type"]
            if kind == "challenge":
                await ws.send(json.dumps({"type": "accept", "challenge_id": frame["challenge_id"]}))
            elif kind in ("game_start", "state") and frame.get("turn"):
                if kind == "game_start":
                    seats[frame["game_id"]] = frame["you"]
                if frame["turn"] == seats.get(frame["game_id"]):
                    move = {"type": "move", "game_id": frame["game_id"], "cell": first_free(frame["board"])}
                    if trace:
                        move["trace"] = {"bot": name, "ply": frame.get("ply", 0)}
                    await ws.send(json.dumps(move))
            elif kind == "game_over":
                overs.append(frame)
    return overs


async def play_until_over(
    client: WsClient, game_id: str, seat: str, first_state: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Play the first free cell whenever it is ``seat``'s turn; return the game_over frame."""
    frame = first_state
    while True:
        if frame is not None and frame.get("game_id") == game_id:
            if frame["type"] == "game_over":
                return frame
            if frame["type"] in ("state", "game_start") and frame.get("turn") == seat:
                await client.send(type="move", game_id=game_id, cell=first_free(frame["board"]))
        frame = await client.recv()


async def test_human_vs_minimax_full_game(srv: Any) -> None:
    async with WsClient.connect(srv.url, "human") as human:
        reply = await human.request(type="challenge", opponent="minimax", side="X", clock=10)
        assert reply["type"] == "challenge_sent" and reply["opponent"] == "minimax"
        start = await human.wait_for("game_start")
        assert start["you"] == "X" and start["o"] == "minimax" and start["clock"] == 10
        over = await play_until_over(human, start["game_id"], "X", start)
        assert over["result"] in ("O", "draw"), "minimax never loses"
        board = Board.from_moves([m["cell"] for m in over["moves"]])
        assert board.code == over["board"] and board.is_over
    record = srv.records.get(start["game_id"])
    assert record["status"] == "finished" and record["o_kind"] == "house" and len(record["moves"]) == len(over["moves"])


async def test_a_house_answer_comes_in_the_state_of_the_move_it_answers(srv: Any) -> None:
    """A house bot answers in the same step as the move it answers: the mover and the
    spectators get one ``state`` holding both moves, and that state (then the
    ``game_over``) carries the move's request id. Both moves are stored and published."""
    async with WsClient.connect(srv.url, "ann") as ann, WsClient.connect(srv.url, "spy", "spectator") as spy:
        await ann.request(type="challenge", opponent="minimax", side="X")
        start = await ann.wait_for("game_start")
        gid, board, ply = start["game_id"], start["board"], 0
        await spy.request(type="spectate", game_id=gid)
        await spy.wait_for("state", game_id=gid, ply=0)
        while True:
            cell = first_free(board)
            reply = await ann.request(type="move", game_id=gid, cell=cell)
            assert reply["type"] == "state" and reply["game_id"] == gid
            assert reply["moves"][ply]["cell"] == cell and reply["moves"][ply]["seat"] == "X"
            if reply["over"]:  # ended by ann's move (ply + 1) or by minimax's answer (ply + 2)
                assert reply["ply"] in (ply + 1, ply + 2)
                over = await ann.wait_for("game_over", game_id=gid)
                assert over["id"] == reply["id"] and over["moves"] == reply["moves"]
                break
            assert reply["ply"] == ply + 2 and reply["turn"] == "X" and reply["last_move"]["seat"] == "O"
            board, ply = reply["board"], reply["ply"]
        await spy.wait_for("game_over", game_id=gid)
    ann_plies = [f["ply"] for f in ann.seen if f["type"] == "state" and f["game_id"] == gid]
    spy_plies = [f["ply"] for f in spy.seen if f["type"] == "state" and f["game_id"] == gid]
    assert spy_plies == [0, *ann_plies], "the spectator sees the same states"
    assert all(p % 2 == 0 for p in ann_plies[:-1]), "no state between a move and its answer"
    assert len(srv.records.get(gid)["moves"]) == len(over["moves"])


async def test_a_failing_house_bot_aborts_the_game_in_reply_to_the_move(
    srv: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A house bot that raises aborts its game: the move it failed to answer gets the
    ``game_over`` (with the request id and the move), the server goes on."""
    async with WsClient.connect(srv.url, "ann") as ann:
        await ann.request(type="challenge", opponent="random", side="X")
        gid = (await ann.wait_for("game_start"))["game_id"]

        def broken(request: Any) -> Any:
            raise RuntimeError("the bot broke")

        monkeypatch.setattr(srv.arena.house["random"], "choose", broken)
        over = await ann.request(type="move", game_id=gid, cell=5)
        assert over["type"] == "game_over" and over["reason"] == "aborted" and [m["cell"] for m in over["moves"]] == [5]
        assert (await ann.request(type="ping"))["type"] == "pong"
    assert srv.records.get(gid)["status"] == "aborted"


async def test_player_vs_player(srv: Any) -> None:
    async with WsClient.connect(srv.url, "ann") as ann, WsClient.connect(srv.url, "bob") as bob:
        await ann.request(type="challenge", opponent="bob", side="O")
        offer = await bob.wait_for("challenge")
        assert offer["challenger"] == "ann" and offer["side"] == "X"
        start = await bob.request(type="accept", challenge_id=offer["challenge_id"])
        assert start["type"] == "game_start" and start["you"] == "X"
        gid = start["game_id"]
        # X: 1, 2, 3 wins the top row; O: 4, 5
        for client, cell in ((bob, 1), (ann, 4), (bob, 2), (ann, 5)):
            state = await client.request(type="move", game_id=gid, cell=cell)
            assert state["type"] == "state" and state["last_move"]["cell"] == cell
        final = await bob.request(type="move", game_id=gid, cell=3)
        assert final["type"] == "state" and final["over"] is True
        over_ann = await ann.wait_for("game_over")
        over_bob = await bob.wait_for("game_over")
        assert over_ann["winner"] == over_bob["winner"] == "bob" and over_ann["reason"] == "line"
        assert over_ann["board"] == "XXXOO...."


async def test_spectator_receives_every_state_and_trace(srv: Any) -> None:
    async with (
        WsClient.connect(srv.url, "ann") as ann,
        WsClient.connect(srv.url, "bob") as bob,
        WsClient.connect(srv.url, "spy", role="spectator") as spy,
    ):
        gid = await start_game(ann, bob)
        games = await spy.request(type="list_games")
        assert [g["game_id"] for g in games["games"]] == [gid]
        start = await spy.request(type="spectate", game_id=gid)
        assert start["type"] == "game_start" and start["you"] is None
        await spy.wait_for("state", ply=0)
        cells = [5, 1, 9, 3, 2, 8, 4, 6, 7]  # a full-board draw
        trace = {"features": [{"id": 12, "act": 3.5}], "steering": [0.1, -0.2], "probs": [0.1] * 9}
        movers = [ann, bob] * 5
        for ply, cell in enumerate(cells, 1):
            await movers[ply - 1].request(type="move", game_id=gid, cell=cell, trace=dict(trace, ply=ply))
        states = [await spy.wait_for("state", ply=p) for p in range(1, 10)]
        assert [s["last_move"]["cell"] for s in states] == cells
        assert all(s["last_move"]["trace"]["ply"] == s["ply"] for s in states)
        assert states[-1]["last_move"]["trace"]["features"] == trace["features"]
        over = await spy.wait_for("game_over")
        assert over["result"] == "draw" and over["reason"] == "full_board"
        relayed = await bob.wait_for("state", ply=9)  # the opponent sees the mover's trace
        assert relayed["last_move"]["trace"] == dict(trace, ply=9)
    stored = srv.records.get(gid)
    assert [m["trace"]["ply"] for m in stored["moves"]] == list(range(1, 10))
    assert all(m["at"] >= stored["started_at"] for m in stored["moves"])


async def test_remote_bot_accepts_challenges_and_plays_several_games(srv: Any) -> None:
    stop = asyncio.Event()
    bot_task = asyncio.create_task(raw_bot(srv.url, "rawbot", max_games=3, stop=stop, trace=True))
    try:
        async with WsClient.connect(srv.url, "ann") as ann:
            for _ in range(50):  # wait until the bot is in the lobby
                bots = {b["name"]: b for b in (await ann.request(type="list_bots"))["bots"]}
                if "rawbot" in bots:
                    break
                await asyncio.sleep(0.05)
            assert bots["rawbot"]["kind"] == "remote" and bots["rawbot"]["max_games"] == 3
            ids = []
            for _ in range(3):
                sent = await ann.request(type="challenge", opponent="rawbot", side="X")
                ids.append(sent["challenge_id"])
            busy = await ann.request(type="challenge", opponent="rawbot")
            assert busy["type"] == "error" and busy["code"] == "busy"
            overs = {}
            for gid in ids:
                await ann.wait_for("game_start", game_id=gid)
                await ann.send(type="move", game_id=gid, cell=5)
            pending = set(ids)
            while pending:
                frame = await ann.recv()
                gid = frame.get("game_id")
                if frame["type"] == "state" and frame["turn"] == "X" and gid in pending:
                    assert frame["last_move"]["trace"]["bot"] == "rawbot"
                    await ann.send(type="move", game_id=gid, cell=first_free(frame["board"]))
                elif frame["type"] == "game_over":
                    overs[gid] = frame
                    pending.discard(gid)
            assert all(o["reason"] in ("line", "full_board") for o in overs.values())
    finally:
        stop.set()
        bot_overs = await bot_task
    assert {o["game_id"] for o in bot_overs} == set(ids)


async def test_arranged_game_remote_bot_vs_random(srv: Any) -> None:
    stop = asyncio.Event()
    bot_task = asyncio.create_task(raw_bot(srv.url, "rawbot", stop=stop))
    try:
        async with WsClient.connect(srv.url, "organiser") as org:
            for _ in range(50):
                if any(b["name"] == "rawbot" for b in (await org.request(type="list_bots"))["bots"]):
                    break
                await asyncio.sleep(0.05)
            sent = await org.request(type="arrange", x="random", o="rawbot", tag="round-1")
            over = await org.wait_for("game_over", game_id=sent["challenge_id"])
            assert over["tag"] == "round-1" and over["x"] == "random" and over["o"] == "rawbot"
    finally:
        stop.set()
        await bot_task
    assert srv.records.list(tag="round-1")[0]["game_id"] == sent["challenge_id"]


async def test_reconnect_within_grace_resumes_the_game() -> None:
    async with serve_arena(config(grace=4.0, move_clock=1.5)) as srv:
        async with WsClient.connect(srv.url, "bob") as bob:
            async with WsClient.connect(srv.url, "ann") as ann:
                token = ann.token
                gid = await start_game(ann, bob)
                await ann.wait_for("game_start")
            info = await bob.wait_for("info")
            assert info["event"] == "player_left" and "left: you win in" in info["message"]
            await asyncio.sleep(1.7)  # longer than the move clock: ann's clock is paused while away
            async with WsClient.connect(srv.url) as ann2:
                welcome = await ann2.hello("ann", token=token)
                assert welcome["resumed"] == [gid] and welcome["token"] == token
                start = await ann2.wait_for("game_start")
                state = await ann2.wait_for("state")
                assert start["you"] == "X" and state["turn"] == "X" and state["deadline"] is not None
                await ann2.request(type="move", game_id=gid, cell=5)
                moved = await bob.wait_for("state", ply=1)
                assert moved["board"] == "....X...."
                await bob.request(type="resign", game_id=gid)
                over = await ann2.wait_for("game_over")
                assert over["winner"] == "ann" and over["reason"] == "resign"


async def test_disconnect_past_grace_forfeits() -> None:
    async with serve_arena(config(grace=0.5, move_clock=30.0)) as srv:
        async with WsClient.connect(srv.url, "bob") as bob:
            async with WsClient.connect(srv.url, "ann") as ann:
                await ann.request(type="challenge", opponent="bob", side="X")
                offer = await bob.wait_for("challenge")
                await bob.request(type="accept", challenge_id=offer["challenge_id"])
                await ann.request(type="move", game_id=offer["challenge_id"], cell=1)
                token = ann.token
            over = await bob.wait_for("game_over", timeout=5)
            assert over["result"] == "O" and over["reason"] == "disconnect" and over["winner"] == "bob"
        async with WsClient.connect(srv.url) as late:
            await late.send(type="hello", name="ann", token=token)
            assert (await late.recv())["code"] == "bad_token"
        assert srv.records.get(offer["challenge_id"])["reason"] == "disconnect"


async def test_timeout_loses() -> None:
    async with serve_arena(config(move_clock=0.5)) as srv:
        async with WsClient.connect(srv.url, "slow") as slow:
            await slow.request(type="challenge", opponent="minimax", side="O")
            await slow.wait_for("state", ply=1)  # minimax (X) moved; slow never answers
            over = await slow.wait_for("game_over", timeout=5)
            assert over["result"] == "X" and over["reason"] == "timeout" and over["winner"] == "minimax"


async def test_healthz(srv: Any) -> None:
    async with WsClient.connect(srv.url, "ann") as ann:
        await ann.request(type="challenge", opponent="minimax", side="O")
        await ann.wait_for("game_start")

        def fetch() -> tuple[int, str, dict[str, Any]]:
            with urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/healthz", timeout=5) as resp:
                return resp.status, resp.headers["Content-Type"], json.loads(resp.read())

        status, ctype, body = await asyncio.to_thread(fetch)
    assert status == 200 and ctype == "application/json"
    assert body["status"] == "ok" and body["games_live"] == 1 and body["connections"] == 1
    assert body["bots"] == len(srv.arena.house) and body["version"]
    assert body["protocols"] == [1, 2] and body["protocol"] == 1  # served; what a hello without "protocol" speaks


async def test_shutdown_aborts_live_games_and_notifies_clients() -> None:
    cfg = config()
    server_cm = serve_arena(cfg)
    srv = await server_cm.__aenter__()
    async with WsClient.connect(srv.url, "ann") as ann:
        await ann.request(type="challenge", opponent="minimax", side="O")
        start = await ann.wait_for("game_start")
        done = await ann.request(type="arrange", x="minimax", o="random")  # finishes at once
        await ann.wait_for("game_over", game_id=done["challenge_id"])
        records = srv.records
        rows_before = {r["game_id"]: r["status"] for r in records.list()}
        assert rows_before[start["game_id"]] == "live" and rows_before[done["challenge_id"]] == "finished"
        stopper = asyncio.create_task(server_cm.__aexit__(None, None, None))
        over = await ann.wait_for("game_over", game_id=start["game_id"])
        assert over["result"] == "aborted" and over["reason"] == "aborted"
        err = await ann.wait_for("error")
        assert err["code"] == "server_shutting_down"
        closed = await ann.closed()
        assert closed.rcvd is not None and closed.rcvd.code == 1001
        await stopper


@pytest.mark.parametrize("turns", range(6))
async def test_stop_does_not_hang_when_the_timer_wakes_as_it_is_cancelled(turns: int) -> None:
    """stop() cancels the timer task; a deadline change may wake that task in the same loop
    turns. The cancellation must still end the task (asyncio.wait_for on Python 3.11 returned
    the wake instead, the timer loop went on and stop() waited for it forever). The cancel
    comes 0-5 loop turns after the wake, so one of them lands between the wake reaching the
    timer and the timer running."""
    server = ArenaServer(config(move_clock=60.0))
    await server.start()
    try:
        async with WsClient.connect(server.url, "ann") as ann:
            await ann.request(type="challenge", opponent="minimax", side="X")
            await ann.wait_for("game_start")
            assert (
                server.arena is not None and server.arena.next_deadline() is not None
            )  # the timer sleeps with a timeout
            await asyncio.sleep(0.05)
            timer = server._timer_task
            assert timer is not None and not timer.done()
            server._wake.set()  # what _apply does when the next deadline changed
            for _ in range(turns):
                await asyncio.sleep(0)
            timer.cancel()
            await asyncio.wait({timer}, timeout=2.0)
            assert timer.done() and timer.cancelled(), "the timer task swallowed its cancellation"
    finally:
        await asyncio.wait_for(server.stop(), timeout=10.0)


@pytest.mark.parametrize("turns", range(6))
async def test_a_wait_for_an_event_is_cancelled_even_as_the_event_is_set(turns: int) -> None:
    """The wait the server's timer and the cluster's status announcer use: cancelled 0-5 loop
    turns after its event is set and before it returned, it must end cancelled."""
    event = asyncio.Event()
    waiter = asyncio.create_task(event_or_timeout(event, 60.0))
    await asyncio.sleep(0)
    event.set()
    for _ in range(turns):
        await asyncio.sleep(0)
    if waiter.done():  # the wake came through before the cancel: a plain return
        assert waiter.result() is True
        return
    waiter.cancel()
    await asyncio.wait({waiter}, timeout=2.0)
    assert waiter.cancelled(), f"the wait returned {waiter.result()!r} after it was cancelled"


async def test_other_paths_are_not_websocket_endpoints_for_http(srv: Any) -> None:
    def fetch() -> int:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/", timeout=5)
        except urllib.error.HTTPError as exc:
            return exc.code
        return 200

    assert await asyncio.to_thread(fetch) == 426  # Upgrade Required


async def test_file_records_survive_restart_and_live_games_are_aborted(tmp_path: Any) -> None:
    db = str(tmp_path / "arena.sqlite3")
    async with serve_arena(config(db_path=db)) as srv:
        async with WsClient.connect(srv.url, "ann") as ann:
            sent = await ann.request(type="arrange", x="minimax", o="minimax", tag="keep")
            await ann.wait_for("game_over")
        srv.records.save(
            {
                "game_id": "crashed",
                "x": "a",
                "o": "b",
                "status": "live",
                "board": ".........",
                "moves": [],
                "clock": 5.0,
                "started_at": 1.0,
            }
        )  # as a crash would leave it
    async with serve_arena(config(db_path=db)) as srv2:
        assert srv2.aborted_at_start == 1
        assert srv2.records.get("crashed")["reason"] == "aborted"
        assert srv2.records.get(sent["challenge_id"])["result"] == "draw"
        async with WsClient.connect(srv2.url, "ann") as ann:
            rec = await ann.request(type="get_game", game_id=sent["challenge_id"])  # replay from disk
            assert rec["type"] == "game_record" and rec["tag"] == "keep" and len(rec["moves"]) == 9
            err = await ann.request(type="move", game_id=sent["challenge_id"], cell=1)
            assert err["code"] == "game_over"


async def test_a_game_from_an_opening_over_the_wire_is_stored_and_replayed_with_its_opening(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real WebSocket client challenges minimax from an opening: game_start shows the board
    after it, minimax (to move) answers at once, and the record holds the opening's moves
    marked as given, in the store, in get_game after a restart and in ``games show``."""
    db = str(tmp_path / "arena.sqlite3")
    async with serve_arena(config(db_path=db)) as srv:
        async with WsClient.connect(srv.url, "ann") as ann:
            err = await ann.request(type="challenge", opponent="minimax", opening=[5, 5])
            assert err["code"] == "invalid_message" and err["message"] == "opening: cell 5 is played twice"
            sent = await ann.request(type="challenge", opponent="minimax", side="O", opening=[1, 5], clock=10)
            assert sent["type"] == "challenge_sent" and sent["opening"] == [1, 5] and sent["side"] == "O"
            start = await ann.wait_for("game_start")
            assert (start["you"], start["x"], start["board"], start["turn"]) == ("O", "minimax", "X...O....", "X")
            assert start["opening"] == [1, 5] and start["ply"] == 2
            answer = await ann.wait_for("state", game_id=start["game_id"])
            assert answer["ply"] == 3 and answer["turn"] == "O" and answer["last_move"]["seat"] == "X"
            over = await play_until_over(ann, start["game_id"], "O", answer)
        gid = start["game_id"]
        assert [(m["ply"], m["seat"], m["cell"], m.get("opening")) for m in over["moves"][:3]] == [
            (1, "X", 1, True),
            (2, "O", 5, True),
            (3, "X", over["moves"][2]["cell"], None),
        ]
        assert srv.records.get(gid)["moves"] == over["moves"]
    async with serve_arena(config(db_path=db)) as srv2:
        async with WsClient.connect(srv2.url, "ann") as ann:
            record = await ann.request(type="get_game", game_id=gid)  # from disk
    assert record["type"] == "game_record" and record["moves"] == over["moves"]
    assert Board.from_moves([m["cell"] for m in record["moves"]]).code == record["board"] == over["board"]
    assert server_main(["games", "--db", db, "show", gid, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["moves"] == over["moves"]
    assert server_main(["games", "--db", db, "show", gid]) == 0
    shown = capsys.readouterr().out
    assert " 1. X 1  +0.000 s" in shown and " 2. O 5  +0.000 s" in shown and Board(over["board"]).grid() in shown


class FakeConnection:
    """What :class:`server.connection.Peer` uses of a websockets connection: its protocol
    (frames to bytes), its transport (the socket write) and close."""

    def __init__(self) -> None:
        from websockets.protocol import State

        self.protocol = self.transport = self
        self.state = State.OPEN
        self.out: list[bytes] = []
        self.written: list[bytes] = []  # one entry per socket write
        self.closed_with: tuple[int, str] | None = None

    def send_text(self, data: bytes) -> None:
        self.out.append(data)

    def data_to_send(self) -> list[bytes]:
        out, self.out = self.out, []
        return out

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def get_write_buffer_size(self) -> int:
        return 0

    async def close(self, code: int, reason: str) -> None:
        self.closed_with = (code, reason)


async def test_slow_reader_is_disconnected_without_hurting_others() -> None:
    """The per-connection send queue is bounded; a client that stops reading is dropped (1008)."""
    from server.arena.arena import Close
    from server.connection import Peer

    ws = FakeConnection()
    peer = Peer(ws, limit_bytes=100)
    for i in range(3):
        peer.push(b"x" * 30)
    assert peer.queued_bytes == 90 and not peer.closed
    peer.deliver()  # the three frames go out in one write
    assert ws.written == [b"x" * 90] and peer.queued_bytes == 0
    for i in range(3):
        peer.push(b"x" * 30)
    peer.push(b"y" * 30)  # over the limit: queue dropped, connection closed
    assert peer.closed and list(peer.queue) == [Close(0, 1008, "not reading its frames")]
    peer.push(b"z")  # ignored after closing
    peer.deliver()
    await asyncio.wait_for(peer.drained, 1)
    assert ws.written == [b"x" * 90] and ws.closed_with == (1008, "not reading its frames")


async def test_frames_wait_for_their_records_commit() -> None:
    """A frame queued after a commit is written once the commit is made, never before."""
    from server.connection import Peer

    ws = FakeConnection()
    peer = Peer(ws, limit_bytes=1000)
    commit = asyncio.get_running_loop().create_future()
    peer.push(b"a")
    peer.push(b"b", commit)
    peer.push(b"c", commit)
    peer.deliver()
    assert ws.written == [b"a"]
    commit.set_result(None)
    peer.deliver()
    assert ws.written == [b"a", b"bc"]


async def test_reconnecting_keeps_the_time_left_on_the_clock() -> None:
    import time

    async with serve_arena(config(grace=5.0, move_clock=2.0)) as srv:
        async with WsClient.connect(srv.url, "bob") as bob:
            async with WsClient.connect(srv.url, "ann") as ann:
                token = ann.token
                await ann.request(type="challenge", opponent="bob", side="X")
                offer = await bob.wait_for("challenge")
                await bob.request(type="accept", challenge_id=offer["challenge_id"])
                start = await ann.wait_for("game_start")
                await asyncio.sleep(1.2)  # ann spends 1.2 s of her 2 s
            await bob.wait_for("info")
            await asyncio.sleep(0.5)  # paused while she is away
            async with WsClient.connect(srv.url) as ann2:
                await ann2.hello("ann", token=token)
                state = await ann2.wait_for("state")
                left = state["deadline"] - time.time()
                assert 0.3 < left < 1.0, f"{left:.2f} s left; a resume must not give a fresh 2 s clock"
                over = await ann2.wait_for("game_over", timeout=3)
                assert over["reason"] == "timeout" and over["winner"] == "bob" and over["game_id"] == start["game_id"]


async def test_seeded_games_repeat_exactly_through_the_server() -> None:
    async def play(server_seed: int) -> list[list[int]]:
        async with serve_arena(config(seed=server_seed)) as srv, WsClient.connect(srv.url, "ann") as ann:
            ids = []
            for x, o in (("random", "minimax"), ("minimax", "random"), ("random", "random")):
                sent = await ann.request(type="arrange", x=x, o=o, seed=2024)
                ids.append(sent["challenge_id"])
                await ann.wait_for("game_over", game_id=sent["challenge_id"])
            sent = await ann.request(type="challenge", opponent="random", side="random", seed=77)
            start = await ann.wait_for("game_start", game_id=sent["challenge_id"])
            await play_until_over(ann, start["game_id"], start["you"], start)
            ids.append(start["game_id"])
            records = [srv.records.get(g) for g in ids]
            assert all(r["seed"] is not None for r in records)
            return [[m["cell"] for m in r["moves"]] for r in records]

    assert await play(1) == await play(2)


async def test_list_records_serves_stored_games_after_a_restart(tmp_path: Any) -> None:
    db = str(tmp_path / "arena.sqlite3")
    async with serve_arena(config(db_path=db)) as srv, WsClient.connect(srv.url, "org") as org:
        for i in range(4):
            sent = await org.request(type="arrange", x="minimax", o="random", tag=f"t{i % 2}")
            await org.wait_for("game_over", game_id=sent["challenge_id"])
            await asyncio.sleep(0.01)  # distinct end times
        await org.request(type="challenge", opponent="minimax", side="X")  # live: not listed
    async with serve_arena(config(db_path=db)) as srv, WsClient.connect(srv.url, "viewer", role="spectator") as viewer:
        assert not srv.arena.finished  # what follows comes from SQLite
        reply = await viewer.request(type="list_records")
        assert reply["type"] == "records"
        games = reply["games"]
        assert len(games) == 5 and games[0]["result"] == "aborted"  # the live game was aborted at shutdown
        ended = [g["ended_at"] for g in games]
        assert ended == sorted(ended, reverse=True)
        assert {g["tag"] for g in games[1:]} == {"t0", "t1"} and all(g["ply"] >= 5 for g in games[1:])
        older = await viewer.request(type="list_records", limit=2, before=games[1]["ended_at"], tag="t0")
        assert [g["game_id"] for g in older["games"]] == [g["game_id"] for g in games[2:] if g["tag"] == "t0"]
        record = await viewer.request(type="get_game", game_id=games[1]["game_id"])
        assert record["type"] == "game_record" and len(record["moves"]) == games[1]["ply"]


def test_protocol_doc_lists_every_message_and_error_code() -> None:
    from pathlib import Path

    from server.protocol import CLIENT_TYPES, ERROR_CODES

    doc = (Path(__file__).resolve().parent.parent / "docs" / "PROTOCOL.md").read_text()
    for name in (*CLIENT_TYPES, "records", "game_record", *ERROR_CODES):
        assert f"| `{name}` |" in doc, f"docs/PROTOCOL.md has no table row for `{name}`"
