"""The game prompts (bots/llm/prompt.py): every phrasing states the position it is given,
the side to move and the numbering, and ends just before the move's digit."""

from __future__ import annotations

import re

import pytest

from bots.llm.prompt import ANSWER_PREFIX, PHRASINGS, chat_messages, render_prompt
from server.game import Board, Seat, reachable_positions

OPEN = [b for b in reachable_positions() if not b.is_over]


def test_every_phrasing_names_the_side_to_move() -> None:
    for phrasing in PHRASINGS:
        for board in OPEN[::37]:
            text = chat_messages(board, phrasing)[1]["content"]
            assert (
                f"You play {board.turn.value}" in text
                or f"You are {board.turn.value}" in text
                or f"you play {board.turn.value}" in text
            )


def test_the_moves_phrasing_lists_moves_that_reach_the_position() -> None:
    for board in OPEN:
        text = chat_messages(board, "moves")[1]["content"]
        moves = re.findall(r"\b([XO]) ([1-9])\b", text)
        replay = Board.empty()
        for seat, cell in moves:
            assert Seat(seat) is replay.turn
            replay = replay.play(int(cell))
        assert replay == board
        assert ("No moves yet." in text) == (board.ply == 0)


def test_the_string_phrasing_spells_the_board_cell_by_cell() -> None:
    for board in OPEN[::11]:
        text = chat_messages(board, "string")[1]["content"]
        (spelled,) = re.findall(r": ([XO-]{9})\n", text)
        assert spelled == "".join(board[c].value if board[c] else "-" for c in range(1, 10))


def test_a_prompt_ends_with_the_answer_prefix_and_refuses_finished_games(lm) -> None:
    for phrasing in PHRASINGS:
        assert render_prompt(lm.tokenizer, Board.from_moves([5, 1]), phrasing).endswith(ANSWER_PREFIX)
    with pytest.raises(ValueError, match="over"):
        render_prompt(lm.tokenizer, Board.from_moves([1, 4, 2, 5, 3]), "moves")
    with pytest.raises(ValueError, match="unknown phrasing"):
        chat_messages(Board.empty(), "haiku")
