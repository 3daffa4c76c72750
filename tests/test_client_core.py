"""The sans-I/O client core: driven with frames only, and against the sans-I/O arena in
process (its frames, no sockets): handshake, request ids and replies, offers, games,
turns, the end of a game, errors, resume after a reconnect and an expired session."""

from __future__ import annotations

import json
from typing import Any

import pytest

from client.core import (
    BadFrame,
    ChallengeDeclined,
    ClientCore,
    GameEnded,
    GameStarted,
    GameUpdated,
    HelloRefused,
    Notice,
    OfferReceived,
    Reply,
    RequestFailed,
    ServerError,
    ServerFrame,
    SessionExpired,
    Welcomed,
    YourTurn,
)
from server.arena.arena import Arena, Close, Send, ServerConfig
from server.game import Board, Seat


def welcome(name: str = "ann", token: str = "t1", resumed: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "welcome",
        "name": name,
        "role": "player",
        "token": token,
        "protocol": 2,
        "server": "arena",
        "resumed": list(resumed),
    }


def start(gid: str = "g1", you: str | None = "X", board: str = ".........", **extra: Any) -> dict[str, Any]:
    return {
        "type": "game_start",
        "game_id": gid,
        "x": "ann",
        "o": "bob",
        "you": you,
        "clock": 30.0,
        "board": board,
        "turn": Board(board).turn.value,
        "ply": Board(board).ply,
        "deadline": 1030.0,
        **extra,
    }


def state(gid: str, board: str, **extra: Any) -> dict[str, Any]:
    b = Board(board)
    return {
        "type": "state",
        "game_id": gid,
        "x": "ann",
        "o": "bob",
        "board": board,
        "turn": None if b.is_over else b.turn.value,
        "ply": b.ply,
        "moves": [],
        "over": b.is_over,
        **extra,
    }


def over(gid: str, board: str, result: str, reason: str = "line", **extra: Any) -> dict[str, Any]:
    return {
        "type": "game_over",
        "game_id": gid,
        "x": "ann",
        "o": "bob",
        "result": result,
        "reason": reason,
        "winner": None,
        "board": board,
        "moves": [],
        **extra,
    }


def kinds(events: list[Any]) -> list[str]:
    return [type(e).__name__ for e in events]


def welcomed(name: str = "ann", **options: Any) -> ClientCore:
    core = ClientCore(name, **options)
    core.hello()
    core.receive(welcome(name))
    return core


# --------------------------------------------------------------------------- frames only
def test_hello_carries_name_role_version_bot_fields_and_token_after_a_welcome() -> None:
    core = ClientCore("rb", role="bot", max_games=4, description="  plays   the lowest cell ")
    assert core.hello() == {
        "type": "hello",
        "name": "rb",
        "role": "bot",
        "protocol": 2,
        "max_games": 4,
        "description": "plays the lowest cell",
    }
    assert not core.welcomed
    (ev,) = core.receive(json.dumps(welcome("rb", token="tok")))
    assert isinstance(ev, Welcomed) and ev.new_session and ev.lost == () and core.welcomed
    assert core.token == "tok" and core.hello()["token"] == "tok"
    assert ClientCore("old", protocol=1).hello()["protocol"] == 1


def test_a_refused_hello_says_whether_to_try_later() -> None:
    core = ClientCore("minimax")
    core.hello()
    (ev,) = core.receive({"type": "error", "code": "name_taken", "message": "taken"})
    assert isinstance(ev, HelloRefused) and ev.code == "name_taken" and not ev.retryable
    core.hello()
    (ev,) = core.receive({"type": "error", "code": "server_shutting_down", "message": "bye"})
    assert isinstance(ev, HelloRefused) and ev.retryable


def test_requests_get_fresh_ids_and_replies_come_back_with_their_request() -> None:
    core = welcomed()
    a, b = core.list_bots(), core.ping()
    assert (a["id"], b["id"]) == ("r1", "r2") and set(core.pending) == {"r1", "r2"}
    (ev,) = core.receive({"type": "pong", "time": 5.0, "id": "r2"})
    assert isinstance(ev, Reply) and ev.request is b and ev.frame["time"] == 5.0
    (ev,) = core.receive({"type": "error", "code": "internal_error", "message": "boom", "id": "r1"})
    assert isinstance(ev, RequestFailed) and ev.request is a and ev.code == "internal_error"
    assert core.pending == {}
    (ev,) = core.receive({"type": "error", "code": "rate_limited", "message": "slow", "id": "r9"})
    assert isinstance(ev, ServerError)  # no pending request of that id
    (ev,) = core.receive({"type": "pong", "time": 6.0})
    assert isinstance(ev, ServerFrame)
    assert core.request("ping", track=False) == {"type": "ping"}
    assert ClientCore("n", id_prefix=None).ping()["id"] == 1


