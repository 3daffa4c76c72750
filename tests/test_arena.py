"""The sans-I/O arena: lobby, challenges, offers, games, clocks, grace and rate limits with a fake time."""

from __future__ import annotations

import json
from typing import Any

import pytest

from server.players.house import MinimaxBot, RandomBot
from server.protocol import parse_server_frame
from server.arena.arena import (
    CLOSE_POLICY,
    CLOSE_REPLACED,
    Arena,
    Close,
    GameEnded,
    GameEvent,
    Send,
    ServerConfig,
    StoreGame,
)


class Net:
    """Drives an Arena like the I/O layer does, and files every effect by connection."""

    def __init__(self, **config: Any) -> None:
        config.setdefault("seed", 7)
        config.setdefault("move_clock", 10.0)
        config.setdefault("grace", 5.0)
        config.setdefault("challenge_timeout", 8.0)
        self.arena = Arena(ServerConfig(**config))
        self.now = 1000.0
        self.inbox: dict[int, list[dict[str, Any]]] = {}
        self.closes: dict[int, Close] = {}
        self.stored: list[dict[str, Any]] = []
        self.ended: list[dict[str, Any]] = []
        self._next = 0

    def pump(self) -> None:
        for e in self.arena.drain():
            if isinstance(e, Send):
                json.dumps(e.frame)  # every frame must be JSON-serialisable
                parse_server_frame(e.frame)  # and match the protocol's server models
                self.inbox.setdefault(e.conn_id, []).append(e.frame)
            elif isinstance(e, Close):
                self.closes[e.conn_id] = e
            elif isinstance(e, StoreGame):
                self.stored.append(e.record)
            elif isinstance(e, GameEnded):
                self.ended.append(e.record)

    def open(self, address: str = "10.0.0.1") -> int:
        self._next += 1
        self.inbox[self._next] = []
        self.arena.connect(self._next, address, self.now)
        self.pump()
        return self._next

    def join(self, name: str, role: str = "player", **extra: Any) -> int:
        conn = self.open()
        self.send(conn, type="hello", name=name, role=role, **extra)
        assert self.last(conn)["type"] == "welcome", self.last(conn)
        return conn

    def send(self, conn: int, **frame: Any) -> None:
        self.arena.receive(conn, json.dumps(frame), self.now)
        self.pump()

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.arena.tick(self.now)
        self.pump()

    def drop(self, conn: int) -> None:
        self.arena.disconnect(conn, self.now)
        self.pump()

    def last(self, conn: int, type: str | None = None) -> dict[str, Any]:
        frames = [f for f in self.inbox[conn] if type is None or f["type"] == type]
        assert frames, f"no {type} frame for connection {conn}: {self.inbox[conn]}"
        return frames[-1]

    def take(self, conn: int) -> list[dict[str, Any]]:
        out, self.inbox[conn] = self.inbox[conn], []
        return out


def start_pvp(net: Net) -> tuple[int, int, str]:
    ann, bob = net.join("ann"), net.join("bob")
    net.send(ann, type="challenge", opponent="bob", side="X")
    offer = net.last(bob, "challenge")
    assert offer["side"] == "O" and offer["challenger"] == "ann"
    net.send(bob, type="accept", challenge_id=offer["challenge_id"])
    return ann, bob, offer["challenge_id"]


def test_hello_welcome_and_name_rules() -> None:
    net = Net()
    ann = net.open()
    net.send(ann, type="list_bots", id=3)
    assert net.last(ann) == {"type": "error", "code": "hello_required", "message": net.last(ann)["message"], "id": 3}
    net.send(ann, type="hello", name="ann", id="h")
    welcome = net.last(ann)
    assert (
        welcome["type"] == "welcome" and welcome["id"] == "h" and welcome["protocol"] == 1 and welcome["resumed"] == []
    )
    net.send(ann, type="hello", name="ann")
    assert net.last(ann)["code"] == "already_hello"
    other = net.open()
    for taken in ("ann", "minimax", "random"):
        net.send(other, type="hello", name=taken)
        assert net.last(other)["code"] == "name_taken"
    net.send(other, type="hello", name="zed", token="nope")
    assert net.last(other)["code"] == "bad_token"
    net.send(other, type="hello", name="zed", protocol=3)
    assert net.last(other)["code"] == "invalid_message" and "speaks 1 and 2" in net.last(other)["message"]
    net.send(other, type="hello", name="zed")  # still usable after every refusal
    assert net.last(other)["type"] == "welcome"


