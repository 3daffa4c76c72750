"""Game records: the store (:mod:`server.records.sql`, the SQL both backends share; SQLite in
:mod:`server.records.sqlite`, PostgreSQL in :mod:`server.records.postgres`), the writer that
stores a server's records beside its event loop (:mod:`server.records.writer`) and
``autosteer-server games`` (:mod:`server.records.cli`).

Both backends are imported here: ``GameRecords(target)`` picks the one that opens ``target``.
"""

from server.records.postgres import PostgresRecords
from server.records.sql import GameRecords, RecordsError, describe_target, is_postgres_url, json_bytes
from server.records.sqlite import SqliteRecords

__all__ = [
    "GameRecords",
    "PostgresRecords",
    "RecordsError",
    "SqliteRecords",
    "describe_target",
    "is_postgres_url",
    "json_bytes",
]
