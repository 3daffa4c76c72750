"""The game screen: board, clocks, status, move list with the solved game's marks, and the feature
panel. Live, watched (at a pace, for bot games) or replayed."""

from __future__ import annotations

import time

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Header, Static

from server.game import Seat
from tui_client.board_widget import BoardGrid, CellChosen
from tui_client.feature_panel import FeaturePanel
from tui_client.game_view import REASONS, GameView
from tui_client.move_values import ending_value, value_bar
from tui_client.prompts import LegendScreen
from tui_client.screen_base import ConnectionBar, OfArenaApp

#: how the move list shows the solved game's judgement of a move
MARK_STYLES = {"??": "b $error", "?": "b $warning", "!": "b $success"}
MARK_MEANINGS = {"??": "?? loses", "?": "? lets a win go", "!": "! only move"}


class GameScreen(OfArenaApp, Screen):
    """A game: board, status, move list and the feature panel. Live, watched or replayed.

    ``view_ply`` is the number of moves on show; ``None`` follows the game as it goes.
    """

    BINDINGS = [
        Binding("1", "play(1)", "Play", key_display="1-9"),
        *[Binding(str(c), f"play({c})", f"Play {c}", show=False) for c in range(2, 10)],
        Binding("left", "step(-1)", "Step", key_display="←/→"),
        Binding("right", "step(1)", "Step", show=False),
        Binding("home", "step_to(0)", "Start", show=False),
        Binding("end", "step_to(-1)", "End", show=False),
        Binding("r", "rematch", "Rematch"),
        Binding("R", "resign", "Resign"),
        Binding("v", "toggle_values", "Values"),
        Binding("question_mark", "legend", "Legend", key_display="?"),
        Binding("escape", "leave", "Lobby"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self, game_id: str) -> None:
        super().__init__()
        self.game_id = game_id
        self.view_ply: int | None = None
        self._leave_armed = False
        self._resign_armed = False
        self._asking = False  # the message line asks to confirm resigning or leaving
        self._pending_notice = False  # the message says a move is on its way
        self.premove: int | None = None  # a cell chosen during the opponent's turn
        self._pacer: Timer | None = None  # reveals a watched bot game's moves at its pace
        self.show_values = False  # live play: values on request (v)

    @property
    def view(self) -> GameView:
        return self.arena.games[self.game_id]

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield ConnectionBar(id="connection")
        with Horizontal(id="game-body"):
            with Vertical(id="board-pane"):
                yield Static("", id="players")
                yield BoardGrid(id="board")
                yield Static("", id="status")
                yield Static("", id="message")
                yield Static("", id="value")
                yield Static("", id="moves")
            yield FeaturePanel(id="features")
            yield Static("", id="record")  # the move list, one move pair a line, in games without traces
        yield Footer()

    def on_mount(self) -> None:
        self.on_resize()
        pace = self.arena.paces.get(self.game_id, 0.0)
        if pace > 0:  # a bot game we asked to watch at a human pace: reveal its moves one by one
            self.view_ply = 0
            self._pacer = self.set_interval(pace, self._reveal_next)
        self.refresh_game()
        self.set_interval(1.0, self._tick)

    def _reveal_next(self) -> None:
        """One more move of a paced bot game; when all are shown and it is over, stop."""
        n = len(self.view.moves)
        if self.view_ply is None:
            return
        if self.view_ply < n:
            self.view_ply += 1
            self.refresh_game()
        elif self.view.over:
            self._stop_pacing()
            self.refresh_game()

    def _stop_pacing(self) -> None:
        if self._pacer is not None:
            self._pacer.stop()
            self._pacer = None
        if self.view_ply is not None and self.view_ply >= len(self.view.moves):
            self.view_ply = None

    def on_resize(self) -> None:
        # the board grows with the terminal (the side panel takes the rest)
        large = self.size.width >= 160 and self.size.height >= 44
        self.set_class(large, "large")
        self.set_class(not large and self.size.width >= 110 and self.size.height >= 32, "roomy")

    def _tick(self) -> None:
        if (self.view.deadline is not None or self.view.away is not None) and not self.view.over:
            self._update_players()
            self._update_status()

    def _update_players(self) -> None:
        """Both players with their clocks: the side to move counts down, red when time runs low."""
        view = self.view
        now = time.time()
        lines = view.title(markup=True).split("\n")
        for i, seat in enumerate((Seat.X, Seat.O)):
            shown = view.clock_text(seat, now)
            if shown is None:
                continue
            if view.turn is seat and view.deadline is not None and not view.over:
                style = "b $error" if view.low_on_time(seat, now) else "b"
                lines[i] += f"  [{style} reverse] {shown} [/]"
            else:
                lines[i] += f"  [dim]{shown}[/dim]"
        self.query_one("#players", Static).update("\n".join(lines))

    # -- drawing ---------------------------------------------------------------------
    def shown_ply(self) -> int:
        n = len(self.view.moves)
        return n if self.view_ply is None else max(0, min(self.view_ply, n))

    def refresh_game(self) -> None:
        view = self.view
        if view.over and self._asking:  # "Resign?" or "Leave?" is moot once the game is over
            self._asking = self._resign_armed = self._leave_armed = False
            self.show_message("")
        ply = self.shown_ply()
        live = self.view_ply is None or ply == len(view.moves)
        board = view.board if live else view.board_at(ply)
        last = view.moves[ply - 1] if ply else None
        self._update_players()
        self.query_one(BoardGrid).show(
            board,
            last_cell=last.cell if last else None,
            playable=view.my_turn and live,
            illegal_cell=last.cell if last is not None and last.illegal else None,
            premove=self.premove,
        )
        self._update_status()
        if self.premove is not None and view.my_turn and live:
            self._play_premove()
        if self._pending_notice and view.pending_move is None:  # the server has answered
            self._pending_notice = False
            self.show_message("")
        self._update_moves(ply)
        self._update_features(ply)
        self.sub_title = ("replay · " if view.replay else "") + f"game {view.game_id}"
        self.refresh_bindings()

    def _update_status(self) -> None:
        view = self.view
        ply = self.shown_ply()
        text = view.status_line()
        if self._pacer is not None and self.view_ply is not None:
            text = (
                f"Move {ply} of {len(view.moves)} · shown at {self.arena.paces[self.game_id]:g} s a move (←/→ to step)"
            )
        elif view.replay or (self.view_ply is not None and ply < len(view.moves)):
            text = f"Move {ply} of {len(view.moves)} (←/→ to step)" + (f" · {view.result_line()}" if view.over else "")
        elif view.away is not None:
            text = view.away_line(time.time())
        elif (
            view.my_turn
            and view.you is not None
            and view.deadline is not None  # low on time: it has a deadline
            and view.low_on_time(view.you, time.time())
        ):
            left = max(0, int(view.deadline - time.time()))
            text += f"  ({left} s left!)"  # the clocks line counts down; this is the warning
        status = self.query_one("#status", Static)
        status.update(text)
        status.set_class(view.over, "over")
        status.set_class(view.my_turn, "your-turn")
        status.set_class(view.my_turn and view.you is not None and view.low_on_time(view.you, time.time()), "low-time")

    @property
    def values_shown(self) -> bool:
        """Move values: always in replays and finished games, on request (v) while it is live."""
        return self.view.replay or self.view.over or self.show_values

    def _update_moves(self, ply: int) -> None:
        view = self.view
        value_line = self.query_one("#value", Static)
        value_line.display = self.values_shown
        at_end = view.over and ply == len(view.moves)
        if self.values_shown:
            board = view.board_at(ply)
            # at the end of a game lost on time, by resignation, abandonment or forfeit, the bar shows that result
            value, words = ending_value(board, view.result if at_end else None, view.reason if at_end else None)
            colour = "$secondary" if value > 0 else "$warning" if value < 0 else "$text-muted"
            value_line.update(f"[{colour}]{value_bar(value, 6)}[/] {words}")
        self._update_record(ply)
        if not view.moves:
            self.query_one("#moves", Static).update(
                "[dim]No moves yet.[/dim]" + (f" {view.result_line()}" if view.over else "")
            )
            return
        judged = view.move_values() if self.values_shown else [None] * len(view.moves)
        shown = view.moves[:ply] if self._pacer is not None else view.moves  # a paced game: no moves ahead
        parts = []
        for i, (move, judgement) in enumerate(zip(shown, judged)):
            label = str(move)
            if judgement is not None and judgement.mark:
                label += f"[{MARK_STYLES[judgement.mark]}]{judgement.mark}[/]"
            label += "*" if move.trace else ""
            if i % 2 == 0:
                label = f"{i // 2 + 1}. {label}"
            parts.append(f"[reverse]{label}[/reverse]" if i == ply - 1 else label)
        legend = []
        if any(m.trace for m in view.moves):
            legend.append("* trace")
        if self.values_shown:
            marks = {j.mark for j in judged[: len(shown)] if j is not None and j.mark}
            legend += [MARK_MEANINGS[m] for m in ("??", "?", "!") if m in marks]
        tail = f"   [dim]{' · '.join(legend)}[/dim]" if legend else ""
        ending = f" [b]{self._ending()}[/b]" if view.over and self._ending() else ""
        self.query_one("#moves", Static).update("Moves: " + " ".join(parts) + ending + tail)

    def _ending(self) -> str:
        """How the game ended when not on the board: ``O resigned``, ``X ran out of time``, …"""
        view = self.view
        if view.reason in ("resign", "timeout", "disconnect") and view.result in ("X", "O"):
            loser = Seat(view.result).other
            return f"{loser.value} {REASONS[view.reason]}"
        if view.reason == "aborted":
            return "aborted"
        return ""

    def _update_record(self, ply: int) -> None:
        """The side panel of a game without traces: the clock and the moves, a pair a line."""
        view = self.view
        traced = any(m.trace for m in view.moves)
        record = self.query_one("#record", Static)
        self.query_one(FeaturePanel).display = traced
        record.display = not traced
        self.query_one("#moves", Static).display = traced
        if traced:
            return
        record.border_title = "Moves" + (f" · {view.clock_name()}" if view.clock_name() else "")
        judged = view.move_values() if self.values_shown else [None] * len(view.moves)
        shown = view.moves[:ply] if self._pacer is not None else view.moves
        lines = []
        for i in range(0, len(shown), 2):
            cells = []
            for j in (i, i + 1):
                if j >= len(shown):
                    break
                label = str(shown[j])
                judgement = judged[j] if j < len(judged) else None
                mark = judgement.mark if judgement is not None else ""
                if mark:
                    label += f"[{MARK_STYLES[mark]}]{mark}[/]"
                cells.append(f"[reverse]{label}[/reverse]" if j == ply - 1 else label)
            lines.append(f"{i // 2 + 1:>2}. " + "  ".join(cells))
        if not lines:
            lines.append("[dim]No moves yet.[/dim]")
        if view.over:
            lines += ["", f"[b]{view.result_line()}[/b]"]
        if self.values_shown:
            marks = {j.mark for j in judged[: len(shown)] if j is not None and j.mark}
            if marks:
                lines += ["", "[dim]" + " · ".join(MARK_MEANINGS[m] for m in ("??", "?", "!") if m in marks) + "[/dim]"]
        record.update("\n".join(lines))

    def _update_features(self, ply: int) -> None:
        view = self.view
        panel = self.query_one(FeaturePanel)
        live = self.view_ply is None
        # live or stepped, the panel shows the last traced move up to the position on show
        move = view.last_traced_move(ply)
        if move is None or move.trace is None:
            note = "No trace up to this move." if (not live and ply) else ""
            panel.show(None, heading=f"move {ply}" if not live and ply else "", note=note)
            return
        heading = f"move {move.ply} · {view.player(move.seat)} ({move.seat.value}) → {move.cell}"
        if not live and move.ply != ply:
            heading = f"move {ply} has no trace · {heading}"
        panel.show(move.trace, heading=heading, board=view.board_at(move.ply - 1))

    def show_message(self, text: str, error: bool = True) -> None:
        message = self.query_one("#message", Static)
        message.update(text)
        message.set_class(error, "error")

    # -- actions ---------------------------------------------------------------------
    @on(CellChosen)
    def cell_clicked(self, event: CellChosen) -> None:
        self.action_play(event.cell)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Only the keys that work here are offered (and shown in the footer)."""
        view = self.view if self.game_id in self.arena.games else None
        if view is None:
            return True
        playing = view.you is not None and not view.over and not view.replay
        if action in ("play", "resign"):
            return playing
        if action == "rematch":
            return view.over and self.rematch() is not None
        if action == "toggle_values":  # always on in replays and finished games
            return not (view.replay or view.over)
        return True

    def rematch(self) -> tuple[str, str] | None:
        """(opponent, the side to ask for) for a rematch of a finished game this person played,
        sides swapped as in lichess; also from the replay of one of their games. Else ``None``."""
        view = self.view
        me = self.arena.player_name
        seat = view.you or (Seat.X if view.x == me else Seat.O if view.o == me else None)
        if seat is None or view.x == view.o:
            return None
        return view.player(seat.other), seat.other.value

    def action_play(self, cell: int) -> None:
        self._resign_armed = False
        if self.view.replay or self.view.you is None:
            self.show_message(
                "This is a replay: ←/→ step through it."
                if self.view.replay
                else "You are watching this game; spectators cannot move."
            )
            return
        if self.view_ply is not None and self.view_ply < len(self.view.moves):
            self.view_ply = None  # back to the live position first
            self.refresh_game()
        view = self.view
        if (
            not view.over
            and view.turn is not None
            and view.turn is not view.you
            and view.pending_move is None
            and view.board[cell] is None
        ):
            # premove (as on lichess): kept, and played the moment it is our turn if the cell is still free
            self.premove = None if self.premove == cell else cell
            self.show_message(
                f"Premove {cell}: played when it is your turn (press {cell} again to cancel)."
                if self.premove
                else "Premove cancelled.",
                error=False,
            )
            self.refresh_game()
            return
        problem = view.check_move(cell)
        if problem:
            self.show_message(problem)
            self._pending_notice = view.pending_move is not None
            self.app.bell()
            return
        self.show_message("")
        self.premove = None
        self.arena.send_move(self.game_id, cell)

    def _play_premove(self) -> None:
        """Our turn has come: play the premove if its cell is still free, else drop it."""
        view = self.view
        cell, self.premove = self.premove, None
        if cell is None or view.over or not view.my_turn or view.pending_move is not None:
            return
        if view.board[cell] is not None:
            self.show_message(f"Premove {cell} dropped: the cell was taken.", error=False)
            return
        self.show_message("")
        self.arena.send_move(self.game_id, cell)

    def action_toggle_values(self) -> None:
        self.show_values = not self.show_values
        self.refresh_game()

    def action_legend(self) -> None:
        self.app.push_screen(LegendScreen())

    def action_step(self, delta: int) -> None:
        self._stop_pacing()  # the person takes over
        n = len(self.view.moves)
        self.view_ply = max(0, min(self.shown_ply() + delta, n))
        if self.view_ply == n and not self.view.replay:
            self.view_ply = None
        self.refresh_game()

    def action_step_to(self, ply: int) -> None:
        self._stop_pacing()
        self.view_ply = len(self.view.moves) if ply < 0 else ply
        if self.view_ply == len(self.view.moves) and not self.view.replay:
            self.view_ply = None
        self.refresh_game()

    def action_rematch(self) -> None:
        view = self.view
        rematch = self.rematch() if view.over else None
        if rematch is None:
            self.show_message("Rematch is offered when a game you played is over.")
            return
        opponent, side = rematch
        # the same time control, sides swapped; a pending offer is not sent twice (start_challenge says so)
        if view.time_control is not None:
            sent = self.arena.start_challenge(opponent, side, time_control=view.time_control, rematch_of=view.game_id)
        else:
            sent = self.arena.start_challenge(opponent, side, view.clock, rematch_of=view.game_id)
        self.show_message(
            f"Rematch offered to {opponent}, waiting…"
            if sent
            else f"Rematch already offered to {opponent}, waiting for an answer…",
            error=False,
        )

    def action_resign(self) -> None:
        view = self.view
        if view.over or view.you is None:
            self.show_message("Only a player can resign a running game.")
            return
        if not self._resign_armed:  # as Esc does: a second press confirms
            self._resign_armed = self._asking = True
            self.show_message("Resign? Press R again to resign.")
            return
        self._resign_armed = False
        self.arena.send_resign(self.game_id)

    def action_leave(self) -> None:
        view = self.view
        if view.you is not None and not view.over and not self._leave_armed:
            self._leave_armed = self._asking = True
            self.show_message("The game is still on: press Esc again to resign and leave.")
            return
        if view.you is not None and not view.over:
            self.arena.send_resign(self.game_id)
        if view.you is None and not view.over and not view.replay:
            self.arena.stop_watching(self.game_id)
        self.app.pop_screen()