def test_lists_bots_with_kinds_and_capacity() -> None:
    net = Net()
    net.join("rb", role="bot", max_games=2)
    ann = net.join("ann")
    net.send(ann, type="list_bots", id=1)
    bots = {b["name"]: b for b in net.last(ann, "bots")["bots"]}
    assert bots["minimax"]["kind"] == "house" and bots["random"]["kind"] == "house"
    assert bots["rb"] == {"name": "rb", "kind": "remote", "description": "", "games": 0, "max_games": 2, "pending": 0}
    assert "ann" not in bots


def test_player_beats_nobody_minimax_game_is_recorded() -> None:
    net = Net()
    ann = net.join("ann")
    net.send(ann, type="challenge", opponent="minimax", side="O", id=1)
    sent = net.last(ann, "challenge_sent")
    start = net.last(ann, "game_start")
    assert sent["id"] == 1 and start["game_id"] == sent["challenge_id"] and start["you"] == "O"
    gid = start["game_id"]
    state = net.last(ann, "state")  # minimax (X) moved at once
    assert state["ply"] == 1 and state["turn"] == "O" and state["last_move"]["trace"]["solver"]["value"] == "draw"
    while not net.ended:
        board = net.last(ann, "state")["board"]
        cell = next(i + 1 for i, c in enumerate(board) if c == ".")
        net.send(ann, type="move", game_id=gid, cell=cell)
    over = net.last(ann, "game_over")
    assert over["result"] in ("X", "draw") and over["reason"] in ("line", "full_board")
    assert net.stored[0]["status"] == "live" and net.stored[-1]["status"] == "finished"
    assert [m["cell"] for m in net.stored[-1]["moves"]] == [m["cell"] for m in over["moves"]]
    assert net.arena.games == {}


def test_game_events_each_move_once_and_none_when_nothing_publishes() -> None:
    """Every move is a ``move`` event, in order, also the moves whose ``state`` is not sent
    on its own (a house bot answers in the same step, protocol 2); an arena with no event transport
    (``publish_events=False``) makes none, and its players see the same frames."""
    seen: dict[bool, tuple[list[GameEvent], list[tuple[str, Any]]]] = {}
    for publish in (True, False):
        net = Net()
        net.arena.publish_events = publish
        events: list[GameEvent] = []
        drain = net.arena.drain
        net.arena.drain = lambda: [e for e in drain() if not isinstance(e, GameEvent) or events.append(e) or True]
        ann = net.join("ann", protocol=2)
        net.send(ann, type="challenge", opponent="minimax", side="X")
        gid = net.last(ann, "game_start")["game_id"]
        while not net.ended:
            board = (
                net.last(ann, "state")["board"] if any(f["type"] == "state" for f in net.inbox[ann]) else "........."
            )
            net.send(ann, type="move", game_id=gid, cell=board.index(".") + 1)
        seen[publish] = events, [(f["type"], f.get("ply")) for f in net.inbox[ann] if f["type"] != "welcome"]
    events, frames = seen[True]
    moves = net.last(ann, "game_over")["moves"]
    assert [e.kind for e in events] == ["start", *["move"] * len(moves), "over"]
    assert [e.frame["ply"] for e in events if e.kind == "move"] == list(range(1, len(moves) + 1))
    assert seen[False][0] == [] and seen[False][1] == frames
    assert all(p is None or p % 2 == 0 or p == len(moves) for _, p in frames), "no state between a move and its answer"