def test_retry_puts_a_dropped_request_back_under_its_id() -> None:
    core = welcomed()
    core.receive(start())
    move = core.move("g1", 5, trace={"why": "centre"}, on_illegal="forfeit")
    assert move == {
        "type": "move",
        "game_id": "g1",
        "cell": 5,
        "trace": {"why": "centre"},
        "on_illegal": "forfeit",
        "id": "r1",
    }
    (ev,) = core.receive({"type": "error", "code": "rate_limited", "message": "slow", "id": "r1"})
    assert isinstance(ev, RequestFailed) and core.games["g1"].to_move  # the move was not made
    assert core.retry(ev.request) is move and core.pending == {"r1": move} and not core.games["g1"].to_move


def test_a_game_is_tracked_from_start_through_turns_to_the_end() -> None:
    core = welcomed()
    events = core.receive(start(time_control={"base": 60.0, "increment": 1.0}, clocks={"X": 60.0, "O": 60.0}))
    assert kinds(events) == ["GameStarted", "YourTurn"]
    game = events[0].game
    assert (game.you, game.opponent, game.turn, game.my_turn, game.deadline) == (Seat.X, "bob", Seat.X, True, 1030.0)
    assert game.time_control == {"base": 60.0, "increment": 1.0} and game.clocks == {"X": 60.0, "O": 60.0}
    move = core.move("g1", 5)
    events = core.receive(state("g1", "....X....", id=move["id"], deadline=1040.0, clocks={"X": 61.0, "O": 60.0}))
    assert kinds(events) == ["Reply", "GameUpdated"] and game.turn is Seat.O and game.clocks["X"] == 61.0
    reply = {"ply": 2, "seat": "O", "cell": 1, "at": 1001.0, "trace": None}
    assert kinds(core.receive(state("g1", "O...X....", last_move=reply))) == ["GameUpdated", "YourTurn"]
    assert kinds(core.receive(state("g1", "....X...."))) == ["GameUpdated", "YourTurn"]  # an older state is ignored
    assert game.board.code == "O...X...." and game.last_move == reply
    (ev,) = core.receive(over("g1", "O...X....", "X", "resign", winner="ann"))
    assert isinstance(ev, GameEnded) and ev.game is game and ev.outcome == "win"
    assert (game.result, game.reason, game.winner, game.turn, game.deadline) == ("X", "resign", "ann", None, None)
    assert core.games == {}


@pytest.mark.parametrize(
    ("you", "result", "outcome"),
    [("X", "X", "win"), ("O", "X", "loss"), ("O", "draw", "draw"), ("X", "aborted", "aborted"), (None, "X", None)],
)
def test_outcome_is_the_players_and_none_for_a_spectator(you: str | None, result: str, outcome: str | None) -> None:
    core = welcomed()
    core.receive(start(you=you))
    (ev,) = core.receive(over("g1", "XXX.OO...", result))
    assert ev.outcome == outcome and ev.game.playing is (you is not None)


def test_a_record_ends_a_tracked_game_and_is_a_plain_reply_otherwise() -> None:
    core = welcomed()
    core.receive(start())
    ask = core.get_game("g1")
    record = {**over("g1", "XXX.OO...", "X"), "type": "game_record", "started_at": 1.0, "id": ask["id"]}
    assert kinds(core.receive(record)) == ["Reply", "GameEnded"] and core.games == {}
    ask = core.get_game("g1")
    assert kinds(core.receive({**record, "id": ask["id"]})) == ["Reply"]


