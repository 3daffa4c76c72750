"""The records store in PostgreSQL (psycopg 3): the store several servers share."""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator

from server.records.sql import (
    ADDED_COLUMNS,
    LATE_INDEXES,
    TABLE,
    GameRecords,
    RecordsError,
    describe_target,
    is_postgres_url,
)


class PostgresRecords(GameRecords):
    """PostgreSQL through psycopg 3: the store several servers share. Autocommit, one
    connection; placeholders ``?`` become ``%s``."""

    ply_sql = "json_array_length(moves::json)"
    _MIGRATION_LOCK = 0x6175746F  # pg_advisory_lock key: one server migrates at a time

    @staticmethod
    def opens(target: str | os.PathLike[str]) -> bool:
        return is_postgres_url(target)

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
                for statement in TABLE.format(real="DOUBLE PRECISION", bigint="BIGINT").split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                for column, kind in ADDED_COLUMNS.items():
                    kind = "BIGINT" if kind == "INTEGER" else kind
                    self.db.execute(f"ALTER TABLE games ADD COLUMN IF NOT EXISTS {column} {kind}")
                self.db.execute(LATE_INDEXES)
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
