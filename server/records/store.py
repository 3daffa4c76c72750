"""Game records in SQLite (WAL, the default) or PostgreSQL, and ``autosteer-server games list|show|export``.

Every game is inserted when it starts (status ``live``), updated after every move (so a
server killed with ``kill -9`` leaves its games' moves on disk) and when it ends, with
players, their kinds, every move (seat, cell, unix time, trace), result, reason, the tag
an arranged game carries, its move clock and the id of the server that played it. The
server writes from a child process of its own (``server/records/writer.py``), one
transaction for all the writes of a loop turn
(well under a millisecond in SQLite's WAL mode with ``synchronous=NORMAL``); after a game's
first write only its board and moves are rewritten, until it ends. A server that crashed leaves games
``live``; :meth:`GameRecords.abort_live` (run at every start) marks them ``aborted`` —
all of them, or only the ones a given server played when several servers share one
database.

``GameRecords(target)`` opens the store a target names: a file path or ``":memory:"``
(SQLite) or a ``postgresql://`` URL (PostgreSQL, several servers sharing one store; the
schema is created or migrated at open, under an advisory lock so servers may start
together). Both backends run the same SQL except for the few lines each class overrides.

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
import builtins
import contextlib
import json
import math
import operator
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any, Iterator, cast

import orjson

_TABLE = """
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
    moves       TEXT NOT NULL,          -- JSON list of {{ply, seat, cell, at, trace}}
    illegal_move TEXT,                  -- JSON {{ply, seat, cell, at, trace, code}} or NULL
    tag         TEXT,
    clock       {real},
    started_at  {real} NOT NULL,
    ended_at    {real},
    seed        {bigint},               -- the game's seed for house bots, or NULL
    server_id   TEXT                    -- the server that played it (several servers, one store), or NULL
);
CREATE INDEX IF NOT EXISTS games_started ON games (started_at);
CREATE INDEX IF NOT EXISTS games_x ON games (x);
CREATE INDEX IF NOT EXISTS games_o ON games (o);
CREATE INDEX IF NOT EXISTS games_tag ON games (tag);
CREATE INDEX IF NOT EXISTS games_status ON games (status);
"""
SCHEMA = _TABLE.format(real="REAL", bigint="INTEGER")  # SQLite
# Columns added after the first release, with their type: added to older databases on open.
_ADDED_COLUMNS = {"seed": "INTEGER", "server_id": "TEXT"}
_LATE_INDEXES = "CREATE INDEX IF NOT EXISTS games_ended ON games (ended_at);"

COLUMNS = (
    "game_id",
    "x",
    "o",
    "x_kind",
    "o_kind",
    "status",
    "result",
    "reason",
    "winner",
    "board",
    "moves",
    "illegal_move",
    "tag",
    "clock",
    "started_at",
    "ended_at",
    "seed",
    "server_id",
)
MAX_SUMMARIES = 200
_JSON_COLUMNS = ("moves", "illegal_move")
_UPSERT = (
    f"INSERT INTO games ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)}) "
    f"ON CONFLICT (game_id) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS[1:])
)


# A game this store wrote as live: its moves rewrite two columns, its end the columns that
# change at the end (the indexes on players, tag and start are not touched).
_PROGRESS = "UPDATE games SET board = ?, moves = ? WHERE game_id = ? AND status = 'live'"
_END = (
    "UPDATE games SET status = ?, result = ?, reason = ?, winner = ?, board = ?, moves = ?, illegal_move = ?, "
    "ended_at = ? WHERE game_id = ? AND status = 'live'"
)
_MOVES_AT, _ILLEGAL_AT = COLUMNS.index("moves"), COLUMNS.index("illegal_move")


_TRACE, _AT = operator.itemgetter("trace"), operator.itemgetter("at")


def json_bytes(value: Any, moves: list[dict[str, Any]]) -> bytes:
    """``value`` (which holds ``moves``) as compact JSON, refusing NaN and infinities
    (``ValueError``). Moves without traces hold only integers, strings and ``time.time()``
    readings: orjson (~8x faster). A trace may hold anything a client sent, so moves with
    one go through ``json.dumps(allow_nan=False)``, which refuses NaN where orjson would
    write null (NaN is truthy: moves whose traces are all falsy hold none)."""
    try:
        if not any(map(_TRACE, moves)) and all(map(math.isfinite, map(_AT, moves))):
            return orjson.dumps(value)
    except (TypeError, KeyError):  # an integer beyond 64 bits; a move without a trace or a time
        pass
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()


def _moves_json(moves: list[dict[str, Any]]) -> str:
    """The ``moves`` column."""
    return json_bytes(moves, moves).decode()


class RecordsError(RuntimeError):
    """The records database cannot be opened or read."""


def is_postgres_url(target: str | os.PathLike[str]) -> bool:
    return str(target).startswith(("postgresql://", "postgres://"))


def describe_target(target: str | os.PathLike[str]) -> str:
    """``target`` for messages, without a password.

    >>> describe_target("postgresql://arena:secret@db:5432/arena")
    'postgresql://arena:***@db:5432/arena'
    """
    text = str(target)
    if is_postgres_url(text) and "@" in text.split("//", 1)[1]:
        scheme, rest = text.split("//", 1)
        creds, host = rest.rsplit("@", 1)
        if ":" in creds:
            creds = creds.split(":", 1)[0] + ":***"
        return f"{scheme}//{creds}@{host}"
    return text


class GameRecords:
    """The store: the SQL both backends share. ``GameRecords(target)`` returns a
    :class:`SqliteRecords` or a :class:`PostgresRecords`. One connection, used from one
    thread (the server's event loop)."""

    errors: tuple[type[BaseException], ...] = (sqlite3.DatabaseError,)
    ply_sql = "json_array_length(moves)"

    def __new__(cls, target: str | os.PathLike[str] = ":memory:", **kwargs: Any) -> "GameRecords":
        if cls is GameRecords:
            cls = PostgresRecords if is_postgres_url(target) else SqliteRecords
        return super().__new__(cls)

    db: Any
    path: str
    _live_rows: set[str]  # games this store wrote as live (their later moves update two columns)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._live_rows = set()

    # ------------------------------------------------------------------ backend hooks
    def execute(self, sql: str, args: Any = ()) -> Any:
        """Run one statement written with ``?`` placeholders; returns the cursor."""
        return self.db.execute(sql, args)

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------ writes
    def save(self, record: dict[str, Any]) -> None:
        """Insert or update one game (at its start, after each move and at its end).

        A game this store already wrote as live has only its board and moves written again
        after each move (an ``UPDATE`` of two columns touches no index: ~5 µs against ~18 µs
        for the whole row in SQLite), and at its end the columns an end changes (~7 µs); its
        start writes the whole row."""
        # cast: every record carries its game_id (Game.record)
        game_id, live = cast(str, record.get("game_id")), record.get("status") == "live"
        moves = _moves_json(record.get("moves") or [])
        # allow_nan=False: NaN/Infinity are not JSON; a record holding one is refused, never stored
        illegal = (
            None
            if record.get("illegal_move") is None
            else json.dumps(record["illegal_move"], separators=(",", ":"), allow_nan=False)
        )
        if game_id in self._live_rows:
            if live:
                written = self.execute(_PROGRESS, (record.get("board"), moves, game_id)).rowcount
            else:
                written = self.execute(
                    _END,
                    (
                        record.get("status"),
                        record.get("result"),
                        record.get("reason"),
                        record.get("winner"),
                        record.get("board"),
                        moves,
                        illegal,
                        record.get("ended_at"),
                        game_id,
                    ),
                ).rowcount
            if written == 1:
                if not live:
                    self._live_rows.discard(game_id)
                return
        row = [record.get(c) for c in COLUMNS]
        row[_MOVES_AT], row[_ILLEGAL_AT] = moves, illegal
        self.execute(_UPSERT, row)
        if live:
            self._live_rows.add(game_id)
        else:
            self._live_rows.discard(game_id)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Saves inside the block share one transaction (the server's writes of one loop turn)."""
        self.execute("BEGIN")
        try:
            yield
        except BaseException:
            self.execute("ROLLBACK")
            raise
        self.execute("COMMIT")

    def abort_live(self, now: float | None = None, *, server_id: str | None = None) -> int:
        """Mark every game still ``live`` (a crash or kill left it) as aborted: every one, or
        with ``server_id`` only that server's (and those no server claimed). Returns how many."""
        now = time.time() if now is None else now
        sql = (
            "UPDATE games SET status='aborted', result='aborted', reason='aborted', winner=NULL, "
            "ended_at=COALESCE(ended_at, ?) WHERE status='live'"
        )
        args: list[Any] = [now]
        if server_id is not None:
            sql += " AND (server_id = ? OR server_id IS NULL)"
            args.append(server_id)
        return self.execute(sql, args).rowcount

    # ------------------------------------------------------------------ reads
    @staticmethod
    def _row(row: Any) -> dict[str, Any]:
        """A stored row as a record. A JSON column that cannot be read back (nested deeper
        than the decoder allows, or not JSON) is kept as its stored text in ``<column>_json``
        and read as empty, so one bad row never breaks a listing or an export."""
        out = dict(row)
        for c in _JSON_COLUMNS:
            text = out.get(c)
            try:
                out[c] = json.loads(text) if text else ([] if c == "moves" else None)
            except (ValueError, RecursionError):
                out[c] = [] if c == "moves" else None
                out[f"{c}_json"] = text
        return out

    def get(self, game_id: str, *, raw: bool = False) -> dict[str, Any] | None:
        """One game, or None. ``raw`` leaves the JSON columns as their stored text."""
        row = self.execute("SELECT * FROM games WHERE game_id = ?", (game_id,)).fetchone()
        return None if row is None else dict(row) if raw else self._row(row)

    def list(
        self, *, limit: int | None = 50, player: str | None = None, tag: str | None = None, status: str | None = None
    ) -> list[dict[str, Any]]:
        """Newest first."""
        where, args = _player_tag_filter(player, tag)
        if status:
            where.append("status = ?")
            args.append(status)
        sql = (
            "SELECT * FROM games"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY started_at DESC, game_id"
        )
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [self._row(r) for r in self.execute(sql, args)]

    def find(self, prefix: str) -> builtins.list[str]:  # builtins: list here is the method above
        """Ids of the games whose id is ``prefix`` or starts with it (at most 10)."""
        exact = self.execute("SELECT game_id FROM games WHERE game_id = ?", (prefix,)).fetchone()
        if exact is not None:
            return [exact["game_id"]]
        rows = self.execute(
            "SELECT game_id FROM games WHERE substr(game_id, 1, CAST(? AS INTEGER)) = ? ORDER BY game_id LIMIT 10",
            (len(prefix), prefix),
        )
        return [r["game_id"] for r in rows]

    def summaries(
        self, limit: int = 50, player: str | None = None, tag: str | None = None, before: float | None = None
    ) -> builtins.list[dict[str, Any]]:
        """Finished and aborted games, newest end first, as ``records`` lines (protocol
        ``list_records``): game_id, x, o, result, reason, ended_at, ply, tag."""
        where, args = _player_tag_filter(player, tag)
        where.insert(0, "status != 'live'")
        if before is not None:
            where.append("ended_at < ?")
            args.append(before)
        args.append(max(1, min(limit, MAX_SUMMARIES)))
        sql = (
            "SELECT game_id, x, o, COALESCE(result, 'aborted') AS result, COALESCE(reason, 'aborted') AS reason, "
            f"ended_at, {self.ply_sql} AS ply, tag FROM games WHERE "
            + " AND ".join(where)
            + " ORDER BY ended_at DESC NULLS LAST, game_id LIMIT ?"
        )
        out = []
        for r in self.execute(sql, args):
            out.append(dict(r))
        return out

    def iter_all(
        self, *, player: str | None = None, tag: str | None = None, raw: bool = False
    ) -> Iterator[dict[str, Any]]:
        """Oldest first, for export. ``raw`` leaves the JSON columns as their stored text."""
        where, args = _player_tag_filter(player, tag)
        sql = (
            "SELECT * FROM games" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY started_at, game_id"
        )
        for row in self.execute(sql, args):
            yield dict(row) if raw else self._row(row)

    def count(self, status: str | None = None, *, player: str | None = None, tag: str | None = None) -> int:
        where, args = _player_tag_filter(player, tag)
        if status:
            where.append("status = ?")
            args.append(status)
        sql = "SELECT COUNT(*) AS n FROM games" + (" WHERE " + " AND ".join(where) if where else "")
        return int(self.execute(sql, args).fetchone()["n"])


class SqliteRecords(GameRecords):
    """The embedded default: one SQLite file in WAL mode (or ``":memory:"``)."""

    def __init__(self, path: str | os.PathLike[str] = ":memory:", *, create: bool = True) -> None:
        super().__init__()
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

    def close(self) -> None:
        try:
            if self.path != ":memory:":
                self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self.db.close()


class PostgresRecords(GameRecords):
    """PostgreSQL through psycopg 3: the store several servers share. Autocommit, one
    connection; placeholders ``?`` become ``%s``."""

    ply_sql = "json_array_length(moves::json)"
    _MIGRATION_LOCK = 0x6175746F  # pg_advisory_lock key: one server migrates at a time

    def __init__(self, url: str, *, create: bool = True, connect_timeout: float = 10.0) -> None:
        import psycopg
        from psycopg.rows import dict_row

        super().__init__()
        self.errors = (psycopg.Error,)
        self.path = url
        try:
            self.db = psycopg.connect(url, autocommit=True, row_factory=dict_row, connect_timeout=int(connect_timeout))
        except psycopg.Error as exc:
            raise RecordsError(
                f"cannot connect to records database {describe_target(url)}: "
                f"{str(exc).strip().splitlines()[-1] if str(exc).strip() else exc}"
            ) from None
        try:
            exists = self.db.execute("SELECT to_regclass('games') IS NOT NULL AS e").fetchone()["e"]
            if not create and not exists:
                raise RecordsError(f"no games table in {describe_target(url)}; start a server with --db on it first")
            self.db.execute("SELECT pg_advisory_lock(%s)", (self._MIGRATION_LOCK,))
            try:
                for statement in _TABLE.format(real="DOUBLE PRECISION", bigint="BIGINT").split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                for column, kind in _ADDED_COLUMNS.items():
                    kind = "BIGINT" if kind == "INTEGER" else kind
                    self.db.execute(f"ALTER TABLE games ADD COLUMN IF NOT EXISTS {column} {kind}")
                self.db.execute(_LATE_INDEXES)
            finally:
                self.db.execute("SELECT pg_advisory_unlock(%s)", (self._MIGRATION_LOCK,))
        except psycopg.Error as exc:
            self.db.close()
            raise RecordsError(f"cannot open records database {describe_target(url)}: {exc}") from None
        except RecordsError:
            self.db.close()
            raise

    def execute(self, sql: str, args: Any = ()) -> Any:
        self._ensure_connected()
        return self.db.execute(sql.replace("?", "%s"), args)

    def _ensure_connected(self) -> None:
        """A connection the database dropped (a restart, a failover) is replaced, once per
        call; the write that found it broken failed, and the server's next write of that
        game (every write is the whole record) stores it."""
        if not self.db.broken:
            return
        import psycopg
        from psycopg.rows import dict_row

        try:
            self.db.close()
            self.db = psycopg.connect(self.path, autocommit=True, row_factory=dict_row, connect_timeout=10)
        except psycopg.Error as exc:
            raise RecordsError(
                f"lost the records database {describe_target(self.path)} and cannot reconnect: {exc}"
            ) from None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self._ensure_connected()
        with self.db.transaction():
            yield


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
        for c in _JSON_COLUMNS:
            text = row.get(c)
            game[c] = json.loads(text) if text else ([] if c == "moves" else None)
        try:
            return json.dumps(game, allow_nan=False, separators=(",", ":")), 0, None
        except ValueError:  # NaN/Infinity, from an older server: written as null
            clean, replaced = replace_non_finite(game)
            return json.dumps(clean, allow_nan=False, separators=(",", ":")), replaced, None
    except (ValueError, RecursionError) as exc:
        kept = {k: v for k, v in row.items() if k not in _JSON_COLUMNS}
        for c in _JSON_COLUMNS:
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
