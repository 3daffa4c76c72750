"""Markdown tables of ``autosteer-train evaluate`` results: one row per arm against
minimax (with held-out cells from ``autosteer-train heldout``), against the random player,
or one row per evaluation file; and one row per fit of ``autosteer-train controls``.
``autosteer-train report`` prints them and ``training/evaluation/results_md.py`` puts them
in docs/RESULTS.md."""

from __future__ import annotations

from typing import Any, Sequence


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f} %"


def _rate(arm: dict[str, Any], key: str) -> str:
    lo, hi = arm["intervals"][key]
    return f"{100 * arm[key] / max(1, arm['games']):.1f} % [{100 * lo:.1f}–{100 * hi:.1f}]"


def _label(data: dict[str, Any]) -> str:
    m = data["meta"]
    if not m.get("policy_digest"):
        return "unsteered"
    ctl = m.get("control", "none")
    return f"{'control: ' + ctl if ctl != 'none' else 'policy'} {m['policy_digest'][:8]}"


def _budget(arm: dict[str, Any]) -> str:
    from training.evaluation.evaluate import budget_text

    b = budget_text(arm)
    return " | ".join(b.values())


def _heldout_cells(held: dict[str, Any] | None, name: str, mode: str, seat: str) -> list[str]:
    """rows / list phrasing draw vs minimax, not-lost vs random and eps0.1, positions kept."""
    if not held or name not in held.get("opponents", {}):
        return ["—"] * 4
    phr = held["phrasings"]
    draws = " / ".join(_pct(phr[p][name][mode]["minimax"][seat]["draw"]) for p in ("rows", "list") if p in phr)
    opp = held["opponents"][name][mode]

    def nonloss(o: str) -> str:
        e = opp.get(o, {}).get(seat)
        return "—" if not e else _pct(e["win"] + e["draw"])

    pos = held.get("positions", {}).get(name)
    kept = "—" if not pos else _pct(pos["positions"][mode][seat]["all"]["share"])
    return [draws or "—", nonloss("random"), nonloss("eps0.1"), kept]


