"""Benchmark: games per second through one and two servers, with and without MQTT and PostgreSQL.

Each configuration starts real ``autosteer-server serve`` processes (and, when it needs
them, a Mosquitto broker and a PostgreSQL cluster of its own, as the tests do), then
``--clients`` organiser connections, spread over the servers, arrange ``--games`` house
games (minimax vs random: no client think time, so this measures the server side: game
logic, one records write per move, and with ``--mqtt`` the events). Every configuration
runs ``--repeat`` times; the table shows the median games/s and the ratio to the first
configuration measured in the same run. It also checks what must hold: every game stored
exactly once, every result on the broker, nothing dropped.

    python bench/cluster.py --games 2000 --clients 8 --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from helpers_ws import WsClient  # noqa: E402
from server.app import read_banner_url  # noqa: E402
from services import Mosquitto, Postgres, mosquitto_binary, postgres_bin_dir  # noqa: E402

FAST = ["--rate", "1000000", "--burst", "1000000", "--flood-close", "1000000", "--quiet"]


def start_server(db: str, mqtt: str | None, server_id: str) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "server.cli", "serve", "--host", "127.0.0.1", "--port", "0", "--db", db, *FAST]
    if mqtt:
        cmd += ["--mqtt", mqtt, "--server-id", server_id, "--mqtt-queue", "100000"]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return proc, read_banner_url(proc)


def healthz(url: str) -> dict[str, Any]:
    with urllib.request.urlopen("http://" + url[5:] + "/healthz", timeout=10) as resp:
        return json.loads(resp.read())


async def organise(url: str, name: str, games: int, window: int) -> int:
    """Arrange ``games`` games, at most ``window`` in flight; returns how many ended."""
    done = 0
    async with WsClient.connect(url, name, max_size=None) as org:
        org.validate = False
        in_flight = 0
        sent = 0
        while done < games:
            while sent < games and in_flight < window:
                await org.send(type="arrange", x="minimax", o="random")
                sent += 1
                in_flight += 1
            frame = await org.recv(timeout=60)
            if frame.get("type") == "game_over":
                done += 1
                in_flight -= 1
            elif frame.get("type") == "error":
                raise RuntimeError(f"server refused: {frame}")
    return done


async def count_results(mqtt: Mosquitto, seen: dict[str, Any], stop: asyncio.Event, expected: int) -> None:
    import aiomqtt

    async with aiomqtt.Client("127.0.0.1", mqtt.port) as client:
        await client.subscribe("autosteer/v1/games/+/result", qos=1)
        seen["ready"] = expected

        async def read() -> None:
            async for m in client.messages:
                gid = str(m.topic).split("/")[-2]
                seen[gid] = seen.get(gid, 0) + 1

        reader = asyncio.create_task(read())
        await stop.wait()
        end = time.monotonic() + 15.0  # results still queued in the servers' publishers
        while len(seen) - 1 < int(seen["ready"]) and time.monotonic() < end:
            await asyncio.sleep(0.05)
        seen["drain_s"] = round(15.0 - (end - time.monotonic()), 2)
        reader.cancel()


async def one_run(
    servers: list[str], games: int, clients: int, window: int, mqtt: Mosquitto | None
) -> tuple[float, dict[str, int]]:
    seen: dict[str, int] = {}
    stop = asyncio.Event()
    counter = asyncio.create_task(count_results(mqtt, seen, stop, games)) if mqtt else None
    while counter is not None and "ready" not in seen:
        await asyncio.sleep(0.01)
    per = [games // clients + (1 if i < games % clients else 0) for i in range(clients)]
    t0 = time.perf_counter()
    ended = await asyncio.gather(
        *(organise(servers[i % len(servers)], f"org{i}", n, window) for i, n in enumerate(per))
    )
    seconds = time.perf_counter() - t0
    stop.set()
    if counter is not None:
        await counter
    assert sum(ended) == games
    seen.pop("ready", None)
    return seconds, seen


def measure_writes(label: str, target: str, n: int) -> tuple[str, float, float]:
    """Median and 90th percentile of one ``save`` (what the server does after every move)."""
    from server.records import GameRecords

    rec = GameRecords(target)
    moves = []
    times = []
    for i in range(n):
        gid = f"w{i // 9}"
        moves = [] if i % 9 == 0 else moves
        moves.append(
            {
                "ply": len(moves) + 1,
                "seat": "XO"[len(moves) % 2],
                "cell": len(moves) + 1,
                "at": 1.0,
                "trace": {"top_features": [{"index": 12, "activation": 2.5}]},
            }
        )
        record = {
            "game_id": gid,
            "x": "a",
            "o": "b",
            "status": "live",
            "board": ".........",
            "moves": moves,
            "clock": 30.0,
            "started_at": 1.0,
        }
        t0 = time.perf_counter()
        rec.save(record)
        times.append((time.perf_counter() - t0) * 1e6)
    rec.close()
    times.sort()
    return label, statistics.median(times), times[int(0.9 * len(times))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--games", type=int, default=2000, help="games per run")
    ap.add_argument("--clients", type=int, default=8, help="organiser connections, spread over the servers")
    ap.add_argument("--window", type=int, default=16, help="games in flight per organiser")
    ap.add_argument("--repeat", type=int, default=3, help="runs per configuration (median reported)")
    ap.add_argument("--writes", type=int, default=2000, help="single record writes timed per store")
    ap.add_argument("--configs", default="1,2,3,4", help="which configurations to run (1-4, comma list)")
    args = ap.parse_args()
    if mosquitto_binary() is None or postgres_bin_dir() is None:
        print("error: needs mosquitto and postgresql (scripts/ensure-services.sh installs them)", file=sys.stderr)
        return 2
    configs = [
        ("1 server, SQLite", 1, "sqlite", False),
        ("1 server, SQLite + MQTT", 1, "sqlite", True),
        ("1 server, PostgreSQL + MQTT", 1, "pg", True),
        ("2 servers, PostgreSQL + MQTT", 2, "pg", True),
    ]
    wanted = {int(c) for c in args.configs.split(",")}
    configs = [c for i, c in enumerate(configs, 1) if i in wanted]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        folder = Path(tmp)
        folder.chmod(0o755)  # PostgreSQL runs as the postgres user when we are root: it must reach its folder
        (folder / "mq").mkdir()
        (folder / "pg").mkdir()
        broker = Mosquitto(folder / "mq", mosquitto_binary())  # type: ignore[arg-type]
        broker.start()
        pg = Postgres(folder / "pg", postgres_bin_dir())  # type: ignore[arg-type]
        pg.start()
        print(
            f"mosquitto on {broker.url}, postgresql on port {pg.port}; {args.games} games × {args.repeat} runs per "
            f"configuration, {args.clients} clients × {args.window} in flight",
            flush=True,
        )
        try:
            for label, n_servers, store, use_mqtt in configs:
                rates = []
                for rep in range(args.repeat):
                    pg.reset()
                    dbs = (
                        [pg.url] * n_servers
                        if store == "pg"
                        else [str(folder / f"r{rep}-{i}.sqlite3") for i in range(n_servers)]
                    )
                    procs = [start_server(dbs[i], broker.url if use_mqtt else None, f"s{i}") for i in range(n_servers)]
                    try:
                        time.sleep(0.5)
                        seconds, seen = asyncio.run(
                            one_run(
                                [u for _, u in procs],
                                args.games,
                                args.clients,
                                args.window,
                                broker if use_mqtt else None,
                            )
                        )
                        health = [healthz(u) for _, u in procs]
                    finally:
                        for p, _ in procs:
                            p.terminate()
                        for p, _ in procs:
                            p.wait(30)
                    checks = []
                    if use_mqtt:
                        dropped = sum(h["mqtt"]["dropped"] for h in health)
                        drain = seen.pop("drain_s", 0.0)
                        published = sum(h["mqtt"]["published"] for h in health)
                        checks.append(
                            f"results on broker {len(seen)}/{args.games} (last {drain:.2f} s after the last "
                            f"game), duplicates {sum(v - 1 for v in seen.values())}, dropped {dropped}; "
                            f"{published} messages published, {published / (seconds + drain):.0f}/s"
                        )
                    if store == "pg":
                        import psycopg

                        with psycopg.connect(pg.url) as con:
                            n, distinct = con.execute(
                                "SELECT COUNT(*), COUNT(DISTINCT game_id) FROM games WHERE status = 'finished'"
                            ).fetchone()
                        checks.append(f"stored {n} rows, {distinct} distinct")
                    rate = args.games / seconds
                    rates.append(rate)
                    print(
                        f"  {label:32s} run {rep + 1}: {args.games} games in {seconds:.2f} s = {rate:.0f} games/s; "
                        + "; ".join(checks),
                        flush=True,
                    )
                rows.append((label, statistics.median(rates), min(rates), max(rates)))
            print(f"\none records write (a move's upsert), {args.writes} writes per store:", flush=True)
            pg.reset()
            write_rows = [
                measure_writes("SQLite file (WAL)", str(folder / "writes.sqlite3"), args.writes),
                measure_writes("PostgreSQL (loopback)", pg.url, args.writes),
            ]
        finally:
            pg.stop()
            broker.stop()
        for label, med, p90 in write_rows:
            print(f"  {label:24s} median {med:7.0f} us   p90 {p90:7.0f} us")
    base = rows[0][1]
    print(f"\n{'configuration':34s} {'median games/s':>15s} {'min':>7s} {'max':>7s} {'ratio':>7s}")
    for label, med, lo, hi in rows:
        print(f"{label:34s} {med:15.0f} {lo:7.0f} {hi:7.0f} {med / base:7.2f}")
    print(f"done: {len(rows)} configurations × {args.repeat} runs; ratio = median / '{rows[0][0]}' median in this run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
