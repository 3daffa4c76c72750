"""The feature panel: an LLM move's top SAE features, its steering and its cell probabilities.

:func:`feature_panel_text` lays a :class:`~tui_client.trace.MoveTrace` out as Rich text for
a given width and height (pure, tested directly); :class:`FeaturePanel` is the widget that
redraws it whenever its size or trace changes, so the panel stays readable at 80×24 and
shows more features and longer bars when the terminal is bigger.
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from server.game import Board
from tui_client.trace import MoveTrace, short_hook

_EIGHTHS = " ▏▎▍▌▋▊▉█"
UP_STYLE = Style(color="green", bold=True)
DOWN_STYLE = Style(color="red", bold=True)
ZERO_STYLE = Style(dim=True)


def bar(fraction: float, width: int) -> str:
    """A horizontal bar ``width`` cells wide filled to ``fraction`` (eighth-cell precision).

    >>> bar(0.5, 4)
    '██  '
    >>> bar(1.0, 3), bar(0.0, 2)
    ('███', '  ')
    """
    fraction = min(max(fraction, 0.0), 1.0)
    eighths = round(fraction * width * 8)
    full, part = divmod(eighths, 8)
    text = "█" * full + (_EIGHTHS[part] if part and full < width else "")
    return text.ljust(width)


def _fit(text: str, width: int) -> str:
    if width <= 0:
        return ""
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def percent(p: float) -> str:
    """``0.4`` → ``' 40%'``; tiny but non-zero values read ``' <1%'``.

    >>> percent(0.4), percent(0.001), percent(0.0), percent(1.0)
    (' 40%', ' <1%', '  0%', '100%')
    """
    if 0 < p < 0.005:
        return " <1%"
    return f"{round(p * 100):>3d}%"


def _heat(p: float) -> Style:
    """Background from dark (0) to bright green (1) so the likeliest cells stand out."""
    level = min(max(p, 0.0), 1.0) ** 0.5
    r, g, b = int(30 + 10 * level), int(34 + 130 * level), int(40 + 20 * level)
    return Style(bgcolor=f"rgb({r},{g},{b})", color="white" if level < 0.75 else "black")


def steering_summary(trace: MoveTrace) -> str:
    """How hard the policy steered, from the trace's ``strength`` (else Σ|c|).

    >>> from tui_client.trace import parse_trace
    >>> steering_summary(parse_trace({"steering": [{"index": 1, "coefficient": -0.5}],
    ...                               "strength": {"mean_abs_coef": 0.5, "norm_ratio": 0.31, "kl": 0.2}}))
    'mean|c| 0.50 · ‖Δ‖/‖h‖ 0.31 · KL 0.20'
    """
    s = trace.strength
    parts = []
    if "mean_abs_coef" in s:
        parts.append(f"mean|c| {s['mean_abs_coef']:.2f}")
    else:
        parts.append(f"Σ|c| {trace.steering_l1:.2f}")
    if "norm_ratio" in s:
        parts.append(f"‖Δ‖/‖h‖ {s['norm_ratio']:.2f}")
    if "kl" in s:
        parts.append(f"KL {s['kl']:.2f}")
    return " · ".join(parts)


def feature_panel_text(trace: MoveTrace | None, width: int, height: int, board: Board | None = None,
                       note: str = "") -> Text:
    """Lay ``trace`` out in ``width`` × ``height`` cells. ``board`` is the position the
    model saw (its marks are drawn in the probability grid)."""
    width = max(width, 1)
    out = Text(no_wrap=True, overflow="ellipsis")
    if trace is None:
        out.append(note or "No LLM trace yet.", style="italic")
        out.append("\n\nTraces appear when a bot that sends them\n(the steered LLM bot) moves: its top SAE\n"
                   "features, the steering it applied and its\nprobability for each cell.", style="dim")
        return out

    lines: list[Text] = []
    policy = f"policy {trace.policy}" if trace.policy else ""
    meta = " · ".join(p for p in (trace.model, trace.mode, short_hook(trace.hook), policy) if p)
    if meta:
        lines.append(Text(_fit(meta, width), style="dim"))
    if note:
        lines.append(Text(_fit(note, width), style="italic"))

    has_probs = bool(trace.cell_probs)
    fixed = (len(lines) + (1 if trace.top_features else 0) + (1 if trace.steering else 0) + (4 if has_probs else 0)
             + (0 if trace.top_features or trace.steering else 1))
    spare = max(height - fixed, 0)
    n_steer = min(len(trace.steering), max(1, spare // 3) if trace.steering else 0)
    n_feat = min(len(trace.top_features), max(spare - n_steer, 1 if trace.top_features else 0))
    if n_feat < len(trace.top_features) and n_steer > 1 and spare - n_steer < 3:
        n_steer = max(1, n_steer - 1)
        n_feat = min(len(trace.top_features), spare - n_steer)
    roomy = height >= fixed + n_feat + n_steer + 3  # blank lines between sections when they fit

    if trace.top_features:
        if roomy and lines:
            lines.append(Text(""))
        shown = trace.top_features[:n_feat]
        value_w = 7
        bar_w = max(6, min(40, (width - value_w - 2) // 4))
        name_w = width - bar_w - value_w - 2
        head = Text("Top features".ljust(name_w + bar_w + 2), style="bold")
        head.append("activation".rjust(value_w) if value_w >= 10 else "act".rjust(value_w), style="dim")
        lines.append(head)
        top = max((abs(f.activation) for f in shown), default=1.0) or 1.0
        for feat in shown:
            row = Text(_fit(feat.name, name_w).ljust(name_w) + " ")
            row.append(bar(abs(feat.activation) / top, bar_w), style="yellow")
            row.append(f" {feat.activation:>{value_w - 1}.2f}")
            lines.append(row)
        hidden = len(trace.top_features) - len(shown)
        if hidden and lines:
            lines[-1].append(f"  +{hidden}", style="dim")

    if trace.steering:
        if roomy:
            lines.append(Text(""))
        head = Text("Steering", style="bold")
        head.append("  " + steering_summary(trace), style="dim")
        lines.append(head)
        shown_s = trace.steering[:n_steer]
        top_c = max((abs(s.coefficient) for s in shown_s), default=1.0) or 1.0
        cbar_w = max(4, min(16, width // 6))
        for delta in shown_s:
            style = UP_STYLE if delta.coefficient > 0 else DOWN_STYLE if delta.coefficient < 0 else ZERO_STYLE
            row = Text()
            row.append(f"{delta.sign_symbol} {delta.coefficient:+6.2f} ", style=style)
            row.append(bar(abs(delta.coefficient) / top_c, cbar_w), style=style)
            row.append(" " + _fit(delta.name, width - cbar_w - 11))
            lines.append(row)
        hidden = len(trace.steering) - len(shown_s)
        if hidden:
            lines[-1].append(f"  +{hidden}", style="dim")

    if not trace.top_features and not trace.steering:
        lines.append(Text(_fit("No SAE features or steering in this trace.", width), style="italic dim"))

    if has_probs:
        if roomy:
            lines.append(Text(""))
        head = Text("Cell probabilities", style="bold")
        if trace.chosen is not None:
            head.append(f"  chose {trace.chosen}", style="bold")
            if trace.legal is False:
                head.append("  ✖ illegal", style="bold red")
        lines.append(head)
        cell_w = 9 if width >= 30 else 7 if width >= 24 else 5
        for r in range(3):
            row = Text(" ")
            for c in range(3):
                cell = r * 3 + c + 1
                p = trace.cell_probs.get(cell, 0.0)
                mark = board[cell].value if board is not None and board[cell] is not None else str(cell)
                label = f" {mark} {percent(p)} " if cell_w == 9 else f"{mark}{percent(p)}"
                style = _heat(p)
                if board is not None and board[cell] is not None:
                    style += Style(dim=True, italic=True)
                if cell == trace.chosen:
                    style += Style(bold=True, underline=True, reverse=trace.legal is False)
                row.append(label.center(cell_w), style=style)
                if c < 2:
                    row.append(" ")
            lines.append(row)
    lines = lines[: max(height, 1)]
    for line in lines:
        line.truncate(width, overflow="ellipsis")
    return Text("\n").join(lines)


class FeaturePanel(Widget):
    """Shows one move's trace; call :meth:`show` to change it."""

    DEFAULT_CSS = """
    FeaturePanel { height: 1fr; }
    """

    trace: reactive[MoveTrace | None] = reactive(None, layout=False)
    note: reactive[str] = reactive("")

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.board: Board | None = None
        self.border_title = "LLM features"

    def show(self, trace: MoveTrace | None, heading: str = "", board: Board | None = None, note: str = "") -> None:
        self.board = board
        self.border_title = f"LLM features · {heading}" if heading else "LLM features"
        self.set_reactive(FeaturePanel.note, note)
        self.trace = trace
        self.refresh()

    def render(self) -> Text:
        size = self.content_size
        return feature_panel_text(self.trace, size.width, size.height, self.board, self.note)

    @property
    def plain(self) -> str:
        """The text on show (for tests and screen readers)."""
        return self.render().plain
