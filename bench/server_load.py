"""Benchmark: the arena server under load, against a plain ``websockets`` echo server in the same run.

The bench starts both servers itself, each in its own process on a loopback port:

* the arena (``python -m server.cli serve`` from this checkout, or from ``--arena-root``),
  with a file database in a temporary folder, rate and connection limits lifted so the
  load is not refused;
* an echo server: ``websockets.asyncio.server.serve`` with a handler that sends every
  frame back, nothing else.

One client process (this one) then opens N connections to each server in turn. On the
arena every connection says ``hello``, challenges the house ``random`` bot playing X and
plays random legal moves as fast as the replies come (a request is done when the reply
that gives it the turn back, or ``game_over``, arrives; a new game is challenged at once).
On the echo server every connection sends a frame of the same shape and waits for it to
come back. Only requests completed inside the timed window count. The two servers run
alternately, ``--repeats`` times, so contention from other work hits both alike; the
figures are medians over the repeats:

* messages/s: requests answered per second, and the ratio arena / echo;
* p50 / p99 round trip (ms) as the client sees it;
* server CPU per request (µs, from ``/proc/PID/stat``), and the ratio;
* the ratio of each repeat (the two servers of a repeat ran back to back): on a small
  machine the echo server's own rate can swing between repeats, and this shows it.
* the arena's event-loop process apart from its records child: its CPU per request, how
  busy it was, and the rate its one thread could serve 100 % busy at that cost;
* the rate the machine's cores could serve at the arena's and its client's CPU per request
  together (client and servers share the machine): a bound whatever the server's processes.

Warm-up: before the repeats, each server gets ``--warmup`` seconds (5) of unmeasured load
at each connection count. A cold process can be far slower than the same process a run
later: the echo server (asyncio's transport reads into a new 256 KiB buffer each time,
above glibc's initial 128 KiB ``mmap`` threshold) served 100 connections at ~30,000 requests/s and 34 µs of CPU each in its first
5 s, then ~55,000 at 18 µs; with ``MALLOC_MMAP_THRESHOLD_=4194304`` its first run was as
fast as the later ones. Without the warm-up the first repeat compared the arena with a cold
echo server.

``--paced`` adds the human-pace run: ``--paced-connections`` (1,000) connections, each
sending one request a second at a random phase, p50/p99 round trip.

Run (the figures in docs/PERFORMANCE.md and docs/RESULTS.md)::

    python bench/server_load.py --connections 100,1000,5000 --seconds 15 --repeats 3 --paced --paced-seconds 15

``--baseline-root DIR`` measures the arena of another checkout in place of the echo server
(an A/B of two versions, same traffic, alternating). ``--arena-root DIR`` runs the server from another checkout (``git worktree add /tmp/base
main``: the before/after figures). ``--arena-arg=--event-loop=asyncio`` passes an option
to ``serve``. ``--json FILE`` writes every measurement, ``--plot FILE.png`` draws each
repeat's rates and ratio, and ``--replot FILE.json`` prints (and with ``--plot`` draws) a
saved run again without measuring. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
SRC_CLK = os.sysconf("SC_CLK_TCK")
_RUN_IDS = itertools.count(1)


# ----------------------------------------------------------------------------- servers
def raise_open_file_limit(wanted: int) -> int:
    """Raise this process's soft limit on open files toward ``wanted`` (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(hard, max(soft, wanted)) if hard != resource.RLIM_INFINITY else max(soft, wanted)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def _echo_main(compression: str) -> None:
    from websockets.asyncio.server import serve

    async def echo(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    async with serve(
        echo,
        "127.0.0.1",
        0,
        max_size=64 * 1024,
        ping_interval=None,
        compression=None if compression == "none" else "deflate",
    ) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"echo listening on ws://127.0.0.1:{port}", flush=True)
        await asyncio.Event().wait()


def run_echo_server(loop_kind: str, compression: str) -> None:
    if loop_kind == "uvloop":
        import uvloop

        uvloop.run(_echo_main(compression))
    else:
        asyncio.run(_echo_main(compression))


