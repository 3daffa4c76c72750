"""A tournament's report as files (``tournament.json``, ``tournament.md``) and as tables
printed to the terminal."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


def render_markdown(report: dict[str, Any]) -> str:
    bots = report["bots"]
    lines = [f"# Tournament {report['tournament_id']}", ""]
    if report.get("incomplete"):
        lines += [f"**Incomplete**: {report['incomplete']}. The tables cover the games played until then.", ""]
    started = report.get("started_at")
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)) if started else ""
    lines += [
        f"{len(bots)} bots, {report['games_per_pairing']} games per pairing (sides alternated), "
        f"{report['games_played']} games played ({report['games_rated']} rated) on {report.get('server', '?')}"
        + (f", {when}" if when else "")
        + "."
    ]
    if report.get("seed") is not None:
        lines += [
            f"Each game's seed is derived from seed {report['seed']}, the pairing and the game index; "
            "house bots replay the same games with the same seed at any concurrency."
        ]
    lines += [""]
    ratings = report.get("ratings")
    if ratings:
        pct = round(ratings["confidence"] * 100)
        anchor = "mean" if ratings["anchor"] == "mean" else ratings["anchor"]
        lines += [
            "## Ratings",
            "",
            f"| rank | bot | Elo | {pct} % interval | games | score |",
            "|---:|---|---:|---|---:|---:|",
        ]
        for i, r in enumerate(ratings["ratings"], 1):
            lines.append(
                f"| {i} | {r['name']} | {r['elo']:.0f} | {r['low']:.0f} – {r['high']:.0f} | {r['games']} | "
                f"{100 * r['score_rate']:.1f} % |"
            )
        lines += [
            "",
            f"Elo by maximum likelihood (Bradley-Terry, draws = ½), {anchor} anchored at "
            f"{ratings['anchor_rating']:.0f}, {ratings['prior_draws']:g} virtual draw(s) per pairing as prior; "
            f"intervals: percentile bootstrap over games ({ratings['bootstrap']} resamples, seed {ratings['seed']}).",
            "",
        ]
    elif report.get("rating_error"):
        lines += ["## Ratings", "", f"Not computed: {report['rating_error']}", ""]
    lines += [
        "## Cross table",
        "",
        "Score rate of the row bot against the column bot.",
        "",
        "| | " + " | ".join(bots) + " |",
        "|---|" + "---:|" * len(bots),
    ]
    for a in bots:
        cells = []
        for b in bots:
            v = report["cross_table"][a].get(b) if a != b else None
            cells.append("—" if a == b else ("n/a" if v is None else f"{100 * v:.1f} %"))
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Pairings",
        "",
        "| pairing | W | D | L | aborted | as X (W/D/L) | as O (W/D/L) |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for p in report["pairings"]:
        ax, ao = p["a_as_x"], p["a_as_o"]
        lines.append(
            f"| {p['a']} vs {p['b']} | {p['wins']} | {p['draws']} | {p['losses']} | {p['aborted']} | "
            f"{ax['wins']}/{ax['draws']}/{ax['losses']} | {ao['wins']}/{ao['draws']}/{ao['losses']} |"
        )
    lines += [
        "",
        "W/D/L from the first bot's side. Game end reasons: "
        + ", ".join(f"{k} {v}" for k, v in sorted(report["reasons"].items()))
        + ".",
        "",
        f"Every game is in the server's records with tag `{report['tournament_id']}`.",
        "",
    ]
    return "\n".join(lines)


def write_report(report: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "tournament.json", out_dir / "tournament.md"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path.write_text(render_markdown(report))
    return json_path, md_path


def print_report(report: dict[str, Any]) -> None:
    from rich.console import Console, JustifyMethod
    from rich.table import Table

    console = Console()
    ratings = report.get("ratings")
    if ratings:
        t = Table(title=f"Tournament {report['tournament_id']}: ratings ({round(100 * ratings['confidence'])} % CI)")
        columns: tuple[tuple[str, JustifyMethod], ...] = (
            ("rank", "right"),
            ("bot", "left"),
            ("Elo", "right"),
            ("interval", "left"),
            ("games", "right"),
            ("score", "right"),
        )
        for col, justify in columns:
            t.add_column(col, justify=justify)
        for i, r in enumerate(ratings["ratings"], 1):
            t.add_row(
                str(i),
                r["name"],
                f"{r['elo']:.0f}",
                f"{r['low']:.0f} – {r['high']:.0f}",
                str(r["games"]),
                f"{100 * r['score_rate']:.1f} %",
            )
        console.print(t)
    elif report.get("rating_error"):
        console.print(f"[yellow]ratings not computed: {report['rating_error']}")
    bots = report["bots"]
    cross = Table(title="cross table (row's score rate vs column)")
    cross.add_column("")
    for b in bots:
        cross.add_column(b, justify="right")
    for a in bots:
        row = []
        for b in bots:
            v = report["cross_table"][a].get(b) if a != b else None
            row.append("—" if a == b else ("n/a" if v is None else f"{100 * v:.1f} %"))
        cross.add_row(a, *row)
    console.print(cross)
    pairs = Table(title="pairings (W/D/L from the first bot's side)")
    for col in ("pairing", "W", "D", "L", "aborted"):
        pairs.add_column(col, justify="left" if col == "pairing" else "right")
    for p in report["pairings"]:
        pairs.add_row(f"{p['a']} vs {p['b']}", str(p["wins"]), str(p["draws"]), str(p["losses"]), str(p["aborted"]))
    console.print(pairs)
