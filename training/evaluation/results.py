"""``autosteer-train report``: markdown tables from result JSON files (``evaluate``,
``heldout``, ``controls``), so that the tables in README.md and docs/ are regenerated from
measurements, never typed. ``--results-md docs/RESULTS.md --readme README.md`` writes the
whole results document and the README's headline table (``training/evaluation/results_md.py``).
Every row carries its mode, games, distinct games and boards,
the exact value where one exists, the steering budget and the held-out results
(``docs/EVALUATION.md``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from training.evaluation.tables import compact_table, controls_table, headline_table, random_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--results-md",
        type=Path,
        default=None,
        metavar="PATH",
        help="write the results document (docs/RESULTS.md) from docs/results/*.json and the run cards",
    )
    parser.add_argument(
        "--readme",
        type=Path,
        default=None,
        metavar="PATH",
        help="rewrite the headline table between the markers in this README (README.md)",
    )
    parser.add_argument(
        "--evaluate",
        action="append",
        default=[],
        metavar="JSON",
        help="result of `autosteer-train evaluate` (repeatable; one row group each)",
    )
    parser.add_argument("--heldout", default=None, metavar="JSON", help="result of `autosteer-train heldout`")
    parser.add_argument("--controls", default=None, metavar="JSON", help="result of `autosteer-train controls`")
    parser.add_argument(
        "--compact",
        action="store_true",
        help="one row per evaluation file (draws per seat and mode) instead of one per arm",
    )
    parser.add_argument(
        "--held-name",
        action="append",
        default=[],
        metavar="LABEL=NAME",
        help="map a row label (e.g. 'policy 29752848') to its name in the held-out report (e.g. auto)",
    )


def run(args: argparse.Namespace) -> int:
    from training.evaluation.heldout import markdown_summary

    if args.results_md is not None or args.readme is not None:
        from training.evaluation.results_md import write

        status = write(args.results_md, args.readme)
        if status or not (args.evaluate or args.heldout or args.controls):
            return status
    try:
        evaluations = [json.loads(Path(p).read_text()) for p in args.evaluate]
        held = json.loads(Path(args.heldout).read_text()) if args.heldout else None
        controls = json.loads(Path(args.controls).read_text()) if args.controls else None
        names = dict(item.split("=", 1) for item in args.held_name)
    except (OSError, json.JSONDecodeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if evaluations and args.compact:
        print("### Against minimax, one row per run\n")
        print("\n".join(compact_table(evaluations)))
    elif evaluations:
        print("### Against minimax\n")
        print("\n".join(headline_table(evaluations, held, held_names=names)))
        print("\n### Against the random player\n")
        print("\n".join(random_table(evaluations)))
    if held:
        for mode in held["meta"]["modes"]:
            print(f"\n### Held out ({mode} reading; exact)\n")
            print("\n".join(markdown_summary(held, mode)))
    if controls:
        print("\n### Equal-effort controls (exact)\n")
        print("\n".join(controls_table(controls)))
    print(
        f"\n(report from {len(evaluations)} evaluation file(s)"
        + (", a held-out report" if held else "")
        + (", a controls report" if controls else "")
        + ")",
        file=sys.stderr,
    )
    return 0
