"""A tournament's plan: its configuration, the round-robin schedule with each game's seed,
and the errors a tournament raises."""

from __future__ import annotations

import itertools
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from server.seeding import game_seed


class TournamentError(RuntimeError):
    """The tournament cannot run as asked (unknown bot, unreachable server...)."""


class TournamentIncomplete(TournamentError):
    """The tournament stopped part way (a bot left, the server went away); ``report``
    holds the games played until then, marked ``incomplete``."""

    def __init__(self, message: str, report: dict[str, Any]) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class TournamentConfig:
    bots: tuple[str, ...]
    games: int = 20  # per pairing
    clock: float | None = None  # seconds per move; None: the server's default
    seed: int = 0  # seeds every game (game_seed), the bootstrap and the in-process server
    concurrency: int = 16  # games in flight at once
    bootstrap: int = 1000
    anchor: str | None = None  # None: mean rating = anchor_rating
    anchor_rating: float = 1500.0
    tournament_id: str = ""

    def __post_init__(self) -> None:
        if len(self.bots) < 2:
            raise TournamentError(f"a tournament needs at least two bots, got {list(self.bots)}")
        dupes = sorted({b for b in self.bots if self.bots.count(b) > 1})
        if dupes:
            raise TournamentError(
                f"each bot may be listed once; repeated: {', '.join(dupes)} "
                "(connect a second copy under another name, e.g. --spawn random2=random)"
            )
        if self.games < 1:
            raise TournamentError(f"--games must be >= 1, got {self.games}")
        if self.concurrency < 1:
            raise TournamentError(f"--concurrency must be >= 1, got {self.concurrency}")
        if self.tournament_id and not re.fullmatch(r"[A-Za-z0-9_.\-]{1,40}", self.tournament_id):
            raise TournamentError(
                f"a tournament id is 1-40 letters, digits, '_', '.' or '-', got {self.tournament_id!r}"
            )
        if self.anchor is not None and self.anchor not in self.bots:
            raise TournamentError(f"anchor {self.anchor!r} is not one of the bots: {', '.join(self.bots)}")

    def schedule(self) -> list[tuple[str, str]]:
        """(x, o) of every game: each pairing ``games`` times, sides alternated, pairings
        interleaved so partial results stay balanced."""
        per_pair = []
        for a, b in itertools.combinations(self.bots, 2):
            per_pair.append([(a, b) if i % 2 == 0 else (b, a) for i in range(self.games)])
        return [g for round_ in zip(*per_pair) for g in round_]

    def game_seed(self, a: str, b: str, index: int) -> int:
        """The seed sent with game ``index`` (0-based) of the pairing ``a`` vs ``b`` (a listed
        first): fixed by ``seed``, the pairing and the index, whatever order games run in."""
        return game_seed(self.seed, "tournament", a, b, index)

    def arranged_games(self) -> list["ScheduledGame"]:
        """:meth:`schedule` with each game's place: its number in the schedule, the pairing
        it belongs to, its index in that pairing and its seed."""
        order = {name: i for i, name in enumerate(self.bots)}
        played: dict[tuple[str, str], int] = {}
        out = []
        for number, (x, o) in enumerate(self.schedule()):
            a, b = sorted((x, o), key=order.__getitem__)
            index = played.get((a, b), 0)
            played[(a, b)] = index + 1
            out.append(ScheduledGame(number, x, o, index, self.game_seed(a, b, index)))
        return out


@dataclass(frozen=True)
class ScheduledGame:
    """One game of the round robin, before it is played."""

    number: int  # place in the schedule (0-based); the report lists games in this order
    x: str
    o: str
    index: int  # 0-based index within its pairing
    seed: int  # the protocol's per-game seed sent with arrange


def new_tournament_id() -> str:
    return time.strftime("t%Y%m%d-%H%M%S-", time.gmtime()) + secrets.token_hex(2)
