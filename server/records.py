"""Game records in SQLite (WAL), and ``autosteer-server games list|show|export``.

Every game is inserted when it starts (status ``live``) and updated when it ends, with
players, their kinds, every move (seat, cell, unix time, trace), result, reason, the
tag an arranged game carries and its move clock. Each write is one short transaction on
the event loop's thread (well under a millisecond in WAL mode with ``synchronous=NORMAL``),
so a finished game is on disk before the server sends its next frame. A server that
crashed leaves games ``live``; :meth:`GameRecords.abort_live` (run at every start) marks
them ``aborted``.

>>> rec = GameRecords(":memory:")
>>> rec.save({"game_id": "g1", "x": "ann", "o": "minimax", "status": "live", "board": ".........",
...           "moves": [], "clock": 30.0, "started_at": 1.0})
>>> rec.abort_live(now=2.0)
1
>>> rec.get("g1")["result"], rec.get("g1")["reason"]
('aborted', 'aborted')
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any, Iterator

SCHEMA = """
CREATE TABLE IF NOT EXISTS games (
    game_id     TEXT PRIMARY KEY,
    x           TEXT NOT NULL,
    o           TEXT NOT NULL,
    x_kind      TEXT,
    o_kind      TEXT,
    status      TEXT NOT NULL,          -- live | finished | aborted
    result      TEXT,                   -- X | O | draw | aborted
    reason      TEXT,                   -- line | full_board | resign | timeout | disconnect | aborted | illegal_move
    winner      TEXT,
    board       TEXT NOT NULL,
    moves       TEXT NOT NULL,          -- JSON list of {ply, seat, cell, at, trace}
    illegal_move TEXT,                  -- JSON {ply, seat, cell, at, trace, code} or NULL
    tag         TEXT,
    clock       REAL,
    started_at  REAL NOT NULL,
    ended_at    REAL,
    seed        INTEGER                 -- the game's seed for house bots, or NULL
);
CREATE INDEX IF NOT EXISTS games_started ON games (started_at);
CREATE INDEX IF NOT EXISTS games_x ON games (x);
CREATE INDEX IF NOT EXISTS games_o ON games (o);
CREATE INDEX IF NOT EXISTS games_tag ON games (tag);
CREATE INDEX IF NOT EXISTS games_status ON games (status);
"""
# Columns added after the first release, with their type: added to older databases on open.
_ADDED_COLUMNS = {"seed": "INTEGER"}
_LATE_INDEXES = "CREATE INDEX IF NOT EXISTS games_ended ON games (ended_at);"

COLUMNS = ("game_id", "x", "o", "x_kind", "o_kind", "status", "result", "reason", "winner", "board",
           "moves", "illegal_move", "tag", "clock", "started_at", "ended_at", "seed")
MAX_SUMMARIES = 200
_JSON_COLUMNS = ("moves", "illegal_move")


class RecordsError(RuntimeError):
    """The records database cannot be opened or read."""


class GameRecords:
    """The store. One connection, used from one thread (the server's event loop)."""

    def __init__(self, path: str | os.PathLike[str] = ":memory:", *, create: bool = True) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            p = Path(self.path)
            if not create and not p.exists():
                raise RecordsError(f"no records database at {p}; start a server with --db {p} first")
            try:
                p.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise RecordsError(f"cannot create the folder for records database {p}: {exc}") from None
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.db.row_factory = sqlite3.Row
            if self.path != ":memory:":
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA busy_timeout=5000")
            self.db.executescript(SCHEMA)
            have = {row[1] for row in self.db.execute("PRAGMA table_info(games)")}
            for column, kind in _ADDED_COLUMNS.items():
                if column not in have:
                    self.db.execute(f"ALTER TABLE games ADD COLUMN {column} {kind}")
            self.db.executescript(_LATE_INDEXES)
        except sqlite3.DatabaseError as exc:
            raise RecordsError(f"cannot open records database {self.path}: {exc}") from None

    # ------------------------------------------------------------------ writes
    def save(self, record: dict[str, Any]) -> None:
        """Insert or replace one game (start and end of every game)."""
        row = {c: record.get(c) for c in COLUMNS}
        # allow_nan=False: NaN/Infinity are not JSON; a record holding one is refused, never stored
        row["moves"] = json.dumps(record.get("moves") or [], separators=(",", ":"), allow_nan=False)
        row["illegal_move"] = (None if record.get("illegal_move") is None
                               else json.dumps(record["illegal_move"], separators=(",", ":"), allow_nan=False))
        placeholders = ", ".join(f":{c}" for c in COLUMNS)
        self.db.execute(f"INSERT OR REPLACE INTO games ({', '.join(COLUMNS)}) VALUES ({placeholders})", row)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Saves inside the block share one transaction (the server's writes of one loop turn)."""
        self.db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def abort_live(self, now: float | None = None) -> int:
        """Mark every game still ``live`` (a crash or kill left it) as aborted. Returns how many."""
        now = time.time() if now is None else now
        cur = self.db.execute(
            "UPDATE games SET status='aborted', result='aborted', reason='aborted', winner=NULL, "
            "ended_at=COALESCE(ended_at, ?) WHERE status='live'", (now,))
        return cur.rowcount

    def close(self) -> None:
        try:
            if self.path != ":memory:":
                self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self.db.close()

    # ------------------------------------------------------------------ reads
    @staticmethod
    def _row(row: sqlite3.Row) -> dict[str, Any]:
        out = dict(row)
        for c in _JSON_COLUMNS:
            out[c] = json.loads(out[c]) if out[c] else ([] if c == "moves" else None)
        return out

    def get(self, game_id: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT * FROM games WHERE game_id = ?", (game_id,)).fetchone()
        return None if row is None else self._row(row)

    def list(self, *, limit: int | None = 50, player: str | None = None, tag: str | None = None,
             status: str | None = None) -> list[dict[str, Any]]:
        """Newest first."""
        where, args = _player_tag_filter(player, tag)
        if status:
            where.append("status = ?")
            args.append(status)
        sql = "SELECT * FROM games" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY started_at DESC, game_id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [self._row(r) for r in self.db.execute(sql, args)]

    def find(self, prefix: str) -> list[str]:
        """Ids of the games whose id is ``prefix`` or starts with it (at most 10)."""
        exact = self.db.execute("SELECT game_id FROM games WHERE game_id = ?", (prefix,)).fetchone()
        if exact is not None:
            return [exact[0]]
        rows = self.db.execute("SELECT game_id FROM games WHERE substr(game_id, 1, ?) = ? ORDER BY game_id LIMIT 10",
                               (len(prefix), prefix))
        return [r[0] for r in rows]

    def summaries(self, limit: int = 50, player: str | None = None, tag: str | None = None,
                  before: float | None = None) -> list[dict[str, Any]]:
        """Finished and aborted games, newest end first, as ``records`` lines (protocol
        ``list_records``): game_id, x, o, result, reason, ended_at, ply, tag."""
        where, args = _player_tag_filter(player, tag)
        where.insert(0, "status != 'live'")
        if before is not None:
            where.append("ended_at < ?")
            args.append(before)
        args.append(max(1, min(limit, MAX_SUMMARIES)))
        sql = ("SELECT game_id, x, o, COALESCE(result, 'aborted') AS result, COALESCE(reason, 'aborted') AS reason, "
               "ended_at, json_array_length(moves) AS ply, tag FROM games WHERE " + " AND ".join(where) +
               " ORDER BY ended_at DESC, game_id LIMIT ?")
        return [dict(r) for r in self.db.execute(sql, args)]

    def iter_all(self) -> Iterator[dict[str, Any]]:
        """Oldest first, for export."""
        for row in self.db.execute("SELECT * FROM games ORDER BY started_at, game_id"):
            yield self._row(row)

    def count(self, status: str | None = None) -> int:
        if status:
            return self.db.execute("SELECT COUNT(*) FROM games WHERE status = ?", (status,)).fetchone()[0]
        return self.db.execute("SELECT COUNT(*) FROM games").fetchone()[0]


# --------------------------------------------------------------------------- CLI
def _player_tag_filter(player: str | None, tag: str | None) -> tuple[list[str], list[Any]]:
    """SQL conditions and their arguments for games played by ``player`` and tagged ``tag``."""
    where: list[str] = []
    args: list[Any] = []
    if player:
        where.append("(x = ? OR o = ?)")
        args += [player, player]
    if tag:
        where.append("tag = ?")
        args.append(tag)
    return where, args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", default="var/arena.sqlite3", help="records database written by 'autosteer-server serve'")
    sub = parser.add_subparsers(dest="games_command", metavar="ACTION", required=True)
    p_list = sub.add_parser("list", help="newest games first, one line each",
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p_list.add_argument("--limit", type=int, default=20, help="how many games to show")
    p_list.add_argument("--player", help="only games this bot or player played")
    p_list.add_argument("--tag", help="only games with this tag (tournaments tag their games)")
    p_list.add_argument("--status", choices=("live", "finished", "aborted"), help="only games with this status")
    p_list.add_argument("--json", action="store_true",
                        help="print a JSON list (one summary per game, full ids) instead of the table")
    p_show = sub.add_parser("show", help="one game move by move, with its traces",
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p_show.add_argument("game_id", help="the game's id, or any prefix of it that only one game has (see 'games list')")
    p_show.add_argument("--json", action="store_true", help="print the record as JSON")
    p_export = sub.add_parser("export", help="every game as one JSON document",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
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
    except sqlite3.DatabaseError as exc:
        print(f"error: cannot read {args.db}: {exc}", file=sys.stderr)
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
        summaries = [{"game_id": r["game_id"], "status": r["status"], "x": r["x"], "o": r["o"], "result": r["result"],
                      "reason": r["reason"], "winner": r["winner"], "started_at": r["started_at"],
                      "ended_at": r["ended_at"], "moves": [m["cell"] for m in r["moves"]], "tag": r["tag"],
                      "seed": r.get("seed")} for r in rows]
        print(_json_text(summaries, indent=1))
        return 0

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    table = Table(title=Text(f"games in {args.db}"))
    # the id is what 'games show' takes: never cut or wrapped, whatever the terminal width
    table.add_column("game", no_wrap=True, min_width=max([len(r["game_id"]) for r in rows] + [4]), overflow="fold")
    for col in ("started", "X", "O", "result", "reason", "moves", "tag"):
        table.add_column(col)
    for r in rows:
        # Text, not str: what clients sent (names, tags) is shown as typed, never read as Rich markup
        table.add_row(*(Text(str(cell)) for cell in (
            r["game_id"], _when(r["started_at"]), r["x"], r["o"], r["result"] or r["status"], r["reason"] or "",
            "".join(str(m["cell"]) for m in r["moves"]), r["tag"] or "")))
    console.print(table)
    console.print(f"{len(rows)} shown of {records.count()} stored games")
    return 0


def _cmd_show(records: GameRecords, args: argparse.Namespace) -> int:
    from server.game import Board

    matches = records.find(args.game_id) if args.game_id else []
    if not matches:
        print(f"error: no game {args.game_id!r} in {args.db}; 'autosteer-server games list' shows the ids", file=sys.stderr)
        return 1
    if len(matches) > 1:
        more = ", …" if len(matches) == 10 else ""
        print(f"error: {args.game_id!r} is the start of several game ids ({', '.join(matches)}{more}); give more of the id",
              file=sys.stderr)
        return 1
    rec = records.get(matches[0])
    assert rec is not None
    if args.json:
        print(_json_text(rec, indent=2))
        return 0
    seed = f"  seed {rec['seed']}" if rec.get("seed") is not None else ""
    print(f"game {rec['game_id']}: {rec['x']} (X, {rec['x_kind']}) vs {rec['o']} (O, {rec['o_kind']})"
          f"  clock {rec['clock']:g} s  tag {rec['tag'] or '-'}{seed}")
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


def _cmd_export(records: GameRecords, args: argparse.Namespace) -> int:
    games = [g for g in records.iter_all()
             if (not args.player or args.player in (g["x"], g["o"])) and (not args.tag or g["tag"] == args.tag)]
    doc = {"format": "autosteer-arena-games", "version": 1, "exported_at": time.time(), "count": len(games), "games": games}
    text = _json_text(doc, indent=1)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
        print(f"exported {len(games)} games to {out}", file=sys.stderr)
    else:
        sys.stdout.write(text + "\n")
    return 0