def test_offers_accept_decline_and_withdrawal() -> None:
    core = welcomed("rb", role="bot", max_games=2)
    offer = {
        "type": "challenge",
        "challenge_id": "c1",
        "challenger": "ann",
        "side": "O",
        "clock": 30.0,
        "arranged": True,
        "tag": "cup",
        "expires_in": 30.0,
    }
    (ev,) = core.receive(offer)
    assert isinstance(ev, OfferReceived) and ev.offer.side is Seat.O and ev.offer.arranged and ev.offer.tag == "cup"
    assert core.accept("c1", track=False) == {"type": "accept", "challenge_id": "c1"}
    assert core.offers == {} and core.accepted == {"c1"}
    (ev,) = core.receive({"type": "challenge_declined", "challenge_id": "c1", "reason": "ann left"})
    assert isinstance(ev, ChallengeDeclined) and ev.offered and core.accepted == set()
    core.receive({**offer, "challenge_id": "c2"})
    assert core.decline("c2", "busy", track=False) == {"type": "decline", "challenge_id": "c2", "reason": "busy"}
    core.receive({**offer, "challenge_id": "c3"})
    core.accept("c3")
    core.receive({**start("c3", you="O"), "x": "ann", "o": "rb"})
    assert core.accepted == set() and core.games["c3"].opponent == "ann"
    (ev,) = core.receive({"type": "challenge_declined", "challenge_id": "c9", "reason": "no answer in time"})
    assert not ev.offered  # one this client sent


def test_requests_carry_an_opening_and_a_game_from_one_is_tracked_from_its_board() -> None:
    core = welcomed("rb", role="bot")
    assert core.challenge("bob", side="O", opening=(5, 1), track=False) == {
        "type": "challenge",
        "opponent": "bob",
        "side": "O",
        "opening": [5, 1],
    }
    assert "opening" not in core.challenge("bob", opening=[], track=False)  # an empty opening is none
    assert core.arrange("a", "b", opening=[9], track=False) == {"type": "arrange", "x": "a", "o": "b", "opening": [9]}
    offer = {"type": "challenge", "challenge_id": "c1", "challenger": "ann", "side": "O", "clock": 30.0}
    (ev,) = core.receive({**offer, "opening": [5]})
    assert isinstance(ev, OfferReceived) and ev.offer.opening == (5,)
    core.accept("c1", track=False)
    events = core.receive({**start("c1", you="O", board="....X...."), "x": "ann", "o": "rb", "opening": [5]})
    assert kinds(events) == ["GameStarted", "YourTurn"]
    game = events[0].game
    assert game.board.code == "....X...." and game.opening == (5,) and game.turn is Seat.O and game.to_move
    core.move("c1", 1)
    assert not game.to_move  # the move for ply 1 is on its way
    events = core.receive({**start("c2", board="X...O...."), "opening": [1, 5]})  # X to move: this client
    assert kinds(events) == ["GameStarted", "YourTurn"] and core.games["c2"].board.ply == 2


def test_notices_carry_their_event() -> None:
    core = welcomed()
    (ev,) = core.receive(
        {
            "type": "info",
            "message": "bob left",
            "game_id": "g1",
            "event": "player_left",
            "player": "bob",
            "back_by": 5.0,
        }
    )
    assert isinstance(ev, Notice) and (ev.kind, ev.game_id) == ("player_left", "g1")


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[1, 2]",
        '{"no": "type"}',
        '{"type": "mystery"}',
        "[NaN]",
        json.dumps({**start(), "board": "XXXXXXXXX"}),
        b"\xff",
        '{"type": "state", "game_id": "g1"}',
    ],
)
def test_bad_frames_change_nothing(raw: Any) -> None:
    core = welcomed()
    (ev,) = core.receive(raw)
    assert isinstance(ev, BadFrame) and ev.raw == raw and ev.reason
    assert core.games == {} and core.welcomed


def test_resume_keeps_the_resumed_games_and_gives_up_the_others() -> None:
    core = welcomed()
    core.receive(start("g1"))
    core.receive(start("g2"))
    core.move("g1", 5)
    assert core.connection_lost()[0]["cell"] == 5 and not core.welcomed and core.pending == {}
    assert core.hello()["token"] == "t1"
    (ev,) = core.receive(welcome(resumed=("g1",)))
    assert isinstance(ev, Welcomed) and not ev.new_session and [g.game_id for g in ev.lost] == ["g2"]
    assert list(core.games) == ["g1"] and core.games["g1"].to_move  # asked again after the resume
    events = core.receive(start("g1"))
    assert isinstance(events[0], GameStarted) and events[0].resumed


def test_an_expired_token_gives_up_every_game_and_hellos_afresh() -> None:
    core = welcomed()
    core.receive(start("g1"))
    core.connection_lost()
    core.hello()
    (ev,) = core.receive({"type": "error", "code": "bad_token", "message": "expired"})
    assert isinstance(ev, SessionExpired) and core.token is None
    assert "token" not in core.hello()
    (ev,) = core.receive(welcome(token="t2"))
    assert ev.new_session and [g.game_id for g in ev.lost] == ["g1"] and core.games == {} and core.token == "t2"