@pytest.mark.parametrize("protocol", [1, 2])
def test_a_house_answer_comes_in_its_own_state_for_protocol_1_and_in_the_moves_state_for_2(protocol: int) -> None:
    """The mover and each spectator get what their own protocol says: version 1 a ``state``
    per move (the move's carries the request id), version 2 one ``state`` per step with
    both moves and the id. The welcome names the version spoken."""
    net = Net()
    ann = net.open()
    net.send(ann, type="hello", name="ann", **({} if protocol == 1 else {"protocol": protocol}))
    assert net.last(ann)["protocol"] == protocol
    watchers = {version: net.join(f"spy{version}", role="spectator", protocol=version) for version in (1, 2)}
    net.send(ann, type="challenge", opponent="minimax", side="X", seed=3)
    gid = net.last(ann, "game_start")["game_id"]
    for spy in watchers.values():
        net.send(spy, type="spectate", game_id=gid)
        net.inbox[spy].clear()
    net.inbox[ann].clear()
    net.send(ann, type="move", game_id=gid, cell=5, id="m")
    seen = {
        name: [(f["ply"], f.get("id")) for f in net.inbox[conn] if f["type"] == "state"]
        for name, conn in [("ann", ann), ("spy1", watchers[1]), ("spy2", watchers[2])]
    }
    assert seen["ann"] == ([(1, "m"), (2, None)] if protocol == 1 else [(2, "m")])
    assert seen["spy1"] == [(1, None), (2, None)] and seen["spy2"] == [(2, None)]


@pytest.mark.parametrize("version", [0, 3, -1, "2", 2.0, True, None, [2]])
def test_hello_refuses_a_protocol_version_the_server_does_not_serve(version: Any) -> None:
    net = Net()
    conn = net.open()
    net.send(conn, type="hello", name="ann", protocol=version, id="h")
    refusal = net.last(conn)
    assert refusal["type"] == "error" and refusal["code"] == "invalid_message" and refusal["id"] == "h"
    assert "protocol" in refusal["message"]
    net.send(conn, type="hello", name="ann", protocol=2)
    assert net.last(conn)["type"] == "welcome" and net.last(conn)["protocol"] == 2


def test_a_resumed_session_speaks_the_version_of_its_new_hello() -> None:
    net = Net(grace=5.0)
    ann = net.join("ann")
    net.send(ann, type="challenge", opponent="minimax", side="X")
    gid = net.last(ann, "game_start")["game_id"]
    token = net.last(ann, "welcome")["token"]
    net.drop(ann)
    again = net.open()
    net.send(again, type="hello", name="ann", token=token, protocol=2)
    assert net.last(again, "welcome")["protocol"] == 2
    net.send(again, type="move", game_id=gid, cell=5, id="m")
    assert [(f["ply"], f.get("id")) for f in net.take(again) if f["type"] == "state"][-1:] == [(2, "m")]


def test_move_errors_keep_the_game_intact() -> None:
    net = Net()
    ann, bob, gid = start_pvp(net)
    net.send(bob, type="move", game_id=gid, cell=5, id=1)
    assert net.last(bob)["code"] == "not_your_turn" and net.last(bob)["id"] == 1
    net.send(ann, type="move", game_id=gid, cell=5)
    for cell, code in ((5, "occupied"), (0, "out_of_range"), (10, "out_of_range")):
        net.send(bob, type="move", game_id=gid, cell=cell)
        assert net.last(bob)["code"] == code
    net.send(bob, type="move", game_id="nope", cell=1)
    assert net.last(bob)["code"] == "unknown_game"
    eve = net.join("eve")
    net.send(eve, type="move", game_id=gid, cell=1)
    assert net.last(eve)["code"] == "not_a_player"
    game = net.arena.games[gid]
    assert game.board.code == "....X...." and len(game.moves) == 1


def test_forfeit_on_illegal_records_the_attempt() -> None:
    net = Net()
    ann, bob, gid = start_pvp(net)
    net.send(ann, type="move", game_id=gid, cell=5)
    net.send(bob, type="move", game_id=gid, cell=5, on_illegal="forfeit", trace={"why": "x"}, id=9)
    over = net.last(bob, "game_over")
    assert over["id"] == 9 and over["result"] == "X" and over["reason"] == "illegal_move" and over["winner"] == "ann"
    assert (
        over["illegal_move"]["cell"] == 5
        and over["illegal_move"]["seat"] == "O"
        and over["illegal_move"]["code"] == "occupied"
    )
    assert net.ended[-1]["illegal_move"]["trace"] == {"why": "x"}
    net.send(ann, type="move", game_id=gid, cell=1)
    assert net.last(ann)["code"] == "game_over"


def test_resign_and_finished_game_errors() -> None:
    net = Net()
    ann, bob, gid = start_pvp(net)
    net.send(bob, type="resign", game_id=gid)  # not bob's turn: resigning is always allowed
    assert net.last(ann, "game_over")["reason"] == "resign" and net.last(ann, "game_over")["winner"] == "ann"
    net.send(bob, type="resign", game_id=gid)
    assert net.last(bob)["code"] == "game_over"
    net.send(bob, type="get_game", game_id=gid, id="g")
    rec = net.last(bob)
    assert rec["type"] == "game_record" and rec["result"] == "X" and rec["id"] == "g"


