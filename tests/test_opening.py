"""Games from an opening, in the sans-I/O arena: ``challenge`` and ``arrange`` with
``opening`` start the game with those moves on the board (recorded as given), the side to
move after them moves first, every illegal opening is refused with a message naming the
problem, and seeded games repeat."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.arena.effects import GameEvent
from server.game import Board, Seat
from test_arena import Net


def opening_moves(cells: list[int], at: float) -> list[dict[str, Any]]:
    """The record's moves of an opening: plies 1..k, X first, each marked as given."""
    return [
        {"ply": i + 1, "seat": "XO"[i % 2], "cell": c, "at": at, "trace": None, "opening": True}
        for i, c in enumerate(cells)
    ]


def test_a_game_from_an_opening_starts_with_its_moves_on_the_board() -> None:
    net = Net()
    ann = net.join("ann", protocol=2)
    net.send(ann, type="challenge", opponent="minimax", side="X", opening=[5, 1], id=1)
    sent, start = net.last(ann, "challenge_sent"), net.last(ann, "game_start")
    assert sent["id"] == 1 and sent["opening"] == [5, 1] and sent["side"] == "X"
    assert start["board"] == "O...X...." and start["turn"] == "X" and start["ply"] == 2
    assert start["opening"] == [5, 1] and start["you"] == "X" and start["x"] == "ann"
    assert start["deadline"] == net.now + 10.0  # ann's clock runs from the start: ann is to move
    gid = start["game_id"]
    assert not any(f["type"] == "state" for f in net.inbox[ann])  # nobody has moved yet
    net.send(ann, type="move", game_id=gid, cell=9, id=2)
    state = net.last(ann, "state")
    assert state["id"] == 2 and state["ply"] == 4
    assert state["moves"][:2] == opening_moves([5, 1], 1000.0)
    assert [m["cell"] for m in state["moves"][2:3]] == [9] and "opening" not in state["moves"][2]
    assert "opening" not in state["moves"][3] and state["moves"][3]["seat"] == "O"


def test_a_house_bot_to_move_after_the_opening_moves_at_once() -> None:
    for protocol in (1, 2):
        net = Net()
        ann = net.join("ann", protocol=protocol)
        net.send(ann, type="challenge", opponent="minimax", side="O", opening=[1, 5])
        start = net.last(ann, "game_start")
        assert start["board"] == "X...O...." and start["turn"] == "X" and start["x"] == "minimax"
        assert start["deadline"] is None  # the house bot's clock never runs
        state = net.last(ann, "state")
        assert state["ply"] == 3 and state["turn"] == "O" and state["last_move"]["seat"] == "X"
        assert "opening" not in state["last_move"] and state["moves"][:2] == opening_moves([1, 5], 1000.0)
        assert state["deadline"] == net.now + 10.0  # ann's clock starts after minimax's answer
        assert Board.from_moves([m["cell"] for m in state["moves"]]).code == state["board"]


def test_arranged_house_games_from_an_opening_finish_and_the_record_marks_the_opening() -> None:
    net = Net()
    org = net.join("org")
    net.send(org, type="arrange", x="minimax", o="random", opening=[1, 2, 3], tag="op", id=5)
    assert net.last(org, "challenge_sent")["opening"] == [1, 2, 3]
    start = net.last(org, "game_start")
    assert start["you"] is None and start["board"] == "XOX......" and start["opening"] == [1, 2, 3]
    record = net.ended[-1]
    assert record["game_id"] == start["game_id"] and record["status"] == "finished"
    assert record["moves"][:3] == opening_moves([1, 2, 3], 1000.0)
    assert all("opening" not in m for m in record["moves"][3:]) and len(record["moves"]) > 3
    assert [m["ply"] for m in record["moves"]] == list(range(1, len(record["moves"]) + 1))
    assert Board.from_moves([m["cell"] for m in record["moves"]]).code == record["board"]
    assert net.stored[0]["status"] == "live" and net.stored[0]["moves"][:3] == record["moves"][:3]
    over = net.last(org, "game_over")
    assert over["moves"] == record["moves"]


