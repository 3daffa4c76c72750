"""Playing a tournament through a server: the organiser's connection (:class:`Organizer`,
which arranges bot-vs-bot games and collects each ``game_over``) and :func:`run_tournament`,
which plays the whole round robin and returns the report."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import replace
from typing import Any, Callable, Sequence

from bots.tournament.results import summarise
from bots.tournament.schedule import (
    ScheduledGame,
    TournamentConfig,
    TournamentError,
    TournamentIncomplete,
    new_tournament_id,
)


class Organizer:
    """A player connection that arranges bot-vs-bot games and waits for their results: a
    :class:`client.aio.ArenaClient` whose failures are :class:`TournamentError`."""

    def __init__(
        self, url: str, name: str, *, send_rate: float = 20.0, send_burst: int = 40, open_timeout: float = 10.0
    ) -> None:
        self.url, self.name = url, name
        self.send_rate, self.send_burst, self.open_timeout = send_rate, send_burst, open_timeout
        self._arena: Any = None

    async def __aenter__(self) -> "Organizer":
        from client.aio import ArenaClient, HelloError, SendPacer
        from client.core import ClientCore

        self._arena = ArenaClient(
            self.url,
            ClientCore(self.name, id_prefix="t"),
            open_timeout=self.open_timeout,
            pacer=SendPacer(self.send_rate, self.send_burst),
            max_size=4 << 20,
        )
        try:
            await self._arena.connect()
        except HelloError as exc:
            raise TournamentError(f"the server refused the organiser: {exc}") from None
        except (OSError, asyncio.TimeoutError) as exc:
            raise TournamentError(f"cannot reach the server at {self.url}: {exc}") from None
        except Exception as exc:  # websockets' handshake and URI errors
            raise TournamentError(f"cannot connect to {self.url}: {type(exc).__name__}: {exc}") from None
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._arena is not None:
            await self._arena.close()

    async def request(self, frame: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        """Send ``frame`` with a fresh id; return the reply carrying that id (or the error)."""
        from client.aio import ClientError

        fields = {k: v for k, v in frame.items() if k != "type"}
        try:
            event = await self._arena.request(self._arena.core.request(frame["type"], **fields), timeout)
        except ClientError as exc:
            raise TournamentError(str(exc)) from None
        return event.frame

    async def list_bots(self) -> list[dict[str, Any]]:
        reply = await self.request({"type": "list_bots"})
        return list(reply.get("bots", []))

    async def play(
        self,
        x: str,
        o: str,
        *,
        clock: float | None,
        tag: str,
        game_timeout: float,
        seed: int | None = None,
        retry_for: float = 120.0,
    ) -> dict[str, Any]:
        """Arrange ``x`` vs ``o`` (with the per-game ``seed`` for house bots, if given) and
        return its ``game_over`` frame. A busy or declining bot is retried with growing
        pauses for up to ``retry_for`` seconds."""
        from client.aio import ClientError

        try:
            return await self._arena.play_arranged(
                x, o, clock=clock, tag=tag, seed=seed, game_timeout=game_timeout, retry_for=retry_for
            )
        except ClientError as exc:
            raise TournamentError(str(exc)) from None


ProgressHook = Callable[[dict[str, Any]], None]


async def run_tournament(
    url: str,
    config: TournamentConfig,
    *,
    on_game: ProgressHook | None = None,
    wait_for_bots: float = 0.0,
    send_rate: float = 20.0,
    send_burst: int = 40,
    game_timeout: float | None = None,
) -> dict[str, Any]:
    """Play the whole round robin on the server at ``url``; return the report dict.

    Each game is arranged with its seed from :meth:`TournamentConfig.game_seed`, and the
    report lists the games in schedule order (not the order they finished), so with house
    bots the same ``config.seed`` gives the same report (games, ratings) at any
    ``concurrency``."""
    tid = config.tournament_id or new_tournament_id()
    if not config.tournament_id:
        config = replace(config, tournament_id=tid)
    started = time.time()
    async with Organizer(url, f"tournament-{tid}"[:32], send_rate=send_rate, send_burst=send_burst) as org:
        capacity = await _wait_for_bots(org, config.bots, wait_for_bots)
        limits = {name: asyncio.Semaphore(cap) for name, cap in capacity.items() if cap is not None}
        slots = asyncio.Semaphore(config.concurrency)
        clock = config.clock or 30.0
        per_game = game_timeout or clock * 9 + 30.0
        finished: list[tuple[int, dict[str, Any]]] = []  # (schedule number, game_over + seed)

        async def one(game: ScheduledGame) -> None:
            async with contextlib.AsyncExitStack() as stack:
                await stack.enter_async_context(slots)
                for name in sorted({game.x, game.o}):  # fixed order: no deadlock between two games
                    if name in limits:
                        await stack.enter_async_context(limits[name])
                over = await org.play(
                    game.x, game.o, clock=config.clock, tag=tid, game_timeout=per_game, seed=game.seed
                )
            over = {**over, "seed": game.seed}
            finished.append((game.number, over))
            if on_game is not None:
                on_game(over)

        tasks = [asyncio.create_task(one(game)) for game in config.arranged_games()]
        failure: TournamentError | None = None
        try:
            await asyncio.gather(*tasks)
        except TournamentError as exc:
            failure = exc
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    results = [over for _, over in sorted(finished, key=lambda item: item[0])]
    report = summarise(config, results)
    report["server"] = url
    report["started_at"] = started
    report["finished_at"] = time.time()
    if failure is not None:
        report["incomplete"] = str(failure)
        raise TournamentIncomplete(f"stopped after {len(results)} of {len(tasks)} games: {failure}", report)
    return report


async def _wait_for_bots(org: Organizer, wanted: Sequence[str], wait: float) -> dict[str, int | None]:
    """Capacity of each wanted bot (None: unlimited house bot); waits up to ``wait`` s for
    remote bots to connect, then fails naming the missing ones."""
    deadline = time.monotonic() + wait
    while True:
        bots = {b["name"]: b for b in await org.list_bots()}
        missing = [n for n in wanted if n not in bots]
        if not missing:
            return {
                n: (None if bots[n].get("kind") == "house" else max(1, int(bots[n].get("max_games") or 1)))
                for n in wanted
            }
        if time.monotonic() >= deadline:
            online = ", ".join(sorted(bots)) or "none"
            raise TournamentError(
                f"not on the server: {', '.join(missing)}; bots online: {online} "
                "(start them with autosteer-bot run, or use --spawn NAME=KIND, or --wait S)"
            )
        await asyncio.sleep(0.2)