def test_timeout_loses_and_clock_resets_each_move() -> None:
    net = Net(move_clock=10.0)
    ann, bob, gid = start_pvp(net)
    net.advance(9.0)
    net.send(ann, type="move", game_id=gid, cell=1)
    net.advance(9.0)  # bob's clock started at the move: not yet out
    assert gid in net.arena.games
    net.advance(1.5)
    over = net.last(ann, "game_over")
    assert over["result"] == "X" and over["reason"] == "timeout"


def test_one_clock_timer_per_game_however_many_moves() -> None:
    """Moves that push the deadline on leave the game's one queued clock timer; when it fires
    early it queues itself for the deadline then, and the timeout still comes exactly then."""
    net = Net(move_clock=10.0)
    ann, bob, gid = start_pvp(net)
    cells = iter([1, 2, 3, 5, 4, 6])  # X: 1 3 4, O: 2 5 6 — no line yet
    for mover in (ann, bob, ann, bob, ann, bob):
        net.advance(1.0)
        net.send(mover, type="move", game_id=gid, cell=next(cells))
    clock_timers = [t for t in net.arena.state.timers if t[2] == "clock" and t[3] == gid]
    assert len(clock_timers) == 1  # six moves, one timer
    game = net.arena.games[gid]
    assert game.clock_timer_at is not None and game.clock_timer_at < game.deadline
    net.advance(game.clock_timer_at - net.now)  # the early timer fires: re-queued for the deadline
    assert gid in net.arena.games and game.clock_timer_at == game.deadline
    net.advance(game.deadline - net.now - 0.01)
    assert gid in net.arena.games
    net.advance(0.02)
    over = net.last(ann, "game_over")
    assert over["reason"] == "timeout" and over["result"] == "O"


def test_challenge_clock_overrides_default() -> None:
    net = Net(move_clock=10.0)
    ann, bob = net.join("ann"), net.join("bob")
    net.send(ann, type="challenge", opponent="bob", side="O", clock=2.0)
    net.send(bob, type="accept", challenge_id=net.last(bob, "challenge")["challenge_id"])
    assert net.last(bob, "game_start")["clock"] == 2.0
    net.advance(2.5)
    assert net.last(ann, "game_over")["reason"] == "timeout" and net.last(ann, "game_over")["winner"] == "ann"


def test_disconnect_pauses_clock_and_resume_restores_game() -> None:
    net = Net(move_clock=3.0, grace=5.0)
    ann, bob, gid = start_pvp(net)
    token = net.last(ann, "welcome")["token"]
    net.drop(ann)
    assert (
        net.last(bob, "info")["event"] == "player_left"
        and "ann left: you win in 5 s" in net.last(bob, "info")["message"]
    )
    net.advance(4.0)  # past the move clock, within grace: paused, no timeout
    assert gid in net.arena.games
    ann2 = net.open()
    net.send(ann2, type="hello", name="ann", token=token)
    frames = net.take(ann2)
    assert frames[0]["type"] == "welcome" and frames[0]["resumed"] == [gid]
    assert [f["type"] for f in frames[1:3]] == ["game_start", "state"] and frames[1]["you"] == "X"
    net.send(ann2, type="move", game_id=gid, cell=5)
    assert net.last(bob, "state")["board"] == "....X...."
    net.advance(10.0)  # grace timers of the old connection are stale; bob times out now
    assert net.last(ann2, "game_over")["reason"] == "timeout"


def test_opponent_disconnect_does_not_reset_the_movers_clock() -> None:
    net = Net(move_clock=10.0, grace=30.0)
    ann, bob, gid = start_pvp(net)
    deadline = net.arena.games[gid].deadline
    net.advance(6.0)
    net.drop(bob)  # bob is not to move: ann's clock runs on, unchanged
    assert net.arena.games[gid].deadline == deadline
    net.advance(4.5)
    over = net.last(ann, "game_over")
    assert over["reason"] == "timeout" and over["winner"] == "bob"