def test_an_error_with_no_hello_waiting_is_a_server_error() -> None:
    core = ClientCore("ann")
    (ev,) = core.receive({"type": "error", "code": "internal_error", "message": "boom"})
    assert isinstance(ev, ServerError)
    core.hello()
    (ev,) = core.receive({"type": "error", "code": "internal_error", "message": "boom"})
    assert isinstance(ev, HelloRefused) and ev.retryable


# --------------------------------------------------------------------------- against the arena
class InProcess:
    """Clients wired to a sans-I/O :class:`Arena`: each core's frames go in, the arena's come back to its core."""

    def __init__(self, **config: Any) -> None:
        self.arena = Arena(ServerConfig(**{"seed": 7, "move_clock": 10.0, "grace": 5.0, **config}))
        self.now = 1000.0
        self.cores: dict[int, ClientCore] = {}
        self.events: dict[int, list[Any]] = {}
        self.closed: set[int] = set()

    def connect(self, core: ClientCore) -> int:
        conn = len(self.cores) + 1
        self.cores[conn], self.events[conn] = core, []
        self.arena.connect(conn, "10.0.0.1", self.now)
        self.send(conn, core.hello())
        return conn

    def send(self, conn: int, frame: dict[str, Any]) -> list[Any]:
        """Deliver ``frame``; return the events it gave its sender."""
        mark = len(self.events[conn])
        self.arena.receive(conn, json.dumps(frame), self.now)
        for effect in self.arena.drain():
            if isinstance(effect, Send) and effect.conn_id in self.cores:
                self.events[effect.conn_id] += self.cores[effect.conn_id].receive(effect.frame)
            elif isinstance(effect, Close):
                self.closed.add(effect.conn_id)
        return self.events[conn][mark:]

    def drop(self, conn: int) -> None:
        self.arena.disconnect(conn, self.now)
        self.cores[conn].connection_lost()
        list(self.arena.drain())


def test_against_the_arena_a_player_beats_nothing_against_minimax() -> None:
    net = InProcess()
    ann = ClientCore("ann")
    conn = net.connect(ann)
    assert kinds(net.events[conn]) == ["Welcomed"] and ann.protocol == 2
    events = net.send(conn, ann.challenge("minimax", side="X"))
    assert kinds(events) == ["Reply", "GameStarted", "YourTurn"]
    game = events[1].game
    while not game.over:
        events = net.send(conn, ann.move(game.game_id, game.board.legal_cells()[0]))
        assert isinstance(events[0], Reply) and events[0].request["type"] == "move"
    assert isinstance(events[-1], GameEnded) and events[-1].outcome in ("loss", "draw")
    assert ann.games == {} and ann.pending == {}


def test_against_the_arena_protocol_1_gets_the_house_answer_in_a_state_of_its_own() -> None:
    net = InProcess()
    ann = ClientCore("ann", protocol=1)
    conn = net.connect(ann)
    assert ann.welcome["protocol"] == 1
    gid = net.send(conn, ann.challenge("minimax", side="X"))[0].frame["challenge_id"]
    events = net.send(conn, ann.move(gid, 5))
    assert kinds(events) == ["Reply", "GameUpdated", "GameUpdated", "YourTurn"]
    assert events[0].frame["ply"] == 1 and events[0].frame["turn"] == "O" and "id" not in events[2].frame
    assert ann.games[gid].board.ply == 2 and ann.games[gid].to_move


def test_against_the_arena_a_remote_bot_is_offered_an_arranged_game_and_plays_it() -> None:
    net = InProcess()
    org, rb = ClientCore("org"), ClientCore("rb", role="bot", max_games=2)
    oc, rc = net.connect(org), net.connect(rb)
    events = net.send(oc, org.arrange("rb", "random", tag="cup", seed=3))
    assert kinds(events) == ["Reply"] and events[0].frame["type"] == "challenge_sent"
    offer = next(e for e in net.events[rc] if isinstance(e, OfferReceived)).offer
    assert offer.arranged and offer.side is Seat.X and offer.tag == "cup"
    events = net.send(rc, rb.accept(offer.challenge_id))
    assert kinds(events) == ["Reply", "GameStarted", "YourTurn"]
    watched = org.games[offer.challenge_id]
    assert watched.you is None and watched.tag == "cup"
    game = rb.games[offer.challenge_id]
    while not game.over:
        net.send(rc, rb.move(game.game_id, game.board.legal_cells()[-1]))
    ends = [e for e in net.events[oc] if isinstance(e, GameEnded)]
    assert len(ends) == 1 and ends[0].game is watched and ends[0].outcome is None and org.games == rb.games == {}
    assert [m["cell"] for m in ends[0].frame["moves"]] == [m["cell"] for m in game.moves]