def headline_table(
    evaluations: Sequence[dict[str, Any]],
    held: dict[str, Any] | None,
    opponent: str = "minimax",
    held_names: dict[str, str] | None = None,
) -> list[str]:
    """One row per (policy, seat, mode) against ``opponent``. ``held_names`` maps a row
    label to the policy's name in the held-out report."""
    head = [
        "steering",
        "seat",
        "mode",
        "games",
        "distinct games / boards",
        "draws (sampled) [95 % CI]",
        "exact draw",
        "illegal",
        "‖Δ‖/‖h‖ mean/max",
        "KL",
        "digit mass mean/min (unsteered)",
        "features / move",
        "changed",
        "held out: draw as `rows` / `list`",
        "held out: not lost vs random",
        "vs ε=0.1",
        "all positions: value kept",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for data in evaluations:
        label = _label(data)
        for arm in data["arms"]:
            if arm["opponent"] != opponent:
                continue
            exact = arm.get("exact")
            cells = [
                label,
                arm["seat"],
                arm["mode"],
                str(arm["games"]),
                f"{arm.get('distinct_games', '—')} / {arm.get('distinct_boards', '—')}",
                _rate(arm, "draws"),
                _pct(exact["draw"]) if exact else "—",
                _rate(arm, "illegal"),
                _budget(arm),
            ]
            cells += _heldout_cells(held, (held_names or {}).get(label, ""), arm["mode"], arm["seat"])
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def random_table(evaluations: Sequence[dict[str, Any]]) -> list[str]:
    """Against the random player: sampled wins and draws, exact wins, distinct counts."""
    head = [
        "steering",
        "seat",
        "mode",
        "games",
        "distinct games / boards",
        "wins (sampled)",
        "draws (sampled)",
        "exact win / draw",
        "illegal",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for data in evaluations:
        for arm in data["arms"]:
            if arm["opponent"] != "random":
                continue
            e = arm.get("exact")
            lines.append(
                "| "
                + " | ".join(
                    [
                        _label(data),
                        arm["seat"],
                        arm["mode"],
                        str(arm["games"]),
                        f"{arm.get('distinct_games', '—')} / {arm.get('distinct_boards', '—')}",
                        _rate(arm, "wins"),
                        _rate(arm, "draws"),
                        f"{_pct(e['win'])} / {_pct(e['draw'])}" if e else "—",
                        _rate(arm, "illegal"),
                    ]
                )
                + " |"
            )
    return lines


def compact_table(evaluations: Sequence[dict[str, Any]], opponent: str = "minimax") -> list[str]:
    """One row per evaluation: draws per seat and mode (sampled, then exact, then distinct
    games), and the budget of the X/masked arm."""
    order = [("X", "strict"), ("X", "masked"), ("O", "strict"), ("O", "masked")]
    head = (
        ["steering"]
        + [f"{seat} {mode}: draws (exact) · distinct games" for seat, mode in order]
        + ["‖Δ‖/‖h‖ (X masked)", "KL", "digit mass mean/min", "changed"]
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for data in evaluations:
        arms = {(a["seat"], a["mode"]): a for a in data["arms"] if a["opponent"] == opponent}
        cells = [_label(data)]
        for key in order:
            a = arms.get(key)
            if a is None:
                cells.append("—")
                continue
            e = a.get("exact")
            cells.append(
                f"{100 * a['draws'] / max(1, a['games']):.1f} % ({_pct(e['draw']) if e else '—'}) · "
                f"{a.get('distinct_games', '—')}"
            )
        xm = arms.get(("X", "masked"))
        if xm:
            from training.evaluation.evaluate import budget_text

            b = budget_text(xm)
            cells += [b["‖Δ‖/‖h‖ mean/max"], b["KL"], b["digit mass mean/min (unsteered)"].split(" ")[0], b["changed"]]
        else:
            cells += ["—"] * 4
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def controls_table(report: dict[str, Any], mode: str = "masked") -> list[str]:
    """One row per fit of ``autosteer-train controls``: exact in-sample draws as X / O (both
    modes), budget, held-out draws."""

    def pct(e: Any) -> str:
        return "—" if not e else f"{100 * e['draw']:.1f}"

    lines = [
        "| steered with | seed | in-sample draw vs minimax X / O (masked) | (strict) | ‖Δ‖/‖h‖ X / O | KL X / O "
        "| digit mass min X / O | rows, list phrasings: draw X / O | vs eps0.1: not lost X / O |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        m, s = r["in_sample"]["masked"], r["in_sample"].get("strict")
        b = {seat: m[seat]["budget"] for seat in ("X", "O")}

        def mass(seat: str) -> str:
            v = b[seat]["min_digit_mass"]
            return "—" if v is None else f"{v:.2f}"

        held = r.get("heldout") or {}
        phr = held.get("phrasings", {})
        other = (
            " · ".join(
                f"{pct(phr[p][mode]['minimax']['X'])} / {pct(phr[p][mode]['minimax']['O'])}"
                for p in ("rows", "list")
                if p in phr
            )
            or "—"
        )
        opp = held.get("opponents", {}).get(mode, {}).get("eps0.1")
        eps = (
            "—"
            if not opp
            else f"{100 * (opp['X']['win'] + opp['X']['draw']):.1f} / {100 * (opp['O']['win'] + opp['O']['draw']):.1f}"
        )
        lines.append(
            f"| {r['basis']} | {r['seed'] if r['seed'] is not None else '—'} | {pct(m['X']['exact'])} / "
            f"{pct(m['O']['exact'])} % | "
            + (f"{pct(s['X']['exact'])} / {pct(s['O']['exact'])} %" if s else "—")
            + f" | {b['X']['mean_norm_ratio']:.2f} / {b['O']['mean_norm_ratio']:.2f} | "
            f"{b['X']['mean_kl']:.2f} / {b['O']['mean_kl']:.2f} | {mass('X')} / {mass('O')} | {other} | {eps} |"
        )
    return lines
