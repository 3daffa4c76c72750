"""Game records: the store (SQLite or PostgreSQL, ``autosteer-server games``;
:mod:`server.records.store`) and the writer that stores a server's records beside its
event loop (:mod:`server.records.writer`)."""
