"""``autosteer-server games list|show|export``: the games a records store holds
(:mod:`server.records.sql`), as a table, one game move by move, or one JSON document."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from server.records.sql import JSON_COLUMNS, GameRecords, RecordsError, describe_target


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        default="var/arena.sqlite3",
        help="records database written by 'autosteer-server serve': "
        "a SQLite file or a postgresql://user@host:port/dbname URL",
    )
    sub = parser.add_subparsers(dest="games_command", metavar="ACTION", required=True)
    p_list = sub.add_parser(
        "list", help="newest games first, one line each", formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p_list.add_argument("--limit", type=int, default=20, help="how many games to show")
    p_list.add_argument("--player", help="only games this bot or player played")
    p_list.add_argument("--tag", help="only games with this tag (tournaments tag their games)")
    p_list.add_argument("--status", choices=("live", "finished", "aborted"), help="only games with this status")
    p_list.add_argument(
        "--json", action="store_true", help="print a JSON list (one summary per game, full ids) instead of the table"
    )
    p_show = sub.add_parser(
        "show", help="one game move by move, with its traces", formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p_show.add_argument("game_id", help="the game's id, or any prefix of it that only one game has (see 'games list')")
    p_show.add_argument("--json", action="store_true", help="print the record as JSON")
    p_export = sub.add_parser(
        "export", help="every game as one JSON document", formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p_export.add_argument("--out", help="write to this file instead of standard output")
    p_export.add_argument("--player", help="only games this bot or player played")
    p_export.add_argument("--tag", help="only games with this tag")
    for p in (p_list, p_show, p_export):  # also accepted after the action: games list --db FILE
        p.add_argument("--db", default=argparse.SUPPRESS, help="records database (as above)")


def _when(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def run(args: argparse.Namespace) -> int:
    try:
        records = GameRecords(args.db, create=False)
    except RecordsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        command = {"list": _cmd_list, "show": _cmd_show}.get(args.games_command, _cmd_export)
        status = command(records, args)
        sys.stdout.flush()  # a closed pipe must show up here, not in the interpreter's exit
        return status
    except records.errors as exc:
        print(f"error: cannot read {describe_target(args.db)}: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader went away (``games export | head``): stop quietly, as Unix tools do
        _silence_stdout()
        return 1  # as rich does for the table, and as the Python docs advise
    finally:
        records.db.close()


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except Exception:  # stdout is not a real file (tests capture or replace it)
        pass


def _json_text(value: Any, **kwargs: Any) -> str:
    from server.protocol import replace_non_finite  # older servers stored NaN/Infinity in traces

    clean, replaced = replace_non_finite(value)
    if replaced:
        print(f"warning: {replaced} NaN/Infinity values in the stored traces are written as null", file=sys.stderr)
    return json.dumps(clean, allow_nan=False, **kwargs)


def _cmd_list(records: GameRecords, args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        print("error: --limit must be at least 1", file=sys.stderr)
        return 2
    rows = records.list(limit=args.limit, player=args.player, tag=args.tag, status=args.status)
    if args.json:
        summaries = [
            {
                "game_id": r["game_id"],
                "status": r["status"],
                "x": r["x"],
                "o": r["o"],
                "result": r["result"],
                "reason": r["reason"],
                "winner": r["winner"],
                "started_at": r["started_at"],
                "ended_at": r["ended_at"],
                "moves": [m["cell"] for m in r["moves"]],
                "tag": r["tag"],
                "seed": r.get("seed"),
            }
            for r in rows
        ]
        print(_json_text(summaries, indent=1))
        return 0

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    table = Table(title=Text(f"games in {describe_target(args.db)}"))
    # the id is what 'games show' takes: never cut or wrapped, whatever the terminal width
    table.add_column("game", no_wrap=True, min_width=max([len(r["game_id"]) for r in rows] + [4]), overflow="fold")
    for col in ("started", "X", "O", "result", "reason", "moves", "tag"):
        table.add_column(col)
    for r in rows:
        # Text, not str: what clients sent (names, tags) is shown as typed, never read as Rich markup
        table.add_row(
            *(
                Text(str(cell))
                for cell in (
                    r["game_id"],
                    _when(r["started_at"]),
                    r["x"],
                    r["o"],
                    r["result"] or r["status"],
                    r["reason"] or "",
                    "".join(str(m["cell"]) for m in r["moves"]),
                    r["tag"] or "",
                )
            )
        )
    console.print(table)
    console.print(f"{len(rows)} shown of {records.count()} stored games")
    return 0


def _cmd_show(records: GameRecords, args: argparse.Namespace) -> int:
    from server.game import Board

    matches = records.find(args.game_id) if args.game_id else []
    if not matches:
        print(
            f"error: no game {args.game_id!r} in {describe_target(args.db)}; 'autosteer-server games list' shows the ids",
            file=sys.stderr,
        )
        return 1
    if len(matches) > 1:
        more = ", …" if len(matches) == 10 else ""
        print(
            f"error: {args.game_id!r} is the start of several game ids ({', '.join(matches)}{more}); give more of the id",
            file=sys.stderr,
        )
        return 1
    rec = records.get(matches[0])
    assert rec is not None
    if args.json:
        try:
            print(_json_text(rec, indent=2))
        except RecursionError:  # too deep to indent: compact, or the stored text (see _game_json)
            text, _, warning = _game_json(records.get(rec["game_id"], raw=True) or {})
            if warning:
                print(warning, file=sys.stderr)
            print(text)
        return 0
    seed = f"  seed {rec['seed']}" if rec.get("seed") is not None else ""
    print(
        f"game {rec['game_id']}: {rec['x']} (X, {rec['x_kind']}) vs {rec['o']} (O, {rec['o_kind']})"
        f"  clock {rec['clock']:g} s  tag {rec['tag'] or '-'}{seed}"
    )
    print(f"started {_when(rec['started_at'])}  ended {_when(rec['ended_at'])}")
    board = Board.empty()
    t0 = rec["started_at"]
    for m in rec["moves"]:
        board = board.play(m["cell"])
        trace = "" if m.get("trace") is None else "  trace " + json.dumps(m["trace"], separators=(",", ":"))[:200]
        print(f"  {m['ply']:>2}. {m['seat']} {m['cell']}  +{m['at'] - t0:.3f} s{trace}")
    if rec.get("illegal_move"):
        im = rec["illegal_move"]
        print(f"  illegal move: {im['seat']} tried cell {im['cell']!r} ({im.get('code')})")
    print(board.grid())
    winner = f", winner {rec['winner']}" if rec["winner"] else ""
    print(f"result: {rec['result'] or rec['status']} ({rec['reason'] or 'in progress'}){winner}")
    return 0


def _game_json(row: dict[str, Any]) -> tuple[str, int, str | None]:
    """One stored row (JSON columns as text) as compact JSON: the text, how many NaN/Infinity
    became null, and a warning when a column had to go out as its stored text instead
    (nested too deep to decode or re-encode). Whatever a row holds, this returns."""
    from server.protocol import replace_non_finite  # older servers stored NaN/Infinity in traces

    game = dict(row)
    try:
        for c in JSON_COLUMNS:
            text = row.get(c)
            game[c] = json.loads(text) if text else ([] if c == "moves" else None)
        try:
            return json.dumps(game, allow_nan=False, separators=(",", ":")), 0, None
        except ValueError:  # NaN/Infinity, from an older server: written as null
            clean, replaced = replace_non_finite(game)
            return json.dumps(clean, allow_nan=False, separators=(",", ":")), replaced, None
    except (ValueError, RecursionError) as exc:
        kept = {k: v for k, v in row.items() if k not in JSON_COLUMNS}
        for c in JSON_COLUMNS:
            kept[c] = [] if c == "moves" else None
            if row.get(c):
                kept[f"{c}_json"] = row[c]
        why = "nested too deep" if isinstance(exc, RecursionError) else f"not plain JSON ({exc})"
        warning = (
            f"warning: game {row.get('game_id')}: moves {why}; exported as the stored text "
            f"in moves_json / illegal_move_json"
        )
        return json.dumps(kept, allow_nan=False, separators=(",", ":")), 0, warning


def _cmd_export(records: GameRecords, args: argparse.Namespace) -> int:
    """One JSON document, one game per line, compact: its size stays that of the stored
    rows, and a row that cannot be re-encoded is written as its stored text, never fatal."""
    head = {"format": "autosteer-arena-games", "version": 1, "exported_at": time.time()}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    out = open(Path(args.out), "w") if args.out else sys.stdout  # noqa: SIM115 - closed below
    replaced = written = 0
    try:
        out.write(json.dumps(head)[:-1] + ', "games": [')
        for row in records.iter_all(player=args.player, tag=args.tag, raw=True):
            text, n, warning = _game_json(row)
            replaced += n
            if warning:
                print(warning, file=sys.stderr)
            out.write(("\n" if written == 0 else ",\n") + text)
            written += 1
        out.write(f'\n], "count": {written}}}\n')  # counted as written: a live store may grow meanwhile
    finally:
        if args.out:
            out.close()
    if replaced:
        print(f"warning: {replaced} NaN/Infinity values in the stored traces are written as null", file=sys.stderr)
    if args.out:
        print(f"exported {written} games to {args.out}", file=sys.stderr)
    return 0
