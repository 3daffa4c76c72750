"""The app's small modal screens: replay by id, a line of text, a challenge to answer, a bot game to
set up, and the feature panel's legend."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static
from textual.widgets.select import NoSelection


class TextPrompt(ModalScreen[str | None]):
    """Asks for one line of text (a player's name for a filter)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, placeholder: str = "") -> None:
        super().__init__()
        self.question, self.placeholder = question, placeholder

    def compose(self) -> ComposeResult:
        with Vertical(id="prompt"):
            yield Label(self.question)
            yield Input(placeholder=self.placeholder, id="text")

    @on(Input.Submitted)
    def submit(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)


class GameIdPrompt(ModalScreen[str | None]):
    """Asks for the id of a finished game to replay."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(id="prompt"):
            yield Label("Replay which game? (its id, from the server's records)")
            yield Input(placeholder="game id", id="game-id")

    @on(Input.Submitted)
    def submit(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


_LEGEND = """[b]The feature panel[/b]  (an LLM move's trace; hover the panel for every label in full)

[b]Features · furthest from usual[/b]: the SAE features at the model's answer position, the ones
furthest from their usual level first. [b]act[/b] is the activation here; [b]Δ[/b] is (act − usual) ÷
the feature's typical activation: +1 means one typical activation above its usual level, −1 that
a usually active feature is silent. [dim]Dimmed rows[/dim] are always-on features (they fire on ≥ 95 % of
game prompts, so their presence says little). [b]pushes →5,1[/b]: steering the feature up raised the
probability of those cells most (measured when it was labelled).

Labels read "fires when …" with [b]P[/b] (precision: when the feature fires, how often the board
concept holds), [b]R[/b] (recall: of the positions with the concept, how many it fires on) and
[b]MCC[/b] (Matthews correlation, −1 to 1: 0 is no relation, 1 a perfect detector).
"no clear board concept" (in rows: "unclear") means no concept reached the labelling threshold;
"model picks N" reads "fires when the unsteered model would pick cell N".

[b]Steering[/b]: the coefficient the policy added along each steered feature: [green]▲[/green] pushes it up,
[red]▼[/red] pushes it down. mean|c| is the mean absolute coefficient, ‖Δ‖/‖h‖ the added vector's norm
relative to the residual stream's, [b]KL[/b] the divergence of the steered move distribution from the
unsteered one (0: steering changed nothing).

[b]Cell probabilities[/b]: the model's probability for each cell; [dim]grey cells[/dim] are taken (their
mark is shown), ▶ marks the cell the model chose (red: an illegal move, which forfeits).

[b]Moves[/b]: * a move with a trace; ✖ an illegal move; ?? a move that loses, ? one that lets a win go,
! the only move that keeps the result (the solved game's judgement, v).    Esc or ? closes this."""
#: the legend's paragraphs, each one line so that the terminal wraps it at any width
LEGEND = "\n\n".join(" ".join(p.split("\n")) for p in _LEGEND.split("\n\n"))


#: how fast a watched bot game is shown (seconds a move)
PACES: tuple[float, ...] = (0.5, 1.0, 2.0, 0.0)


class BotGamePrompt(ModalScreen["tuple[str, str, float] | None"]):
    """Pick two bots and a pace to watch them play (the lobby's ``b``). ``last`` is the
    choice made the time before (x, o, pace), offered again; a remote bot (one not in
    ``house``) cannot play itself, so that pair is refused here, before it is sent."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self, bots: list[str], house: list[str] | None = None, last: "tuple[str, str, float] | None" = None
    ) -> None:
        super().__init__()
        self.bots = bots
        self.house = set(house if house is not None else ("minimax", "random"))
        self.last = last

    def compose(self) -> ComposeResult:
        remote = [b for b in self.bots if b not in self.house]
        x_default = remote[0] if remote else self.bots[0]
        o_default = "minimax" if "minimax" in self.bots else self.bots[-1]
        pace = 1.0
        if self.last is not None:
            x_default = self.last[0] if self.last[0] in self.bots else x_default
            o_default = self.last[1] if self.last[1] in self.bots else o_default
            pace = self.last[2] if self.last[2] in PACES else pace
        options = [(b, b) for b in self.bots]
        with Vertical(id="prompt"):
            yield Label("Watch two bots play. X:")
            yield Select(options, value=x_default, allow_blank=False, id="bot-x")
            yield Label("O:")
            yield Select(options, value=o_default, allow_blank=False, id="bot-o")
            yield Label("Shown at:")
            yield Select(
                [(f"{p:g} s a move" if p else "full speed", p) for p in PACES], value=pace, allow_blank=False, id="pace"
            )
            yield Label("", id="bot-game-problem")
            with Horizontal(id="prompt-buttons"):
                yield Button("Start (Enter)", id="start", variant="success")
                yield Button("Cancel (Esc)", id="cancel", variant="error")

    def on_mount(self) -> None:
        self.query_one("#start", Button).focus()

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        if event.button.id != "start":
            self.dismiss(None)
            return
        x = str(self.query_one("#bot-x", Select).value)
        o = str(self.query_one("#bot-o", Select).value)
        if x == o and x not in self.house:
            self.query_one("#bot-game-problem", Label).update(
                f"[b $error]{x} is a remote bot: it cannot play itself. Pick another bot for one side.[/]"
            )
            return
        pace = self.query_one("#pace", Select).value
        assert not isinstance(pace, NoSelection)  # allow_blank=False: a pace is always chosen
        self.dismiss((x, o, float(pace)))

    def action_cancel(self) -> None:
        self.dismiss(None)


class LegendScreen(ModalScreen[None]):
    """What the feature panel's columns and marks mean (the game screen's ``?``)."""

    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="legend"):  # ↑/↓ scroll it in a small terminal
            yield Static(LEGEND, id="legend-text")


class ChallengePrompt(ModalScreen[bool]):
    """Someone challenges the person at the keyboard (or offers a rematch): accept or decline.
    It says the clock the game would be played with."""

    BINDINGS = [Binding("y", "answer(True)", "Accept"), Binding("n,escape", "answer(False)", "Decline")]

    def __init__(self, challenger: str, side: str, clock: str = "", *, rematch: bool = False) -> None:
        super().__init__()
        self.challenger, self.side, self.clock, self.rematch = challenger, side, clock, rematch

    def compose(self) -> ComposeResult:
        with Vertical(id="prompt"):
            if self.rematch:
                yield Label(
                    f"[b]{self.challenger}[/b] offers a rematch (sides swapped, same time control"
                    f"{': ' + self.clock if self.clock else ''}): you would play [b]{self.side}[/b]. y / n"
                )
            else:
                clock = f" at [b]{self.clock}[/b]" if self.clock else ""
                yield Label(f"[b]{self.challenger}[/b] challenges you{clock}; you would play [b]{self.side}[/b].")
            with Horizontal(id="prompt-buttons"):
                yield Button("Accept (y)", id="accept", variant="success")
                yield Button("Decline (n)", id="decline", variant="error")

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "accept")

    def action_answer(self, accept: bool) -> None:
        self.dismiss(accept)


class QuitPrompt(ModalScreen[bool]):
    """Quitting during a live game: asked first, with what it costs."""

    BINDINGS = [Binding("y", "answer(True)", "Quit"), Binding("n,escape", "answer(False)", "Stay")]

    def __init__(self, opponents: list[str]) -> None:
        super().__init__()
        self.opponents = opponents

    def compose(self) -> ComposeResult:
        games = (
            f"your game against [b]{self.opponents[0]}[/b]"
            if len(self.opponents) == 1
            else f"your {len(self.opponents)} games (against {', '.join(self.opponents)})"
        )
        with Vertical(id="prompt"):
            yield Label(
                f"Quit now? It resigns {games}: you lose {'it' if len(self.opponents) == 1 else 'them'}.",
                id="quit-question",
            )
            with Horizontal(id="prompt-buttons"):
                yield Button("Quit and resign (y)", id="quit", variant="error")
                yield Button("Keep playing (n)", id="stay", variant="success")

    def on_mount(self) -> None:
        self.query_one("#stay", Button).focus()

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "quit")

    def action_answer(self, quit_: bool) -> None:
        self.dismiss(quit_)
