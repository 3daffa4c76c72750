"""Log lines: the server's one line per finished game (:func:`format_game_line`, also
what ``autosteer-server watch`` prints for a result), and client text made safe for a log
line or a terminal (:func:`log_text`, :class:`LogLineFormatter`)."""

from __future__ import annotations

import logging
from typing import Any


_REASON_TEXT = {
    "line": "three in a row",
    "full_board": "full board",
    "resign": "resignation",
    "timeout": "timeout",
    "disconnect": "disconnect",
    "illegal_move": "illegal move",
}


def format_game_line(record: dict[str, Any]) -> str:
    """The server's one line per finished game.

    >>> format_game_line({"game_id": "g1", "x": "ann", "o": "minimax", "result": "O", "reason": "line",
    ...                   "winner": "minimax", "moves": [{"cell": 1}, {"cell": 5}], "tag": None})
    'game g1: ann (X) vs minimax (O) -> minimax (O) won by three in a row, moves 15'
    >>> format_game_line({"game_id": "g2", "x": "a", "o": "b", "result": "aborted", "reason": "aborted", "moves": []})
    'game g2: a (X) vs b (O) -> aborted (server stopped), moves -'
    """
    cells = "".join(str(m["cell"]) for m in record["moves"])
    result, reason = record.get("result"), record.get("reason")
    why = _REASON_TEXT.get(reason or "", reason or "unknown reason")
    if result == "aborted":
        outcome = "aborted (server stopped)" if reason in (None, "aborted") else f"aborted ({why})"
    elif result == "draw":
        outcome = f"draw by {why}"
    else:
        winner = record.get("winner") or (record["x"] if result == "X" else record["o"])
        outcome = f"{winner} ({result}) won by {why}"
    tag = f" [{log_text(record['tag'])}]" if record.get("tag") else ""
    seed = f" seed {record['seed']}" if record.get("seed") is not None else ""
    return (
        f"game {record['game_id']}: {log_text(record['x'])} (X) vs {log_text(record['o'])} (O) -> "
        f"{log_text(outcome)}, moves {cells or '-'}{tag}{seed}"
    )


def log_text(text: Any) -> str:
    """Client text made safe for a log line or a terminal: every character that is not
    printable (newlines, escape codes, lone surrogates…) is written as its escape, so a
    client cannot forge log lines or drive the operator's terminal.

    >>> log_text("ok [x]"), log_text("a\\ngame g9: forged"), log_text("\\x1b[31mred")
    ('ok [x]', 'a\\\\ngame g9: forged', '\\\\x1b[31mred')
    """
    text = str(text)
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape", "backslashreplace").decode("ascii") for c in text
    )


class LogLineFormatter(logging.Formatter):
    """One log record, one line: the message (which may quote client text, also in the
    websockets library's records) goes through :func:`log_text`. Tracebacks stay as they are."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return log_text(super().formatMessage(record))
