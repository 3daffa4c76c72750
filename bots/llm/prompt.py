"""Game prompts for the LLM player, and the cell numbering it is told about.

The prompt is a chat: a short system line, a user turn that shows the board with empty
cells numbered 1-9, says which side the model plays, and asks for one number; and the
start of the assistant's reply (``"I take cell "``) so that the very next token is the
move. The digits 1-9 are single tokens, so one forward pass gives the model's
distribution over the nine cells.

Several *phrasings* of the same position exist so that an SAE trained on them learns
board concepts rather than one template's token positions: ``grid`` (a numbered grid; play
uses it), ``rows`` (each row's cells named), ``list`` (each side's cells listed) are the
SAE's corpus; ``moves`` (a move list that reaches the position) and ``string`` (the board
as nine characters, ``-`` for an empty cell) are in no corpus, wordings for training and
held-out checks of steering policies.
"""

from __future__ import annotations

from typing import Any

from server.game import EMPTY, Board, Seat, opening_of

SYSTEM = "You are an expert Tic Tac Toe player."
ANSWER_PREFIX = "I take cell "
NUMBERING = " 1 | 2 | 3\n---+---+---\n 4 | 5 | 6\n---+---+---\n 7 | 8 | 9"


def _grid(board: Board) -> str:
    return board.grid(numbered=True)


def _rows(board: Board) -> str:
    names = ("Top row", "Middle row", "Bottom row")
    out = []
    for r in range(3):
        cells = []
        for c in range(3):
            cell = r * 3 + c + 1
            piece = board[cell]
            cells.append(f"{cell}={piece.value if piece else 'empty'}")
        out.append(f"{names[r]}: " + ", ".join(cells))
    return "\n".join(out)


def _lists(board: Board) -> str:
    xs = [str(c) for c in range(1, 10) if board[c] is Seat.X] or ["none"]
    os_ = [str(c) for c in range(1, 10) if board[c] is Seat.O] or ["none"]
    free = [str(c) for c in board.empty_cells()] or ["none"]
    return f"X has cells {', '.join(xs)}. O has cells {', '.join(os_)}. Empty cells: {', '.join(free)}."


def _string(board: Board) -> str:
    return board.code.replace(EMPTY, "-")


def _moves(board: Board) -> str:
    order = opening_of(board)
    if not order:
        return "No moves yet."
    seats = ("X", "O")
    return "Moves so far: " + ", ".join(f"{seats[i % 2]} {cell}" for i, cell in enumerate(order)) + "."


def _user_text(board: Board, phrasing: str) -> str:
    me = board.turn
    if phrasing == "grid":
        return (
            f"We are playing Tic Tac Toe. You play {me.value}, your opponent plays {me.other.value}. "
            f"Get three in a row to win.\n\nThe board (empty cells show their number):\n{_grid(board)}\n\n"
            f"It is your turn as {me.value}. Which empty cell do you take? Answer with one number."
        )
    if phrasing == "rows":
        return (
            f"Tic Tac Toe, cells numbered 1 to 9 left to right, top to bottom:\n{NUMBERING}\n\n"
            f"Current position:\n{_rows(board)}\n\nYou are {me.value}. Pick the best empty cell."
        )
    if phrasing == "list":
        return (
            f"Let's play noughts and crosses on a 3x3 grid numbered 1-9 (1 top left, 9 bottom right). "
            f"{_lists(board)} You are {me.value} and it is your move. Reply with the number of your cell."
        )
    if phrasing == "moves":
        return (
            f"Tic Tac Toe, squares 1-9 in reading order (1 top left, 5 centre, 9 bottom right). "
            f"{_moves(board)} It is {me.value}'s turn and you play {me.value}. "
            f"Which square do you play? Give its number."
        )
    if phrasing == "string":
        return (
            f"Tic Tac Toe board as nine characters, cells 1 to 9 in reading order (X, O, or - for an "
            f"empty cell): {_string(board)}\nYou play {me.value} and it is your move. Name an empty cell by its number."
        )
    raise ValueError(f"unknown phrasing {phrasing!r}; expected one of {', '.join(PHRASINGS)}")


PHRASINGS: tuple[str, ...] = ("grid", "rows", "list", "moves", "string")
DEFAULT_PHRASING = "grid"


def chat_messages(board: Board, phrasing: str = DEFAULT_PHRASING) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": _user_text(board, phrasing)}]


def render_prompt(tokenizer: Any, board: Board, phrasing: str = DEFAULT_PHRASING) -> str:
    """The full prompt text, ending just before the move's digit."""
    if board.is_over:
        raise ValueError(f"no move to ask for: the game on {board.code!r} is over")
    text = tokenizer.apply_chat_template(chat_messages(board, phrasing), tokenize=False, add_generation_prompt=True)
    return text + ANSWER_PREFIX
