"""Playing a tournament through a server: the organiser's connection (:class:`Organizer`,
which arranges bot-vs-bot games and collects each ``game_over``) and :func:`run_tournament`,
which plays the whole round robin and returns the report."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from dataclasses import replace
from typing import Any, Callable, Sequence

from bots.tournament.results import summarise
from bots.tournament.schedule import (ScheduledGame, TournamentConfig, TournamentError, TournamentIncomplete,
                                      new_tournament_id)
from server.protocol import PROTOCOL_VERSION

log = logging.getLogger("autosteer.tournament")


class Organizer:
    """A player connection that arranges bot-vs-bot games and waits for their results."""

    def __init__(self, url: str, name: str, *, send_rate: float = 20.0, send_burst: int = 40,
                 open_timeout: float = 10.0) -> None:
        self.url, self.name = url, name
        self.send_rate, self.send_burst, self.open_timeout = send_rate, send_burst, open_timeout
        self._ws: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._games: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._early: dict[str, dict[str, Any]] = {}  # game_over that beat our bookkeeping
        self._ids = itertools.count(1)
        self._pacer: Any = None

    async def __aenter__(self) -> "Organizer":
        from websockets.asyncio.client import connect

        from bots.client import SendPacer

        self._pacer = SendPacer(self.send_rate, self.send_burst)
        try:
            self._ws = await connect(self.url, open_timeout=self.open_timeout, max_size=4 << 20)
        except (OSError, asyncio.TimeoutError) as exc:
            raise TournamentError(f"cannot reach the server at {self.url}: {exc}") from None
        except Exception as exc:  # websockets' handshake and URI errors
            raise TournamentError(f"cannot connect to {self.url}: {type(exc).__name__}: {exc}") from None
        self._reader = asyncio.create_task(self._read(), name="organizer-reader")
        welcome = await self.request({"type": "hello", "name": self.name, "role": "player", "protocol": PROTOCOL_VERSION})
        if welcome.get("type") == "error":
            await self.__aexit__(None, None, None)
            raise TournamentError(f"the server refused the organiser: [{welcome.get('code')}] {welcome.get('message')}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader

    async def request(self, frame: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        """Send ``frame`` with a fresh id; return the reply carrying that id (or the error)."""
        rid = f"t{next(self._ids)}"
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[rid] = fut
        await self._pacer.take()
        try:
            await self._ws.send(json.dumps({**frame, "id": rid}))
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise TournamentError(f"no answer from the server to {frame['type']!r} in {timeout:.0f} s") from None
        finally:
            self._replies.pop(rid, None)

    async def list_bots(self) -> list[dict[str, Any]]:
        reply = await self.request({"type": "list_bots"})
        return list(reply.get("bots", []))

    async def play(self, x: str, o: str, *, clock: float | None, tag: str, game_timeout: float,
                   seed: int | None = None, retry_for: float = 120.0) -> dict[str, Any]:
        """Arrange ``x`` vs ``o`` (with the per-game ``seed`` for house bots, if given) and
        return its ``game_over`` frame. A busy or declining bot is retried with growing
        pauses for up to ``retry_for`` seconds."""
        frame: dict[str, Any] = {"type": "arrange", "x": x, "o": o, "tag": tag}
        if clock is not None:
            frame["clock"] = clock
        if seed is not None:
            frame["seed"] = seed
        deadline = time.monotonic() + retry_for
        pause = 0.05
        while True:
            reply = await self.request(frame)
            if reply.get("type") == "challenge_sent":
                gid = reply["challenge_id"]
                fut = self._games.get(gid) or asyncio.get_running_loop().create_future()
                self._games[gid] = fut
                early = self._early.pop(gid, None)
                if early is not None and not fut.done():
                    fut.set_result(early)
                try:
                    over = await asyncio.wait_for(fut, game_timeout)
                except asyncio.TimeoutError:
                    raise TournamentError(f"game {gid} ({x} vs {o}) did not finish in {game_timeout:.0f} s") from None
                finally:
                    self._games.pop(gid, None)
                if over.get("type") == "game_over":
                    return over
                why = over.get("reason", "declined")  # challenge_declined
            elif reply.get("type") == "error" and reply.get("code") in ("busy", "rate_limited"):
                why = reply.get("message", "busy")
            elif reply.get("type") == "error":
                raise TournamentError(f"the server refused {x} vs {o}: [{reply.get('code')}] {reply.get('message')}")
            else:
                raise TournamentError(f"unexpected reply to arrange: {reply}")
            if time.monotonic() > deadline:
                raise TournamentError(f"{x} vs {o} could not be started for {retry_for:.0f} s: {why}")
            log.debug("%s vs %s not started (%s); retrying in %.2f s", x, o, why, pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)

    async def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            async for raw in self._ws:
                try:
                    frame = json.loads(raw)
                except ValueError:
                    continue
                if not isinstance(frame, dict):
                    continue
                rid = frame.get("id")
                fut = self._replies.get(rid) if isinstance(rid, str) else None
                if fut is not None and not fut.done() and frame.get("type") != "state":
                    fut.set_result(frame)
                    if frame.get("type") not in ("game_over", "challenge_declined"):
                        continue
                kind = frame.get("type")
                if kind in ("game_over", "challenge_declined"):
                    gid = frame.get("game_id") or frame.get("challenge_id")
                    gfut = self._games.get(gid)
                    if gfut is not None and not gfut.done():
                        gfut.set_result(frame)
                    elif gfut is None:
                        self._early[gid] = frame
                elif kind == "error" and rid is None:
                    log.warning("server: [%s] %s", frame.get("code"), frame.get("message"))
        except ConnectionClosed:
            pass
        finally:
            exc = TournamentError(f"the connection to {self.url} closed")
            for fut in [*self._replies.values(), *self._games.values()]:
                if not fut.done():
                    fut.set_exception(exc)



ProgressHook = Callable[[dict[str, Any]], None]


async def run_tournament(url: str, config: TournamentConfig, *, on_game: ProgressHook | None = None,
                         wait_for_bots: float = 0.0, send_rate: float = 20.0, send_burst: int = 40,
                         game_timeout: float | None = None) -> dict[str, Any]:
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
                over = await org.play(game.x, game.o, clock=config.clock, tag=tid, game_timeout=per_game,
                                      seed=game.seed)
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
            return {n: (None if bots[n].get("kind") == "house" else max(1, int(bots[n].get("max_games") or 1)))
                    for n in wanted}
        if time.monotonic() >= deadline:
            online = ", ".join(sorted(bots)) or "none"
            raise TournamentError(f"not on the server: {', '.join(missing)}; bots online: {online} "
                                  "(start them with autosteer-bot run, or use --spawn NAME=KIND, or --wait S)")
        await asyncio.sleep(0.2)