def test_disconnect_past_grace_forfeits() -> None:
    net = Net(grace=2.0)
    ann, bob, gid = start_pvp(net)
    net.send(ann, type="move", game_id=gid, cell=5)
    token = net.last(bob, "welcome")["token"]
    net.drop(bob)
    net.advance(2.1)
    over = net.last(ann, "game_over")
    assert over["result"] == "X" and over["reason"] == "disconnect"
    again = net.open()
    net.send(again, type="hello", name="bob", token=token)
    assert net.last(again)["code"] == "bad_token"
    net.send(again, type="hello", name="bob")
    assert net.last(again)["type"] == "welcome"


def test_resume_on_a_new_connection_replaces_the_old_one() -> None:
    net = Net()
    ann, bob, gid = start_pvp(net)
    ann2 = net.open()
    net.send(ann2, type="hello", name="ann", token=net.last(ann, "welcome")["token"])
    assert net.closes[ann].code == CLOSE_REPLACED
    net.drop(ann)  # the old socket's late disconnect must not start a grace period
    assert net.arena.sessions["ann"].connected
    net.send(ann2, type="move", game_id=gid, cell=1)
    assert net.last(bob, "state")["ply"] == 1


def test_spectator_sees_every_state_and_may_not_move() -> None:
    net = Net()
    ann, bob, gid = start_pvp(net)
    spy = net.join("spy", role="spectator")
    net.send(spy, type="list_games", id=1)
    assert [g["game_id"] for g in net.last(spy, "games")["games"]] == [gid]
    net.send(spy, type="spectate", game_id=gid, id=2)
    assert net.last(spy, "game_start")["id"] == 2 and net.last(spy, "game_start")["you"] is None
    for conn, cell in ((ann, 1), (bob, 5), (ann, 2), (bob, 9), (ann, 3)):
        net.send(conn, type="move", game_id=gid, cell=cell, trace={"cell": cell})
    states = [f for f in net.inbox[spy] if f["type"] == "state"]
    assert [s["ply"] for s in states] == [0, 1, 2, 3, 4, 5]
    assert states[-1]["last_move"]["trace"] == {"cell": 3}
    assert net.last(spy, "game_over")["winner"] == "ann"
    for frame in (
        {"type": "move", "game_id": gid, "cell": 4},
        {"type": "challenge", "opponent": "minimax"},
        {"type": "resign", "game_id": gid},
    ):
        net.send(spy, **frame)
        assert net.last(spy)["code"] == "forbidden"


def test_max_spectators() -> None:
    net = Net(max_spectators=1)
    ann, bob, gid = start_pvp(net)
    s1, s2 = net.join("s1", role="spectator"), net.join("s2", role="spectator")
    net.send(s1, type="spectate", game_id=gid)
    net.send(s2, type="spectate", game_id=gid)
    assert net.last(s2)["code"] == "busy"
    net.send(s1, type="unspectate", game_id=gid)
    net.send(s2, type="spectate", game_id=gid)
    assert net.last(s2)["type"] == "state"


def test_remote_bot_offers_busy_decline_and_timeout() -> None:
    net = Net(challenge_timeout=3.0)
    rb = net.join("rb", role="bot", max_games=1)
    ann, bob = net.join("ann"), net.join("bob")
    net.send(ann, type="challenge", opponent="rb", side="X")
    offer = net.last(rb, "challenge")
    assert offer["side"] == "O" and offer["challenger"] == "ann"
    net.send(bob, type="challenge", opponent="rb", id=5)  # the pending offer fills rb's only slot
    assert net.last(bob)["code"] == "busy" and net.last(bob)["id"] == 5
    net.send(rb, type="decline", challenge_id=offer["challenge_id"], reason="not now")
    assert net.last(ann, "challenge_declined")["reason"] == "rb declined: not now"
    net.send(bob, type="challenge", opponent="rb")
    net.advance(3.5)
    assert "no answer" in net.last(bob, "challenge_declined")["reason"]
    assert "no answer" in net.last(rb, "challenge_declined")["reason"]  # the offer is withdrawn
    net.send(rb, type="accept", challenge_id=offer["challenge_id"])
    assert net.last(rb)["code"] == "unknown_challenge"
    net.send(ann, type="challenge", opponent="nobody")
    assert net.last(ann)["code"] == "unknown_opponent"
    net.send(ann, type="challenge", opponent="ann")
    assert net.last(ann)["code"] == "forbidden"


