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
from tui_client.trace import FeatureActivation, MoveTrace, short_hook

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


OCCUPIED_STYLE = Style(bgcolor="rgb(58,58,58)", color="rgb(150,150,150)")
ALWAYS_ON_STYLE = Style(dim=True)


#: long phrases of the labelling step's labels and their short forms for a panel row (the
#: tooltip and the ``?`` legend keep and explain the full wording)
SHORT_FORMS = (
    (" fires when ", " "),
    ("the unsteered model would pick cell ", "model picks "),
    ("the unsteered model would name an occupied cell", "model names a taken cell"),
    ("no clear board concept (best: ", "unclear (best: "),
)


def _short(name: str) -> str:
    """A feature's name for a panel row, without the labels' long common phrases.

    >>> _short("#146 fires when cell 8 is empty (P=0.93, R=0.41)")
    '#146 cell 8 is empty (P=0.93, R=0.41)'
    >>> _short("#228 fires when the unsteered model would pick cell 3 (P=0.61, R=0.5)")
    '#228 model picks 3 (P=0.61, R=0.5)'
    """
    for long, short in SHORT_FORMS:
        name = name.replace(long, short, 1)
    return name


def _cells_text(cells: tuple[int, ...]) -> str:
    """``(5, 1)`` → ``'→5,1'``: the cells a feature pushes toward."""
    return "→" + ",".join(str(c) for c in cells) if cells else ""


