"""The 3×3 board: nine clickable cells showing marks, the last move and the winning line."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid
from textual.message import Message
from textual.widget import Widget

from server.game import Board


class CellChosen(Message):
    """A person clicked a cell of the board."""

    def __init__(self, cell: int) -> None:
        super().__init__()
        self.cell = cell


# Three-line marks so the board reads at a glance even in a small terminal.
GLYPHS = {
    "X": ("\\ /", " X ", "/ \\"),
    "O": ("╭─╮", "│ │", "╰─╯"),
}


# Five-line marks for the bigger cells of a roomy terminal.
LARGE_GLYPHS = {
    "X": ("\\   /", " \\ / ", "  X  ", " / \\ ", "/   \\"),
    "O": ("╭───╮", "│   │", "│   │", "│   │", "╰───╯"),
}


class BoardCell(Widget):
    """One cell: its number in the corner while empty, the mark in the middle once taken."""

    def __init__(self, cell: int) -> None:
        super().__init__(id=f"cell-{cell}", classes="cell")
        self.cell = cell
        self.mark = ""

    def set_mark(
        self, mark: str, *, last: bool, winning: bool, playable: bool, illegal: bool = False, premove: bool = False
    ) -> None:
        self.mark = mark
        self.set_class(last, "last-move")
        self.set_class(illegal, "illegal")
        self.set_class(premove, "premove")
        self.set_class(winning, "winning")
        self.set_class(mark == "X", "mark-x")
        self.set_class(mark == "O", "mark-o")
        self.set_class(playable and not mark, "playable")
        self.refresh()

    def render(self) -> Text:
        width = self.content_size.width or 7
        height = self.content_size.height or 3
        glyph = (
            LARGE_GLYPHS.get(self.mark)
            if height >= 5 and width >= 9
            else GLYPHS.get(self.mark)
            if height >= 3 and width >= 5
            else None
        )
        rows = [""] * height
        if glyph:
            top = (height - len(glyph)) // 2
            for i, line in enumerate(glyph):
                rows[top + i] = line.center(width)
        elif self.mark:
            rows[height // 2] = self.mark.center(width)
        if not self.mark:
            rows[0] = str(self.cell)
        text = Text("\n".join(rows), no_wrap=True)
        text.stylize("bold" if self.mark else "dim")
        return text

    def on_click(self) -> None:
        self.post_message(CellChosen(self.cell))


class BoardGrid(Grid):
    """Nine :class:`BoardCell` widgets in a grid (the lines are the grid's background)."""

    def compose(self) -> ComposeResult:
        for cell in range(1, 10):
            yield BoardCell(cell)

    def show(
        self,
        board: Board,
        last_cell: int | None = None,
        playable: bool = False,
        illegal_cell: int | None = None,
        premove: int | None = None,
    ) -> None:
        """Draw ``board``; ``illegal_cell`` is a refused move that lost the game (marked red)."""
        line = board.winning_line() or ()
        for cell_widget in self.query(BoardCell):
            seat = board[cell_widget.cell]
            cell_widget.set_mark(
                seat.value if seat else "",
                last=cell_widget.cell == last_cell,
                winning=cell_widget.cell in line,
                playable=playable,
                illegal=cell_widget.cell == illegal_cell,
                premove=cell_widget.cell == premove,
            )

    @property
    def marks(self) -> str:
        """The board as shown, as a board code (``X...O....``)."""
        return "".join(c.mark or "." for c in self.query(BoardCell))