@pytest.mark.parametrize(
    ("opening", "message"),
    [
        ([5, 5], "opening: cell 5 is played twice"),
        ([3, 1, 3], "opening: cell 3 is played twice"),
        ([0], "opening: 0 is not a cell (an integer 1-9)"),
        ([4, 10], "opening: 10 is not a cell (an integer 1-9)"),
        ([1, 4, 2, 5, 3], "opening: the game is over after these moves (X has three in a row: 1, 2, 3)"),
        ([1, 4, 2, 5, 3, 6], "opening: the game is over after move 5 of 6 (X has three in a row: 1, 2, 3)"),
        ([1, 2, 3, 4, 5, 6, 7, 8, 9], "opening: at most 8 moves (the game must be left to play), got 9"),
        (["5"], "opening.0: Input should be a valid integer"),
        ([True], "opening.0: Input should be a valid integer"),
        ([5.0], "opening.0: Input should be a valid integer"),
        (5, "opening: Input should be a valid list"),
    ],
)
def test_an_illegal_opening_is_refused_with_a_message_naming_the_problem(opening: Any, message: str) -> None:
    net = Net()
    ann = net.join("ann")
    rb = net.join("rb", role="bot")
    for request in (
        {"type": "challenge", "opponent": "minimax", "side": "X"},
        {"type": "challenge", "opponent": "rb"},
        {"type": "arrange", "x": "minimax", "o": "random"},
    ):
        net.take(ann)
        net.send(ann, **request, opening=opening, id=9)
        (error,) = net.take(ann)
        assert error["type"] == "error" and error["code"] == "invalid_message" and error["id"] == 9
        assert message in error["message"], error["message"]
    assert net.arena.games == {} and net.arena.offers == {} and net.stored == []
    assert not any(f["type"] == "challenge" for f in net.inbox[rb])


def test_an_empty_opening_is_no_opening() -> None:
    net = Net()
    ann = net.join("ann")
    for opening in ([], None):
        net.send(ann, type="challenge", opponent="minimax", side="X", opening=opening)
        sent, start = net.last(ann, "challenge_sent"), net.last(ann, "game_start")
        assert "opening" not in sent and "opening" not in start
        assert start["board"] == "........." and start["ply"] == 0 and start["turn"] == "X"


def test_a_remote_opponent_sees_the_opening_in_its_offer_and_the_clock_runs_for_the_side_to_move() -> None:
    net = Net()
    ann, rb = net.join("ann"), net.join("rb", role="bot")
    tc = {"base": 60.0, "increment": 1.0}
    net.send(ann, type="challenge", opponent="rb", side="X", opening=[5], time_control=tc)
    offer = net.last(rb, "challenge")
    assert offer["opening"] == [5] and offer["side"] == "O" and offer["time_control"] == tc
    net.advance(2.0)
    net.send(rb, type="accept", challenge_id=offer["challenge_id"], id=3)
    start = net.last(rb, "game_start")
    assert start["id"] == 3 and start["you"] == "O" and start["turn"] == "O" and start["board"] == "....X...."
    assert start["deadline"] == net.now + 60.0 and start["clocks"] == {"X": 60.0, "O": 60.0}
    assert net.last(ann, "game_start")["opening"] == [5]
    net.advance(61.0)  # the bot, to move after the opening, lets its clock run out
    over = net.last(ann, "game_over")
    assert over["result"] == "X" and over["reason"] == "timeout" and over["clocks"]["O"] == 0.0


def test_spectators_and_a_resumed_session_get_the_opening() -> None:
    net = Net()
    ann, bob = net.join("ann"), net.join("bob")
    net.send(ann, type="challenge", opponent="bob", side="O", opening=[2, 8, 4])
    net.send(bob, type="accept", challenge_id=net.last(bob, "challenge")["challenge_id"])
    gid = net.last(bob, "game_start")["game_id"]
    spy = net.join("spy", role="spectator")
    net.send(spy, type="spectate", game_id=gid)
    assert net.last(spy, "game_start")["opening"] == [2, 8, 4]
    assert net.last(spy, "state")["moves"] == opening_moves([2, 8, 4], 1000.0)
    token = net.last(ann, "welcome")["token"]
    net.drop(ann)
    again = net.open()
    net.send(again, type="hello", name="ann", token=token)
    resumed = net.last(again, "game_start")
    assert resumed["opening"] == [2, 8, 4] and resumed["board"] == ".X.X...O." and resumed["turn"] == "O"


def test_the_start_event_shows_the_board_after_the_opening() -> None:
    net = Net()
    ann = net.join("ann")
    net.arena.receive(ann, '{"type": "challenge", "opponent": "random", "side": "X", "opening": [5, 3]}', net.now)
    start = next(e for e in net.arena.drain() if isinstance(e, GameEvent))
    assert start.kind == "start" and start.frame["board"] == "..O.X...." and start.frame["opening"] == [5, 3]


