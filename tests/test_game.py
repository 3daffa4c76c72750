"""Property-based tests of the rules (server/game.py): parsing and formatting round trips,
immutability, turn alternation, winner detection against an independent oracle, the error
code of every kind of illegal move, and the count of reachable positions."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.game import (
    Board,
    GameError,
    IllegalMoveError,
    InvalidBoardError,
    Move,
    Result,
    Seat,
    reachable_positions,
)

# The eight lines written out by hand (1-based), independent of game.LINES.
ORACLE_LINES = [
    {1, 2, 3},
    {4, 5, 6},
    {7, 8, 9},
    {1, 4, 7},
    {2, 5, 8},
    {3, 6, 9},
    {1, 5, 9},
    {3, 5, 7},
]


def oracle_winner(cells_by_seat: dict[str, set[int]]) -> str | None:
    for seat, cells in cells_by_seat.items():
        if any(line <= cells for line in ORACLE_LINES):
            return seat
    return None


@st.composite
def games(draw: st.DrawFn) -> list[int]:
    """A legal move sequence from the empty board: a random order of the cells, cut when
    the game ends or at a random length."""
    order = draw(st.permutations(list(range(1, 10))))
    limit = draw(st.integers(min_value=0, max_value=9))
    board, played = Board.empty(), []
    for cell in order[:limit]:
        if board.is_over:
            break
        board = board.play(cell)
        played.append(cell)
    return played


boards = games().map(Board.from_moves)


# --------------------------------------------------------------------------- round trips
@given(boards)
def test_code_and_text_round_trip(board: Board) -> None:
    assert Board.parse(board.code) == board
    assert Board(board.code) == board
    assert Board.parse(str(board)) == board
    assert Board.parse(board.code.lower()) == board
    # the pretty form is three rows of three pieces
    rows = str(board).splitlines()
    assert [r.replace(" ", "") for r in rows] == [board.code[i : i + 3] for i in (0, 3, 6)]


@given(boards)
def test_grid_shows_numbers_of_empty_cells(board: Board) -> None:
    grid = board.grid(numbered=True)
    for cell in range(1, 10):
        piece = board[cell]
        shown = piece.value if piece else str(cell)
        assert f" {shown}" in grid
    assert grid.count("---+---+---") == 2


@given(st.sampled_from(list(Seat)), st.integers(min_value=1, max_value=9))
def test_move_round_trip(seat: Seat, cell: int) -> None:
    move = Move(seat, cell)
    assert str(move) == f"{seat.value}{cell}"
    assert Move.parse(str(move)) == move
    assert Move.parse(f" {seat.value.lower()}{cell} ") == move


@pytest.mark.parametrize("text", ["", "X", "X10", "Z5", "5X", "XX"])
def test_move_parse_rejects_bad_text(text: str) -> None:
    with pytest.raises(ValueError):
        Move.parse(text)


def test_seat_parse_and_other() -> None:
    assert Seat.parse("x") is Seat.X and Seat.parse("O") is Seat.O
    assert Seat.X.other is Seat.O and Seat.O.other is Seat.X
    with pytest.raises(ValueError, match="not a seat"):
        Seat.parse("draw")


# --------------------------------------------------------------------------- immutability
@given(games())
def test_play_never_changes_the_board_it_is_called_on(moves: list[int]) -> None:
    board = Board.empty()
    for cell in moves:
        before = board.code
        after = board.play(cell)
        assert board.code == before
        assert after is not board and after.code != before
        board = after


def test_board_and_move_are_frozen() -> None:
    board = Board.empty()
    with pytest.raises(dataclasses.FrozenInstanceError):
        board.code = "X........"  # type: ignore[misc]
    move = Move(Seat.X, 5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        move.cell = 4  # type: ignore[misc]
    assert hash(Board.from_moves([5, 1])) == hash(Board("O...X...."))


# --------------------------------------------------------------------------- turns
@given(games())
def test_turns_alternate_starting_with_x(moves: list[int]) -> None:
    board = Board.empty()
    assert board.turn is Seat.X and board.ply == 0
    for i, cell in enumerate(moves):
        mover = board.turn
        assert mover is (Seat.X if i % 2 == 0 else Seat.O)
        board = board.play(cell)
        assert board[cell] is mover
        assert board.ply == i + 1
        if not board.is_over:
            assert board.turn is mover.other


@given(games())
def test_legal_cells_are_exactly_the_empty_cells_while_the_game_goes_on(moves: list[int]) -> None:
    board = Board.from_moves(moves)
    empty = tuple(c for c in range(1, 10) if board[c] is None)
    assert board.empty_cells() == empty
    assert board.legal_cells() == (() if board.is_over else empty)
    assert [c for c, _ in board.children()] == list(board.legal_cells())


# --------------------------------------------------------------------------- winner
@given(games())
def test_winner_matches_an_independent_oracle(moves: list[int]) -> None:
    board = Board.from_moves(moves)
    cells = {"X": set(moves[0::2]), "O": set(moves[1::2])}
    expected = oracle_winner(cells)
    assert (board.winner.value if board.winner else None) == expected
    full = len(moves) == 9
    assert board.is_over == (expected is not None or full)
    if expected is not None:
        assert board.result is Result(expected)
        line = board.winning_line()
        assert line is not None and set(line) in ORACLE_LINES and set(line) <= cells[expected]
        # the game ended on the winner's last move
        assert moves[-1] in line
    elif full:
        assert board.result is Result.DRAW and board.winning_line() is None
    else:
        assert board.result is None and board.winning_line() is None


@pytest.mark.parametrize("line", sorted(sorted(l) for l in ORACLE_LINES))
@pytest.mark.parametrize("seat", [Seat.X, Seat.O])
def test_every_line_wins_for_either_seat(line: list[int], seat: Seat) -> None:
    others = [c for c in range(1, 10) if c not in line]
    # The loser's pieces go on cells that cannot form a line of their own with each other.
    for loser_cells in _pairs_without_line(others, 3 if seat is Seat.O else 2):
        code = ["."] * 9
        for c in line:
            code[c - 1] = seat.value
        for c in loser_cells:
            code[c - 1] = seat.other.value
        board = Board("".join(code))
        assert board.winner is seat and board.is_over and board.legal_cells() == ()
        assert board.result is Result.win_for(seat)
        assert set(board.winning_line() or ()) == set(line)
        return
    pytest.fail("no placement found")


def _pairs_without_line(cells: list[int], k: int):
    from itertools import combinations

    for combo in combinations(cells, k):
        if not any(l <= set(combo) for l in ORACLE_LINES):
            yield combo


# --------------------------------------------------------------------------- illegal moves
@given(
    games(),
    st.one_of(
        st.integers().filter(lambda c: not 1 <= c <= 9),
        st.floats(allow_nan=True),
        st.text(max_size=3),
        st.booleans(),
        st.none(),
    ),
)
def test_out_of_range_cells_raise_out_of_range(moves: list[int], cell: object) -> None:
    board = Board.from_moves(moves)
    with pytest.raises(IllegalMoveError) as info:
        board.play(cell)  # type: ignore[arg-type]
    assert info.value.code == "out_of_range"
    assert info.value.cell is cell  # the bad value itself (NaN included) travels in the error
    assert isinstance(info.value, GameError)
    with pytest.raises(IllegalMoveError):
        Move(Seat.X, cell)  # type: ignore[arg-type]


@given(games().filter(lambda m: len(m) > 0), st.data())
def test_occupied_cells_raise_occupied(moves: list[int], data: st.DataObject) -> None:
    board = Board.from_moves(moves)
    if board.is_over:
        return
    cell = data.draw(st.sampled_from(moves))
    with pytest.raises(IllegalMoveError, match=f"cell {cell} is already taken") as info:
        board.play(cell)
    assert info.value.code == "occupied"


@given(games(), st.integers(min_value=1, max_value=9))
def test_any_move_on_a_finished_board_raises_game_over(moves: list[int], cell: int) -> None:
    board = Board.from_moves(moves)
    if not board.is_over:
        return
    with pytest.raises(IllegalMoveError) as info:
        board.play(cell)
    assert info.value.code == "game_over"


def test_finished_game_examples() -> None:
    won = Board.from_moves([1, 4, 2, 5, 3])  # X takes the top row
    assert won.winner is Seat.X and won.code == "XXXOO...."
    for cell in (6, 1):
        with pytest.raises(IllegalMoveError) as info:
            won.play(cell)
        assert info.value.code == "game_over"


@pytest.mark.parametrize(
    "code, why",
    [
        ("", "nine characters"),
        ("X" * 10, "nine characters"),
        ("XO.XO.XOZ", "nine characters"),
        ("OO.......", "impossible piece counts"),
        ("XXX......", "impossible piece counts"),
        ("XXXOOO...", "both sides"),
        ("XXXOO.O..", "play continued after a win"),
        ("OOOXX.X.X", "play continued after a win"),
    ],
)
def test_impossible_boards_are_rejected(code: str, why: str) -> None:
    with pytest.raises(InvalidBoardError, match=why) as info:
        Board(code)
    assert info.value.code == "invalid_board"


@given(st.text(alphabet="XO.", min_size=9, max_size=9))
def test_every_valid_code_is_reachable(code: str) -> None:
    """A code the constructor accepts is a position legal play can reach, and vice versa."""
    reachable = _reachable_codes()
    try:
        Board(code)
    except InvalidBoardError:
        assert code not in reachable
    else:
        assert code in reachable


# --------------------------------------------------------------------------- counts
_REACHABLE: set[str] = set()


def _reachable_codes() -> set[str]:
    if not _REACHABLE:
        _REACHABLE.update(b.code for b in reachable_positions())
    return _REACHABLE


def test_5478_reachable_positions() -> None:
    positions = reachable_positions()
    assert len(positions) == 5478
    assert len({p.code for p in positions}) == 5478
    terminal = Counter(str(p.result) for p in positions if p.is_over)
    # the well-known counts of finished games' final positions
    assert terminal == {"X": 626, "O": 316, "draw": 16}
    assert Counter(p.ply for p in positions) == {
        0: 1,
        1: 9,
        2: 72,
        3: 252,
        4: 756,
        5: 1260,
        6: 1520,
        7: 1140,
        8: 390,
        9: 78,
    }


@settings(max_examples=50)
@given(st.text(alphabet="XO.", min_size=9, max_size=9).filter(lambda c: c in _reachable_codes()))
def test_parse_accepts_grids_with_digits_and_separators(code: str) -> None:
    board = Board(code)
    spaced = " | ".join(c if c != "." else "-" for c in code)
    assert Board.parse(spaced) == board
    numbered = "".join(c if c != "." else str(i + 1) for i, c in enumerate(code))
    assert Board.parse(numbered) == board
