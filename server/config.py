"""The game server's configuration: :class:`ServerConfig`, one explicit dataclass whose
defaults are the command line's defaults, checked when it is made."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from server.solver import TieBreak


@dataclass
class ServerConfig:
    """Everything the server can be configured with; the defaults are the CLI's defaults.

    Times are seconds. ``db_path`` ``":memory:"`` keeps records in memory (tests).
    """

    host: str = "127.0.0.1"
    port: int = 8765
    db_path: str = "var/arena.sqlite3"
    move_clock: float = 30.0  # default seconds per move; a challenge may set its own
    grace: float = 15.0  # seconds a disconnected session may take to resume
    house_bots: bool = True  # serve the in-process house bots (minimax, random and the graded levels)
    seed: int | None = None  # seeds house bots and random seat draws (reproducible games)
    minimax_tiebreak: TieBreak = "random"
    challenge_timeout: float = 30.0  # an offer unanswered this long is declined
    max_frame_bytes: int = 64 * 1024  # larger frames close the connection with 1009
    # A bot playing 64 games at once answers them in one burst, so the bucket is large.
    rate: float = 100.0  # messages per second refilled into each connection's bucket
    burst: int = 200  # bucket size: messages a connection may send at once
    flood_close: int = 200  # refusals in a row (rate_limited) before closing with 1008
    max_connections_per_address: int = 64
    max_spectators: int = 64  # per game
    max_connections: int = 4096
    # live games (and pending offers) a session may have opened with challenge/arrange at once,
    # and all sessions from one address together; games it is challenged to do not count
    max_live_games_per_session: int = 64
    max_live_games_per_address: int = 256
    ping_interval: float | None = 20.0  # websocket keepalive
    send_queue_bytes: int = 16 * 1024 * 1024  # a client that falls this far behind reading is disconnected
    finished_games_kept: int = 2048  # finished games remembered in memory (older: from records)
    records_process: bool = True  # store records from a child process (else a thread); server/records/writer.py

    def __post_init__(self) -> None:
        checks = [
            (self.move_clock > 0, "move_clock must be > 0"),
            (self.grace >= 0, "grace must be >= 0"),
            (self.challenge_timeout > 0, "challenge_timeout must be > 0"),
            (self.max_frame_bytes >= 1024, "max_frame_bytes must be >= 1024"),
            (self.rate > 0, "rate must be > 0"),
            (self.burst >= 1, "burst must be >= 1"),
            (self.flood_close >= 1, "flood_close must be >= 1"),
            (self.max_connections_per_address >= 1, "max_connections_per_address must be >= 1"),
            (self.max_spectators >= 0, "max_spectators must be >= 0"),
            (self.max_live_games_per_session >= 1, "max_live_games_per_session must be >= 1"),
            (self.max_live_games_per_address >= 1, "max_live_games_per_address must be >= 1"),
            (0 <= self.port <= 65535, "port must be 0-65535"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"invalid server configuration: {message}")