def test_a_rematch_does_not_inherit_the_opening() -> None:
    net = Net()
    ann = net.join("ann")
    net.send(ann, type="challenge", opponent="minimax", side="X", opening=[5, 1])
    first = net.last(ann, "game_start")["game_id"]
    net.send(ann, type="resign", game_id=first)
    net.send(ann, type="challenge", opponent="minimax", side="O", rematch_of=first)
    start = net.last(ann, "game_start")
    assert start["rematch_of"] == first and "opening" not in start and start["ply"] == 0
    net.send(ann, type="resign", game_id=start["game_id"])
    net.send(ann, type="challenge", opponent="minimax", side="O", rematch_of=first, opening=[5, 1])
    start = net.last(ann, "game_start")
    assert start["rematch_of"] == first and start["opening"] == [5, 1] and start["board"] == "O...X...."


# --------------------------------------------------------------------------- seeds
def test_a_seeded_game_from_an_opening_repeats_whatever_the_server_seed() -> None:
    def arranged(server_seed: int, opening: list[int], games: int = 3) -> list[list[int]]:
        net = Net(seed=server_seed)
        org = net.join("org")
        for _ in range(games):
            net.send(org, type="arrange", x="random", o="random", seed=42, opening=opening)
        return [[m["cell"] for m in r["moves"]] for r in net.ended]

    games = arranged(1, [5, 1])
    assert len({tuple(g) for g in games}) == 1 and games[0][:2] == [5, 1]
    assert arranged(2, [5, 1]) == games
    # the house bots start from a fresh Random(seed) at the opening: their moves depend on
    # the seed and the board only, so other openings give other games
    assert len({tuple(arranged(1, o, 1)[0]) for o in ([5, 1], [1, 5], [9], [])}) > 1


def test_a_seeded_challenge_from_an_opening_draws_the_seats_from_the_seed() -> None:
    def play(server_seed: int) -> tuple[str, list[int]]:
        net = Net(seed=server_seed)
        ann = net.join("ann")
        net.send(ann, type="challenge", opponent="random", side="random", seed=7, opening=[9, 5, 1])
        start = net.last(ann, "game_start")
        while start["game_id"] in net.arena.games:
            game = net.arena.games[start["game_id"]]
            net.send(ann, type="move", game_id=game.game_id, cell=game.board.legal_cells()[0])
        return start["you"], [m["cell"] for m in net.ended[-1]["moves"]]

    you, cells = play(1)
    assert play(99) == (you, cells) and cells[:3] == [9, 5, 1]


# --------------------------------------------------------------------------- any opening
def reference_problem(cells: list[int]) -> bool:
    """True when ``cells`` cannot open a game: played out move by move on the rules alone."""
    if len(cells) > 8 or len(set(cells)) != len(cells) or not all(1 <= c <= 9 for c in cells):
        return True
    board = Board.empty()
    for cell in cells:
        if board.is_over:
            return True
        board = board.play(cell)
    return board.is_over


openings = st.one_of(
    st.lists(st.integers(0, 10), max_size=10),
    st.permutations(range(1, 10)).flatmap(lambda p: st.integers(0, 9).map(lambda k: list(p[:k]))),
)


@settings(max_examples=150, deadline=None)
@given(opening=openings, side=st.sampled_from(["X", "O"]))
def test_any_opening_starts_its_game_or_is_refused(opening: list[int], side: str) -> None:
    """An opening the rules allow starts the game on the board it leads to, recorded move by
    move as given, with the side to move after it to move (a house bot has answered already);
    any other is refused with invalid_message and starts nothing."""
    net = Net()
    ann = net.join("ann", protocol=2)
    net.take(ann)
    net.send(ann, type="challenge", opponent="minimax", side=side, opening=opening, id=1)
    frames = net.take(ann)
    if reference_problem(opening):
        assert [(f["type"], f.get("code")) for f in frames] == [("error", "invalid_message")]
        assert frames[0]["message"].startswith("opening")
        assert net.arena.games == {} and net.stored == []
        return
    board = Board.from_moves(opening)
    start = next(f for f in frames if f["type"] == "game_start")
    assert start["board"] == board.code and start["turn"] == board.turn.value and start["ply"] == len(opening)
    assert start.get("opening", []) == opening
    record = net.stored[-1]
    assert record["moves"][: len(opening)] == opening_moves(opening, 1000.0)
    assert all("opening" not in m for m in record["moves"][len(opening) :])
    game = net.arena.games.get(start["game_id"]) or net.arena.finished[start["game_id"]]
    if game.live:  # minimax answered whatever it had to: ann is to move
        assert game.turn is Seat(side) and game.deadline == net.now + 10.0