def test_against_the_arena_refusals_and_declines_come_back_with_their_request() -> None:
    net = InProcess()
    ann, bob = ClientCore("ann"), ClientCore("bob")
    ac, bc = net.connect(ann), net.connect(bob)
    (ev,) = net.send(ac, ann.challenge("nobody"))
    assert isinstance(ev, RequestFailed) and ev.code == "unknown_opponent" and ev.request["opponent"] == "nobody"
    events = net.send(ac, ann.challenge("bob", side="O"))
    cid = events[0].frame["challenge_id"]
    assert kinds(net.send(bc, bob.decline(cid, "later"))) == ["Reply", "Notice"]  # an info acks the decline
    (declined,) = [e for e in net.events[ac] if isinstance(e, ChallengeDeclined)]
    assert declined.challenge_id == cid and not declined.offered and "later" in declined.reason
    events = net.send(ac, ann.challenge("minimax", side="O"))
    gid = events[0].frame["challenge_id"]
    (ev,) = net.send(ac, ann.move(gid, _taken(ann.games[gid].board)))
    assert isinstance(ev, RequestFailed) and ev.code == "occupied" and ann.games[gid].to_move


def test_against_the_arena_a_game_from_an_opening_starts_on_its_board() -> None:
    net = InProcess()
    ann = ClientCore("ann")
    conn = net.connect(ann)
    events = net.send(conn, ann.challenge("minimax", side="O", opening=[1, 5], seed=4))
    assert kinds(events) == ["Reply", "GameStarted", "GameUpdated", "YourTurn"]
    assert events[0].frame["opening"] == [1, 5]
    game = events[1].game
    assert game.opening == (1, 5) and game.you is Seat.O and game.to_move and game.board.ply == 3  # minimax answered
    assert [m.get("opening", False) for m in game.moves] == [True, True, False]
    while not game.over:
        net.send(conn, ann.move(game.game_id, game.board.legal_cells()[0]))
    assert [(m["seat"], m["cell"], m.get("opening")) for m in game.moves[:2]] == [("X", 1, True), ("O", 5, True)]
    assert game.outcome in ("loss", "draw")
    (ev,) = net.send(conn, ann.challenge("minimax", opening=[5, 5]))
    assert isinstance(ev, RequestFailed) and ev.code == "invalid_message" and "cell 5 is played twice" in ev.message


def _taken(board: Board) -> int:
    return next(c for c in range(1, 10) if board[c] is not None)


def test_against_the_arena_a_dropped_player_resumes_its_game() -> None:
    net = InProcess()
    ann = ClientCore("ann")
    conn = net.connect(ann)
    gid = net.send(conn, ann.challenge("minimax", side="X"))[0].frame["challenge_id"]
    net.send(conn, ann.move(gid, 5))
    net.drop(conn)
    again = net.connect(ann)
    events = net.events[again]
    assert kinds(events)[:2] == ["Welcomed", "GameStarted"] and events[0].resumed == (gid,)
    assert events[1].resumed and ann.games[gid].board.ply == 2 and ann.games[gid].to_move
    assert isinstance(events[-1], (GameUpdated, YourTurn))


def test_a_core_that_trusts_its_server_gives_the_same_events_and_still_refuses_frames_it_cannot_read() -> None:
    def play(core: ClientCore) -> list[str]:
        net = InProcess()
        conn = net.connect(core)
        events = net.send(conn, core.challenge("minimax", side="X", seed=3))
        seen = kinds(net.events[conn])
        game = events[1].game
        while not game.over:
            seen += kinds(net.send(conn, core.move(game.game_id, game.board.legal_cells()[-1])))
        return seen

    assert play(ClientCore("ann", check_frames=False)) == play(ClientCore("ann"))
    core = ClientCore("ann", check_frames=False)
    core.receive(welcome())
    core.receive(start())
    (ev,) = core.receive({"type": "state", "game_id": "g1", "ply": 1})  # no board
    assert isinstance(ev, BadFrame) and "board" in ev.reason
    assert core.games["g1"].board == Board.empty()
