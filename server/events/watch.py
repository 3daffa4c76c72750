"""``autosteer-server watch --mqtt URL``: the live event feed of every server on a broker, one line per event.

Subscribes to the topics :mod:`server.events.cluster` publishes (and the ``training/{run}/…``
topics of training runs, docs/MQTT.md) and prints servers coming and going, games starting, every move
with the LLM's top features when its bot attached a trace, and results. Stops after
``--count`` events or ``--seconds``, or on Ctrl-C, with a summary line.

>>> describe("autosteer/v1/games/g1/moves", {"game_id": "g1", "ply": 3, "seat": "X", "cell": 5})
'g1  3. X 5'
>>> describe("autosteer/v1/games/g1/traces", {"game_id": "g1", "ply": 3, "seat": "X",
...          "trace": {"top_features": [{"index": 12, "activation": 2.5, "label": "centre free"}],
...                    "steering": [{"index": 7, "coefficient": -0.5}]}})
'g1  3. X features: #12 centre free 2.50 | steering: #7 -0.50'
>>> describe("autosteer/v1/servers/b/status", {"server_id": "b", "status": "offline"})
'server b offline'
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from typing import Any

from server.events.mqtt import MqttUrlError, parse_mqtt_url, topic_part


def _features(trace: dict[str, Any]) -> str:
    """The top features and steering of an LLM trace, read tolerantly (any field may be missing or odd)."""
    parts = []
    for key, value_key, title in (("top_features", "activation", "features"), ("steering", "coefficient", "steering")):
        items = trace.get(key)
        if not isinstance(items, list):
            continue
        shown = []
        for item in items[:5]:
            if not isinstance(item, dict):
                continue
            name = " ".join(
                str(p) for p in (f"#{item['index']}" if "index" in item else "", item.get("label") or "") if p
            )
            value = item.get(value_key)
            shown.append(f"{name or '?'} {value:.2f}" if isinstance(value, (int, float)) else name or "?")
        if shown:
            parts.append(f"{title}: " + ", ".join(shown))
    return " | ".join(parts) if parts else "trace: " + json.dumps(trace, separators=(",", ":"))[:120]


def describe(topic: str, event: dict[str, Any]) -> str | None:
    """One line for one event, or None for events the feed does not show (duplicates)."""
    from server.log_lines import format_game_line

    parts = topic.split("/")
    kind = parts[-1]
    if "servers" in parts and kind == "status":
        if event.get("status") != "online":
            return f"server {event.get('server_id')} offline"
        load = event.get("load") or {}
        return (
            f"server {event.get('server_id')} online at {event.get('url')}: {len(event.get('bots') or [])} bots, "
            f"{load.get('games_live', len(event.get('games') or []))} live games, "
            f"{load.get('connections', '?')} connections"
        )
    if "games" in parts:
        gid = event.get("game_id", parts[-2] if len(parts) >= 2 else "?")
        if kind == "start":
            return f"{gid} started on {event.get('server_id', '?')}: {event.get('x')} (X) vs {event.get('o')} (O)"
        if kind == "moves":
            return f"{gid}  {event.get('ply')}. {event.get('seat')} {event.get('cell')}"
        if kind == "traces":
            trace = event.get("trace")
            return f"{gid}  {event.get('ply')}. {event.get('seat')} " + (
                _features(trace) if isinstance(trace, dict) else "trace"
            )
        if kind == "result":
            try:
                return format_game_line(event)
            except (KeyError, TypeError):
                return f"{gid} over: {event.get('result')} ({event.get('reason')})"
        return None  # state (every move is shown from 'moves'), tournament copies of results
    if "training" in parts:
        body = {k: v for k, v in event.items() if k not in ("type", "run")}
        return (
            f"training {event.get('run', parts[-2] if len(parts) >= 2 else '?')} {kind}: "
            + json.dumps(body, separators=(",", ":"))[:300]
        )
    return None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mqtt", required=True, metavar="URL", help="the broker, mqtt://host[:port][/prefix]")
    parser.add_argument("--game", help="only this game's events")
    parser.add_argument("--count", type=int, help="stop after this many events shown")
    parser.add_argument("--seconds", type=float, help="stop after this many seconds")


def run(args: argparse.Namespace) -> int:
    try:
        host, port, prefix = parse_mqtt_url(args.mqtt)
    except MqttUrlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    topics = [f"{prefix}/games/{topic_part(args.game)}/#"] if args.game else [f"{prefix}/#"]
    try:
        shown, seconds = asyncio.run(_watch(host, port, topics, args.count, args.seconds))
    except OSError as exc:
        print(
            f"error: cannot reach the MQTT broker {host}:{port}: {exc}; is it running? "
            f"(start one with 'mosquitto -p {port}')",
            file=sys.stderr,
        )
        return 2
    print(f"watched {shown} events from {host}:{port} in {seconds:.1f} s", flush=True)
    return 0


async def _watch(
    host: str, port: int, topics: list[str], count: int | None, seconds: float | None
) -> tuple[int, float]:
    import aiomqtt

    t0 = time.monotonic()
    shown = 0
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with aiomqtt.Client(host, port, timeout=5.0) as client:
            for topic in topics:
                await client.subscribe(topic, qos=1)
            print(f"watching {host}:{port} ({', '.join(topics)}); Ctrl-C stops", flush=True)  # subscribed now

            async def read() -> None:
                nonlocal shown
                async for message in client.messages:
                    payload = (
                        message.payload if isinstance(message.payload, bytes) else str(message.payload or "").encode()
                    )
                    if not payload:
                        continue  # a cleared retained message
                    try:
                        event = json.loads(payload)
                        line = describe(str(message.topic), event) if isinstance(event, dict) else None
                    except ValueError:
                        line = f"{message.topic}: (not JSON, {len(payload)} bytes)"
                    if line is None:
                        continue
                    print(line, flush=True)
                    shown += 1
                    if count is not None and shown >= count:
                        stop.set()

            reader = asyncio.create_task(read())
            waiter = asyncio.create_task(stop.wait())
            await asyncio.wait({reader, waiter}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
            for task in (reader, waiter):
                task.cancel()
            if reader.done() and not reader.cancelled() and reader.exception() is not None:
                raise OSError(str(reader.exception()))
    except aiomqtt.MqttError as exc:
        raise OSError(str(exc)) from None
    return shown, time.monotonic() - t0