def _feature_rows(features: tuple[FeatureActivation, ...], n: int, width: int) -> list[Text]:
    """The features section: a header, then ``n`` rows (name, activation bar, activation, its
    distance from the usual level, the cells it pushes toward), widest columns first dropped
    when the panel is narrow. Always-on features are dimmed."""
    shown = features[:n]
    hidden = len(features) - len(shown)
    act_w = 6
    dev_w = 6 if any(f.deviation is not None for f in shown) else 0
    cells_w = 7 if any(f.promotes for f in shown) and width >= 44 else 0
    fixed = act_w + (dev_w + 1 if dev_w else 0) + (cells_w + 1 if cells_w else 0) + 2
    bar_w = max(4, min(16, width // 8)) if width >= 60 else 0  # narrow: the names matter more than bars
    name_w = max(width - fixed - bar_w, 6)
    longest = max((len(_short(f.name)) for f in shown), default=0)
    if name_w > longest:  # a wide panel: no gap between the names and the bars
        bar_w = min(bar_w + name_w - longest, 40)
        name_w = max(longest, 12)
    title = "Features · furthest from usual" if dev_w else "Top features"
    count = f" {len(shown)}/{len(features)}" if hidden else ""
    head = Text(_fit(title, name_w + bar_w + 1 - len(count)), style="bold")
    head.append(count, style="dim")
    head.pad_right(name_w + bar_w + 1 - head.cell_len)
    head.append("act".rjust(act_w), style="dim")
    if dev_w:
        head.append(" " + "Δ".rjust(dev_w), style="dim")
    if cells_w:
        head.append(" " + "pushes", style="dim")
    rows = [head]
    top = max((abs(f.activation) for f in shown), default=1.0) or 1.0
    for feat in shown:
        style = ALWAYS_ON_STYLE if feat.always_on else Style()
        row = Text(_fit(_short(feat.name), name_w).ljust(name_w) + " ", style=style)
        if bar_w:
            row.append(bar(abs(feat.activation) / top, bar_w), style=Style(color="yellow", dim=feat.always_on))
        row.append(f" {feat.activation:>{act_w - 1}.1f}", style=style)
        if dev_w:
            dev = "" if feat.deviation is None else f"{feat.deviation:+.1f}"
            dev_style = style + (Style(bold=True) if (feat.deviation or 0) > 0 else Style(italic=True))
            row.append(" " + dev.rjust(dev_w), style=dev_style)
        if cells_w:
            row.append(" " + _fit(_cells_text(feat.promotes), cells_w), style=style + Style(color="green"))
        rows.append(row)
    return rows


def _prob_cell(trace: MoveTrace, cell: int, board: Board | None, cell_w: int) -> Text:
    """One cell of the probability grid: occupied cells grey with their mark, the chosen
    cell marked ▶ (red when the move was illegal), the others heat-coloured."""
    p = trace.cell_probs.get(cell, 0.0)
    piece = None if board is None else board[cell]
    taken = piece is not None
    mark = piece.value if piece is not None else str(cell)
    chosen = cell == trace.chosen
    lead = "▶" if chosen else " "
    label = f"{lead}{mark} {percent(p)} " if cell_w == 9 else f"{lead if chosen else ''}{mark}{percent(p)}"
    style = OCCUPIED_STYLE if taken else _heat(p)
    if chosen:
        style += Style(bold=True, underline=True)
        if trace.legal is False:
            style += Style(bgcolor="rgb(150,30,30)", color="white")
    return Text(label[:cell_w].center(cell_w), style=style)


def feature_tooltip(trace: MoveTrace | None) -> str | None:
    """Every feature and steered feature in full (the panel cuts long labels): for hover."""
    if trace is None or not (trace.top_features or trace.steering):
        return None
    out = []
    for f in trace.top_features:
        facts = [f"activation {f.activation:.2f}"]
        if f.usual is not None:
            facts.append(f"usual {f.usual:.2f}")
        if f.always_on:
            facts.append("always on")
        if f.promotes:
            facts.append("pushes toward " + ",".join(map(str, f.promotes)))
        if f.suppresses:
            facts.append("away from " + ",".join(map(str, f.suppresses)))
        out.append(f"{f.name}\n    " + " · ".join(facts))
    for d in trace.steering:
        out.append(f"{d.sign_symbol} {d.coefficient:+.2f} {d.name}")
    return "\n".join(out)


def feature_panel_text(
    trace: MoveTrace | None, width: int, height: int, board: Board | None = None, note: str = ""
) -> Text:
    """Lay ``trace`` out in ``width`` × ``height`` cells. ``board`` is the position the
    model saw (its marks are drawn in the probability grid)."""
    width = max(width, 1)
    if trace is None:
        return _no_trace_text(note)

    lines = _header_lines(trace, note, width)
    has_probs = bool(trace.cell_probs)
    fixed = (
        len(lines)
        + (1 if trace.top_features else 0)
        + (1 if trace.steering else 0)
        + (4 if has_probs else 0)
        + (0 if trace.top_features or trace.steering else 1)
    )
    n_feat, n_steer = _section_rows(trace, max(height - fixed, 0))
    roomy = height >= fixed + n_feat + n_steer + 3  # blank lines between sections when they fit

    if trace.top_features:
        if roomy and lines:
            lines.append(Text(""))
        lines.extend(_feature_rows(trace.top_features, n_feat, width))
    if trace.steering:
        if roomy:
            lines.append(Text(""))
        lines.extend(_steering_rows(trace, n_steer, width))
    if not trace.top_features and not trace.steering:
        lines.append(Text(_fit("No SAE features or steering in this trace.", width), style="italic dim"))
    if has_probs:
        if roomy:
            lines.append(Text(""))
        lines.extend(_probability_rows(trace, board, width))
    lines = lines[: max(height, 1)]
    for line in lines:
        line.truncate(width, overflow="ellipsis")
    return Text("\n").join(lines)


def _no_trace_text(note: str) -> Text:
    """The panel before any trace arrived: ``note``, else what will show up here."""
    out = Text(no_wrap=True, overflow="ellipsis")
    out.append(note or "No LLM trace yet.", style="italic")
    out.append(
        "\n\nTraces appear when a bot that sends them\n(the steered LLM bot) moves: its top SAE\n"
        "features, the steering it applied and its\nprobability for each cell.",
        style="dim",
    )
    return out


def _header_lines(trace: MoveTrace, note: str, width: int) -> list[Text]:
    """The model, mode, hook and policy line, then ``note``, each when there is one."""
    lines: list[Text] = []
    policy = f"policy {trace.policy}" if trace.policy else ""
    meta = " · ".join(p for p in (trace.model, trace.mode, short_hook(trace.hook), policy) if p)
    if meta:
        lines.append(Text(_fit(meta, width), style="dim"))
    if note:
        lines.append(Text(_fit(note, width), style="italic"))
    return lines


def _section_rows(trace: MoveTrace, spare: int) -> tuple[int, int]:
    """How many feature rows and steering rows fit in ``spare`` lines: a third for the
    steering, the rest for the features, one of each at least when there are any."""
    n_steer = min(len(trace.steering), max(1, spare // 3) if trace.steering else 0)
    n_feat = min(len(trace.top_features), max(spare - n_steer, 1 if trace.top_features else 0))
    if n_feat < len(trace.top_features) and n_steer > 1 and spare - n_steer < 3:
        n_steer = max(1, n_steer - 1)
        n_feat = min(len(trace.top_features), spare - n_steer)
    return n_feat, n_steer


def _steering_rows(trace: MoveTrace, n_steer: int, width: int) -> list[Text]:
    """The steering section: a heading, then the ``n_steer`` features pushed hardest on this move."""
    lines: list[Text] = []
    # the features actually pushed on this move, strongest first (a sparse policy leaves most at 0)
    active = sorted((d for d in trace.steering if d.coefficient), key=lambda d: -abs(d.coefficient))
    shown_s = active[:n_steer]
    head = Text("Steering", style="bold")
    head.append(f" {len(active)} of {len(trace.steering)} features", style="dim")
    head.append("  " + steering_summary(trace), style="dim")
    lines.append(head)
    if not active:
        lines.append(Text(_fit("no feature steered on this move", width), style="italic dim"))
    top_c = max((abs(s.coefficient) for s in shown_s), default=1.0) or 1.0
    cbar_w = max(4, min(16, width // 6))
    for delta in shown_s:
        style = UP_STYLE if delta.coefficient > 0 else DOWN_STYLE if delta.coefficient < 0 else ZERO_STYLE
        row = Text()
        row.append(f"{delta.sign_symbol} {delta.coefficient:+6.2f} ", style=style)
        row.append(bar(abs(delta.coefficient) / top_c, cbar_w), style=style)
        row.append(" " + _fit(_short(delta.name), width - cbar_w - 11))
        lines.append(row)
    return lines


def _probability_rows(trace: MoveTrace, board: Board | None, width: int) -> list[Text]:
    """The cell-probability section: a heading with the cell chosen, then a 3 × 3 grid."""
    head = Text("Cell probabilities", style="bold")
    if trace.chosen is not None:
        head.append(f"  chose {trace.chosen}", style="bold")
        if trace.legal is False:
            head.append("  ✖ illegal", style="bold red")
    lines = [head]
    cell_w = 9 if width >= 30 else 7 if width >= 24 else 5
    for r in range(3):
        row = Text(" ")
        for c in range(3):
            cell = r * 3 + c + 1
            row.append(_prob_cell(trace, cell, board, cell_w))
            if c < 2:
                row.append(" ")
        lines.append(row)
    return lines


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
        self.tooltip = feature_tooltip(trace)
        self.trace = trace
        self.refresh()

    def render(self) -> Text:
        size = self.content_size
        return feature_panel_text(self.trace, size.width, size.height, self.board, self.note)

    @property
    def plain(self) -> str:
        """The text on show (for tests and screen readers)."""
        return self.render().plain