def test_arranged_game_between_remote_and_house_bot() -> None:
    net = Net()
    rb = net.join("rb", role="bot", max_games=4)
    org = net.join("org")
    net.send(org, type="arrange", x="rb", o="random", tag="t1", clock=5.0, id=1)
    sent = net.last(org, "challenge_sent")
    assert sent["id"] == 1 and sent["x"] == "rb" and sent["tag"] == "t1"
    offer = net.last(rb, "challenge")
    assert offer["arranged"] is True and offer["side"] == "X" and offer["opponent"] == "random"
    net.send(rb, type="accept", challenge_id=offer["challenge_id"], id=2)
    start = net.last(rb, "game_start")
    assert start["id"] == 2 and start["you"] == "X" and start["tag"] == "t1"
    assert net.last(org, "game_start")["you"] is None
    gid = start["game_id"]
    while gid in net.arena.games:
        board = net.last(rb, "state")["board"] if any(f["type"] == "state" for f in net.inbox[rb]) else "........."
        cell = next(i + 1 for i, c in enumerate(board) if c == ".")
        net.send(rb, type="move", game_id=gid, cell=cell)
    assert net.last(org, "game_over")["tag"] == "t1"
    assert net.ended[-1]["tag"] == "t1" and net.ended[-1]["x_kind"] == "remote" and net.ended[-1]["o_kind"] == "house"


def test_arranged_house_games_finish_at_once() -> None:
    net = Net()
    org = net.join("org")
    for _ in range(20):
        net.send(org, type="arrange", x="minimax", o="minimax")
    assert len(net.ended) == 20 and all(r["result"] == "draw" for r in net.ended)
    for _ in range(20):
        net.send(org, type="arrange", x="minimax", o="random")
    assert all(r["result"] in ("X", "draw") for r in net.ended[20:])
    net.send(org, type="arrange", x="ann", o="minimax")
    assert net.last(org)["code"] == "unknown_opponent"


def test_arrange_refuses_players_and_self_play_of_remote_bots() -> None:
    net = Net()
    net.join("rb", role="bot")
    org = net.join("org")
    net.send(org, type="arrange", x="rb", o="rb")
    assert net.last(org)["code"] == "forbidden"
    net.send(org, type="arrange", x="org", o="minimax")
    assert net.last(org)["code"] == "forbidden"


def test_rate_limit_then_flood_close() -> None:
    net = Net(rate=1.0, burst=5, flood_close=10)
    ann = net.join("ann")  # hello used one token
    for _ in range(4):
        net.send(ann, type="ping")
    assert [f["type"] for f in net.take(ann)][-4:] == ["pong"] * 4
    net.send(ann, type="ping")
    assert net.last(ann)["code"] == "rate_limited"
    net.advance(1.0)
    net.send(ann, type="ping")  # refilled: usable again
    assert net.last(ann)["type"] == "pong"
    for _ in range(10):
        net.send(ann, type="ping")
    assert net.closes[ann].code == CLOSE_POLICY
    net.send(ann, type="ping")  # nothing more is processed on a closing connection
    assert net.last(ann)["code"] == "rate_limited"


def test_connections_per_address() -> None:
    net = Net(max_connections_per_address=2)
    a, b = net.open("1.1.1.1"), net.open("1.1.1.1")
    c = net.open("1.1.1.1")
    assert net.last(c)["code"] == "too_many_connections" and net.closes[c].code == CLOSE_POLICY
    d = net.open("2.2.2.2")
    assert d not in net.closes
    net.drop(a)
    e = net.open("1.1.1.1")
    assert e not in net.closes and b not in net.closes


def test_shutdown_aborts_live_games_and_closes_everyone() -> None:
    net = Net()
    ann, bob, gid = start_pvp(net)
    net.arena.shutdown(net.now)
    net.pump()
    over = net.last(ann, "game_over")
    assert over["result"] == "aborted" and over["reason"] == "aborted"
    assert net.stored[-1]["status"] == "aborted"
    assert net.last(bob)["code"] == "server_shutting_down" and net.closes[bob].code == 1001
    late = net.open()
    assert net.last(late)["code"] == "server_shutting_down"


def test_internal_error_costs_one_request_only(monkeypatch: pytest.MonkeyPatch) -> None:
    net = Net()
    ann = net.join("ann")
    monkeypatch.setattr(net.arena._lobby, "bot_list", lambda: 1 / 0)
    net.send(ann, type="list_bots", id=4)
    assert net.last(ann)["code"] == "internal_error" and net.last(ann)["id"] == 4
    net.send(ann, type="ping")
    assert net.last(ann)["type"] == "pong"


