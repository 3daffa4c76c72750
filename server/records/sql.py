"""Game records in SQL: the ``games`` table and the store both backends share,
:class:`GameRecords`; SQLite (WAL, the default; :mod:`server.records.sqlite`) and
PostgreSQL (:mod:`server.records.postgres`) override only the few lines that differ.

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
together). It asks each backend class in turn whether it :meth:`~GameRecords.opens` the
target; the package (``server/records/__init__.py``) imports both, so both are there to ask.

>>> rec = GameRecords(":memory:")
>>> rec.save({"game_id": "g1", "x": "ann", "o": "minimax", "status": "live", "board": ".........",
...           "moves": [], "clock": 30.0, "started_at": 1.0})
>>> rec.abort_live(now=2.0)
1
>>> rec.get("g1")["result"], rec.get("g1")["reason"]
('aborted', 'aborted')
"""

from __future__ import annotations

import builtins
import contextlib
import json
import math
import operator
import os
import time
from typing import Any, Iterator, cast

import orjson

TABLE = """
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
# Columns added after the first release, with their type: added to older databases on open.
ADDED_COLUMNS = {"seed": "INTEGER", "server_id": "TEXT"}
LATE_INDEXES = "CREATE INDEX IF NOT EXISTS games_ended ON games (ended_at);"

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
JSON_COLUMNS = ("moves", "illegal_move")
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


def player_tag_filter(player: str | None, tag: str | None) -> tuple[list[str], list[Any]]:
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


class GameRecords:
    """The store: the SQL both backends share. ``GameRecords(target)`` returns the backend
    that opens ``target`` (:class:`~server.records.sqlite.SqliteRecords` or
    :class:`~server.records.postgres.PostgresRecords`). One connection, used from one
    thread (the server's event loop)."""

    errors: tuple[type[BaseException], ...]  # what the backend's driver raises
    ply_sql: str  # the SQL for a game's ply, from its moves column

    def __new__(cls, target: str | os.PathLike[str] = ":memory:", **kwargs: Any) -> "GameRecords":
        if cls is GameRecords:
            backends = [backend for backend in GameRecords.__subclasses__() if backend.opens(target)]
            if not backends:
                raise RecordsError(f"no records backend opens {describe_target(target)}")
            cls = backends[0]
        return super().__new__(cls)

    @staticmethod
    def opens(target: str | os.PathLike[str]) -> bool:
        """Whether this backend opens ``target``."""
        return False

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
        for c in JSON_COLUMNS:
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
        where, args = player_tag_filter(player, tag)
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
        where, args = player_tag_filter(player, tag)
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
        where, args = player_tag_filter(player, tag)
        sql = (
            "SELECT * FROM games" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY started_at, game_id"
        )
        for row in self.execute(sql, args):
            yield dict(row) if raw else self._row(row)

    def count(self, status: str | None = None, *, player: str | None = None, tag: str | None = None) -> int:
        where, args = player_tag_filter(player, tag)
        if status:
            where.append("status = ?")
            args.append(status)
        sql = "SELECT COUNT(*) AS n FROM games" + (" WHERE " + " AND ".join(where) if where else "")
        return int(self.execute(sql, args).fetchone()["n"])
