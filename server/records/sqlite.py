"""The records store in SQLite: one file in WAL mode (the default), or ``":memory:"``."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from server.records.sql import ADDED_COLUMNS, LATE_INDEXES, TABLE, GameRecords, RecordsError, is_postgres_url

SCHEMA = TABLE.format(real="REAL", bigint="INTEGER")


class SqliteRecords(GameRecords):
    """The embedded default: one SQLite file in WAL mode (or ``":memory:"``)."""

    errors = (sqlite3.DatabaseError,)
    ply_sql = "json_array_length(moves)"

    @staticmethod
    def opens(target: str | os.PathLike[str]) -> bool:
        return not is_postgres_url(target)

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
            for column, kind in ADDED_COLUMNS.items():
                if column not in have:
                    self.db.execute(f"ALTER TABLE games ADD COLUMN {column} {kind}")
            self.db.executescript(LATE_INDEXES)
        except sqlite3.DatabaseError as exc:
            raise RecordsError(f"cannot open records database {self.path}: {exc}") from None

    def close(self) -> None:
        try:
            if self.path != ":memory:":
                self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self.db.close()