def test_house_bots_are_seeded() -> None:
    def moves(seed: int) -> list[str]:
        net = Net(seed=seed)
        org = net.join("org")
        for _ in range(5):
            net.send(org, type="arrange", x="random", o="minimax")
        return ["".join(str(m["cell"]) for m in r["moves"]) for r in net.ended]

    assert moves(3) == moves(3)
    assert isinstance(Arena(ServerConfig(seed=1)).house["minimax"], MinimaxBot)
    assert isinstance(Arena(ServerConfig(seed=1)).house["random"], RandomBot)
    assert Arena(ServerConfig(house_bots=False)).house == {}


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="move_clock"):
        ServerConfig(move_clock=0)
    with pytest.raises(ValueError, match="burst"):
        ServerConfig(burst=0)


# --------------------------------------------------------------------------- clocks across reconnects
def test_resume_restores_the_time_left_not_a_full_clock() -> None:
    net = Net(move_clock=10.0, grace=30.0)
    ann, bob, gid = start_pvp(net)
    token = net.last(ann, "welcome")["token"]
    net.advance(7.0)  # ann has 3 s left
    net.drop(ann)
    assert net.arena.games[gid].deadline is None  # paused while away
    net.advance(20.0)
    ann2 = net.open()
    net.send(ann2, type="hello", name="ann", token=token)
    state = net.last(ann2, "state")
    assert state["deadline"] == pytest.approx(net.now + 3.0)
    net.advance(2.9)
    assert gid in net.arena.games
    net.advance(0.2)
    over = net.last(bob, "game_over")
    assert over["reason"] == "timeout" and over["winner"] == "bob"


def test_reconnecting_again_and_again_cannot_stall_a_game() -> None:
    """Each pause is charged to an allowance of ``grace`` seconds per player and game."""
    net = Net(move_clock=10.0, grace=6.0)
    ann, bob, gid = start_pvp(net)
    token = net.last(ann, "welcome")["token"]
    start = net.now
    conn = ann
    while gid in net.arena.games and net.now - start < 100:
        net.advance(1.0)
        net.drop(conn)
        net.advance(4.0)  # within grace every time
        conn = net.open()
        net.send(conn, type="hello", name="ann", token=token)
    over = net.last(bob, "game_over")
    assert over["reason"] == "timeout" and over["winner"] == "bob"
    assert net.now - start <= 10.0 + 6.0 + 5.0  # the move clock plus the pause allowance (+ one step)


def test_spent_pause_allowance_restarts_the_clock_while_away() -> None:
    net = Net(move_clock=4.0, grace=30.0)
    ann, bob, gid = start_pvp(net)
    token = net.last(ann, "welcome")["token"]
    net.drop(ann)
    net.advance(10.0)
    ann2 = net.open()
    net.send(ann2, type="hello", name="ann", token=token)  # 20 s of pause allowance left
    net.advance(1.0)  # 3 s left on the clock
    net.drop(ann2)
    net.take(bob)
    net.advance(20.0)  # allowance spent: the clock runs again, and everyone sees the deadline
    state = net.last(bob, "state")
    assert state["deadline"] == pytest.approx(net.now + 3.0)
    net.advance(3.1)
    assert net.last(bob, "game_over")["reason"] == "timeout"


def test_a_move_made_while_the_opponent_is_away_gives_them_a_full_clock_on_return() -> None:
    net = Net(move_clock=10.0, grace=30.0)
    ann, bob, gid = start_pvp(net)
    token = net.last(bob, "welcome")["token"]
    net.drop(bob)
    net.advance(5.0)
    net.send(ann, type="move", game_id=gid, cell=5)
    assert net.last(ann, "state")["deadline"] is None  # bob is away: his clock waits
    net.advance(5.0)
    bob2 = net.open()
    net.send(bob2, type="hello", name="bob", token=token)
    assert net.last(bob2, "state")["deadline"] == pytest.approx(net.now + 10.0)


