"""Soak: the arena server under mixed, partly hostile clients for a bounded time, then checks.

The soak starts ``autosteer-server serve`` (a child process, a file database in a temporary
folder, a short grace period and move clock) and runs, for ``--seconds``, these clients
side by side, each reconnecting as soon as it is done:

* **players** play whole games against the house bots (random legal moves);
* **quitters** start a game, play a move, drop the connection mid-game; half of them come
  back within the grace period with their token and finish, half never return (the game is
  lost on ``disconnect``);
* **garbage** clients send malformed frames (bad JSON, wrong types, random bytes, huge
  ids) and check each gets an ``error``;
* **flooders** send pings far over the rate limit until the server closes them (1008);
* **organisers** arrange house-vs-house games with a tag and watch them end.

Every ``game_over`` a client sees is remembered. At the end the clients stop, the soak
waits for grace periods and clocks to run out, reads ``GET /healthz`` (no game may still be
live: none stuck), stops the server with SIGTERM and opens the records: every game a
client saw end is stored exactly once, finished, with the result the client saw; no row is
left live. The server's memory (RSS) is sampled all along and printed; it must be flat
(the last quarter's median within ``--rss-growth`` MiB of the second quarter's).

Run::

    python bench/soak.py --seconds 600        # the 10-minute soak
    python bench/soak.py --seconds 20         # what tests/test_soak.py runs

Ends with ``result: soak passed`` (exit 0) or ``result: soak FAILED`` and the reasons (exit 1).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from server_load import ROOT, ServerProcess, raise_open_file_limit  # noqa: E402

GRACE = 2.0
MOVE_CLOCK = 3.0


@dataclass
class Seen:
    """What the clients saw, to check against the records at the end."""

    over: dict[str, dict[str, Any]] = field(default_factory=dict)  # game_id → its game_over frame
    games_started: int = 0
    errors_answered: int = 0
    floods_closed: int = 0
    dropped_mid_game: int = 0
    resumed: int = 0
    problems: list[str] = field(default_factory=list)

    def game_over(self, frame: dict[str, Any]) -> None:
        old = self.over.get(frame["game_id"])
        if old is not None and (old["result"], old["reason"]) != (frame["result"], frame["reason"]):
            self.problems.append(
                f"game {frame['game_id']} ended twice differently: {old['result']} and {frame['result']}"
            )
        self.over[frame["game_id"]] = frame


class Client:
    """A raw websockets client that keeps every frame it reads in order."""

    def __init__(self, ws: Any, seen: Seen) -> None:
        self.ws, self.seen = ws, seen
        self.welcome: dict[str, Any] = {}

    @classmethod
    async def open(cls, url: str, seen: Seen, name: str | None, token: str | None = None) -> "Client":
        from websockets.asyncio.client import connect

        client = cls(await connect(url, open_timeout=10, close_timeout=1, ping_interval=None), seen)
        if name is not None:
            hello: dict[str, Any] = {"type": "hello", "name": name, "protocol": 2}  # a house answer in the move's state
            if token:
                hello["token"] = token
            await client.send(hello)
            client.welcome = await client.wait("welcome")
        return client

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))

    async def recv(self, timeout: float = 10.0) -> dict[str, Any]:
        frame = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        if frame.get("type") == "game_over":
            self.seen.game_over(frame)
        return frame

    async def wait(self, kind: str, timeout: float = 10.0, **fields: Any) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while True:
            frame = await self.recv(max(0.01, end - time.monotonic()))
            if frame.get("type") == "error" and kind != "error":
                raise RuntimeError(f"waiting for {kind}, got {frame}")
            if frame.get("type") == kind and all(frame.get(k) == v for k, v in fields.items()):
                return frame

    async def close(self) -> None:
        await self.ws.close()


async def play_out(
    c: Client,
    game_id: str,
    seat: str,
    rng: random.Random,
    frame: dict[str, Any] | None = None,
    moves: int | None = None,
) -> dict[str, Any] | None:
    """Play random legal moves in ``game_id`` until it ends (its game_over) or ``moves`` were made."""
    made = 0
    while True:
        if frame is not None and frame.get("game_id") == game_id:
            if frame["type"] == "game_over":
                return frame
            if frame["type"] in ("state", "game_start") and frame.get("turn") == seat:
                if moves is not None and made >= moves:
                    return None
                free = [i + 1 for i, ch in enumerate(frame["board"]) if ch == "."]
                await asyncio.sleep(rng.uniform(0.01, 0.03))  # a quick player, within the rate limit
                await c.send({"type": "move", "game_id": game_id, "cell": rng.choice(free)})
                made += 1
        frame = await c.recv()


async def player(url: str, seen: Seen, name: str, stop: float, rng: random.Random) -> None:
    c = await Client.open(url, seen, name)
    try:
        while time.monotonic() < stop:
            seat = rng.choice(["X", "O"])
            await c.send({"type": "challenge", "opponent": rng.choice(["random", "minimax"]), "side": seat})
            start = await c.wait("game_start")
            seen.games_started += 1
            await play_out(c, start["game_id"], seat, rng, start)
    finally:
        await c.close()


async def quitter(url: str, seen: Seen, name: str, stop: float, rng: random.Random) -> None:
    n = 0
    while time.monotonic() < stop:
        n += 1
        c = await Client.open(url, seen, f"{name}-{n}")
        await c.send({"type": "challenge", "opponent": "random", "side": "X"})
        start = await c.wait("game_start")
        seen.games_started += 1
        gid = start["game_id"]
        await play_out(c, gid, "X", rng, start, moves=1)
        token = c.welcome["token"]
        c.ws.transport.abort()  # drop the TCP connection mid-game, no close handshake
        seen.dropped_mid_game += 1
        if rng.random() < 0.5:  # come back within the grace period and finish
            await asyncio.sleep(rng.uniform(0.05, GRACE / 2))
            back = await Client.open(url, seen, f"{name}-{n}", token=token)
            if gid in back.welcome.get("resumed", []):
                seen.resumed += 1
                await play_out(back, gid, "X", rng)
            await back.close()


GARBAGE = [
    "{not json",
    "",
    "[1,2]",
    "null",
    '{"type": 5}',
    '{"type": "teleport"}',
    '{"type": "move", "game_id": 1}',
    '{"type": "ping", "id": null}',
    '{"type": "ping", "id": "\\ud800"}',
    '{"type": "move", "game_id": "g", "cell": "5"}',
    '{"type": "challenge", "opponent": "minimax", "clock": 1e-300}',
    "[" * 5000 + "]" * 5000,
    '{"a": NaN}',
]


async def garbage(url: str, seen: Seen, name: str, stop: float, rng: random.Random) -> None:
    n = 0
    while time.monotonic() < stop:
        n += 1
        c = await Client.open(url, seen, f"{name}-{n}")
        try:
            for _ in range(20):
                if rng.random() < 0.2:
                    await c.ws.send(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64))))
                else:
                    await c.ws.send(rng.choice(GARBAGE))
                reply = await c.recv()
                if reply.get("type") != "error":
                    seen.problems.append(f"garbage got {reply}")
                seen.errors_answered += 1
                await asyncio.sleep(0.02)
        finally:
            await c.close()


async def flooder(url: str, seen: Seen, name: str, stop: float, rng: random.Random) -> None:
    from websockets.exceptions import ConnectionClosed

    n = 0
    while time.monotonic() < stop:
        n += 1
        c = await Client.open(url, seen, f"{name}-{n}")

        async def drain() -> None:  # read the replies, so the server's close frame is seen
            with contextlib.suppress(ConnectionClosed):
                while True:
                    await c.ws.recv()

        reader = asyncio.create_task(drain())
        with contextlib.suppress(ConnectionClosed):
            while True:
                await c.ws.send('{"type": "ping"}')
                await asyncio.sleep(0)
        await reader
        if c.ws.close_code == 1008:
            seen.floods_closed += 1
        await asyncio.sleep(rng.uniform(0.5, 1.5))


async def organiser(url: str, seen: Seen, name: str, stop: float, rng: random.Random) -> None:
    c = await Client.open(url, seen, name)
    try:
        while time.monotonic() < stop:
            await c.send({"type": "arrange", "x": rng.choice(["random", "minimax"]), "o": "random", "tag": "soak"})
            sent = await c.wait("challenge_sent")
            seen.games_started += 1
            await c.wait("game_over", game_id=sent["challenge_id"])
            await asyncio.sleep(0.05)
    finally:
        await c.close()


async def run_clients(url: str, seconds: float, seen: Seen, scale: int, seed: int) -> None:
    stop = time.monotonic() + seconds
    roles = [(player, 4), (quitter, 4), (garbage, 2), (flooder, 1), (organiser, 1)]
    tasks = []
    for fn, count in roles:
        for i in range(count * scale):
            rng = random.Random(seed * 1000 + len(tasks))
            tasks.append(asyncio.create_task(_guard(fn(url, seen, f"{fn.__name__}{i}", stop, rng), seen, fn.__name__)))
    await asyncio.gather(*tasks)


async def _guard(coro: Any, seen: Seen, role: str) -> None:
    try:
        await coro
    except Exception as exc:  # a client failing is a finding, not a crash of the soak
        seen.problems.append(f"{role} client failed: {exc!r}")


def healthz(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
        return json.loads(resp.read())


@dataclass
class SoakReport:
    ok: bool
    reasons: list[str]
    seen: Seen
    stored: int
    rss_mib: list[float]


def soak(seconds: float, *, scale: int = 1, seed: int = 1, rss_growth: float = 8.0, quiet: bool = False) -> SoakReport:
    raise_open_file_limit(4096)
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    seen = Seen()
    rss: list[float] = []
    reasons: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "soak.sqlite3")
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        server = ServerProcess(
            [
                sys.executable,
                "-m",
                "server.cli",
                "serve",
                "--port",
                "0",
                "--db",
                db,
                "--quiet",
                "--grace",
                str(GRACE),
                "--move-clock",
                str(MOVE_CLOCK),
            ],
            ROOT,
            env,
        )
        port = int(server.url.rsplit(":", 1)[1])
        say(f"soak: server {server.url}, clients for {seconds:g} s (scale {scale}), records in {db}")

        async def main() -> None:
            async def sample() -> None:
                while True:
                    rss.append(server.rss_mib())
                    await asyncio.sleep(max(0.25, seconds / 40))

            sampler = asyncio.create_task(sample())
            from rich.progress import Progress

            with Progress(transient=True, disable=quiet) as progress:
                bar = progress.add_task("soaking", total=seconds)
                ticker = asyncio.create_task(_tick(progress, bar, seconds))
                await run_clients(server.url, seconds, seen, scale, seed)
                ticker.cancel()
            sampler.cancel()

        asyncio.run(main())
        settle = GRACE + MOVE_CLOCK + 1.0  # abandoned games end by disconnect or timeout within this
        say(f"  clients stopped; waiting {settle:g} s for grace periods and clocks")
        time.sleep(settle)
        status = healthz(port)
        if status["games_live"]:
            reasons.append(f"{status['games_live']} games still live after every client left (stuck)")
        server.proc.send_signal(signal.SIGTERM)
        rc = server.proc.wait(timeout=30)
        if rc != 0:
            reasons.append(f"server exited with {rc} on SIGTERM")
        rows = sqlite3.connect(db).execute("SELECT game_id, status, result, reason FROM games").fetchall()
    by_id: dict[str, tuple[str, str, str]] = {}
    for gid, status_, result, reason in rows:
        if gid in by_id:
            reasons.append(f"game {gid} stored twice")
        by_id[gid] = (status_, result, reason)
    missing = [g for g in seen.over if g not in by_id]
    wrong = [g for g, f in seen.over.items() if g in by_id and by_id[g][1:] != (f["result"], f["reason"])]
    live = [g for g, (st, _, _) in by_id.items() if st == "live"]
    if missing:
        reasons.append(f"{len(missing)} games a client saw end are not in the records, e.g. {missing[:3]}")
    if wrong:
        reasons.append(f"{len(wrong)} games stored with another result than the clients saw, e.g. {wrong[:3]}")
    if live:
        reasons.append(f"{len(live)} games left live in the records after a clean stop")
    reasons.extend(seen.problems[:10])
    if len(rss) >= 8:
        q = len(rss) // 4
        early, late = statistics.median(rss[q : 2 * q]), statistics.median(rss[3 * q :])
        say(f"  server memory (RSS, MiB) over the run: {' '.join(f'{r:.0f}' for r in rss[:: max(1, len(rss) // 20)])}")
        say(
            f"  second-quarter median {early:.1f} MiB, last-quarter median {late:.1f} MiB: growth {late - early:+.1f} MiB"
        )
        if late - early > rss_growth:
            reasons.append(
                f"server memory grew {late - early:.1f} MiB from the second to the last quarter (limit {rss_growth:g})"
            )
    say(
        f"  games: {seen.games_started} started by clients, {len(seen.over)} seen ending, {len(by_id)} stored; "
        f"{seen.dropped_mid_game} dropped mid-game ({seen.resumed} resumed); {seen.errors_answered} garbage frames answered; "
        f"{seen.floods_closed} flooders closed with 1008"
    )
    if seen.floods_closed == 0:
        reasons.append("no flooder was closed with 1008")
    if not seen.over:
        reasons.append("no game ended")
    return SoakReport(not reasons, reasons, seen, len(by_id), rss)


async def _tick(progress: Any, bar: Any, seconds: float) -> None:
    start = time.monotonic()
    while True:
        progress.update(bar, completed=min(seconds, time.monotonic() - start))
        await asyncio.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    ap.add_argument("--seconds", type=float, default=600.0, help="how long the clients run")
    ap.add_argument("--scale", type=int, default=1, help="multiply the number of clients of each kind")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--rss-growth", type=float, default=8.0, help="MiB the server may grow from the second to the last quarter"
    )
    args = ap.parse_args(argv)
    report = soak(args.seconds, scale=args.scale, seed=args.seed, rss_growth=args.rss_growth)
    if report.ok:
        print(
            f"result: soak passed: {len(report.seen.over)} games seen ending, all stored once; none stuck; memory flat"
        )
        return 0
    print("result: soak FAILED:\n  " + "\n  ".join(report.reasons))
    return 1


if __name__ == "__main__":
    sys.exit(main())
