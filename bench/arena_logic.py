"""Benchmark: the arena's game logic per request, in-process (no sockets, no event loop).

It builds an :class:`server.arena.arena.Arena` the way ``server.app`` does (house bots, limits
lifted as ``bench/server_load.py`` lifts them), connects N fake sessions and drives
``arena.receive(conn, frame_text, now)`` + ``arena.drain()`` with the load bench's
traffic (``server_load.LoadTraffic``): every session says ``hello``, challenges the house
``random`` bot playing X, plays random legal moves (each answered by one ``state`` holding
the move and the bot's answer) and challenges again at ``game_over``. Sessions take turns, one
request each, like N clients in a closed loop. Only ``receive`` + ``drain`` is timed
(``perf_counter_ns`` around each request); the fake clients' own bookkeeping is not. The
cyclic GC runs with the threshold ``serve`` sets (``--gc-threshold``, 10,000).

``--baseline-root DIR`` measures another checkout in the same run: the same driver runs
in a child process with ``PYTHONPATH=DIR`` (``git worktree add /tmp/logic-base main``
gives the "before"). Current and baseline children alternate, ``--rounds`` times each, so
contention from other work on the machine hits both alike; the figures are medians.

Every child also prints a digest of the frames the server sent (encoded with the server's
``encode_frame``; game ids, challenge ids and tokens, which are random, replaced by their
order of appearance): the same digest for current and baseline means the same bytes on
the wire for the same traffic.

Run (the figures in docs/PERFORMANCE.md, "Game logic per request")::

    python bench/arena_logic.py --baseline-root /tmp/logic-base --connections 100 --requests 20000 --rounds 5
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from server_load import LoadTraffic  # this folder: the load bench's traffic, shared

ROOT = Path(__file__).resolve().parents[1]
_RANDOM_KEYS = ("game_id", "challenge_id", "token")  # values that differ from run to run


def _normalise(frame: Any, seen: dict[str, str]) -> Any:
    """``frame`` with every game id, challenge id and token replaced by its order of appearance."""
    if isinstance(frame, dict):
        out = {}
        for k, v in frame.items():
            if k in _RANDOM_KEYS and isinstance(v, str):
                out[k] = seen.setdefault(v, f"<{len(seen)}>")
            else:
                out[k] = _normalise(v, seen)
        return out
    if isinstance(frame, list):
        return [_normalise(v, seen) for v in frame]
    return frame


def drive(
    connections: int, requests: int, repeats: int, seed: int, digest: bool, gc_threshold: int = 10_000
) -> dict[str, Any]:
    """Run the traffic ``repeats`` times on fresh arenas; µs per request of each repeat."""
    from server.arena.arena import Arena, Send, ServerConfig
    from server.protocol import encode_frame

    gc.set_threshold(gc_threshold, 20, 20)  # as server.app's run() does

    per_request: list[float] = []
    sha = hashlib.sha256()
    frames_sent = 0
    for rep in range(repeats):
        config = ServerConfig(
            seed=seed,
            rate=1e6,
            burst=10**6,
            flood_close=10**6,
            move_clock=600.0,
            max_connections=connections + 1,
            max_connections_per_address=connections + 1,
            max_live_games_per_address=10**6,
            db_path=":memory:",
        )
        arena = Arena(config)
        rng = random.Random(seed)
        now = 1_000_000.0
        clients: dict[int, LoadTraffic] = {}
        for i in range(1, connections + 1):
            arena.connect(i, "127.0.0.1", now)
            clients[i] = LoadTraffic(rng)
            arena.receive(i, json.dumps({"type": "hello", "name": f"p{i}"}), now)
        arena.drain()
        seen: dict[str, str] = {}
        elapsed_ns = 0
        done = 0
        perf = time.perf_counter_ns
        while done < requests:
            for conn_id, client in clients.items():
                raw = json.dumps(client.next_request())
                now += 0.0001
                t0 = perf()
                arena.receive(conn_id, raw, now)
                effects = arena.drain()
                elapsed_ns += perf() - t0
                for effect in effects:
                    if isinstance(effect, Send):
                        clients[effect.conn_id].answered(effect.frame)
                        if digest and rep == 0:
                            sha.update(encode_frame(_normalise(effect.frame, seen)))
                            frames_sent += 1
                done += 1
                if done >= requests:
                    break
        per_request.append(elapsed_ns / 1e3 / done)
    return {"us_per_request": per_request, "digest": sha.hexdigest()[:16] if digest else None, "frames": frames_sent}


def _child(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Run :func:`drive` in a child process on the checkout at ``root``; its JSON result."""
    env = dict(os.environ, PYTHONPATH=str(root))
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        "--connections",
        str(args.connections),
        "--requests",
        str(args.requests),
        "--repeats",
        str(args.repeats),
        "--seed",
        str(args.seed),
        "--gc-threshold",
        str(args.gc_threshold),
    ]
    out = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"the driver failed on {root}:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    ap.add_argument("--connections", type=int, default=100, help="sessions playing at once")
    ap.add_argument("--requests", type=int, default=20000, help="requests timed per repeat")
    ap.add_argument("--repeats", type=int, default=1, help="repeats inside each child process")
    ap.add_argument("--rounds", type=int, default=5, help="child processes per checkout (alternating)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--gc-threshold", type=int, default=10_000, help="cyclic GC threshold (generation 0), as 'serve' sets it"
    )
    ap.add_argument("--baseline-root", type=Path, default=None, help="another checkout measured in the same run")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(
            json.dumps(
                drive(
                    args.connections,
                    args.requests,
                    args.repeats,
                    args.seed,
                    digest=True,
                    gc_threshold=args.gc_threshold,
                )
            )
        )
        return 0

    roots = [("current", ROOT)] + ([("baseline", args.baseline_root.resolve())] if args.baseline_root else [])
    print(
        f"arena logic: {args.connections} sessions vs the house random bot, {args.requests} requests x "
        f"{args.repeats} per child, {args.rounds} rounds; checkouts: " + ", ".join(f"{n} {r}" for n, r in roots),
        flush=True,
    )
    results: dict[str, list[float]] = {name: [] for name, _ in roots}
    digests: dict[str, set[str]] = {name: set() for name, _ in roots}
    for rnd in range(args.rounds):
        for name, root in roots if rnd % 2 == 0 else roots[::-1]:
            res = _child(root, args)
            results[name] += res["us_per_request"]
            digests[name].add(f"{res['digest']} ({res['frames']} frames)")
            print(
                f"  round {rnd + 1}/{args.rounds} {name:8s} "
                + " ".join(f"{v:.1f}" for v in res["us_per_request"])
                + " µs/request",
                flush=True,
            )
    medians = {name: statistics.median(v) for name, v in results.items()}
    print()
    print("| checkout | µs/request (median) | min | max | frames digest |")
    print("|---|---|---|---|---|")
    for name, _ in roots:
        v = results[name]
        print(f"| {name} | {medians[name]:.1f} | {min(v):.1f} | {max(v):.1f} | {', '.join(sorted(digests[name]))} |")
    if args.baseline_root:
        ratio = medians["baseline"] / medians["current"]
        same = digests["current"] == digests["baseline"]
        print(
            f"\nresult: current {medians['current']:.1f} µs/request, baseline {medians['baseline']:.1f}: "
            f"{ratio:.2f}x as fast; frames {'identical' if same else 'DIFFER'} (normalised digest)"
        )
    else:
        print(f"\nresult: {medians['current']:.1f} µs/request (median of {len(results['current'])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