def test_resume_with_another_role_is_refused() -> None:
    net = Net()
    net.join("rb", role="bot")
    token = net.last(1, "welcome")["token"]
    net.drop(1)
    again = net.open()
    net.send(again, type="hello", name="rb", role="player", token=token, id=3)
    err = net.last(again)
    assert err["type"] == "error" and err["code"] == "forbidden" and err["id"] == 3
    assert "role 'bot'" in err["message"]
    net.send(again, type="hello", name="rb", role="bot", token=token)
    assert net.last(again)["type"] == "welcome" and net.last(again)["role"] == "bot"


# --------------------------------------------------------------------------- per-game seeds
def test_same_game_seed_gives_the_same_house_bot_moves() -> None:
    def arranged(server_seed: int, game_seed: int | None, games: int = 4) -> list[str]:
        net = Net(seed=server_seed)
        org = net.join("org")
        for _ in range(games):
            net.send(org, type="arrange", x="random", o="random", seed=game_seed)
        assert all(r["seed"] == game_seed for r in net.ended)
        return ["".join(str(m["cell"]) for m in r["moves"]) for r in net.ended]

    seeded = arranged(1, 42)
    assert len(set(seeded)) == 1  # every game with seed 42 is the same game
    assert arranged(2, 42) == seeded  # whatever the server's own seed
    assert len({arranged(1, s, 1)[0] for s in range(8)}) > 1  # and the seed matters
    assert len(set(arranged(1, None))) > 1  # unseeded games still vary


def test_seeded_challenge_repeats_against_a_fixed_player() -> None:
    def play(server_seed: int) -> tuple[str, list[int]]:
        net = Net(seed=server_seed)
        ann = net.join("ann")
        net.send(ann, type="challenge", opponent="random", side="random", seed=7)
        start = net.last(ann, "game_start")
        while start["game_id"] in net.arena.games:
            state = net.arena.games[start["game_id"]]
            net.send(ann, type="move", game_id=start["game_id"], cell=state.board.legal_cells()[0])
        record = net.ended[-1]
        return start["you"], [m["cell"] for m in record["moves"]]

    assert play(1) == play(99)


def test_a_seeded_game_leaves_the_house_bots_own_generator_alone() -> None:
    def unseeded_after(seeded_games: int) -> list[str]:
        net = Net(seed=5)
        org = net.join("org")
        for _ in range(seeded_games):
            net.send(org, type="arrange", x="random", o="random", seed=3)
        net.ended.clear()
        for _ in range(3):
            net.send(org, type="arrange", x="random", o="random")
        return ["".join(str(m["cell"]) for m in r["moves"]) for r in net.ended]

    assert unseeded_after(0) == unseeded_after(2)


def test_seed_must_be_a_non_negative_integer() -> None:
    net = Net()
    org = net.join("org")
    for bad in ("1", 1.5, -1, True):
        net.send(org, type="arrange", x="random", o="random", seed=bad)
        assert net.last(org)["code"] == "invalid_message", bad


# --------------------------------------------------------------------------- stored games list
def test_list_records_newest_first_with_filters_and_paging() -> None:
    net = Net()
    org = net.join("org")
    for i in range(5):
        net.advance(1.0)
        net.send(org, type="arrange", x="minimax", o="random", tag="even" if i % 2 == 0 else "odd")
    spy = net.join("spy", role="spectator")  # read-only roles may browse the records too
    net.send(spy, type="list_records", id="r1")
    reply = net.last(spy)
    assert reply["type"] == "records" and reply["id"] == "r1"
    ids = [g["game_id"] for g in reply["games"]]
    assert ids == [r["game_id"] for r in reversed(net.ended)]
    first = reply["games"][0]
    assert set(first) == {"game_id", "x", "o", "result", "reason", "ended_at", "ply", "tag"}
    assert first["ply"] == len(net.ended[-1]["moves"]) and first["tag"] == "even"
    net.send(spy, type="list_records", tag="odd")
    assert [g["tag"] for g in net.last(spy)["games"]] == ["odd", "odd"]
    net.send(spy, type="list_records", limit=2)
    page = net.last(spy)["games"]
    net.send(spy, type="list_records", limit=2, before=page[-1]["ended_at"])
    assert [g["game_id"] for g in page + net.last(spy)["games"]] == ids[:4]
    net.send(spy, type="list_records", player="nobody")
    assert net.last(spy)["games"] == []
    net.send(spy, type="list_records", limit=201)
    assert net.last(spy)["code"] == "invalid_message"