class ServerProcess:
    """A server child process: its URL (read from its first line) and its CPU time."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
        # imported here, not at the top: bench/arena_logic.py imports this module in a child
        # whose ``server`` package may be another checkout's (--baseline-root)
        from server.app import read_banner_url

        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.url = read_banner_url(self.proc)

    def cpu_split(self) -> tuple[float, float]:
        """CPU seconds (user + system) of the server's own process (its event loop) and of
        every process it started (the arena's records writer runs in a child process)."""
        main, *children = _process_tree(self.proc.pid)
        return _cpu_of(main), sum(_cpu_of(pid) for pid in children)

    def rss_mib(self) -> float:
        """Resident memory of the server and its child processes (MiB)."""
        total = 0.0
        for pid in _process_tree(self.proc.pid):
            try:
                with open(f"/proc/{pid}/status") as f:
                    total += next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0) / 1024
            except OSError:
                continue
        return total

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Wait until an arena reports no connections (the last run's are all closed)."""
        import urllib.request

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with urllib.request.urlopen(f"http://{self.url[5:]}/healthz", timeout=5) as resp:
                if json.loads(resp.read())["connections"] == 0:
                    return
            time.sleep(0.5)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _cpu_of(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:  # it ended
        return 0.0
    return (int(fields[11]) + int(fields[12])) / SRC_CLK


def _process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (``/proc/PID/task/TID/children``)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            continue
    return out


def start_arena(root: Path, db: str, max_conns: int, extra: list[str]) -> ServerProcess:
    env = dict(os.environ, PYTHONPATH=str(root))
    argv = [
        sys.executable,
        "-m",
        "server.cli",
        "serve",
        "--port",
        "0",
        "--db",
        db,
        "--quiet",
        "--rate",
        "1000000",
        "--burst",
        "1000000",
        "--flood-close",
        "1000000",
        "--max-connections-per-address",
        str(max_conns),
        "--move-clock",
        "600",
        *extra,
    ]
    options = _serve_options(root)
    if '--max-connections"' in options:
        argv += ["--max-connections", str(max_conns)]
    if "--max-live-games-per-address" in options:  # every load connection plays from 127.0.0.1, and the last
        argv += ["--max-live-games-per-address", "1000000"]  # run's abandoned games last their grace period
    return ServerProcess(argv, root, env)


def _serve_options(root: Path) -> str:
    """The ``serve`` options of the checkout at ``root`` (an older one may lack some)."""
    return (root / "server" / "app.py").read_text()


def start_echo(loop_kind: str, compression: str) -> ServerProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return ServerProcess(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--echo-server",
            "--echo-loop",
            loop_kind,
            "--echo-compression",
            compression,
        ],
        ROOT,
        env,
    )


# ----------------------------------------------------------------------------- clients
@dataclass
class Window:
    """The timed window: requests completed inside it count."""

    start: float = 0.0
    end: float = 0.0
    rtts: list[float] = field(default_factory=list)
    failures: int = 0
    offset: float = 0.0  # time.perf_counter() - loop.time()
    server_cpu: float = 0.0  # CPU seconds the server spent inside the window
    server_main_cpu: float = 0.0  # of which its own process (the event loop's), not its children
    client_cpu: float = 0.0  # and this client process

    def record(self, sent: float, done: float) -> None:
        """``sent`` and ``done`` are ``time.perf_counter()`` readings; start and end loop times."""
        if self.start <= sent - self.offset and done - self.offset <= self.end:
            self.rtts.append(done - sent)


class LoadTraffic:
    """One connection's side of the arena traffic, without I/O: challenge the house
    ``random`` bot playing X, random legal moves, a new challenge at ``game_over``.
    :class:`ArenaPlayer` sends it over a socket; ``bench/arena_logic.py`` feeds it to an
    in-process arena."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.game_id: str | None = None
        self.board = "........."
        self.n = 0

    def next_request(self) -> dict[str, Any]:
        """The next request: a move, or a challenge when no game is live."""
        self.n += 1
        if self.game_id is None:
            return {"type": "challenge", "opponent": "random", "side": "X", "id": self.n}
        cells = [i + 1 for i, c in enumerate(self.board) if c == "."]
        return {"type": "move", "game_id": self.game_id, "cell": self.rng.choice(cells), "id": self.n}

    def answered(self, frame: dict[str, Any]) -> bool:
        """Take a server frame; True when it ends the request in flight (``game_over``, or
        the turn is back). An ``error`` is raised: the traffic is always legal."""
        kind = frame["type"]
        if kind == "game_over":
            self.game_id = None
            return True
        if kind in ("game_start", "state") and frame.get("turn") == "X":
            self.game_id, self.board = frame["game_id"], frame["board"]
            return True
        if kind == "error":
            raise RuntimeError(f"the arena refused a request: {frame}")
        return False


async def _connect(url: str) -> Any:
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidHandshake

    for attempt in range(20):  # a busy listener may drop a handshake now and then: retry it
        try:
            return await connect(url, max_size=None, ping_interval=None, open_timeout=60, close_timeout=1)
        except (OSError, asyncio.TimeoutError, InvalidHandshake):
            await asyncio.sleep(0.05 * (attempt + 1))
    return await connect(url, max_size=None, ping_interval=None, open_timeout=60, close_timeout=1)


class ArenaPlayer:
    """One connection playing X against the house random bot, game after game."""

    def __init__(self, ws: Any, name: str, rng: random.Random) -> None:
        self.ws, self.name, self.rng = ws, name, rng
        self.traffic = LoadTraffic(rng)

    async def hello(self) -> None:
        hello = {"type": "hello", "name": self.name, "protocol": 2}  # a house bot's answer in the move's state
        await self.ws.send(orjson.dumps(hello), text=True)
        reply = orjson.loads(await self.ws.recv())
        if reply.get("type") != "welcome":
            raise RuntimeError(f"hello refused: {reply}")

    async def request(self) -> None:
        """One request (a move, or a challenge when no game is live) until its answer."""
        await self.ws.send(orjson.dumps(self.traffic.next_request()), text=True)
        while not self.traffic.answered(orjson.loads(await self.ws.recv())):
            pass


class EchoPlayer:
    """One connection sending a move-shaped frame and waiting for it to come back."""

    def __init__(self, ws: Any, name: str, rng: random.Random) -> None:
        self.ws, self.rng = ws, rng
        self.n = 0

    async def hello(self) -> None:
        return None

    async def request(self) -> None:
        self.n += 1
        frame = {"type": "move", "game_id": "0123456789ab", "cell": self.rng.randint(1, 9), "id": self.n}
        await self.ws.send(orjson.dumps(frame), text=True)
        orjson.loads(await self.ws.recv())


async def _drive(player: Any, window: Window, paced: float | None, ready: asyncio.Event) -> None:
    await ready.wait()
    loop = asyncio.get_running_loop()
    if paced:
        await asyncio.sleep(player.rng.random() * paced)
    next_at = loop.time()
    while True:
        now = loop.time()
        if now >= window.end:
            return
        if paced:
            next_at += paced
        sent = time.perf_counter()  # not loop.time(): uvloop's clock is cached per loop turn, in ms
        await player.request()
        window.record(sent, time.perf_counter())
        if paced:
            await asyncio.sleep(max(0.0, next_at - loop.time()))


async def _load(proc: ServerProcess, kind: str, n: int, seconds: float, paced: float | None, seed: int) -> Window:
    """Open ``n`` connections, then run every one for ``seconds``; return the window."""
    player_cls = ArenaPlayer if kind == "arena" else EchoPlayer
    run_id = next(_RUN_IDS)  # names stay taken for the server's grace period after a run
    sem = asyncio.Semaphore(200)  # handshakes in flight at once

    async def open_one(i: int) -> Any:
        async with sem:
            ws = await _connect(proc.url)
            p = player_cls(ws, f"load{run_id}-{i}", random.Random(seed * 100003 + i))
            await p.hello()
            return p

    players = await asyncio.gather(*(open_one(i) for i in range(n)))
    loop = asyncio.get_running_loop()
    window = Window(offset=time.perf_counter() - loop.time())
    ready = asyncio.Event()
    warmup = min(2.0, seconds / 5)
    window.start = loop.time() + warmup
    window.end = window.start + seconds
    tasks = [asyncio.create_task(_drive(p, window, paced, ready)) for p in players]
    ready.set()
    marks: list[
        tuple[float, float, float]
    ] = []  # (server main, server children, client) CPU at the window's start and end
    for at in (window.start, window.end):
        loop.call_at(at, lambda: marks.append((*proc.cpu_split(), sum(os.times()[:2]))))
    results = await asyncio.gather(*tasks, return_exceptions=True)
    if len(marks) == 2:
        main, children, client = (end - start for start, end in zip(*marks))
        window.server_cpu, window.server_main_cpu, window.client_cpu = main + children, main, client
    window.failures = sum(1 for r in results if isinstance(r, BaseException))
    if window.failures:
        first = next(r for r in results if isinstance(r, BaseException))
        print(f"  {window.failures} connections failed, first: {first!r}", file=sys.stderr)
    await asyncio.gather(*(p.ws.close() for p in players), return_exceptions=True)
    return window


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


@dataclass
class Run:
    server: str
    connections: int
    paced: bool
    repeat: int
    messages_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_msg: float
    client_cpu_us_per_msg: float
    rss_mib: float
    failures: int
    # the server's own process (its event loop; the arena's records writer is a child): CPU per
    # request and the share of one core it used (None in JSON written before they were measured)
    main_cpu_us_per_msg: float | None = None
    main_busy: float | None = None


def measure(
    proc: ServerProcess,
    kind: str,
    n: int,
    seconds: float,
    paced: float | None,
    seed: int,
    repeat: int,
    client_loop: str,
    players: str | None = None,
) -> Run:
    """One run against ``proc``, recorded as ``kind``; ``players`` ("arena" or "echo",
    default ``kind``) is the traffic."""
    coro = _load(proc, players or kind, n, seconds, paced, seed)
    if client_loop == "uvloop":
        import uvloop

        window = uvloop.run(coro)
    else:
        window = asyncio.run(coro)
    count = len(window.rtts)
    return Run(
        kind,
        n,
        paced is not None,
        repeat,
        count / seconds,
        _pct(window.rtts, 0.5) * 1e3,
        _pct(window.rtts, 0.99) * 1e3,
        window.server_cpu / max(1, count) * 1e6,
        window.client_cpu / max(1, count) * 1e6,
        proc.rss_mib(),
        window.failures,
        window.server_main_cpu / max(1, count) * 1e6,
        window.server_main_cpu / seconds,
    )


# ----------------------------------------------------------------------------- report
def _median(runs: list[Run], attr: str) -> float:
    return statistics.median(getattr(r, attr) for r in runs)


def _event_loop_cpu(arena_runs: list[Run]) -> float | None:
    """Median CPU per request (µs) of the arena's event-loop process, None where it was not
    measured: one thread, so 1e6 / this bounds the requests/s it can serve."""
    measured = [r.main_cpu_us_per_msg for r in arena_runs if r.main_cpu_us_per_msg]
    return statistics.median(measured) if measured else None


def summarize(runs: list[Run], cores: int | None = None) -> list[dict[str, Any]]:
    rows = []
    keys = sorted({(r.connections, r.paced) for r in runs}, key=lambda k: (k[1], k[0]))
    for n, paced in keys:
        a = [r for r in runs if r.server == "arena" and r.connections == n and r.paced == paced]
        e = [r for r in runs if r.server == "echo" and r.connections == n and r.paced == paced]
        if not a or not e:
            continue
        row = {
            "connections": n,
            "paced": paced,
            "repeats": len(a),
            "arena_msgs": _median(a, "messages_per_s"),
            "echo_msgs": _median(e, "messages_per_s"),
            "arena_p50": _median(a, "p50_ms"),
            "arena_p99": _median(a, "p99_ms"),
            "echo_p50": _median(e, "p50_ms"),
            "echo_p99": _median(e, "p99_ms"),
            "arena_cpu_us": _median(a, "cpu_us_per_msg"),
            "echo_cpu_us": _median(e, "cpu_us_per_msg"),
        }
        row["ratio"] = row["arena_msgs"] / row["echo_msgs"] if row["echo_msgs"] else float("nan")
        # the two servers of one repeat ran back to back: their ratio, repeat by repeat, shows the spread
        row["ratios_per_repeat"] = [
            ar.messages_per_s / er.messages_per_s if er.messages_per_s else float("nan")
            for ar, er in zip(sorted(a, key=lambda r: r.repeat), sorted(e, key=lambda r: r.repeat))
        ]
        row["cpu_ratio"] = row["arena_cpu_us"] / row["echo_cpu_us"] if row["echo_cpu_us"] else float("nan")
        loop_cpu = _event_loop_cpu(a)
        if loop_cpu is not None:
            row["arena_main_cpu_us"] = loop_cpu
            row["arena_main_busy"] = _median([r for r in a if r.main_cpu_us_per_msg], "main_busy")
            row["arena_main_bound"] = 1e6 / loop_cpu
        if cores:  # client and server share the machine: its cores at their CPU per request
            row["arena_client_cpu_us"] = _median(a, "client_cpu_us_per_msg")
            row["machine_bound"] = cores * 1e6 / (row["arena_cpu_us"] + row["arena_client_cpu_us"])
        rows.append(row)
    return rows


def print_table(rows: list[dict[str, Any]], other: str = "echo") -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"arena vs {other} (medians over repeats)")
    for col in (
        "connections",
        "mode",
        "arena msg/s",
        f"{other} msg/s",
        "ratio",
        "arena p50/p99 ms",
        f"{other} p50/p99 ms",
        f"CPU µs/msg arena/{other}",
    ):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            f"{r['connections']:,}",
            "paced 1/s" if r["paced"] else "closed loop",
            f"{r['arena_msgs']:,.0f}",
            f"{r['echo_msgs']:,.0f}",
            f"{r['ratio']:.2f}",
            f"{r['arena_p50']:.1f} / {r['arena_p99']:.1f}",
            f"{r['echo_p50']:.1f} / {r['echo_p99']:.1f}",
            f"{r['arena_cpu_us']:.0f} / {r['echo_cpu_us']:.0f} ({r['cpu_ratio']:.1f}×)",
        )
    Console(width=150).print(table)


def plot_runs(runs: list[Run], path: Path, other: str = "echo") -> None:
    """One panel per closed-loop connection count: requests/s of each repeat for the arena
    and the other server, 0.6x the other's median (the goal) dashed, the rate the
    arena's event-loop process could serve 100 % busy dotted, and the ratio of each repeat
    written under its point. The paced runs are left out (both serve the same rate)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = sorted({r.connections for r in runs if not r.paced})
    fig, axes = plt.subplots(1, len(counts), figsize=(4.2 * len(counts), 3.8), squeeze=False, sharey=True)
    for ax, n in zip(axes[0], counts):
        a = sorted(
            (r for r in runs if r.server == "arena" and r.connections == n and not r.paced), key=lambda r: r.repeat
        )
        e = sorted(
            (r for r in runs if r.server == "echo" and r.connections == n and not r.paced), key=lambda r: r.repeat
        )
        xs = [r.repeat + 1 for r in a]
        ax.plot(xs, [r.messages_per_s for r in a], "o-", color="tab:blue", label="arena")
        ax.plot([r.repeat + 1 for r in e], [r.messages_per_s for r in e], "s-", color="tab:orange", label=other)
        if e:
            goal = 0.6 * statistics.median(r.messages_per_s for r in e)
            ax.axhline(goal, color="gray", linestyle="--", linewidth=1, label=f"0.6 x {other} median")
        loop_cpu = _event_loop_cpu(a)
        if loop_cpu is not None:  # the most the arena's event-loop thread could serve at its CPU per request
            ax.axhline(
                1e6 / loop_cpu, color="tab:blue", linestyle=":", linewidth=1.2, label="arena event loop 100 % busy"
            )
        for ar, er in zip(a, e):
            ax.annotate(
                f"{ar.messages_per_s / er.messages_per_s:.2f}",
                (ar.repeat + 1, ar.messages_per_s),
                textcoords="offset points",
                xytext=(0, -14),
                ha="center",
                fontsize=8,
                color="tab:blue",
            )
        ratio = (
            statistics.median(r.messages_per_s for r in a) / statistics.median(r.messages_per_s for r in e)
            if a and e
            else float("nan")
        )
        ax.set_title(f"{n:,} connections: ratio {ratio:.2f}", fontsize=10)
        ax.set_xlabel("repeat (ratio of the repeat under each point)")
        ax.set_xticks(xs)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("requests/s")
    axes[0][0].set_ylim(bottom=0)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=9, frameon=False)
    fig.suptitle(f"bench/server_load.py: arena vs {other}, each repeat", fontsize=11)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(
    runs: list[Run],
    other: str,
    baseline: bool,
    json_path: Path | None,
    plot_path: Path | None,
    argv: list[str],
    cores: int | None = None,
) -> int:
    """The table, the JSON and the plot of ``runs``, and a result line per row; 1 if a connection failed."""
    rows = summarize(runs, cores)
    print_table(rows, other)
    if json_path:
        json_path.write_text(
            json.dumps({"runs": [asdict(r) for r in runs], "summary": rows, "argv": argv, "cores": cores}, indent=1)
        )
    if plot_path:
        plot_runs(runs, plot_path, other)
        print(f"plot: {plot_path}")
    failed = sum(r.failures for r in runs)
    for r in rows:
        per_repeat = ", ".join(f"{x:.2f}" for x in r["ratios_per_repeat"])
        if baseline:
            print(
                f"result: {r['connections']:,} connections {'paced' if r['paced'] else 'closed loop'}: arena / baseline "
                f"{r['ratio']:.2f} requests/s (per repeat {per_repeat}), {r['cpu_ratio']:.2f} CPU per request, "
                f"p99 {r['arena_p99']:.1f} / {r['echo_p99']:.1f} ms"
            )
            continue
        goal = "p99 ≤ 10 ms" if r["paced"] else "ratio ≥ 0.6"
        met = r["arena_p99"] <= 10.0 if r["paced"] else r["ratio"] >= 0.6
        print(
            f"result: {r['connections']:,} connections {'paced' if r['paced'] else 'closed loop'}: ratio {r['ratio']:.2f} "
            f"(per repeat {per_repeat}), arena p99 {r['arena_p99']:.1f} ms; goal {goal}: {'met' if met else 'NOT met'}"
        )
        if not r["paced"] and "arena_main_cpu_us" in r:
            print(
                f"        the arena's event-loop process spent {r['arena_main_cpu_us']:.1f} µs per request and was "
                f"{r['arena_main_busy']:.0%} busy: on its one thread it cannot serve more than "
                f"{r['arena_main_bound']:,.0f} requests/s; the goal needs {0.6 * r['echo_msgs']:,.0f}"
            )
        if not r["paced"] and "machine_bound" in r:
            print(
                f"        the arena and its client spent {r['arena_cpu_us']:.0f} + {r['arena_client_cpu_us']:.0f} µs "
                f"per request: however its work were spread, this machine's {cores} cores could serve at most "
                f"{r['machine_bound']:,.0f} requests/s"
            )
    if failed:
        print(f"result: {failed} connections failed during the runs (see above)")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    ap.add_argument("--connections", default="100,1000,5000", help="comma-separated connection counts (closed loop)")
    ap.add_argument("--seconds", type=float, default=20.0, help="timed window per run")
    ap.add_argument("--repeats", type=int, default=3, help="runs per server and connection count (medians)")
    ap.add_argument("--paced", action="store_true", help="also run the human-pace test (a move per second each)")
    ap.add_argument("--paced-only", action="store_true", help="run only the paced test")
    ap.add_argument("--paced-connections", type=int, default=1000)
    ap.add_argument("--paced-seconds", type=float, default=20.0)
    ap.add_argument("--arena-root", type=Path, default=ROOT, help="checkout whose server is measured")
    ap.add_argument("--arena-arg", action="append", default=[], help="extra option for 'serve' (repeatable)")
    ap.add_argument(
        "--baseline-root",
        type=Path,
        default=None,
        help="instead of the echo server, measure the arena of this checkout (an A/B of two versions: "
        "the ratio is arena / baseline, same traffic)",
    )
    ap.add_argument(
        "--echo-loop", choices=("asyncio", "uvloop"), default="asyncio", help="event loop of the echo server"
    )
    ap.add_argument(
        "--echo-compression",
        choices=("deflate", "none"),
        default="deflate",
        help="the echo server's per-message deflate: websockets' default, or off as the arena has it (like for like)",
    )
    ap.add_argument(
        "--client-loop", choices=("asyncio", "uvloop"), default="uvloop", help="event loop of the load client"
    )
    ap.add_argument(
        "--warmup",
        type=float,
        default=5.0,
        help="seconds of unmeasured load on each server at each connection count before the repeats "
        "(0: none); see 'Warm-up' above",
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None, help="write every run and the summary here")
    ap.add_argument("--plot", type=Path, default=None, help="draw each repeat's requests/s and ratio into this PNG")
    ap.add_argument(
        "--replot",
        type=Path,
        default=None,
        metavar="JSON",
        help="measure nothing: print the summary of a JSON written by --json (and --plot it)",
    )
    ap.add_argument("--echo-server", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.echo_server:
        run_echo_server(args.echo_loop, args.echo_compression)
        return 0
    if args.replot:
        saved = json.loads(args.replot.read_text())
        old_runs = [Run(**r) for r in saved["runs"]]
        baseline = "--baseline-root" in " ".join(saved.get("argv", []))
        return report(
            old_runs,
            "baseline" if baseline else "echo",
            baseline,
            None,
            args.plot,
            saved.get("argv", []),
            saved.get("cores"),
        )

    counts = [] if args.paced_only else [int(c) for c in args.connections.split(",") if c]
    plan: list[tuple[int, float | None, float]] = [(n, None, args.seconds) for n in counts]
    if args.paced or args.paced_only:
        plan.append((args.paced_connections, 1.0, args.paced_seconds))
    most = max(n for n, _, _ in plan)
    limit = raise_open_file_limit(4 * most + 512)  # the servers inherit it; closing and new sockets overlap
    if limit < most + 64:
        print(
            f"error: the open-file limit is {limit}; {most} connections need more (raise the hard limit, ulimit -Hn)",
            file=sys.stderr,
        )
        return 2
    print(
        f"server_load: arena from {args.arena_root} {' '.join(args.arena_arg)} vs websockets echo "
        f"({args.echo_loop}, compression {args.echo_compression}); client loop {args.client_loop}; open-file limit {limit}",
        flush=True,
    )
    runs: list[Run] = []
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers too (the finally below)
    with tempfile.TemporaryDirectory() as tmp:
        arena = start_arena(args.arena_root, str(Path(tmp) / "arena.sqlite3"), most + 64, args.arena_arg)
        other = "baseline" if args.baseline_root else "echo"
        echo = (
            start_arena(args.baseline_root, str(Path(tmp) / "baseline.sqlite3"), most + 64, args.arena_arg)
            if args.baseline_root
            else start_echo(args.echo_loop, args.echo_compression)
        )
        try:
            print(
                f"  arena {arena.url}, {other} {echo.url}"
                + (f" from {args.baseline_root}" if args.baseline_root else ""),
                flush=True,
            )

            def run_once(
                kind: str, proc: ServerProcess, n: int, seconds: float, paced: float | None, seed: int, repeat: int
            ) -> Run:
                """One run; then wait until the server is idle again (the arena's closed connections gone)."""
                players = "arena" if args.baseline_root else kind
                run = measure(proc, kind, n, seconds, paced, seed, repeat, args.client_loop, players)
                if players == "arena":
                    proc.wait_idle()
                else:
                    time.sleep(1.0)
                return run

            if args.warmup > 0:
                for n, paced, _ in plan:
                    for kind, proc in (("arena", arena), ("echo", echo)):
                        run = run_once(kind, proc, n, args.warmup, paced, args.seed - 1, -1)
                        print(
                            f"  warm-up  {kind if kind == 'arena' else other:8} {n:>5} conns: {run.messages_per_s:8.0f} msg/s "
                            f"(not counted)",
                            flush=True,
                        )
            for repeat in range(args.repeats):
                for n, paced, seconds in plan:
                    order = (
                        [("arena", arena), ("echo", echo)] if repeat % 2 == 0 else [("echo", echo), ("arena", arena)]
                    )
                    for kind, proc in order:
                        run = run_once(kind, proc, n, seconds, paced, args.seed + repeat, repeat)
                        runs.append(run)
                        mode = "paced 1/s" if paced else "closed loop"
                        print(
                            f"  repeat {repeat + 1}/{args.repeats} {kind if kind == 'arena' else other:8} {n:>5} conns {mode}: "
                            f"{run.messages_per_s:8.0f} msg/s  p50 {run.p50_ms:6.1f} ms  p99 {run.p99_ms:6.1f} ms  "
                            f"cpu {run.cpu_us_per_msg:5.0f} µs/msg (main process {run.main_cpu_us_per_msg:4.0f}, "
                            f"{run.main_busy:4.0%} busy; client {run.client_cpu_us_per_msg:4.0f})  rss {run.rss_mib:.0f} MiB"
                            + (f"  FAILED {run.failures}" if run.failures else ""),
                            flush=True,
                        )
        finally:
            arena.stop()
            echo.stop()
    return report(runs, other, args.baseline_root is not None, args.json, args.plot, sys.argv[1:], os.cpu_count())


if __name__ == "__main__":
    sys.exit(main())
